"""The admin HTTP endpoint on a real loopback socket: /metrics, /healthz, /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import baton.metrics  # noqa: F401  (registers the stage metrics /metrics must list)
from baton.admin import AdminServer


class Readiness:
    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def admin(readiness: Readiness) -> AsyncIterator[AdminServer]:
    server = AdminServer("127.0.0.1", 0, readiness)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _request(port: int, request_line: str) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{request_line}\r\nHost: localhost\r\nAccept: */*\r\n\r\n".encode("latin-1"))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    assert int(headers["content-length"]) == len(body)
    return status, headers, body


async def test_metrics_are_prometheus_text(admin: AdminServer) -> None:
    status, headers, body = await _request(admin.port, "GET /metrics HTTP/1.1")
    assert status == "HTTP/1.0 200 OK"
    assert headers["content-type"].startswith("text/plain; version=")
    text = body.decode()
    assert "# TYPE baton_stage_records_total counter" in text
    assert "# HELP baton_stage_dlq_ratio" in text


async def test_healthz_is_ok(admin: AdminServer) -> None:
    status, _, body = await _request(admin.port, "GET /healthz HTTP/1.0")
    assert status == "HTTP/1.0 200 OK"
    assert body == b"ok\n"


async def test_readyz_follows_the_ready_callable(admin: AdminServer, readiness: Readiness) -> None:
    status, _, body = await _request(admin.port, "GET /readyz HTTP/1.0")
    assert status == "HTTP/1.0 503 Service Unavailable"
    assert body == b"not ready\n"
    readiness.ready = True
    status, _, body = await _request(admin.port, "GET /readyz?probe=kubelet HTTP/1.0")
    assert status == "HTTP/1.0 200 OK"
    assert body == b"ready\n"
    readiness.ready = False
    status, _, _ = await _request(admin.port, "GET /readyz HTTP/1.0")
    assert status == "HTTP/1.0 503 Service Unavailable"


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/extra", "/admin"])
async def test_unknown_path_is_404(admin: AdminServer, path: str) -> None:
    status, _, _ = await _request(admin.port, f"GET {path} HTTP/1.0")
    assert status == "HTTP/1.0 404 Not Found"


@pytest.mark.parametrize("request_line", ["POST /metrics HTTP/1.0", "HEAD /healthz HTTP/1.0", "GET"])
async def test_other_methods_are_405(admin: AdminServer, request_line: str) -> None:
    status, _, body = await _request(admin.port, request_line)
    assert status == "HTTP/1.0 405 Method Not Allowed"
    assert body == b"GET only\n"


async def test_serves_many_concurrent_clients(admin: AdminServer) -> None:
    results = await asyncio.gather(*(_request(admin.port, "GET /healthz HTTP/1.0") for _ in range(20)))
    assert {status for status, _, _ in results} == {"HTTP/1.0 200 OK"}


async def test_stop_closes_the_port(readiness: Readiness) -> None:
    server = AdminServer("127.0.0.1", 0, readiness)
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
