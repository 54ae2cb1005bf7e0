"""The exceptions of the ingress boundary. Each carries whether trying again later can help."""

from __future__ import annotations


class IngressError(Exception):
    """Base of every error ingress raises on purpose."""

    # True when the same request may succeed later (the client gets a 4xx, not a 5xx).
    retriable: bool = False


class SubmitError(IngressError):
    """Kafka did not acknowledge the Envelope in time; the client must get 451 and retry."""

    retriable = True

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"{message_id}: {reason}")
        self.message_id = message_id
        self.reason = reason


class AccountError(IngressError):
    """An account operation could not be done as asked."""

    def __init__(self, username: str, reason: str) -> None:
        super().__init__(f"{username}: {reason}")
        self.username = username
        self.reason = reason


class AccountExistsError(AccountError):
    """``add`` of a username that already exists."""

    def __init__(self, username: str) -> None:
        super().__init__(username, "account already exists")


class AccountNotFoundError(AccountError):
    """The named account does not exist."""

    def __init__(self, username: str) -> None:
        super().__init__(username, "no such account")


class TLSConfigError(IngressError):
    """The certificate settings are incomplete or the files cannot be loaded."""
