"""Render docs/metrics.md from the metric declarations themselves (their help text is the doc).

`make docs` writes it; `make check-generated` fails when it is stale, so the page cannot drift from
the code.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

MODULES = (
    "baton.metrics",
    "services.ingress.metrics",
    "services.router.metrics",
    "services.sender.metrics",
    "services.reputation.metrics",
    "services.feedback.metrics",
    "services.notifier.metrics",
)
TARGET = Path("docs/metrics.md")


def render() -> str:
    lines = [
        "# Metrics",
        "",
        "Generated from the declarations by `make docs`; do not edit. Every service serves its own on",
        "`/metrics` of its admin port; the `baton_stage_*` family comes from the shared stage loop.",
        "",
    ]
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        metrics = [v for v in vars(module).values() if isinstance(v, MetricWrapperBase)]
        if not metrics:
            continue
        lines += [f"## `{module_name}`", "", "| metric | type | labels | meaning |", "|---|---|---|---|"]
        for metric in sorted(metrics, key=lambda m: m._name):
            suffix = "_total" if metric._type == "counter" else ""
            labels = ", ".join(metric._labelnames) or "-"
            text = metric._documentation.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{metric._name}{suffix}` | {metric._type} | {labels} | {text} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale; run make docs")
            return 1
        print(f"{TARGET} is current")
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
