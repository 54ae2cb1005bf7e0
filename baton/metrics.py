"""Metrics of the shared stage loop. Every metric is declared once, here or in a service's own
``metrics.py``; the help text is its documentation."""

from prometheus_client import Counter, Gauge, Histogram

STAGE_RECORDS = Counter(
    "baton_stage_records_total",
    "Records a stage finished, by input topic and result: ok (handled and committed), dlq (sent to the "
    "dead-letter topic).",
    ["stage", "topic", "result"],
)
STAGE_RETRIES = Counter(
    "baton_stage_retries_total",
    "Handler attempts that failed with a retriable error and were tried again.",
    ["stage"],
)
STAGE_PRODUCED = Counter(
    "baton_stage_produced_total",
    "Records a stage produced and saw acknowledged, by output topic.",
    ["stage", "topic"],
)
STAGE_HANDLE_SECONDS = Histogram(
    "baton_stage_handle_seconds",
    "Time the stage's handler took for one record (excluding produce and commit).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_BATCH_SECONDS = Histogram(
    "baton_stage_batch_seconds",
    "Time from a batch's arrival to its committed offsets.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STAGE_IN_FLIGHT = Gauge(
    "baton_stage_in_flight",
    "Records taken from Kafka and not yet committed.",
    ["stage"],
)
STAGE_LAG = Gauge(
    "baton_stage_lag",
    "Consumer lag: partition high-water mark minus the stage's committed offset.",
    ["stage", "topic", "partition"],
)
STAGE_KAFKA_ERRORS = Counter(
    "baton_stage_kafka_errors_total",
    "Batches abandoned and replayed because producing or committing failed.",
    ["stage"],
)
STAGE_DLQ_RATIO = Gauge(
    "baton_stage_dlq_ratio",
    "Share of recent records that went to the dead-letter topic; the stage stops above its limit.",
    ["stage"],
)
STAGE_ASSIGNED = Gauge(
    "baton_stage_assigned_partitions",
    "Partitions the group gave this replica at the last rebalance.",
    ["stage"],
)
STAGE_REBALANCES = Counter(
    "baton_stage_rebalances_total",
    "Partition assignments this replica received (start-up, scaling, a member or broker lost).",
    ["stage"],
)
