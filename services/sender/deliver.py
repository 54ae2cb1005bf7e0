"""Deliver one ``Delivery`` over SMTP and decide an ``Outcome`` for each of its recipients.

Hosts are tried in route order and each host's addresses in order (RFC 5321 section 5.1). The next
address is tried when a session cannot be opened (refused, timeout, TLS failure, any refusal of the
greeting or EHLO) or when the remote answers MAIL with a 4xx or closes with 421 before DATA. Once the
DATA command was sent the answer belongs to this host: a connection lost there is ambiguous (the remote
may have queued the message), so those recipients are deferred rather than offered to another host.

Recipients whose answer is final (delivered or bounced) are written to the dedupe log before
``deliver`` returns, and recipients already in the log are not contacted again: their stored Outcome is
returned instead. That is what lets the Kafka loop replay a record after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiosmtplib
from sqlalchemy import Engine

from baton.settings import Settings
from baton.store import make_engine
from baton.v1 import delivery_pb2, outcome_pb2
from services.sender import metrics
from services.sender.classify import (
    BOUNCED,
    DEFERRED,
    DELIVERED,
    Classification,
    FailureClass,
    LocalFailure,
    classify_local,
    classify_reply,
)
from services.sender.dedupe import DedupeLog
from services.sender.pool import SESSION_ERRORS, ConnectionPool, PooledConnection, SessionError, local_failure

log = logging.getLogger(__name__)

STAGE = "sender"
_FINAL = (DELIVERED, BOUNCED)
# A non-ASCII address the remote cannot take (no SMTPUTF8) surfaces as an encoding error.
_COMMAND_ERRORS: tuple[type[BaseException], ...] = (*SESSION_ERRORS, UnicodeEncodeError)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why one address could not take the remaining recipients: a reply or a local failure."""

    remote_host: str
    text: str
    code: int = 0
    local: LocalFailure | None = None


@dataclass
class _Transaction:
    # Recipients this host gave an answer for (final or deferred).
    decided: dict[str, outcome_pb2.Outcome] = field(default_factory=dict)
    # Set when the remaining recipients must be offered to the next address.
    failure: _Failure | None = None
    reusable: bool = True


def remote_host_label(name: str, address: str, port: int) -> str:
    """``mx.example.com[192.0.2.1]``, with ``:port`` when it is not 25 (the Postfix convention)."""
    label = f"{name}[{address}]"
    return label if port == 25 else f"{label}:{port}"


class Deliverer:
    """Delivers Deliveries through a ``ConnectionPool``, deduplicated by a ``DedupeLog``.

    ``close()`` closes the pool (and the engine, when ``from_settings`` created it); call it on shutdown
    after the last ``deliver`` returned.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        dedupe: DedupeLog,
        *,
        default_port: int = 25,
        now_ms: Callable[[], int] = _now_ms,
        owned_engine: Engine | None = None,
    ) -> None:
        self.pool = pool
        self._dedupe = dedupe
        self._default_port = default_port
        self._now_ms = now_ms
        self._owned_engine = owned_engine
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: Engine | None = None, **pool_overrides: object
    ) -> Deliverer:
        """A Deliverer configured from ``settings``; ``engine`` defaults to one for ``database_url``."""
        owned = None
        if engine is None:
            engine = owned = make_engine(settings.database_url)
        return cls(
            ConnectionPool.from_settings(settings, **pool_overrides),
            DedupeLog(engine),
            default_port=settings.delivery_port,
            owned_engine=owned,
        )

    async def close(self) -> None:
        await self.pool.close()
        if self._owned_engine is not None:
            self._owned_engine.dispose()

    async def record_final(self, outcomes: Sequence[outcome_pb2.Outcome]) -> None:
        """Record outcomes decided outside a delivery (expiry) so a replay does not try again."""
        await self._dedupe.record(outcomes)

    async def deliver(self, delivery: delivery_pb2.Delivery) -> list[outcome_pb2.Outcome]:
        """One Outcome per distinct recipient of ``delivery``, in the order the recipients are listed."""
        # A replay upstream can put the same Delivery twice into one batch; the copies would both
        # miss the dedupe log, which is written only after the remote's answer. Copies for the
        # same message and domain therefore take turns, and the later one finds the record.
        key = (delivery.message_id, delivery.domain)
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._deliver(delivery)
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def _deliver(self, delivery: delivery_pb2.Delivery) -> list[outcome_pb2.Outcome]:
        recipients = list(dict.fromkeys(delivery.recipients))
        known = await self._dedupe.lookup(delivery.message_id, recipients)
        if known:
            metrics.DEDUPE_HITS.inc(len(known))
        pending = [r for r in recipients if r not in known]
        if pending:
            started = time.perf_counter()
            fresh = await self._attempt(delivery, pending)
            # The durability point: final answers are on disk before anyone hears of them.
            await self._dedupe.record(o for o in fresh.values() if o.status in _FINAL)
            metrics.DELIVERY_SECONDS.observe(time.perf_counter() - started)
            for outcome in fresh.values():
                metrics.RECIPIENTS.labels(_status_label(outcome.status)).inc()
            known.update(fresh)
        return [known[r] for r in recipients]

    async def _attempt(
        self, delivery: delivery_pb2.Delivery, recipients: list[str]
    ) -> dict[str, outcome_pb2.Outcome]:
        decided: dict[str, outcome_pb2.Outcome] = {}
        remaining = list(recipients)
        last = _Failure(remote_host="", text="route has no host address to try", local=LocalFailure.CONNECT)
        for host in delivery.route.hosts:
            port = host.port or self._default_port
            # A static route may name its smarthost without addresses (a cluster service name):
            # then the system resolver finds it at connect time.
            for address in host.addresses or [host.name]:
                remote = remote_host_label(host.name, address, port)
                try:
                    conn = await self.pool.acquire(address, port, server_name=host.name or None)
                except SessionError as exc:
                    log.info(
                        "session to %s failed: %s", remote, exc, extra={"message_id": delivery.message_id}
                    )
                    last = _Failure(remote, exc.text, exc.code, exc.local)
                    continue
                try:
                    tx = await self._transaction(conn, delivery, remaining, remote)
                except BaseException:
                    # Cancelled (shutdown) or a bug: the session is in an unknown state.
                    self.pool.discard(conn)
                    raise
                await self.pool.release(conn, reusable=tx.reusable)
                decided.update(tx.decided)
                remaining = [r for r in remaining if r not in decided]
                if not remaining:
                    return decided
                if tx.failure is not None:
                    last = tx.failure
        # Every address failed for these: try again later with the last error we saw.
        for recipient in remaining:
            decided[recipient] = self._outcome(delivery, recipient, last.remote_host, _deferred(last), last)
        return decided

    async def _transaction(
        self, conn: PooledConnection, delivery: delivery_pb2.Delivery, recipients: Sequence[str], remote: str
    ) -> _Transaction:
        smtp = conn.smtp
        tx = _Transaction()
        conn.messages += 1

        def fail(exc: BaseException) -> _Transaction:
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                tx.failure = _Failure(remote, exc.message, code=exc.code)
            else:
                tx.failure = _Failure(remote, _describe(exc), local=local_failure(exc))
            tx.reusable = False
            return tx

        def decide(recipient: str, code: int, text: str) -> None:
            reply = _Failure(remote, text, code=code)
            tx.decided[recipient] = self._outcome(
                delivery, recipient, remote, classify_reply(code, text), reply
            )

        addresses = [delivery.mail_from, *recipients]
        utf8 = delivery.smtputf8 or not all(a.isascii() for a in addresses)
        mail_options: list[str] = []
        if utf8 and conn.supports("smtputf8"):
            mail_options.append("SMTPUTF8")
        elif utf8 and not all(a.isascii() for a in addresses):
            # RFC 6531 3.7.5: a non-ASCII address cannot be downgraded; the message cannot go this way.
            text = "5.6.7 remote server does not support SMTPUTF8, required by a non-ASCII address"
            for recipient in recipients:
                decide(recipient, 553, text)
            return tx
        if conn.supports("8bitmime") and not delivery.body.isascii():
            mail_options.append("BODY=8BITMIME")
        if conn.supports("size"):
            mail_options.append(f"SIZE={len(delivery.body)}")
        encoding = "utf-8" if "SMTPUTF8" in mail_options else "ascii"

        try:
            await smtp.mail(delivery.mail_from, options=mail_options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                for recipient in recipients:
                    decide(recipient, exc.code, exc.message)
                tx.reusable = smtp.is_connected
                return tx
            return fail(exc)
        except _COMMAND_ERRORS as exc:
            return fail(exc)

        accepted: list[str] = []
        for recipient in recipients:
            try:
                await smtp.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not smtp.is_connected:
                    # The host is closing the channel; nothing was sent, so the rest may go elsewhere.
                    return fail(exc)
                decide(recipient, exc.code, exc.message)
                continue
            except _COMMAND_ERRORS as exc:
                return fail(exc)
            accepted.append(recipient)
        if not accepted:
            # The pool sends RSET before the session is used again.
            return tx

        try:
            reply = await smtp.data(delivery.body)
        except aiosmtplib.SMTPResponseException as exc:
            code, text = exc.code, exc.message
        except SESSION_ERRORS as exc:
            # Ambiguous: the remote may have the message. Defer, and never offer it to another host now.
            local = _Failure(remote, _describe(exc), local=local_failure(exc))
            for recipient in accepted:
                tx.decided[recipient] = self._outcome(
                    delivery, recipient, remote, classify_local(local_failure(exc)), local
                )
            tx.reusable = False
            return tx
        else:
            code, text = reply.code, reply.message
        for recipient in accepted:
            decide(recipient, code, text)
        tx.reusable = smtp.is_connected
        return tx

    def _outcome(
        self,
        delivery: delivery_pb2.Delivery,
        recipient: str,
        remote: str,
        verdict: Classification,
        reply: _Failure,
    ) -> outcome_pb2.Outcome:
        return outcome_pb2.Outcome(
            message_id=delivery.message_id,
            recipient=recipient,
            status=verdict.status,
            sender_identity=delivery.sender_identity,
            stage=STAGE,
            domain=delivery.domain,
            remote_host=remote,
            smtp_code=reply.code,
            enhanced_status=verdict.enhanced_status,
            text=reply.text,
            failure_class=verdict.failure_class.value,
            attempt=delivery.attempt,
            at_ms=self._now_ms(),
        )


def _deferred(failure: _Failure) -> Classification:
    """The classification when every address failed: always deferred, whatever the last reply was."""
    if failure.local is not None or failure.code == 0:
        return classify_local(failure.local or LocalFailure.CONNECT)
    verdict = classify_reply(failure.code, failure.text)
    if verdict.status == DEFERRED:
        return verdict
    # A 5xx greeting or EHLO refusal from the last host is not a verdict on the recipient (other hosts,
    # or this one later, may take it); keep its detail but in the transient class so it stays coherent.
    failure_class = (
        verdict.failure_class if verdict.failure_class is not FailureClass.NONE else FailureClass.OTHER
    )
    return Classification(DEFERRED, "4" + verdict.enhanced_status[1:], failure_class)


def _status_label(status: int) -> str:
    return outcome_pb2.OutcomeStatus.Name(status).removeprefix("OUTCOME_STATUS_").lower()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, aiosmtplib.SMTPException) else f"{type(exc).__name__}: {text}"
