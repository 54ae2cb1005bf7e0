"""The reputation HTTP API: a message's timeline and a sender's recent messages.

Handlers are plain ``def``: FastAPI runs them in its thread pool, where the synchronous store may
block.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.reputation.metrics import API_REQUESTS
from services.reputation.store import TimelineStore
from services.reputation.timeline import summarize


class Event(BaseModel):
    kind: str = Field(description="accepted | filtered | routed | outcome")
    at: datetime = Field(description="When the step happened (UTC).")
    at_ms: int = Field(description="The same instant in Unix milliseconds.")
    key: str = Field(
        description="Tells steps of one kind apart: the domain for routed, "
        '"<recipient> <status> <attempt>" for outcome; empty otherwise.'
    )
    sender_identity: str
    detail: dict[str, Any]


class MessageTimeline(BaseModel):
    message_id: str
    events: list[Event] = Field(description="Oldest first.")
    recipients: dict[str, str] = Field(
        description="Latest outcome status (delivered, deferred, bounced, rejected, expired) per recipient "
        "that has one."
    )
    complete: bool = Field(
        description="Accepted, filtered and (unless the filter refused it) routed are recorded, and every "
        "recipient has an outcome, final or deferred."
    )


class SenderMessage(BaseModel):
    message_id: str
    last_at: datetime
    last_at_ms: int


class SenderMessages(BaseModel):
    sender_identity: str
    messages: list[SenderMessage] = Field(description="Most recently active first.")


class Error(BaseModel):
    error: str


class Readiness(BaseModel):
    ready: bool


def _at(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC)


def create_app(store: TimelineStore, ready: Callable[[], bool]) -> FastAPI:
    app = FastAPI(title="Baton reputation", version="1")

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        # The route template, never the raw path: message ids would make one series each.
        template = getattr(route, "path", "unmatched")
        API_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
        return response

    @app.get("/healthz", response_model=Readiness)
    def healthz() -> Readiness:
        return Readiness(ready=True)

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz() -> Any:
        if ready():
            return Readiness(ready=True)
        return JSONResponse(Readiness(ready=False).model_dump(), status_code=503)

    @app.get(
        "/messages/{message_id}",
        response_model=MessageTimeline,
        responses={404: {"model": Error, "description": "No step of this message is recorded."}},
    )
    def message_timeline(message_id: str) -> Any:
        steps = store.timeline(message_id)
        if not steps:
            return JSONResponse(Error(error=f"unknown message {message_id}").model_dump(), status_code=404)
        summary = summarize(steps)
        return MessageTimeline(
            message_id=message_id,
            events=[
                Event(
                    kind=s.kind,
                    at=_at(s.at_ms),
                    at_ms=s.at_ms,
                    key=s.key,
                    sender_identity=s.sender_identity,
                    detail=s.detail,
                )
                for s in steps
            ],
            recipients=summary.recipients,
            complete=summary.complete,
        )

    @app.get("/senders/{identity:path}/messages", response_model=SenderMessages)
    def sender_messages(identity: str, limit: int = Query(50, ge=1, le=1000)) -> SenderMessages:
        return SenderMessages(
            sender_identity=identity,
            messages=[
                SenderMessage(message_id=m.message_id, last_at=_at(m.last_at_ms), last_at_ms=m.last_at_ms)
                for m in store.sender_messages(identity, limit)
            ],
        )

    return app
