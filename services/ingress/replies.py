"""aiosmtpd's own error replies, rewritten into Baton's: RFC 3463 enhanced codes, no echoed input.

aiosmtpd answers protocol errors itself (wrong order, syntax, unknown commands and parameters, long
lines) with bare codes, and some answers repeat what the client sent. The server passes every
outgoing reply through :func:`rewrite`; a pure table keeps that testable without sockets.
"""

from __future__ import annotations

import re

from services.ingress.policy import COMMAND_TOO_LONG, MESSAGE_TOO_BIG, TEXT_LINE_TOO_LONG, RejectReason, Reply

_BAD = RejectReason.BAD_COMMAND


def _seq(text: str) -> Reply:
    # RFC 3463 X.5.1: invalid command (here: not valid in this state).
    return Reply(503, "5.5.1", text, _BAD)


def _syntax(text: str) -> Reply:
    # RFC 3463 X.5.4: invalid command arguments.
    return Reply(501, "5.5.4", text, _BAD)


_EXACT: dict[str, Reply] = {
    "552 Error: Too much mail data": MESSAGE_TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
    "500 Command line too long": COMMAND_TOO_LONG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": TEXT_LINE_TOO_LONG,
    "500 Error: bad syntax": Reply(500, "5.5.2", "syntax error", _BAD),
    "503 Error: send HELO first": _seq("send HELO/EHLO first"),
    "503 Error: send EHLO first": _seq("send EHLO first"),
    "503 Error: nested MAIL command": _seq("nested MAIL command"),
    "503 Error: need MAIL command": _seq("need MAIL command"),
    "503 Error: need RCPT command": _seq("need RCPT command"),
    "503 Already authenticated": _seq("already authenticated"),
    "500 Error: command 'AUTH' not recognized": _seq("AUTH needs EHLO"),
    "501 Syntax: HELO hostname": _syntax("Syntax: HELO hostname"),
    "501 Syntax: EHLO hostname": _syntax("Syntax: EHLO hostname"),
    "501 Syntax: MAIL FROM: <address>": _syntax("Syntax: MAIL FROM:<address>"),
    "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]": _syntax(
        "Syntax: MAIL FROM:<address> [SP <mail-parameters>]"
    ),
    "501 Syntax: RCPT TO: <address>": _syntax("Syntax: RCPT TO:<address>"),
    "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]": _syntax(
        "Syntax: RCPT TO:<address> [SP <mail-parameters>]"
    ),
    "501 Syntax: DATA": _syntax("Syntax: DATA"),
    "501 Syntax: RSET": _syntax("Syntax: RSET"),
    "501 Syntax: QUIT": _syntax("Syntax: QUIT"),
    "501 Syntax: STARTTLS": _syntax("Syntax: STARTTLS"),
    "501 Syntax: VRFY <address>": _syntax("Syntax: VRFY <address>"),
    "501 Not enough value": _syntax("Syntax: AUTH mechanism [initial-response]"),
    "501 Too many values": _syntax("Syntax: AUTH mechanism [initial-response]"),
    "501 Error: BODY can only be one of 7BIT, 8BITMIME": _syntax("BODY must be 7BIT or 8BITMIME"),
    "501 Error: SMTPUTF8 takes no arguments": _syntax("SMTPUTF8 takes no value"),
    # RFC 5321 4.5.3.1: 555 for parameters not recognized.
    "555 MAIL FROM parameters not recognized or not implemented": Reply(
        555, "5.5.4", "MAIL FROM parameter not recognized", _BAD
    ),
    "555 RCPT TO parameters not recognized or not implemented": Reply(
        555, "5.5.4", "RCPT TO parameter not recognized", _BAD
    ),
    "502 EXPN not implemented": Reply(502, "5.5.1", "EXPN not implemented", _BAD),
    "454 TLS not available": Reply(454, "4.7.0", "TLS not available", None),
}

# Replies that carry client input: answered without it.
_PATTERNS: list[tuple[re.Pattern[str], Reply]] = [
    (
        re.compile(r'500 Error: command ".*" not recognized\Z', re.S),
        Reply(500, "5.5.1", "command not recognized", _BAD),
    ),
    (re.compile(r"502 Could not VRFY ", re.S), Reply(502, "5.5.4", "could not VRFY", _BAD)),
]


def rewrite(status: str) -> Reply | None:
    """Baton's reply for one of aiosmtpd's, or None to send ``status`` unchanged."""
    reply = _EXACT.get(status)
    if reply is not None:
        return reply
    for pattern, replacement in _PATTERNS:
        if pattern.match(status):
            return replacement
    return None
