"""A small process supervisor for the whole relay on one machine (`make run`, e2e tests, bench).

It starts the embedded broker, creates the topics, migrates the store, then runs every service as
its own process, restarts one that dies, and stops them all (SIGTERM, then SIGKILL) on the way out.
In Kubernetes each of these processes is a Deployment instead; nothing here is used there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, get_origin

from baton.dev.broker import Broker
from baton.dev.ports import free_port
from baton.kafka.topics import ensure_topics
from baton.settings import Settings

SERVICES = ("ingress", "filter", "router", "sender", "reputation", "feedback", "notifier")


@dataclass
class ServiceProcess:
    """One service process (``python -m services.<name>``) with its own admin port."""

    name: str
    # "package.module [args...]", run as python -m.
    module: str
    env: dict[str, str]
    log_dir: Path
    console: bool = False
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _log: IO[bytes] | None = None

    def start(self) -> None:
        env = {**self.env, "BATON_ADMIN_PORT": str(self.admin_port), "PYTHONUNBUFFERED": "1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.log_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *self.module.split()],
            env=env,
            stdout=subprocess.PIPE if self.console else self._log,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the terminal reaches only the supervisor, which then
            # stops every service once, in order.
            start_new_session=True,
        )
        if self.console:
            threading.Thread(target=self._pump, args=(self.process, self._log), daemon=True).start()

    def _pump(self, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        # Like honcho: every line on the console prefixed with its service, and kept in the log file.
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                log.write(line)
                log.flush()
            sys.stdout.write(f"{self.name:>10} | {line.decode('utf-8', 'replace')}")
            sys.stdout.flush()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 20.0, *, signalled: bool = False) -> None:
        if self.alive:
            # A second SIGTERM means "exit now, skip the drain" to baton.bootstrap.
            if not signalled:
                self.signal(signal.SIGTERM)
            if self.wait(timeout_s) is None:
                self.signal(signal.SIGKILL)
                self.wait(5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def metric(self, name: str) -> float:
        """Sum of every sample of metric ``name`` on this process's /metrics (0 when absent)."""
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.admin_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


class LocalRelay:
    """The whole relay on this machine: broker, topics, store, and one process per service."""

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        *,
        broker_port: int | None = None,
        services: tuple[str, ...] = SERVICES,
        replicas: Mapping[str, int] | None = None,
        extra: Mapping[str, str] | None = None,
        console: bool = False,
    ) -> None:
        self.workdir = workdir
        self.broker = Broker(broker_port, log_path=workdir / "logs" / "broker.log")
        self._console = console
        base = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        self.env = {**base, **{k: v for k, v in os.environ.items() if k.startswith("BATON_")}, **(env or {})}
        self.env["BATON_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
        self.processes: dict[str, list[ServiceProcess]] = {}
        for name in services:
            self.processes[name] = [
                self._process(name, f"services.{name}", i) for i in range((replicas or {}).get(name, 1))
            ]
        # Extra processes that are not services (the development sink): name -> module. They have
        # no admin endpoint, so readiness is only asked of the services.
        self._services = tuple(services)
        for name, module in (extra or {}).items():
            self.processes[name] = [self._process(name, module, 0)]

    def _process(self, name: str, module: str, index: int) -> ServiceProcess:
        label = name if index == 0 else f"{name}-{index}"
        env = {**self.env, "BATON_INSTANCE": label}
        return ServiceProcess(label, module, env, self.workdir / "logs", console=self._console)

    def settings(self) -> Settings:
        """The settings the services see (parsed here the way pydantic-settings parses the environment)."""
        values: dict[str, Any] = {}
        for key, value in self.env.items():
            name = key.removeprefix("BATON_").lower()
            if key.startswith("BATON_") and name in Settings.model_fields:
                # Lists and dicts come as JSON, as pydantic-settings reads them from the environment.
                complex_type = get_origin(Settings.model_fields[name].annotation) in (list, dict)
                values[name] = json.loads(value) if complex_type else value
        return Settings.model_validate(values)

    # -- whole relay -------------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 90.0) -> None:
        self.start_broker()
        from baton.db import upgrade  # the store is needed only once the broker runs

        upgrade(self.settings().database_url)
        for procs in self.processes.values():
            for proc in procs:
                proc.start()
        self.wait_ready(ready_timeout_s)

    def stop(self) -> None:
        everything = [p for procs in self.processes.values() for p in procs]
        for proc in everything:
            proc.signal(signal.SIGTERM)
        for proc in everything:
            proc.stop(signalled=True)
        self.broker.stop()

    def wait_ready(self, timeout_s: float, names: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        names = self._services if names is None else names
        pending = [p for n, procs in self.processes.items() if n in names for p in procs]
        while pending:
            pending = [p for p in pending if not p.ready()]
            dead = [p.name for p in pending if not p.alive]
            if dead:
                raise RuntimeError(f"exited during start: {', '.join(dead)} (see {self.workdir / 'logs'})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready: {', '.join(p.name for p in pending)}")
            time.sleep(0.2)

    def supervise(self, stop: threading.Event) -> None:
        """Restart processes that die, with a growing pause, until ``stop`` is set."""
        while not stop.wait(1.0):
            for procs in self.processes.values():
                for proc in procs:
                    if proc.process is not None and not proc.alive:
                        code = proc.process.returncode
                        proc.restarts += 1
                        delay = min(2 ** min(proc.restarts, 5), 30)
                        note = f"{proc.name} exited with {code}; restart #{proc.restarts} in {delay}s"
                        print(f"supervisor | {note}", flush=True)
                        proc.stop()
                        if stop.wait(delay):
                            return
                        proc.start()

    # -- one part at a time (chaos and failure tests) -------------------------------------------
    def service(self, name: str) -> ServiceProcess:
        return self.processes[name][0]

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        proc = self.service(name)
        proc.signal(signum)
        proc.wait(20)
        proc.stop()

    def restart(self, name: str) -> None:
        proc = self.service(name)
        proc.start()

    def start_broker(self) -> None:
        self.broker.start()
        asyncio.run(ensure_topics(self.settings()))

    def stop_broker(self) -> None:
        self.broker.stop()
