"""Fuzz ``services.filter.inspect.inspect_message``: it must never raise, whatever the bytes.

Its docstring promises exactly that (a message must not go to the DLQ because its sender wrote
garbage); the standard library's header and MIME parsers are instrumented along with it.

Run: ``.venv/bin/python tests/fuzz/fuzz_mime.py var/fuzz/corpus/fuzz_mime tests/fuzz/seeds/fuzz_mime
-max_total_time=60`` (or ``tests/fuzz/run.py``).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["services", "email"]):
    from services.filter.inspect import Inspection, inspect_message


def TestOneInput(data: bytes) -> None:
    result = inspect_message(data)
    assert isinstance(result, Inspection)
    # The verdict carries these reasons; reading them back must work for later rules too.
    for reason in result.reasons:
        assert reason.rule
        assert len(reason.detail) <= 500


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
