"""The bench's figures, table and chart: pure functions of what the load generator and the sink recorded.

Times are CLOCK_MONOTONIC seconds from both processes. "Accept latency" is the end of DATA (final dot
written) to the 250 reply; "accept→delivered" is the sink's arrival time minus that 250 time, matched
by Message-ID. Rates are counts over the span from the first message sent to the last 250 (accepted)
or the last arrival (delivered), so the delivered rate includes the drain of whatever was queued.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.load import message_id

PERCENTILES = (50, 95, 99)


def percentiles(values: Sequence[float], points: Sequence[int] = PERCENTILES) -> dict[str, float | None]:
    """Nearest-rank percentiles (and the max), in milliseconds from seconds."""
    if not values:
        return {**{f"p{p}": None for p in points}, "max": None}
    ordered = sorted(values)
    result: dict[str, float | None] = {}
    for p in points:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        result[f"p{p}"] = round(ordered[rank - 1] * 1000, 2)
    result["max"] = round(ordered[-1] * 1000, 2)
    return result


def figures(
    load: Mapping[str, Any], arrivals: Sequence[Sequence[Any]], resources: Mapping[str, Any]
) -> dict[str, Any]:
    """Every figure of one system's run."""
    tag = load["tag"]
    started = float(load["started"])
    accepted = {message_id(tag, int(i)): (float(dot), float(reply)) for i, dot, reply in load["accepted"]}
    seen: Counter[str] = Counter()
    first: dict[str, float] = {}
    for mid, when in arrivals:
        seen[mid] += 1
        first.setdefault(mid, float(when))
    delivered = {mid: when for mid, when in first.items() if mid in accepted}
    unexpected = sum(n for mid, n in seen.items() if mid not in accepted)
    duplicated = sum(n - 1 for mid, n in seen.items() if mid in accepted and n > 1)
    accept_latency = [reply - dot for dot, reply in accepted.values()]
    end_to_end = [delivered[mid] - accepted[mid][1] for mid in delivered]
    last_accept = max((reply for _, reply in accepted.values()), default=started)
    last_arrival = max(delivered.values(), default=started)
    count = len(accepted)
    stages = {
        name: {
            **stage,
            "cpu_s_per_1000": round(stage["cpu_s"] / count * 1000, 3) if count else None,
        }
        for name, stage in resources.get("stages", {}).items()
    }
    total_cpu = sum(stage["cpu_s"] for stage in resources.get("stages", {}).values())
    return {
        "accepted": count,
        "failed": sum(load["failed"].values()),
        "failed_replies": load["failed"],
        "session_errors": load.get("session_errors", {}),
        "retries_4xx": load["retries"],
        "load_timed_out": load["timed_out"],
        "load_s": round(last_accept - started, 3),
        "accepted_per_s": round(count / (last_accept - started), 1) if count else 0.0,
        "delivered": len(delivered),
        "delivered_per_s": round(len(delivered) / (last_arrival - started), 1) if delivered else 0.0,
        "drain_s": round(max(0.0, last_arrival - last_accept), 3),
        "lost": count - len(delivered),
        "duplicated": duplicated,
        "unexpected": unexpected,
        "accept_latency_ms": percentiles(accept_latency),
        "accept_to_delivered_ms": percentiles(end_to_end),
        "cpu_s_total": round(total_cpu, 2),
        "cpu_s_per_1000_total": round(total_cpu / count * 1000, 3) if count else None,
        "stages": stages,
        "harness": resources.get("harness", {}),
        "series": series(started, accepted, delivered),
    }


def series(
    started: float, accepted: Mapping[str, tuple[float, float]], delivered: Mapping[str, float]
) -> dict[str, list[Any]]:
    """Per-second counts (accepted, delivered) and accept→delivered p50/p99 by second of acceptance."""
    end = max([*(r for _, r in accepted.values()), *delivered.values(), started])
    seconds = int(end - started) + 1
    acc = [0] * seconds
    dlv = [0] * seconds
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for mid, (_, reply) in accepted.items():
        second = int(reply - started)
        acc[second] += 1
        if mid in delivered:
            latencies[second].append(delivered[mid] - reply)
    for when in delivered.values():
        dlv[int(when - started)] += 1
    p50: list[float | None] = []
    p99: list[float | None] = []
    for values in latencies:
        figures_ = percentiles(values, (50, 99))
        p50.append(figures_["p50"])
        p99.append(figures_["p99"])
    return {"accepted_per_s": acc, "delivered_per_s": dlv, "latency_p50_ms": p50, "latency_p99_ms": p99}


# --- table ----------------------------------------------------------------------------------------

_ROWS: list[tuple[str, str, bool]] = [
    # (label, key path, whether a Baton/Postfix ratio is shown)
    ("accepted (msgs)", "accepted", False),
    ("failed / 4xx retries", "failed|retries_4xx", False),
    ("accepted msgs/s", "accepted_per_s", True),
    ("delivered msgs/s", "delivered_per_s", True),
    ("drain after last 250 (s)", "drain_s", False),
    ("lost / duplicated", "lost|duplicated", False),
    ("accept latency p50 (ms)", "accept_latency_ms.p50", False),
    ("accept latency p95 (ms)", "accept_latency_ms.p95", False),
    ("accept latency p99 (ms)", "accept_latency_ms.p99", False),
    ("accept→delivered p50 (ms)", "accept_to_delivered_ms.p50", False),
    ("accept→delivered p95 (ms)", "accept_to_delivered_ms.p95", False),
    ("accept→delivered p99 (ms)", "accept_to_delivered_ms.p99", False),
    ("CPU s / 1000 msgs (all)", "cpu_s_per_1000_total", True),
]


def _get(result: Mapping[str, Any], path: str) -> Any:
    if "|" in path:
        return " / ".join(str(_get(result, p)) for p in path.split("|"))
    value: Any = result
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(results)
    both = "baton" in results and "postfix" in results
    header = ["", *names] + (["baton/postfix"] if both else [])
    rows = [header]
    for label, path, ratio in _ROWS:
        values = [_get(results[n], path) for n in names]
        row = [label, *(_fmt(v) for v in values)]
        if both:
            b, p = _get(results["baton"], path), _get(results["postfix"], path)
            row.append(f"{b / p:.2f}x" if ratio and isinstance(b, int | float) and p else "")
        rows.append(row)
    out = [_render(rows)]
    for name in names:
        stage_rows = [
            [f"{name} stage", "processes", "CPU s", "CPU s/1000 msgs", "peak RSS MB (sum)", "PSS MB at end"]
        ]
        for stage, fig in results[name].get("stages", {}).items():
            stage_rows.append(
                [
                    f"  {stage}",
                    str(fig.get("processes")),
                    _fmt(fig.get("cpu_s")),
                    _fmt(fig.get("cpu_s_per_1000")),
                    _fmt(fig.get("peak_rss_mb")),
                    _fmt(fig.get("pss_mb")),
                ]
            )
        out.append(_render(stage_rows))
    return "\n\n".join(out)


def _render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --- chart ----------------------------------------------------------------------------------------


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average over ``window`` points (shorter at the edges)."""
    half = window // 2
    result = []
    for i in range(len(values)):
        part = values[max(0, i - half) : i + window - half]
        result.append(sum(part) / len(part))
    return result


_COLORS = {"baton": "#1f77b4", "postfix": "#d62728"}


def chart(results: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True, constrained_layout=True)
    longest = max((len(r["series"]["accepted_per_s"]) for r in results.values()), default=1)
    # One-second counts are jagged on a long run; a centred moving average keeps about 60 points.
    window = max(1, round(longest / 60))
    for name, result in results.items():
        s = result["series"]
        color = _COLORS.get(name)
        # A point per one-second bin, drawn at the bin's middle.
        x = [i + 0.5 for i in range(len(s["accepted_per_s"]))]
        top.plot(x, smooth(s["accepted_per_s"], window), color=color, lw=1.6, label=f"{name} accepted")
        top.plot(
            x, smooth(s["delivered_per_s"], window), color=color, lw=1.2, ls="--", label=f"{name} delivered"
        )
        kept = [i for i, v in enumerate(s["latency_p50_ms"]) if v is not None]
        lx = [i + 0.5 for i in kept]
        p50 = [s["latency_p50_ms"][i] for i in kept]
        p99 = [s["latency_p99_ms"][i] for i in kept]
        bottom.plot(lx, p50, color=color, lw=1.6, label=f"{name} p50")
        bottom.plot(lx, p99, color=color, lw=1.0, ls=":", label=f"{name} p99")
    top.set_ylabel("messages per second" + (f" ({window} s moving average)" if window > 1 else ""))
    top.set_title(
        f"Throughput: {params['messages']:,} messages of {params['size']:,} B, "
        f"{params['sessions']} sessions, {params['domains']} domains"
    )
    top.set_xlim(left=0)
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="upper right", fontsize=9)
    shown = [
        v for r in results.values() for v in r["series"]["latency_p99_ms"] + r["series"]["latency_p50_ms"]
    ]
    shown = [v for v in shown if v]
    # A log scale only when the latencies span more than a decade or so; within one it has no labels.
    if shown and max(shown) / min(shown) > 20:
        bottom.set_ylabel("accept → delivered (ms, log)")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        bottom.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    else:
        bottom.set_ylabel("accept → delivered (ms)")
        bottom.set_ylim(bottom=0)
    bottom.set_xlabel("seconds since the first message was sent (latency by second of acceptance)")
    bottom.set_title("Accept → delivered latency over time")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(loc="lower right", fontsize=9, ncol=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
