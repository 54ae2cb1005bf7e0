"""inspect_message over the labelled content corpus: it may report defects but must never raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.filter.inspect import inspect_message

CORPUS = Path("/work/shared/data/content")
CLASSES = ("ham", "spam", "phish")
# Files whose Message-Id ("< [an10]. [an6].[anl12] [an11]@host>") makes the stdlib header parser
# raise IndexError; inspect_message must report it, not raise.
UNPARSEABLE_HEADERS = ("phish/sample-271.eml", "phish/sample-284.eml")

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"content corpus not present at {CORPUS}")


@needs_corpus
def test_inspect_never_raises_on_the_corpus() -> None:
    files = sorted(path for name in CLASSES for path in (CORPUS / name).glob("*.eml"))
    assert files, f"no *.eml files under {CORPUS}/{{{','.join(CLASSES)}}}"
    flagged: dict[str, int] = dict.fromkeys(CLASSES, 0)
    totals: dict[str, int] = dict.fromkeys(CLASSES, 0)
    crashes: list[str] = []
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        totals[path.parent.name] += 1
        try:
            result = inspect_message(path.read_bytes())
        except Exception as exc:  # collected so that one run names every crashing file
            crashes.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        assert result.parts >= 1, name
        if result.reasons:
            flagged[path.parent.name] += 1
    share = sum(flagged.values()) / len(files)
    per_class = ", ".join(f"{c} {flagged[c]}/{totals[c]}" for c in CLASSES)
    print(f"\ncorpus: {len(files)} files, {share:.1%} with at least one reason ({per_class})")
    assert crashes == []


@needs_corpus
@pytest.mark.parametrize("name", UNPARSEABLE_HEADERS)
def test_unparseable_headers_are_reported(name: str) -> None:
    result = inspect_message((CORPUS / name).read_bytes())
    assert result.parts >= 1
    assert "header.unparseable" in {r.rule for r in result.reasons}
