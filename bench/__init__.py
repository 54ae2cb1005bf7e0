"""``make bench``: Baton and Postfix relaying the same workload to the same fast sink, same run.

    .venv/bin/python -m bench.run --messages 2000

Modules: ``sink`` (the fast SMTP sink, its own process), ``load`` (the load generator, its own
process), ``postfix`` (a private Postfix instance in a temp directory), ``procstat`` (CPU and peak RSS
from /proc), ``report`` (figures, table, JSON and chart) and ``run`` (the orchestration).
"""
