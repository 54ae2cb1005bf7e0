"""One start-up path for every service: settings, logging, admin HTTP, signals, drain.

A service's ``__main__`` calls :func:`run` with its name and a ``main(settings, life)`` coroutine.
``main`` starts its parts, marks itself ready, waits for ``life.stopping`` and then drains.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from baton.admin import AdminServer
from baton.logs import configure_logging
from baton.settings import Settings, load_settings

log = logging.getLogger(__name__)


class Lifecycle:
    """Shared between bootstrap and a service: the stop signal and the readiness checks."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._checks: list[Callable[[], bool]] = []

    def add_ready_check(self, check: Callable[[], bool]) -> None:
        self._checks.append(check)

    def ready(self) -> bool:
        return bool(self._checks) and not self.stopping.is_set() and all(c() for c in self._checks)

    def stop(self) -> None:
        self.stopping.set()


Main = Callable[[Settings, Lifecycle], Awaitable[None]]


async def _run(service: str, settings: Settings, main: Main) -> int:
    life = Lifecycle()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second signal, exiting without drain")
            sys.exit(1)
        log.info("signal received, draining", extra={"signal": signal.Signals(signum).name})
        life.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    admin = AdminServer(settings.admin_host, settings.admin_port, life.ready)
    await admin.start()
    log.info("started", extra={"admin_port": admin.port, "instance": settings.instance})
    try:
        await main(settings, life)
    except Exception:
        log.exception("service failed")
        return 1
    finally:
        await admin.stop()
    log.info("stopped")
    return 0


def run(service: str, main: Main) -> None:
    """Run ``main`` as the service ``service`` and exit with its status."""
    configure_logging(service)
    try:
        settings = load_settings()
    except (ValidationError, ValueError) as exc:
        log.critical("invalid settings: %s", exc)
        sys.exit(2)
    configure_logging(service, settings.log_level)
    sys.exit(asyncio.run(_run(service, settings, main)))
