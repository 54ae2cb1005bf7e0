"""Every metric the sender exposes, declared once here (help text is the documentation)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CONNECTIONS_OPENED = Counter(
    "baton_sender_connections_opened",
    "SMTP connections the sender opened to remote hosts (successful connect, greeting and EHLO).",
)
CONNECTIONS_REUSED = Counter(
    "baton_sender_connections_reused",
    "Times a pooled SMTP connection was reused for another message (after a successful RSET).",
)
CONNECTION_FAILURES = Counter(
    "baton_sender_connection_failures",
    "Attempts to open an SMTP session that failed, by coarse failure class.",
    ["failure_class"],
)
RECIPIENTS = Counter(
    "baton_sender_recipients",
    "Recipients the sender decided, by outcome status (delivered, deferred, bounced).",
    ["status"],
)
DELIVERY_SECONDS = Histogram(
    "baton_sender_delivery_seconds",
    "Wall time of one Delivery (all its recipients, every host tried), dedupe-only replays excluded.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
DEDUPE_HITS = Counter(
    "baton_sender_dedupe_hits",
    "Recipients not sent again because a SentRecord showed they already had a final answer.",
)
