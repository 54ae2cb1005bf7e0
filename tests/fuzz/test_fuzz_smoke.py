"""Replay every seed through every fuzz harness, uninstrumented, so plain ``pytest`` covers them.

The fuzzers themselves run from ``tests/fuzz/run.py``. Seeds that reproduce a finding not fixed yet
are listed in ``KNOWN_FINDINGS`` and expected to fail (strictly: once the code is fixed the test
XPASSes, which fails the run, and the entry must go).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import atheris
import pytest

HERE = Path(__file__).parent
SEEDS = HERE / "seeds"
HARNESSES = ("fuzz_addresses", "fuzz_mime", "fuzz_smtp_session")

# (harness, seed file) -> what goes wrong; see the fuzzing report.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}


@contextlib.contextmanager
def _uninstrumented(**_kwargs: object) -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def harnesses() -> Iterator[dict[str, ModuleType]]:
    # Importing a harness normally instruments the code under test for coverage feedback; plain
    # replay does not need that and would pay for it in every later test.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(atheris, "instrument_imports", _uninstrumented)
        modules = {name: importlib.import_module(f"tests.fuzz.{name}") for name in HARNESSES}
    yield modules
    modules["fuzz_smtp_session"].close()


def _cases() -> list[object]:
    cases: list[object] = []
    for harness in HARNESSES:
        seeds = sorted((SEEDS / harness).iterdir())
        assert seeds, f"no seeds for {harness}"
        for seed in seeds:
            reason = KNOWN_FINDINGS.get((harness, seed.name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(harness, seed, id=f"{harness}/{seed.name}", marks=marks))
    return cases


@pytest.mark.parametrize(("harness", "seed"), _cases())
def test_seed_replays_cleanly(harnesses: dict[str, ModuleType], harness: str, seed: Path) -> None:
    harnesses[harness].TestOneInput(seed.read_bytes())


def test_known_findings_have_seeds() -> None:
    missing = [f"{h}/{s}" for h, s in KNOWN_FINDINGS if not (SEEDS / h / s).is_file()]
    assert not missing


def test_seeds_are_small() -> None:
    big = [str(p) for p in SEEDS.rglob("*") if p.is_file() and p.stat().st_size >= 2048]
    assert not big
