from prometheus_client import Counter

OUTCOMES_SEEN = Counter(
    "baton_feedback_outcomes_seen_total",
    "Outcomes read from `result` by the feedback service, by status.",
    ["status"],
)
