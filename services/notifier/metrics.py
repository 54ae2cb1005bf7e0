from prometheus_client import Counter

OUTCOMES_SEEN = Counter(
    "baton_notifier_outcomes_seen_total",
    "Outcomes read from `result` by the notifier service, by status.",
    ["status"],
)
