"""The `baton` command: run the relay locally and administer it.

baton run                      the whole relay on this machine (what `make run` calls)
baton accounts add USER        SMTP AUTH accounts (see `baton accounts --help`)
baton db upgrade|current       store migrations
baton topics create            create the Kafka topics with their partition counts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

DEV_BROKER_PORT = 9092
DEV_SINK_PORT = 2526


def dev_defaults(workdir: Path, sink_port: int) -> dict[str, str]:
    """What `baton run` sets when the user did not: everything on loopback, and all mail to the
    local sink so a fresh checkout never sends to the Internet."""
    return {
        "BATON_ROUTES": json.dumps({"*": f"127.0.0.1:{sink_port}"}),
        "BATON_ROUTER_ALLOW_LOOPBACK": "true",
        "BATON_DATABASE_URL": f"sqlite:///{workdir / 'baton.db'}",
        "BATON_SMTP_DEV_TLS_DIR": str(workdir / "tls"),
    }


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_local(argv: list[str]) -> int:
    from baton.dev.ports import free_port
    from baton.dev.supervisor import LocalRelay

    parser = argparse.ArgumentParser(prog="baton run", description="the whole relay on this machine")
    parser.add_argument("--workdir", type=Path, default=Path("var"), help="store, logs, sink (var/)")
    parser.add_argument("--sink-port", type=int, default=DEV_SINK_PORT, help="the local sink's port")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    env = {k: os.environ.get(k, v) for k, v in dev_defaults(workdir, args.sink_port).items()}
    broker_port = DEV_BROKER_PORT if _port_free(DEV_BROKER_PORT) else free_port()
    sink = f"baton.dev.sink --port {args.sink_port} --maildir {workdir / 'sink'}"
    relay = LocalRelay(workdir, env, broker_port=broker_port, extra={"sink": sink}, console=True)
    settings = relay.settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        relay.start()
        print(
            "\nBaton is running:\n"
            f"  SMTP submission   {settings.smtp_host}:{settings.smtp_port}\n"
            f"  reputation API    http://{settings.api_host}:{settings.api_port}/messages/<id>\n"
            f"  Kafka (Tansu)     {relay.broker.bootstrap}\n"
            f"  local sink        127.0.0.1:{args.sink_port} -> {workdir / 'sink' / 'new'}/\n"
            f"  logs              {workdir / 'logs'}/\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        relay.supervise(stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        relay.stop()
    return 0


def topics(argv: list[str]) -> int:
    from baton.kafka.topics import ensure_topics
    from baton.settings import load_settings

    if argv != ["create"]:
        print("usage: baton topics create", file=sys.stderr)
        return 2
    created = asyncio.run(ensure_topics(load_settings()))
    print("created: " + (", ".join(created) or "nothing, all exist"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "run":
        return run_local(rest)
    if command == "accounts":
        from services.ingress.accounts import cli as accounts_cli

        return accounts_cli(rest)
    if command == "db":
        from baton.db import cli as db_cli

        return db_cli(rest)
    if command == "topics":
        return topics(rest)
    print(__doc__, file=sys.stderr)
    return 0 if command in ("-h", "--help", "help") else 2


if __name__ == "__main__":
    sys.exit(main())
