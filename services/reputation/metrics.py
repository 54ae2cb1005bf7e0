"""Metrics of the reputation service. Every metric is declared once, here; the help text is its
documentation."""

from prometheus_client import Counter

EVENTS_RECORDED = Counter(
    "baton_reputation_events_recorded_total",
    "Timeline events written to the store, by kind (accepted, filtered, routed, outcome).",
    ["kind"],
)
EVENTS_DUPLICATE = Counter(
    "baton_reputation_events_duplicate_total",
    "Timeline events ignored because the same step was already stored (a replayed record), by kind.",
    ["kind"],
)
API_REQUESTS = Counter(
    "baton_reputation_api_requests_total",
    "HTTP requests to the reputation API, by route template, method and status code.",
    ["route", "method", "status"],
)
