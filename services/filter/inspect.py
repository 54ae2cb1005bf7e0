"""Parse and validate a message's headers and MIME structure (pure).

The content rules (spam, phishing, brand impersonation) come later as a rule chain; this module
only tells whether the message is well-formed and lists what is wrong with it, so the verdict can
carry it and later rules can read the parsed message instead of parsing it again.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser

from baton.v1 import verdict_pb2

# The structure is parsed with compat32, whose headers stay plain strings: the default policy parses
# every header it touches (Content-Type on each part included), which was over half the filter's
# CPU in the bench profile. Only the headers checked below go through the full header parser.
_PARSER = BytesParser(policy=email.policy.compat32)
_HEADER_POLICY = email.policy.default

# Headers RFC 5322 section 3.6 requires exactly once.
_REQUIRED_ONCE = ("From", "Date")
# Headers allowed at most once (RFC 5322 section 3.6, table).
_AT_MOST_ONCE = ("From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID", "Subject", "Date")
_MAX_MIME_PARTS = 1000
_MAX_MIME_DEPTH = 30


@dataclass
class Inspection:
    message: Message
    reasons: list[verdict_pb2.Reason] = field(default_factory=list)
    parts: int = 0

    def note(self, rule: str, detail: str) -> None:
        self.reasons.append(verdict_pb2.Reason(rule=rule, detail=detail[:500], score=0.0))


def inspect_message(body: bytes) -> Inspection:
    """Parse ``body`` (RFC 5322 bytes) and list its structural defects as zero-score reasons.

    Never raises on hostile input: the standard library's parser has crashed on malformed headers
    and recurses once per MIME level, and a message must not reach the DLQ (and push the stage
    towards its DLQ limit) because its sender wrote garbage.
    """
    try:
        message = _PARSER.parsebytes(body)
    except RecursionError:
        # Deeper nesting than the interpreter's stack: judge the headers alone.
        message = _PARSER.parsebytes(body, headersonly=True)
        result = Inspection(message)
        result.note("mime.too_deep", "nesting deeper than the parser can follow")
        _check_headers(message, result)
        return result
    result = Inspection(message)
    _check_headers(message, result)
    _walk(message, result, depth=0)
    return result


def _headers(message: Message, name: str, result: Inspection) -> list[object]:
    """All values of header ``name``; a value the parser cannot read is noted and skipped."""
    values: list[object] = []
    for raw in _raw_values(message, name):
        try:
            values.append(_HEADER_POLICY.header_fetch_parse(name, raw))
        except Exception as exc:  # the stdlib header parser raises IndexError, TypeError, ...
            result.note("header.unparseable", f"{name}: {type(exc).__name__}")
    return values


def _raw_values(message: Message, name: str) -> list[str]:
    lname = name.lower()
    return [v for k, v in message.raw_items() if k.lower() == lname]


def _check_headers(message: Message, result: Inspection) -> None:
    for name in _REQUIRED_ONCE:
        if name not in message:
            result.note("header.missing", name)
    for name in _AT_MOST_ONCE:
        count = len(_raw_values(message, name))
        if count > 1:
            result.note("header.repeated", f"{name} x{count}")
    for name in ("From", "To", "Cc", "Reply-To", "Sender", "Message-ID"):
        for value in _headers(message, name, result):
            defects = getattr(value, "defects", ())
            if defects:
                result.note("header.invalid", f"{name}: {type(defects[0]).__name__}")


def _walk(part: Message, result: Inspection, depth: int) -> None:
    result.parts += 1
    for defect in part.defects:
        result.note("mime.defect", type(defect).__name__)
    if depth > _MAX_MIME_DEPTH:
        result.note("mime.too_deep", f"nesting deeper than {_MAX_MIME_DEPTH}")
        return
    if result.parts > _MAX_MIME_PARTS:
        if not any(r.rule == "mime.too_many_parts" for r in result.reasons):
            result.note("mime.too_many_parts", f"more than {_MAX_MIME_PARTS} parts")
        return
    if part.is_multipart():
        payload = part.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    _walk(child, result, depth + 1)
