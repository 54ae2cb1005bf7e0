"""``make bench``: Baton and Postfix on the same workload, machine, DNS and sink, in the same run.

    .venv/bin/python -m bench.run [--messages 20000] [--size 5120] [--sessions 50] [--domains 4]
                                  [--replicas sender=2,filter=1] [--skip-postfix] [--out bench-results/]

Every flag can also be given as an environment variable: ``BENCH_MESSAGES``, ``BENCH_SIZE``, ... (the
flag's name, upper case, ``-`` as ``_``); a flag on the command line wins.

The world: dnsmasq answers MX records for ``d<k>.bench`` (k < domains) pointing at ``127.0.0.<k+2>``;
one sink process listens on all of those addresses at one port and records each arrival. Then, one
after the other, each system relays the same workload to it: first the whole Baton relay
(``LocalRelay``: broker, topics, store, one process per service, replicas as asked), then a private
Postfix instance that relays the same domains to the same addresses. For each: a warm-up (connections,
DNS caches, consumer groups), then the measured load, then waiting until every accepted message has
arrived or nothing has arrived for ``--stall`` seconds. Only 127.0.0.0/8 is ever used.

Results: a table on stdout, ``<out>/<timestamp>.json`` (every figure and the parameters),
``<out>/<timestamp>.png`` (throughput and latency over time) and ``<out>/<timestamp>/`` (service
logs, the Postfix maillog, raw load and sink records).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from baton.dev.ports import free_port
from baton.dev.supervisor import SERVICES, LocalRelay
from bench import postfix, procstat, report
from bench.load import domains
from tests.fixtures.dns import Dnsmasq
from tests.fixtures.postgres import fresh_database, postgres_unavailable

REPO = Path(__file__).resolve().parents[1]
# MX hosts sit on 127.0.0.2 and up; 127.0.0.1 is where the relays and the control ports listen.
FIRST_MX_OCTET = 2
MAX_DOMAINS = 200


@dataclass(frozen=True)
class Params:
    messages: int
    size: int
    sessions: int
    domains: int
    replicas: dict[str, int]
    skip_postfix: bool
    install_postfix: bool
    out: str
    warmup: int
    timeout: float
    stall: float
    database: str
    destination_concurrency: int


def _replicas(text: str) -> dict[str, int]:
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"bad replica spec {item!r}: use service=N with one of {SERVICES}"
            )
        result[name] = int(count)
    return result


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> Params:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    env = os.environ

    def option(name: str, kind: Any, default: Any, text: str) -> None:
        key = "BENCH_" + name.upper().replace("-", "_")
        value = env.get(key)
        parser.add_argument(
            f"--{name}",
            type=kind,
            # argparse converts a string default with ``type``, so a bad variable is a usage error.
            default=value if value is not None else default,
            help=f"{text} ({key})",
        )

    option("messages", int, 20000, "messages in the measured load")
    option("size", int, 5120, "message size in bytes")
    option("sessions", int, 50, "concurrent SMTP sessions of the load generator")
    option("domains", int, 4, "recipient domains, each with its own MX address")
    option("replicas", _replicas, {"sender": 2}, "Baton replicas per service, e.g. sender=2,filter=1")
    option("out", str, "bench-results", "where results are written")
    option("warmup", int, 200, "messages sent (and waited for) before each measured load")
    option("timeout", float, 900.0, "bound in seconds on each system's load and on its drain")
    option("stall", float, 60.0, "stop waiting for deliveries after this long without one")
    option("database", str, "auto", "Baton's store: postgres, sqlite or auto (postgres when it answers)")
    option(
        "destination-concurrency",
        int,
        20,
        "connections per destination for both relays (Baton's BATON_DELIVERY_POOL_SIZE, Postfix's "
        "default_destination_concurrency_limit), so neither is shaped more tightly than the other",
    )
    skip = _flag(env.get("BENCH_SKIP_POSTFIX", ""))
    install = _flag(env.get("BENCH_INSTALL_POSTFIX", ""))
    parser.add_argument(
        "--skip-postfix", action="store_true", default=skip, help="Baton only (BENCH_SKIP_POSTFIX)"
    )
    parser.add_argument(
        "--install-postfix",
        action="store_true",
        default=install,
        help="when missing, apt-get install Debian's postfix, unconfigured and not started "
        "(BENCH_INSTALL_POSTFIX)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.domains <= MAX_DOMAINS:
        parser.error(f"--domains must be 1..{MAX_DOMAINS}")
    if args.messages < 1 or args.sessions < 1 or args.size < 256:
        parser.error("--messages and --sessions must be positive and --size at least 256")
    if args.database not in ("auto", "postgres", "sqlite"):
        parser.error("--database must be auto, postgres or sqlite")
    return Params(**vars(args))


def say(text: str) -> None:
    print(f"bench | {text}", file=sys.stderr, flush=True)


# --- the sink process ------------------------------------------------------------------------------


class SinkProcess:
    """``python -m bench.sink`` on every MX address, driven over its control port."""

    def __init__(self, addresses: list[str], port: int, log_dir: Path) -> None:
        self.addresses = addresses
        self.port = port
        self.log_path = log_dir / "sink.log"
        self.process: subprocess.Popen[str] | None = None
        self._control: socket.socket | None = None
        self._file: Any = None

    def start(self) -> None:
        command = [sys.executable, "-m", "bench.sink", "--addresses", ",".join(self.addresses)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # returns "" if the sink exits first
        if not line.startswith("READY "):
            raise RuntimeError(f"sink did not start: {self.log_path.read_text()[-2000:]}")
        self._control = socket.create_connection(("127.0.0.1", int(line.split()[1])), timeout=120)
        self._file = self._control.makefile("rw")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self, text: str) -> str:
        self._file.write(text + "\n")
        self._file.flush()
        return str(self._file.readline().strip())

    def count(self) -> int:
        return int(self.command("COUNT"))

    def reset(self) -> None:
        self.command("RESET")

    def dump(self, path: Path) -> list[list[Any]]:
        self.command(f"DUMP {path}")
        arrivals: list[list[Any]] = json.loads(path.read_text())
        return arrivals

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.command("QUIT")
        with contextlib.suppress(OSError):
            if self._control is not None:
                self._control.close()
        _end(self.process)
        self.process = None


def _end(process: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    """Terminate a process this bench started (never anything else), then kill it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


# --- load and drain --------------------------------------------------------------------------------


def run_load(params: Params, port: int, tag: str, messages: int, path: Path) -> tuple[dict[str, Any], float]:
    """Run the load generator to completion; returns its result and the CPU seconds it used."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        f"--port={port}",
        f"--tag={tag}",
        f"--messages={messages}",
        f"--size={params.size}",
        f"--sessions={params.sessions}",
        f"--domains={params.domains}",
        f"--timeout={params.timeout}",
        f"--out={path}",
    ]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + params.timeout + 60
    try:
        while True:
            # wait4 rather than Popen.wait: it also returns the CPU the generator used.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the load generator overran its deadline")
            time.sleep(0.1)
    finally:
        _end(process)
    if process.returncode != 0:
        raise RuntimeError(f"load generator exited with {process.returncode}")
    result: dict[str, Any] = json.loads(path.read_text())
    return result, usage.ru_utime + usage.ru_stime


def wait_delivered(sink: SinkProcess, expected: int, params: Params) -> None:
    """Until ``expected`` messages arrived, or none arrived for ``params.stall`` s, or the deadline."""
    deadline = time.monotonic() + params.timeout
    last, last_change = -1, time.monotonic()
    while True:
        count = sink.count()
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= expected:
            return
        if now - last_change > params.stall or now > deadline:
            say(f"stopped waiting: {count}/{expected} arrived")
            return
        time.sleep(0.25)


# --- resources -------------------------------------------------------------------------------------


class Meter:
    """CPU and peak RSS of named groups of processes, between ``start`` and ``stop``."""

    def __init__(self, groups: Mapping[str, list[int]]) -> None:
        self.groups = dict(groups)
        self.before: dict[int, procstat.Sample] = {}
        self.after: dict[int, procstat.Sample] = {}

    def _sample(self) -> dict[int, procstat.Sample]:
        found = {}
        for pids in self.groups.values():
            for pid in pids:
                s = procstat.sample(pid)
                if s is not None:
                    found[pid] = s
        return found

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> None:
        self.after = self._sample()

    def stages(self) -> dict[str, dict[str, Any]]:
        result = {}
        for name, pids in self.groups.items():
            alive = [pid for pid in pids if pid in self.after and pid in self.before]
            result[name] = {
                "processes": len(pids),
                "died": len(pids) - len(alive),
                "cpu_s": round(sum(self.after[p].cpu_s - self.before[p].cpu_s for p in alive), 3),
                "peak_rss_mb": round(sum(self.after[p].peak_rss_mb for p in alive), 1),
                "pss_mb": round(sum(procstat.pss_mb(p) or 0.0 for p in alive), 1),
            }
        return result


def postfix_stages(sampler: procstat.TreeSampler) -> dict[str, dict[str, Any]]:
    """Per Postfix daemon (by process name); exited children's CPU is the master's cutime+cstime."""
    stages: dict[str, dict[str, Any]] = {}
    master = sampler.master_pid
    for pid, (last, used) in sampler.used().items():
        name = "master" if pid == master else last.comm
        stage = stages.setdefault(
            name, {"processes": 0, "died": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "pss_mb": 0.0}
        )
        stage["processes"] += 1
        stage["cpu_s"] += used
        stage["peak_rss_mb"] += last.peak_rss_mb
        stage["pss_mb"] += procstat.pss_mb(pid) or 0.0
    first = sampler.baseline.get(master)
    last_master = sampler.last.get(master)
    if first is not None and last_master is not None:
        reaped = last_master.children_cpu_s - first.children_cpu_s
        # What sampled children used is in their rows already; the rest ran between samples.
        sampled_gone = sum(
            used
            for pid, (s, used) in sampler.used().items()
            if pid != master and procstat.sample(pid) is None
        )
        stages["exited children (unsampled)"] = {
            "processes": 0,
            "died": 0,
            "cpu_s": max(0.0, reaped - sampled_gone),
            "peak_rss_mb": 0.0,
            "pss_mb": 0.0,
        }
    for stage in stages.values():
        stage["cpu_s"] = round(stage["cpu_s"], 3)
        stage["peak_rss_mb"] = round(stage["peak_rss_mb"], 1)
        stage["pss_mb"] = round(stage["pss_mb"], 1)
    return dict(sorted(stages.items(), key=lambda item: -float(item[1]["cpu_s"])))


# --- one system -------------------------------------------------------------------------------------


def measure(
    name: str,
    port: int,
    sink: SinkProcess,
    params: Params,
    raw: Path,
    begin: Any,
    end: Any,
) -> dict[str, Any]:
    """Warm-up, then the measured load and its drain; ``begin``/``end`` start and stop resource meters."""
    if params.warmup:
        say(f"{name}: warm-up, {params.warmup} messages")
        warm, _ = run_load(params, port, f"{name}-warmup", params.warmup, raw / f"{name}-warmup-load.json")
        wait_delivered(sink, len(warm["accepted"]), params)
    sink.reset()
    begin()
    sink_before = procstat.sample(sink.pid)
    say(f"{name}: {params.messages} messages, {params.sessions} sessions")
    load, load_cpu = run_load(params, port, name, params.messages, raw / f"{name}-load.json")
    accepted = len(load["accepted"])
    say(f"{name}: {accepted} accepted in {load['finished'] - load['started']:.1f}s; waiting for deliveries")
    wait_delivered(sink, accepted, params)
    stages = end()
    sink_after = procstat.sample(sink.pid)
    arrivals = sink.dump(raw / f"{name}-sink.json")
    harness = {"load_generator_cpu_s": round(load_cpu, 2)}
    if sink_before and sink_after:
        harness["sink_cpu_s"] = round(sink_after.cpu_s - sink_before.cpu_s, 2)
    result = report.figures(load, arrivals, {"stages": stages, "harness": harness})
    say(
        f"{name}: {result['accepted_per_s']} accepted/s, {result['delivered_per_s']} delivered/s, "
        f"lost {result['lost']}, duplicated {result['duplicated']}"
    )
    return result


def run_baton(params: Params, dns: Dnsmasq, sink: SinkProcess, work: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        database = params.database
        if database == "auto":
            database = "postgres" if postgres_unavailable() is None else "sqlite"
        if database == "postgres":
            url = stack.enter_context(fresh_database(prefix="baton_bench_"))
        else:
            url = f"sqlite:///{work / 'baton.db'}"
        env = {
            "BATON_DNS_NAMESERVER": dns.nameserver,
            "BATON_ROUTER_ALLOW_LOOPBACK": "true",
            # Deliver by DNS MX, whatever BATON_ROUTES the calling shell has.
            "BATON_ROUTES": "{}",
            "BATON_DELIVERY_PORT": str(sink.port),
            "BATON_SMTP_PORT": str(free_port()),
            "BATON_API_PORT": str(free_port()),
            "BATON_DATABASE_URL": url,
            "BATON_SMTP_DEV_TLS_DIR": str(work / "tls"),
            "BATON_LOG_LEVEL": "WARNING",
            "BATON_DELIVERY_POOL_SIZE": str(params.destination_concurrency),
        }
        relay = LocalRelay(work, env, replicas=params.replicas)
        stack.callback(relay.stop)
        say(f"baton: starting the relay (store: {database}, replicas: {params.replicas or 'none'})")
        started = time.monotonic()
        relay.start()
        say(f"baton: ready in {time.monotonic() - started:.1f}s")
        groups = {
            name: [p.process.pid for p in procs if p.process is not None]
            for name, procs in relay.processes.items()
        }
        if relay.broker.pid is not None:
            groups["broker (tansu)"] = [relay.broker.pid]
        meter = Meter(groups)

        def end() -> dict[str, dict[str, Any]]:
            meter.stop()
            return meter.stages()

        result = measure("baton", int(env["BATON_SMTP_PORT"]), sink, params, work, meter.start, end)
        result["store"] = database
        died = [p.name for procs in relay.processes.values() for p in procs if not p.alive]
        result["died"] = died
        if died:
            say(f"baton: processes that died during the run: {', '.join(died)}")
        return result


def run_postfix(params: Params, sink: SinkProcess, work: Path) -> dict[str, Any]:
    routes = {d: f"127.0.0.{FIRST_MX_OCTET + k}" for k, d in enumerate(domains(params.domains))}
    port = free_port()
    instance = postfix.PostfixRelay(
        port, routes, sink.port, concurrency=params.destination_concurrency, keep_log=work / "postfix-maillog"
    )
    with instance:
        master = instance.master_pid()
        assert master is not None
        say(f"postfix: private instance in {instance.dir}, smtpd on 127.0.0.1:{port}")
        sampler = procstat.TreeSampler(master)

        def end() -> dict[str, dict[str, Any]]:
            sampler.stop()
            return postfix_stages(sampler)

        result = measure("postfix", port, sink, params, work, sampler.start, end)
        result["version"] = subprocess.run(
            ["postconf", "-h", "-d", "mail_version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return result


# --- main -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops what it started.

    SIGINT is set too: a shell without job control starts background commands with SIGINT ignored,
    and Python then never raises KeyboardInterrupt.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def main(argv: list[str] | None = None) -> int:
    params = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(params.out).resolve()
    work = out / stamp
    work.mkdir(parents=True, exist_ok=True)
    postfix_problem: str | None = None
    if not params.skip_postfix:
        postfix_problem = postfix.postfix_unavailable()
        if postfix_problem and params.install_postfix and os.geteuid() == 0:
            say("installing Debian's postfix (unconfigured; the system instance is not started)")
            postfix.install()
            postfix_problem = postfix.postfix_unavailable()
        if postfix_problem:
            say(f"skipping Postfix: {postfix_problem}")
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with _terminate_as_interrupt(), contextlib.ExitStack() as stack:
        dns = Dnsmasq(zones=("bench",), ttl=300)
        addresses = []
        for k, domain in enumerate(domains(params.domains)):
            address = f"127.0.0.{FIRST_MX_OCTET + k}"
            dns.add_mx(domain, f"mx.{domain}", 10).add_host(f"mx.{domain}", address)
            addresses.append(address)
        for attempt in range(5):
            try:
                stack.enter_context(dns)
                break
            except OSError:
                # tests.fixtures.dns.free_port raises when the free UDP port's TCP twin is taken.
                if attempt == 4:
                    raise
        sink = SinkProcess(addresses, free_port(), work)
        stack.callback(sink.stop)
        sink.start()
        say(f"dns on {dns.nameserver}, sink on {', '.join(addresses)} port {sink.port}")
        baton_work = work / "baton"
        baton_work.mkdir(exist_ok=True)
        results["baton"] = run_baton(params, dns, sink, baton_work)
        if not params.skip_postfix and not postfix_problem:
            results["postfix"] = run_postfix(params, sink, work)
    document = {
        "timestamp": stamp,
        "parameters": asdict(params),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "postfix_skipped": params.skip_postfix or postfix_problem,
        "wall_s": round(time.monotonic() - started, 1),
        "results": results,
    }
    json_path = out / f"{stamp}.json"
    json_path.write_text(json.dumps(document, indent=2))
    png_path = out / f"{stamp}.png"
    report.chart(results, asdict(params), png_path)
    print(report.table(results))
    print(f"\nwall time {document['wall_s']}s; results {json_path}, chart {png_path}, logs {work}/")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        sys.exit(130)
