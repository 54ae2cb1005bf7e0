"""Metrics of the ingress SMTP server; every one is declared here and its help text documents it."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.ingress.policy import RejectReason

CONNECTIONS = Counter(
    "baton_ingress_connections_total",
    "SMTP connections accepted by ingress.",
)
CONNECTIONS_OPEN = Gauge(
    "baton_ingress_connections_open",
    "SMTP connections open right now.",
)
MESSAGES_ACCEPTED = Counter(
    "baton_ingress_messages_accepted_total",
    "Messages answered with 250 after Kafka acknowledged their Envelope.",
)
REJECTIONS = Counter(
    "baton_ingress_rejections_total",
    "SMTP commands or messages refused, by reason: relay_denied, auth_failed, too_big, "
    "tempfail_kafka, backpressure, bad_address, bare_newline, too_many_recipients, shutting_down, "
    "bad_command, line_too_long, bad_content, early_talker, timeout, too_many_connections, "
    "auth_throttled, tls_failed.",
    ["reason"],
)
AUTH_ATTEMPTS = Counter(
    "baton_ingress_auth_total",
    "SMTP AUTH attempts by mechanism and result (ok, failed, throttled).",
    ["mechanism", "result"],
)
AUTH_THROTTLED = Counter(
    "baton_ingress_auth_throttled_total",
    "AUTH attempts refused with 454 without a password check, by what was throttled (ip, user).",
    ["scope"],
)
SUBMIT_PENDING = Gauge(
    "baton_ingress_submit_pending",
    "Transactions waiting for Kafka's acknowledgement; bounded by smtp_max_pending.",
)
SUBMIT_SECONDS = Histogram(
    "baton_ingress_submit_seconds",
    "Time from handing an Envelope to the producer until Kafka acknowledged it or submit failed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MESSAGE_BYTES = Histogram(
    "baton_ingress_message_bytes",
    "Size of accepted messages as forwarded (with Baton's headers).",
    buckets=(1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216),
)

# Every reason is exported from the start, so a rate() over it has a zero to start from.
for _reason in RejectReason:
    REJECTIONS.labels(reason=_reason.value)
for _scope in ("ip", "user"):
    AUTH_THROTTLED.labels(scope=_scope)
