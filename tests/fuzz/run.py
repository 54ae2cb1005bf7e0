"""Run every fuzz harness for a bounded time (CI); exit non-zero if any of them found a crash.

Usage: ``.venv/bin/python tests/fuzz/run.py --seconds 20 [harness ...]``

Each harness runs in its own process with libFuzzer's ``-max_total_time`` and ``-rss_limit_mb``.
The growing corpus, logs and crash inputs live under ``var/fuzz/`` (ignored by git); the seeds in
``tests/fuzz/seeds/<harness>/`` are read, never written.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "var" / "fuzz"
HARNESSES = ("fuzz_addresses", "fuzz_mime", "fuzz_smtp_session")
RSS_LIMIT_MB = 2048
# One input taking longer than this is a finding (libFuzzer writes it as timeout-*).
INPUT_TIMEOUT_S = 10
# Instrumenting the imports takes a few seconds before the clock of -max_total_time starts.
STARTUP_GRACE_S = 120
_ARTIFACT = re.compile(r"(?:crash|timeout|oom|leak|slow-unit)-[0-9a-f]+")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)


@dataclass
class Result:
    harness: str
    returncode: int
    execs: int
    exec_per_s: int
    artifacts: list[Path]
    log: Path

    @property
    def crashed(self) -> bool:
        return self.returncode != 0 or bool(self.artifacts)


def run_harness(harness: str, seconds: int) -> Result:
    corpus = OUT / "corpus" / harness
    artifacts = OUT / "crashes" / harness
    logs = OUT / "logs"
    for directory in (corpus, artifacts, logs):
        directory.mkdir(parents=True, exist_ok=True)
    log = logs / f"{harness}.log"
    before = set(artifacts.iterdir())
    command = [
        sys.executable,
        str(HERE / f"{harness}.py"),
        # libFuzzer adds new inputs to the first directory only: keep that one out of tests/.
        str(corpus),
        str(HERE / "seeds" / harness),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with log.open("wb") as out:
        try:
            proc = subprocess.run(
                command,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=seconds + STARTUP_GRACE_S,
            )
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = -1
            with log.open("a") as note:
                note.write(f"\nrun.py: killed after {seconds + STARTUP_GRACE_S} s\n")
    text = log.read_text(errors="replace")
    stats = {name: int(value) for name, value in _STAT.findall(text)}
    new = sorted(p for p in set(artifacts.iterdir()) - before if _ARTIFACT.fullmatch(p.name))
    return Result(
        harness=harness,
        returncode=returncode,
        execs=stats.get("number_of_executed_units", 0),
        exec_per_s=stats.get("average_exec_per_sec", 0),
        artifacts=new,
        log=log,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="fuzzing time per harness (default 20)")
    parser.add_argument(
        "harnesses", nargs="*", metavar="HARNESS", help=f"default: all of {', '.join(HARNESSES)}"
    )
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    unknown = sorted(set(args.harnesses) - set(HARNESSES))
    if unknown:
        parser.error(f"unknown harness: {', '.join(unknown)}")
    failed = False
    for harness in args.harnesses or HARNESSES:
        result = run_harness(harness, args.seconds)
        verdict = "CRASH" if result.crashed else "ok"
        print(
            f"{harness:<20} {verdict:<5} execs={result.execs:<9} exec/s={result.exec_per_s:<6} "
            f"exit={result.returncode} log={result.log.relative_to(REPO)}",
            flush=True,
        )
        for artifact in result.artifacts:
            print(f"    finding: {artifact.relative_to(REPO)}", flush=True)
        if result.crashed and not result.artifacts:
            print("    no input was saved: see the log", flush=True)
        failed = failed or result.crashed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
