"""The sender's SMTP connection pool against real sinks: TLS, reuse limits, idle expiry, liveness."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from baton.settings import Settings
from baton.store import Base
from baton.v1 import delivery_pb2, outcome_pb2
from services.sender.dedupe import DedupeLog
from services.sender.deliver import Deliverer
from services.sender.pool import SessionError
from tests.fixtures.sender import make_pool
from tests.fixtures.sink import RecordingSink

DELIVERED = outcome_pb2.OUTCOME_STATUS_DELIVERED
DEFERRED = outcome_pb2.OUTCOME_STATUS_DEFERRED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as sink:
        yield sink


@pytest.fixture
def server_tls(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for sink.test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("sink.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def delivery(port: int, message_id: str, host: str = "127.0.0.1") -> delivery_pb2.Delivery:
    d = delivery_pb2.Delivery(
        message_id=message_id,
        domain="example.test",
        recipients=["bob@example.test"],
        mail_from="a@sender.test",
        body=b"Subject: hi\r\n\r\nhi\r\n",
        attempt=1,
    )
    d.route.hosts.add(name="sink.test", addresses=[host], port=port)
    return d


async def test_opportunistic_starttls_without_certificate_checks(
    server_tls: ssl.SSLContext, engine: Engine
) -> None:
    with RecordingSink(tls_context=server_tls) as sink:
        deliverer = Deliverer(make_pool(), DedupeLog(engine))
        try:
            [outcome] = await deliverer.deliver(delivery(sink.port, "m-1"))
        finally:
            await deliverer.close()
        assert outcome.status == DELIVERED
        [message] = sink.messages
        assert message.tls


async def test_verified_tls_against_an_untrusted_certificate_fails_as_tls(
    server_tls: ssl.SSLContext, engine: Engine
) -> None:
    with RecordingSink(tls_context=server_tls) as sink:
        deliverer = Deliverer(make_pool(verify_tls=True), DedupeLog(engine))
        try:
            [outcome] = await deliverer.deliver(delivery(sink.port, "m-1"))
        finally:
            await deliverer.close()
        assert outcome.status == DEFERRED
        assert outcome.failure_class == "tls"
        assert outcome.enhanced_status == "4.7.5"
        assert sink.messages == []


async def test_no_tls_when_the_server_does_not_offer_it(sink: RecordingSink) -> None:
    pool = make_pool()
    try:
        conn = await pool.acquire("127.0.0.1", sink.port)
        assert not conn.tls
        assert conn.supports("size")
        await pool.release(conn)
    finally:
        await pool.close()


async def test_a_connection_is_closed_after_max_messages(sink: RecordingSink, engine: Engine) -> None:
    deliverer = Deliverer(make_pool(max_messages=2), DedupeLog(engine))
    try:
        for i in range(5):
            await deliverer.deliver(delivery(sink.port, f"m-{i}"))
    finally:
        await deliverer.close()
    assert [m.connection for m in sink.messages] == [1, 1, 2, 2, 3]


async def test_an_idle_connection_expires(sink: RecordingSink) -> None:
    clock = FakeClock()
    pool = make_pool(idle_s=10.0, clock=clock)
    try:
        conn = await pool.acquire("127.0.0.1", sink.port)
        await pool.release(conn)
        clock.now += 5
        conn = await pool.acquire("127.0.0.1", sink.port)
        await pool.release(conn)
        assert sink.connections == 1
        clock.now += 11
        await pool.reap()
        assert pool.idle_count() == 0
        conn = await pool.acquire("127.0.0.1", sink.port)
        await pool.release(conn)
        assert sink.connections == 2
    finally:
        await pool.close()
    assert pool.idle_count() == 0


async def test_a_connection_the_remote_dropped_is_replaced(engine: Engine) -> None:
    deliverer = Deliverer(make_pool(), DedupeLog(engine))
    try:
        with RecordingSink() as first:
            port = first.port
            await deliverer.deliver(delivery(port, "m-1"))
        assert deliverer.pool.idle_count() == 1
        # The old server is gone (its connection with it); a new one listens on the same port.
        with RecordingSink(port=port) as second:
            [outcome] = await deliverer.deliver(delivery(port, "m-2"))
            assert outcome.status == DELIVERED
            assert second.connections == 1
            assert len(second.messages) == 1
    finally:
        await deliverer.close()


async def test_session_errors_carry_the_refusal() -> None:
    with RecordingSink(greeting="554 5.7.1 go away") as sink:
        pool = make_pool()
        try:
            with pytest.raises(SessionError) as caught:
                await pool.acquire("127.0.0.1", sink.port)
        finally:
            await pool.close()
    assert (caught.value.stage, caught.value.code, caught.value.text) == ("connect", 554, "5.7.1 go away")


async def test_a_closed_pool_refuses_work_and_quits_idle_sessions(sink: RecordingSink) -> None:
    pool = make_pool()
    conn = await pool.acquire("127.0.0.1", sink.port)
    await pool.release(conn)
    await pool.close()
    assert not conn.is_connected
    with pytest.raises(RuntimeError):
        await pool.acquire("127.0.0.1", sink.port)


async def test_from_settings(sink: RecordingSink, tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        delivery_port=sink.port,
        delivery_helo="out.baton.test",
        delivery_pool_size=1,
    )
    deliverer = Deliverer.from_settings(settings)
    assert deliverer._owned_engine is not None
    Base.metadata.create_all(deliverer._owned_engine)
    try:
        [outcome] = await deliverer.deliver(delivery(0, "m-1"))
    finally:
        await deliverer.close()
    assert outcome.status == DELIVERED
    assert sink.messages[0].helo == "out.baton.test"
