"""A pool of open SMTP sessions keyed by (address, port), so a busy destination is not re-dialled per message.

A session is handed out ready for MAIL FROM: connected, greeted, EHLO done and upgraded with STARTTLS when
the server offers it. Opportunistic TLS does not verify certificates by default, as MTAs do (RFC 7435): an
unverified encrypted channel is still better than cleartext, and most MX certificates would not verify
against the MX name anyway. A pooled session is proven alive with RSET before it is handed out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiosmtplib

from baton.settings import Settings
from services.sender import metrics
from services.sender.classify import LocalFailure, classify_local, classify_reply

Key = tuple[str, int]

# Errors that mean "this session is unusable"; anything else is a bug and propagates.
SESSION_ERRORS: tuple[type[BaseException], ...] = (aiosmtplib.SMTPException, OSError, TimeoutError)


class SessionError(Exception):
    """Opening a session to one address failed; the caller moves on to the next address or host.

    Carries what the outcome needs: the remote's reply (``code`` > 0) or a local failure kind.
    """

    def __init__(self, stage: str, text: str, *, code: int = 0, local: LocalFailure | None = None) -> None:
        super().__init__(f"{stage}: {code or local} {text}")
        # "connect", "ehlo" or "starttls".
        self.stage = stage
        self.code = code
        self.text = text
        self.local = local


def local_failure(exc: BaseException) -> LocalFailure:
    """The kind of local failure an aiosmtplib/socket exception stands for."""
    if isinstance(exc, TimeoutError):  # includes aiosmtplib.SMTPTimeoutError
        return LocalFailure.TIMEOUT
    if isinstance(exc, ssl.SSLError):
        return LocalFailure.TLS
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return LocalFailure.CONNECT
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return LocalFailure.DISCONNECTED
    if isinstance(exc, OSError):
        return LocalFailure.CONNECT
    return LocalFailure.PROTOCOL


@dataclass(eq=False)
class PooledConnection:
    """One open SMTP session; owned by one transaction between ``acquire`` and ``release``."""

    key: Key
    smtp: aiosmtplib.SMTP
    # Whether STARTTLS succeeded; for logs and outcomes.
    tls: bool = False
    # MAIL transactions started on this session.
    messages: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def is_connected(self) -> bool:
        return self.smtp.is_connected

    def supports(self, extension: str) -> bool:
        return self.smtp.supports_extension(extension)


class ConnectionPool:
    """Open SMTP sessions per (address, port): at most ``size`` open per key, reused up to
    ``max_messages`` transactions, closed after ``idle_s`` unused; ``close()`` on shutdown."""

    def __init__(
        self,
        *,
        helo: str,
        connect_timeout_s: float,
        timeout_s: float,
        size: int,
        idle_s: float,
        max_messages: int,
        starttls: bool = True,
        verify_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        quit_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._helo = helo
        self._connect_timeout = connect_timeout_s
        self._timeout = timeout_s
        self._size = size
        self._idle_s = idle_s
        self._max_messages = max_messages
        self._starttls = starttls
        self._verify_tls = verify_tls
        self._tls_context = tls_context
        self._quit_timeout = quit_timeout_s
        self._clock = clock
        self._idle: dict[Key, list[PooledConnection]] = {}
        # Bounds sessions in use per key; idle ones are reused before a new one is opened, so this
        # also bounds the sessions open per key.
        self._slots: dict[Key, asyncio.Semaphore] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> ConnectionPool:
        kwargs: dict[str, object] = {
            "helo": settings.delivery_helo or settings.instance,
            "connect_timeout_s": settings.delivery_connect_timeout_s,
            "timeout_s": settings.delivery_timeout_s,
            "size": settings.delivery_pool_size,
            "idle_s": settings.delivery_pool_idle_s,
            "max_messages": settings.delivery_max_messages_per_connection,
        }
        kwargs.update(overrides)
        return cls(**kwargs)  # type: ignore[arg-type]

    def idle_count(self, address: str | None = None, port: int | None = None) -> int:
        """Idle sessions held (for one key, or all); for tests and introspection."""
        if address is not None and port is not None:
            return len(self._idle.get((address, port), []))
        return sum(len(conns) for conns in self._idle.values())

    async def acquire(self, address: str, port: int, *, server_name: str | None = None) -> PooledConnection:
        """A session to ``address``:``port`` ready for MAIL FROM, reused when one is idle.

        ``server_name`` (the MX host name) is sent as TLS SNI. Raises ``SessionError`` when no session
        could be opened. Every acquired connection must be given back with ``release``.
        """
        if self._closed:
            raise RuntimeError("connection pool is closed")
        self._ensure_reaper()
        key = (address, port)
        slot = self._slots.setdefault(key, asyncio.Semaphore(self._size))
        await slot.acquire()
        try:
            conn = await self._reuse(key)
            if conn is None:
                conn = await self._open(key, server_name)
            return conn
        except BaseException:
            slot.release()
            raise

    async def release(self, conn: PooledConnection, *, reusable: bool = True) -> None:
        """Give ``conn`` back; it is kept for reuse unless it is broken, used up or the pool is closing."""
        try:
            conn.last_used = self._clock()
            keep = (
                reusable
                and not self._closed
                and conn.is_connected
                and conn.messages < self._max_messages
                and len(self._idle.get(conn.key, [])) < self._size
            )
            if keep:
                self._idle.setdefault(conn.key, []).append(conn)
            else:
                await self._quit(conn)
        finally:
            self._slots[conn.key].release()

    def discard(self, conn: PooledConnection) -> None:
        """Give ``conn`` back broken: drop the connection at once, without QUIT (e.g. on cancellation)."""
        try:
            conn.smtp.close()
        finally:
            self._slots[conn.key].release()

    async def close(self) -> None:
        """Stop reusing; QUIT every idle session. Sessions in use are closed when they are released."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        await asyncio.gather(*(self._quit(conn) for conn in idle))

    async def reap(self) -> None:
        """Close idle sessions unused for longer than ``idle_s`` (also run periodically by the pool)."""
        now = self._clock()
        expired: list[PooledConnection] = []
        for key, conns in list(self._idle.items()):
            keep = [c for c in conns if now - c.last_used < self._idle_s and c.is_connected]
            expired.extend(c for c in conns if c not in keep)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        await asyncio.gather(*(self._quit(conn) for conn in expired))

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_forever(), name="sender-pool-reaper")

    async def _reap_forever(self) -> None:
        period = max(0.5, min(self._idle_s / 2, 30.0))
        while True:
            await asyncio.sleep(period)
            await self.reap()

    async def _reuse(self, key: Key) -> PooledConnection | None:
        idle = self._idle.get(key)
        while idle:
            # Most recently used first: the one least likely to have been timed out by the remote.
            conn = idle.pop()
            if not conn.is_connected or self._clock() - conn.last_used >= self._idle_s:
                await self._quit(conn)
                continue
            try:
                await conn.smtp.rset(timeout=self._timeout)
            except SESSION_ERRORS:
                # The remote dropped or refused the idle session; open a fresh one instead.
                conn.smtp.close()
                continue
            metrics.CONNECTIONS_REUSED.inc()
            return conn
        return None

    async def _open(self, key: Key, server_name: str | None) -> PooledConnection:
        address, port = key
        smtp = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=self._helo,
            timeout=self._timeout,
            start_tls=False,
            validate_certs=self._verify_tls,
            tls_context=self._tls_context,
        )
        try:
            conn = await self._handshake(key, smtp, server_name)
        except SessionError as exc:
            smtp.close()
            metrics.CONNECTION_FAILURES.labels(_failure_label(exc)).inc()
            raise
        except BaseException:
            smtp.close()
            raise
        metrics.CONNECTIONS_OPENED.inc()
        return conn

    async def _handshake(self, key: Key, smtp: aiosmtplib.SMTP, server_name: str | None) -> PooledConnection:
        try:
            await smtp.connect(timeout=self._connect_timeout)
        except aiosmtplib.SMTPResponseException as exc:  # greeting other than 220
            raise SessionError("connect", exc.message, code=exc.code) from exc
        except SESSION_ERRORS as exc:
            raise SessionError("connect", _describe(exc), local=local_failure(exc)) from exc
        await self._ehlo(smtp)
        conn = PooledConnection(key=key, smtp=smtp, last_used=self._clock())
        if self._starttls and smtp.supports_extension("starttls"):
            try:
                await smtp.starttls(server_hostname=server_name or key[0], timeout=self._timeout)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not smtp.is_connected:
                    raise SessionError("starttls", exc.message, code=exc.code) from exc
                # Opportunistic TLS: a refused STARTTLS (454) leaves a usable cleartext session.
                return conn
            except SESSION_ERRORS as exc:
                raise SessionError("starttls", _describe(exc), local=LocalFailure.TLS) from exc
            conn.tls = True
            # RFC 3207 4.2: forget what was learnt before TLS and greet again.
            await self._ehlo(smtp)
        return conn

    async def _ehlo(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError as exc:
                # An old server that does not know EHLO (500/502) still speaks HELO.
                if exc.code not in (500, 502) or not smtp.is_connected:
                    raise
                await smtp.helo()
        except aiosmtplib.SMTPResponseException as exc:
            raise SessionError("ehlo", exc.message, code=exc.code) from exc
        except SESSION_ERRORS as exc:
            raise SessionError("ehlo", _describe(exc), local=local_failure(exc)) from exc

    async def _quit(self, conn: PooledConnection) -> None:
        if conn.is_connected:
            with contextlib.suppress(*SESSION_ERRORS):
                await conn.smtp.quit(timeout=self._quit_timeout)
        conn.smtp.close()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, aiosmtplib.SMTPException) else f"{type(exc).__name__}: {text}"


def _failure_label(exc: SessionError) -> str:
    if exc.local is not None:
        return classify_local(exc.local).failure_class.value
    return classify_reply(exc.code, exc.text).failure_class.value
