"""The ingress SMTP server: aiosmtpd's protocol on the service's own event loop.

``IngressHandler`` holds the hooks (policy, AUTH, DATA → Envelope → ``submit``); ``IngressServer``
listens, tracks connections and drains on shutdown. Decisions are made by the pure modules
``policy`` and ``message``; this module only does the I/O around them.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import functools
import logging
import time
from base64 import b64decode
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session, TLSSetupException
from sqlalchemy import Engine

from baton.settings import Settings
from baton.v1 import envelope_pb2
from services.ingress import accounts, message, metrics, policy, replies
from services.ingress.errors import SubmitError
from services.ingress.throttle import FailureThrottle
from services.ingress.tls import server_context

log = logging.getLogger(__name__)

Submit = Callable[[envelope_pb2.Envelope], Awaitable[None]]

IDENT = "Baton ESMTP"
# How long a load balancer has to send its PROXY header after connecting.
PROXY_HEADER_TIMEOUT_S = 10.0
# After this many failed AUTH attempts on one connection the client is disconnected.
MAX_AUTH_FAILURES = 3
# Room for Baton's headers and the Envelope's other fields in a Kafka record.
_HEADER_ALLOWANCE = 64 * 1024
# Poll interval of the drain loop.
_DRAIN_POLL_S = 0.05
# RFC 5321 4.5.3.1.4: 512 octets with the CRLF; aiosmtpd measures the line without it.
COMMAND_LINE_LIMIT = 510
# What EHLO adds to MAIL's limit: SIZE (RFC 1870) and SMTPUTF8 (RFC 6531) parameters.
_MAIL_EXTENSION_ALLOWANCE = 26 + 10


def _reject(reply: policy.Reply) -> str:
    if reply.reason is not None:
        metrics.REJECTIONS.labels(reason=reply.reason.value).inc()
    return str(reply)


class _Session(Session):
    """aiosmtpd's Session without the deprecated ``login_data`` (it logs a WARNING on every AUTH)."""

    @property
    def login_data(self) -> Any:
        return None

    @login_data.setter
    def login_data(self, value: Any) -> None:
        pass


class _BatonSMTP(SMTP):
    """aiosmtpd's SMTP protocol with the few changes hooks cannot make (each says why)."""

    # aiosmtpd's default (512) does not count the CRLF.
    command_size_limit = COMMAND_LINE_LIMIT

    def __init__(self, handler: IngressHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._ingress = handler
        self.auth_failures = 0
        # aiosmtpd keeps these limits in a class attribute shared by every connection, and each
        # EHLO raises MAIL's limit again: a client could lift it for everybody. One per connection.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LINE_LIMIT)
        # No control character in any command's argument reaches a hook or a header.
        self._smtp_methods = {name: self._guarded(method) for name, method in self._smtp_methods.items()}
        self._session_deadline: asyncio.TimerHandle | None = None
        # The client IP holding one of smtp_max_connections_per_ip slots, once admitted.
        self._slot_ip: str | None = None

    def _guarded(self, method: Callable[[str | None], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(method)  # keeps aiosmtpd's HELP attributes
        async def guarded(arg: str | None) -> None:
            refusal = policy.check_command_argument(arg)
            if refusal is not None:
                await self.push(_reject(refusal))
                return
            await method(arg)

        return guarded

    def reset_mail_limit(self) -> None:
        """Called on every EHLO: MAIL's limit is the base plus the extensions, however many EHLOs."""
        self.command_size_limits["MAIL"] = COMMAND_LINE_LIMIT + _MAIL_EXTENSION_ALLOWANCE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._session_deadline is None  # connection_made runs again after STARTTLS
        super().connection_made(transport)
        if first:
            self._session_deadline = self.loop.call_later(
                self._ingress.settings.smtp_session_timeout_s, self.close_with, policy.TIMEOUT
            )

    def _timeout_cb(self) -> None:
        # aiosmtpd just drops an idle client; RFC 5321 4.5.3.2 wants a 421 first.
        self.close_with(policy.TIMEOUT)

    def close_with(self, reply: policy.Reply) -> None:
        """Send ``reply`` (a 421 or 554) without waiting for the client, then close."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(f"{_reject(reply)}\r\n".encode())
            transport.close()

    async def _handle_client(self) -> None:
        # With PROXY protocol the client is known only after the header: handle_PROXY admits it.
        if self._proxy_timeout is None and not await self.admit():
            return
        await super()._handle_client()

    async def admit(self) -> bool:
        """Per-IP connection limit and greeting pause, before the banner; False: refused and closed."""
        assert self.session is not None
        ingress = self._ingress
        ip = client_address(self.session, ingress.settings.smtp_proxy_protocol)[0]
        if ingress.per_ip.get(ip, 0) >= ingress.settings.smtp_max_connections_per_ip:
            self.close_with(policy.TOO_MANY_CONNECTIONS)
            return False
        ingress.per_ip[ip] = ingress.per_ip.get(ip, 0) + 1
        self._slot_ip = ip
        pause = ingress.settings.smtp_greet_pause_s
        if pause > 0 and not policy.is_trusted(ip, ingress.trusted):
            await asyncio.sleep(pause)
            # Nothing may arrive before the banner (RFC 5321 4.3.1, PIPELINING starts after EHLO).
            # aiosmtpd itself reaches into the reader's buffer the same way (STARTTLS).
            if self._reader._buffer:  # type: ignore[attr-defined]
                self.close_with(policy.EARLY_TALKER)
                return False
        return True

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's parser silently drops a source route (<@a,@b:user@c> becomes user@c); hand the
        # route on instead so the policy can refuse it.
        stripped = arg.lstrip()
        if stripped and (not stripped.startswith("<") or ">" not in stripped):
            # RFC 5321 4.1.2: the path is in angle brackets. aiosmtpd would take a bare address
            # (and guess where it ends); ('', '') makes it answer with its syntax error.
            return "", ""
        try:
            address, rest = super()._getaddr(arg)
        except Exception:
            # The stdlib header parser behind aiosmtpd raises AttributeError/IndexError on some
            # garbage (e.g. "<a@[>"); that is a syntax error of the client's, not ours.
            return None, None
        if address and stripped.startswith("<@") and ">" in stripped:
            return stripped[1 : stripped.index(">")], rest
        return address, rest

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd answers protocol errors itself; clients get Baton's codes and no echoed input.
        if isinstance(status, str):
            replacement = replies.rewrite(status)
            if replacement is not None:
                await super().push(_reject(replacement))
                return
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        ingress = self._ingress
        ingress.connections.discard(self)
        metrics.CONNECTIONS_OPEN.set(len(ingress.connections))
        if self._session_deadline is not None:
            self._session_deadline.cancel()
        if self._slot_ip is not None:
            left = ingress.per_ip.pop(self._slot_ip, 1) - 1
            if left > 0:
                ingress.per_ip[self._slot_ip] = left
            self._slot_ip = None
        super().connection_lost(error)

    @property
    def busy(self) -> bool:
        """A transaction is open (MAIL given, DATA not yet answered): the drain waits for it."""
        return self.envelope is not None and self.envelope.mail_from is not None

    def close_idle(self) -> None:
        """Tell an idle client the server is going away and close (drain)."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(f"{policy.SHUTTING_DOWN}\r\n".encode())
            transport.close()


def client_address(session: Session, use_proxy: bool) -> tuple[str, int]:
    """The real client (ip, port): from the PROXY header when one is expected and gave an address."""
    proxy = session.proxy_data
    if (
        use_proxy
        and proxy is not None
        and proxy.src_addr is not None
        and not isinstance(proxy.src_addr, bytes)
    ):
        return str(proxy.src_addr), int(proxy.src_port or 0)
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return str(peer or ""), 0


def tls_version(session: Session) -> str:
    ssl_info = session.ssl or {}
    ssl_object = ssl_info.get("ssl_object")
    return str(ssl_object.version() or "") if ssl_object is not None else ""


class IngressHandler:
    """aiosmtpd hooks: relay policy on MAIL/RCPT, AUTH against the accounts table, DATA → submit."""

    def __init__(self, settings: Settings, submit: Submit, engine: Engine) -> None:
        self.settings = settings
        self.submit = submit
        self.engine = engine
        self.trusted = settings.trusted_networks()
        self.pending = 0
        self.draining = False
        self.connections: set[_BatonSMTP] = set()
        # Open connections per client IP (smtp_max_connections_per_ip); an IP leaves at zero.
        self.per_ip: dict[str, int] = {}
        # Not "auth_*": aiosmtpd takes every handler attribute with that prefix for a mechanism.
        self.ip_auth_failures = FailureThrottle(
            limit=settings.smtp_auth_max_failures_per_ip,
            window_s=settings.smtp_auth_failure_window_s,
            max_keys=settings.smtp_auth_throttle_max_keys,
        )
        self.user_auth_failures = FailureThrottle(
            limit=settings.smtp_auth_max_failures_per_user,
            window_s=settings.smtp_auth_failure_window_s,
            max_keys=settings.smtp_auth_throttle_max_keys,
        )

    # --- connection ----------------------------------------------------------------------------

    async def handle_PROXY(self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any) -> bool:
        # aiosmtpd already refused a malformed header; PROXY UNKNOWN (load balancer health checks)
        # carries no address and falls back to the peer.
        if not proxy_data:
            return False
        assert isinstance(server, _BatonSMTP)
        return await server.admit()

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        refusal = policy.check_helo(hostname)
        if refusal is not None:
            return _reject(refusal)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        assert isinstance(server, _BatonSMTP)
        server.reset_mail_limit()
        refusal = policy.check_helo(hostname)
        if refusal is not None:
            # The name stays unset, so MAIL keeps answering 503 until a valid EHLO.
            return [_reject(refusal)]
        # With this hook defined aiosmtpd leaves recording the name to us.
        session.host_name = hostname
        # aiosmtpd reads commands one line at a time, so pipelined commands just work; it only
        # does not say so.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    # --- AUTH: aiosmtpd's built-in mechanisms call a synchronous authenticator, which would run
    # argon2 on the event loop. These replace them (aiosmtpd prefers the handler's auth_* methods)
    # and verify in a worker thread.

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._ip_throttled(server, "PLAIN"):
            return AuthResult(success=False, handled=True)
        blob = await self._first_response(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        # Acting on behalf of another identity (RFC 4616 authzid) is not supported.
        if authzid and authzid != login:
            return await self._auth_failed(server, "PLAIN")
        return await self._check(server, "PLAIN", login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._ip_throttled(server, "LOGIN"):
            return AuthResult(success=False, handled=True)
        login = await self._first_response(server, args, SMTP.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(SMTP.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)  # challenge_auth already answered
        assert isinstance(password, bytes)
        return await self._check(server, "LOGIN", login, password)

    async def _first_response(self, server: SMTP, args: list[str], challenge: str) -> bytes | None:
        """The client's first SASL response: given on the AUTH line (RFC 4954 initial response) or
        asked for with ``challenge``. None when the exchange already ended with an answer."""
        if len(args) == 1:
            answer = await server.challenge_auth(challenge)
            if answer is MISSING:
                return None  # challenge_auth already answered
            assert isinstance(answer, bytes)
            return answer
        try:
            return b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def _check(self, server: SMTP, mechanism: str, login: bytes, password: bytes) -> AuthResult:
        try:
            username, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return await self._auth_failed(server, mechanism)
        if not username or not secret:
            return await self._auth_failed(server, mechanism)
        if self.user_auth_failures.blocked(f"user:{username}"):
            return await self._throttled(server, mechanism, "user")
        ok = await asyncio.to_thread(accounts.verify, self.engine, username, secret)
        if not ok:
            return await self._auth_failed(server, mechanism, username)
        metrics.AUTH_ATTEMPTS.labels(mechanism=mechanism, result="ok").inc()
        log.debug("AUTH %s ok for %s", mechanism, username)
        return AuthResult(success=True, auth_data=username)

    async def _auth_failed(self, server: SMTP, mechanism: str, username: str = "") -> AuthResult:
        metrics.AUTH_ATTEMPTS.labels(mechanism=mechanism, result="failed").inc()
        metrics.REJECTIONS.labels(reason=policy.RejectReason.AUTH_FAILED.value).inc()
        log.debug("AUTH %s failed for %r", mechanism, username)
        assert server.session is not None
        self.ip_auth_failures.record_failure(f"ip:{self._client(server.session)[0]}")
        if username:
            self.user_auth_failures.record_failure(f"user:{username}")
        assert isinstance(server, _BatonSMTP)
        server.auth_failures += 1
        if server.auth_failures >= MAX_AUTH_FAILURES:
            await server.push("421 4.7.0 too many authentication failures")
            assert server.transport is not None
            server.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
        )

    async def _ip_throttled(self, server: SMTP, mechanism: str) -> bool:
        assert server.session is not None
        if not self.ip_auth_failures.blocked(f"ip:{self._client(server.session)[0]}"):
            return False
        await self._throttled(server, mechanism, "ip")
        return True

    async def _throttled(self, server: SMTP, mechanism: str, scope: str) -> AuthResult:
        # Answered without looking at the password: a throttled guess learns nothing.
        metrics.AUTH_ATTEMPTS.labels(mechanism=mechanism, result="throttled").inc()
        metrics.AUTH_THROTTLED.labels(scope=scope).inc()
        await server.push(_reject(policy.AUTH_THROTTLED))
        return AuthResult(success=False, handled=True)

    # --- transaction ---------------------------------------------------------------------------

    def _client(self, session: Session) -> tuple[str, int]:
        return client_address(session, self.settings.smtp_proxy_protocol)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.draining:
            return _reject(policy.SHUTTING_DOWN)
        if self.pending >= self.settings.smtp_max_pending:
            return _reject(policy.BACKPRESSURE)
        refusal = policy.check_reverse_path(address, smtputf8=envelope.smtp_utf8)
        if refusal is not None:
            return _reject(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = (
            policy.check_forward_path(address, smtputf8=envelope.smtp_utf8)
            or policy.check_relay(
                authenticated=bool(session.authenticated),
                client_ip=self._client(session)[0],
                trusted=self.trusted,
            )
            or policy.check_recipient_count(len(envelope.rcpt_tos), self.settings.smtp_max_recipients)
        )
        if refusal is not None:
            return _reject(refusal)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content
        assert isinstance(data, bytes)  # decode_data=False
        if message.has_bare_newline(data):
            return _reject(policy.BARE_NEWLINE)
        if message.has_nul(data):
            return _reject(policy.NUL_IN_DATA)
        if message.has_long_line(data):
            return _reject(policy.TEXT_LINE_TOO_LONG)
        if (
            self.settings.smtp_strict_8bit_headers
            and not envelope.smtp_utf8
            and message.body_type(envelope.mail_options) != "8BITMIME"
            and message.has_8bit_header(data)
        ):
            return _reject(policy.EIGHT_BIT_HEADER)
        if self.pending >= self.settings.smtp_max_pending:
            return _reject(policy.BACKPRESSURE)
        assert envelope.mail_from is not None
        message_id = message.new_message_id()
        client_ip, client_port = self._client(session)
        tls = tls_version(session)
        auth_user = str(session.auth_data) if session.authenticated else ""
        received = message.received_header(
            helo=session.host_name or "",
            client_ip=client_ip,
            hostname=self.settings.smtp_hostname,
            protocol=message.protocol_name(
                esmtp=session.extended_smtp,
                tls=bool(tls),
                authenticated=bool(auth_user),
                smtputf8=envelope.smtp_utf8,
            ),
            message_id=message_id,
            recipients=envelope.rcpt_tos,
            when=datetime.now(UTC),
        )
        body = message.prepare_body(
            data, received=received, message_id=message_id, hostname=self.settings.smtp_hostname
        )
        record = message.build_envelope(
            message_id=message_id,
            received_at_ms=int(time.time() * 1000),
            client_ip=client_ip,
            client_port=client_port,
            helo=session.host_name or "",
            auth_user=auth_user,
            mail_from=envelope.mail_from,
            rcpt_to=envelope.rcpt_tos,
            body=body,
            smtputf8=envelope.smtp_utf8,
            mail_options=envelope.mail_options,
            ingress_host=self.settings.instance,
            tls_version=tls,
        )
        self.pending += 1
        metrics.SUBMIT_PENDING.set(self.pending)
        started = time.perf_counter()
        try:
            await self.submit(record)
        except SubmitError as exc:
            # Expected while Kafka is unavailable: counted by the rejections metric, not logged per message.
            log.debug("submit failed for %s: %s", message_id, exc.reason, extra={"message_id": message_id})
            return _reject(policy.TEMPFAIL_KAFKA)
        except Exception:
            # Durable accept: whatever went wrong, the client must not get 250 for this message.
            log.exception("submit raised for %s", message_id, extra={"message_id": message_id})
            return _reject(policy.TEMPFAIL_KAFKA)
        finally:
            self.pending -= 1
            metrics.SUBMIT_PENDING.set(self.pending)
            metrics.SUBMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.MESSAGES_ACCEPTED.inc()
        metrics.MESSAGE_BYTES.observe(len(body))
        log.info(
            "accepted %s from %s for %d recipient(s)",
            message_id,
            record.sender_identity,
            len(record.rcpt_to),
            extra={"message_id": message_id},
        )
        return f"250 2.0.0 Ok: queued as {message_id}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A scanner or a client with an old TLS stack: routine, not our error.
            metrics.REJECTIONS.labels("tls_failed").inc()
            log.info("STARTTLS handshake failed: %s", error)
            return "454 4.7.0 TLS not available due to temporary reason"
        # aiosmtpd's default answer would show the exception text to the client.
        log.exception("SMTP session error", exc_info=error)
        return "451 4.3.0 internal error, try again later"


class IngressServer:
    """Listens on ``smtp_host:smtp_port`` in the running event loop.

    ``stop(drain_timeout)`` stops listening, closes idle connections with 421, lets open
    transactions finish until the timeout, then closes what is left.
    """

    def __init__(self, settings: Settings, submit: Submit, engine: Engine) -> None:
        self.settings = settings
        self.handler = IngressHandler(settings, submit, engine)
        self._tls = server_context(settings)
        self._server: asyncio.Server | None = None
        if settings.smtp_max_message_bytes + _HEADER_ALLOWANCE > settings.kafka_max_request_bytes:
            # Such a message passes SIZE but Kafka refuses the record: the client would get 451 forever.
            log.warning(
                "smtp_max_message_bytes (%d) is too close to kafka_max_request_bytes (%d)",
                settings.smtp_max_message_bytes,
                settings.kafka_max_request_bytes,
            )

    def _protocol(self) -> _BatonSMTP:
        s = self.settings
        protocol = _BatonSMTP(
            self.handler,
            data_size_limit=s.smtp_max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=s.smtp_hostname,
            ident=IDENT,
            tls_context=self._tls,
            timeout=s.smtp_timeout_s,
            auth_require_tls=True,
            proxy_protocol_timeout=PROXY_HEADER_TIMEOUT_S if s.smtp_proxy_protocol else None,
            loop=asyncio.get_running_loop(),
        )
        self.handler.connections.add(protocol)
        metrics.CONNECTIONS.inc()
        metrics.CONNECTIONS_OPEN.set(len(self.handler.connections))
        return protocol

    async def start(self) -> None:
        _quiet_library_logs()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.settings.smtp_host, port=self.settings.smtp_port
        )
        log.info("SMTP listening on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [(str(sock.getsockname()[0]), int(sock.getsockname()[1])) for sock in self._server.sockets]

    @property
    def port(self) -> int:
        """The bound port (useful when ``smtp_port`` is 0)."""
        return self.addresses[0][1]

    async def stop(self, drain_timeout: float = 30.0) -> None:
        if self._server is None:
            return
        self.handler.draining = True
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        while self.handler.connections:
            for conn in list(self.handler.connections):
                if not conn.busy:
                    conn.close_idle()
            if loop.time() >= deadline:
                break
            await asyncio.sleep(_DRAIN_POLL_S)
        leftover = list(self.handler.connections)
        if leftover:
            log.warning("drain timeout: closing %d connection(s) with open transactions", len(leftover))
            for conn in leftover:
                if conn.transport is not None:
                    conn.transport.close()
        await self._server.wait_closed()
        self._server = None
        log.info("SMTP server stopped")


async def start_smtp_server(settings: Settings, submit: Submit, engine: Engine) -> IngressServer:
    """Start the ingress SMTP server in the running loop; stop it with ``await server.stop(timeout)``."""
    server = IngressServer(settings, submit, engine)
    await server.start()
    return server


def _quiet_library_logs() -> None:
    # aiosmtpd logs every command and connection at INFO on "mail.log"; Baton's one INFO line per
    # message is the accept line, so the library's are kept to warnings unless configured.
    library = logging.getLogger("mail.log")
    if library.level == logging.NOTSET:
        library.setLevel(logging.WARNING)
