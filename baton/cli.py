"""The `baton` command: run the relay locally and administer it.

baton run                      the whole relay on this machine (what `make run` calls)
baton accounts add USER        SMTP AUTH accounts (see `baton accounts --help`)
baton db upgrade|current       store migrations
baton topics create            create the Kafka topics with their partition counts
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from pathlib import Path

# What `baton run` sets when the user did not: everything on loopback, and all mail to the local
# sink so a fresh checkout never sends to the Internet.
DEV_DEFAULTS = {
    "BATON_ROUTES": '{"*": "127.0.0.1:2526"}',
    "BATON_ROUTER_ALLOW_LOOPBACK": "true",
    "BATON_DATABASE_URL": "sqlite:///var/baton.db",
}
DEV_BROKER_PORT = 9092


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_local() -> int:
    from baton.dev.ports import free_port
    from baton.dev.supervisor import LocalRelay

    env = {k: os.environ.get(k, v) for k, v in DEV_DEFAULTS.items()}
    broker_port = DEV_BROKER_PORT if _port_free(DEV_BROKER_PORT) else free_port()
    relay = LocalRelay(
        Path("var"), env, broker_port=broker_port, extra={"sink": "baton.dev.sink"}, console=True
    )
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
            f"  local sink        127.0.0.1:2526 -> var/sink/new/\n"
            f"  logs              var/logs/\n"
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
        return run_local()
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
