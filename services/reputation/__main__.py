"""The reputation service: the timeline consumer and the HTTP API in one process."""

import asyncio
import contextlib
from typing import Any

import uvicorn

from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from baton.store import make_engine
from services.reputation.api import create_app
from services.reputation.handler import TimelineHandler
from services.reputation.store import TimelineStore


class _ApiServer(uvicorn.Server):
    # Signals belong to baton.bootstrap, which drains the consumer first; uvicorn must not take them.
    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


async def main(settings: Settings, life: Lifecycle) -> None:
    engine = make_engine(settings.database_url)
    store = TimelineStore(engine)
    handler = TimelineHandler(settings, store)
    stage = Stage("reputation", settings, handler.topics, handler)
    life.add_ready_check(stage.ready)
    app = create_app(store, life.ready)
    api = _ApiServer(
        uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)
    )
    api_task = asyncio.create_task(api.serve())
    try:
        await stage.run(life)
    finally:
        api.should_exit = True
        await api_task
        engine.dispose()


if __name__ == "__main__":
    run("reputation", main)
