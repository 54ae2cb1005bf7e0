"""The reputation API over a real migrated database (SQLite file, and a fresh PostgreSQL database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from baton.v1 import delivery_pb2, envelope_pb2, outcome_pb2, verdict_pb2
from services.reputation.api import create_app
from services.reputation.store import TimelineStore
from services.reputation.timeline import accepted_event, filtered_event, outcome_event, routed_event

T0 = 1_700_000_000_000


class Readiness:
    def __init__(self) -> None:
        self.ready = True

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def client(store: TimelineStore, readiness: Readiness) -> AsyncIterator[httpx.AsyncClient]:
    # httpx against the ASGI app in-process: starlette's TestClient warns that it wants httpx2.
    transport = httpx.ASGITransport(app=create_app(store, readiness))
    async with httpx.AsyncClient(transport=transport, base_url="http://reputation") as client:
        yield client


ENVELOPE = envelope_pb2.Envelope(
    message_id="m1",
    received_at_ms=T0,
    client_ip="192.0.2.7",
    helo="web1.example",
    sender_identity="ip:192.0.2.7",
    php_script="contact.php",
    mail_from="www-data@web1.example",
    rcpt_to=["bob@example.org", "carol@example.net"],
    body=b"Subject: hi\r\n\r\nhello\r\n",
)


def outcome(
    recipient: str, status: outcome_pb2.OutcomeStatus, attempt: int, at_ms: int
) -> outcome_pb2.Outcome:
    return outcome_pb2.Outcome(
        message_id="m1",
        recipient=recipient,
        status=status,
        sender_identity="ip:192.0.2.7",
        stage="sender",
        remote_host="mx.example",
        smtp_code=250 if status == outcome_pb2.OUTCOME_STATUS_DELIVERED else 451,
        attempt=attempt,
        at_ms=at_ms,
    )


def record_path(store: TimelineStore, *, carol_done: bool) -> None:
    verdict = verdict_pb2.Verdict(action=verdict_pb2.ACTION_ACCEPT, score=0.5, decided_at_ms=T0 + 10)
    rows = [
        accepted_event(ENVELOPE),
        filtered_event(verdict_pb2.FilteredMessage(envelope=ENVELOPE, verdict=verdict)),
        *[
            routed_event(
                delivery_pb2.Delivery(
                    message_id="m1",
                    domain=rcpt.rpartition("@")[2],
                    recipients=[rcpt],
                    sender_identity="ip:192.0.2.7",
                    route=delivery_pb2.Route(
                        kind=delivery_pb2.ROUTE_KIND_MX,
                        hosts=[delivery_pb2.Host(name="mx.example", preference=10)],
                    ),
                ),
                T0 + 20,
            )
            for rcpt in ENVELOPE.rcpt_to
        ],
        outcome_event(outcome("bob@example.org", outcome_pb2.OUTCOME_STATUS_DEFERRED, 1, T0 + 30)),
        outcome_event(outcome("bob@example.org", outcome_pb2.OUTCOME_STATUS_DELIVERED, 2, T0 + 60_000)),
    ]
    if carol_done:
        carol = outcome("carol@example.net", outcome_pb2.OUTCOME_STATUS_BOUNCED, 1, T0 + 40)
        rows.append(outcome_event(carol))
    store.record(rows)


async def test_unknown_message_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/messages/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown message nope"}


async def test_message_timeline(client: httpx.AsyncClient, store: TimelineStore) -> None:
    record_path(store, carol_done=False)
    body = (await client.get("/messages/m1")).json()
    assert body["message_id"] == "m1"
    assert [(e["kind"], e["key"]) for e in body["events"]] == [
        ("accepted", ""),
        ("filtered", ""),
        ("routed", "example.org"),
        ("routed", "example.net"),
        ("outcome", "bob@example.org deferred 1"),
        ("outcome", "bob@example.org delivered 2"),
    ]
    accepted = body["events"][0]
    assert accepted["at_ms"] == T0
    assert accepted["at"] == "2023-11-14T22:13:20Z"
    assert accepted["sender_identity"] == "ip:192.0.2.7"
    assert accepted["detail"]["php_script"] == "contact.php"
    assert accepted["detail"]["rcpt_count"] == 2
    assert body["events"][1]["detail"]["action"] == "accept"
    assert body["events"][2]["detail"]["route"] == "mx"
    assert body["recipients"] == {"bob@example.org": "delivered"}
    assert body["complete"] is False

    record_path(store, carol_done=True)  # a replay plus carol's bounce
    body = (await client.get("/messages/m1")).json()
    assert len(body["events"]) == 7
    assert body["recipients"] == {"bob@example.org": "delivered", "carol@example.net": "bounced"}
    assert body["complete"] is True


async def test_sender_messages(client: httpx.AsyncClient, store: TimelineStore) -> None:
    record_path(store, carol_done=True)
    store.record(
        [
            accepted_event(
                envelope_pb2.Envelope(
                    message_id="m2",
                    received_at_ms=T0 + 120_000,
                    sender_identity="ip:192.0.2.7",
                    rcpt_to=["x@y"],
                )
            )
        ]
    )
    body = (await client.get("/senders/ip:192.0.2.7/messages")).json()
    assert body["sender_identity"] == "ip:192.0.2.7"
    assert [(m["message_id"], m["last_at_ms"]) for m in body["messages"]] == [
        ("m2", T0 + 120_000),
        ("m1", T0 + 60_000),
    ]
    limited = (await client.get("/senders/ip:192.0.2.7/messages", params={"limit": 1})).json()
    assert [m["message_id"] for m in limited["messages"]] == ["m2"]
    assert (await client.get("/senders/auth:nobody/messages")).json()["messages"] == []
    assert (await client.get("/senders/ip:192.0.2.7/messages", params={"limit": 0})).status_code == 422


async def test_health_and_readiness(client: httpx.AsyncClient, readiness: Readiness) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"ready": True}
    readiness.ready = False
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (503, {"ready": False})


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    labels = {"route": "/messages/{message_id}", "method": "GET", "status": "404"}
    before = REGISTRY.get_sample_value("baton_reputation_api_requests_total", labels) or 0.0
    await client.get("/messages/a")
    await client.get("/messages/b")
    assert REGISTRY.get_sample_value("baton_reputation_api_requests_total", labels) == before + 2


async def test_openapi_documents_the_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    get = spec["paths"]["/messages/{message_id}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MessageTimeline"
    }
    assert get["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert {"Event", "MessageTimeline", "SenderMessages"} <= set(spec["components"]["schemas"])
