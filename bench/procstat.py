"""CPU time and peak RSS of processes, from /proc (Linux only).

``cpu_seconds`` is utime + stime of the process itself; ``children_cpu_seconds`` is what its children
that exited and were waited for used (cutime + cstime), which is how the CPU of Postfix daemons that
came and went during a run is still counted, through their master. ``peak_rss_mb`` is VmHWM, the
process's high-water mark of resident memory since it started.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    pid: int
    comm: str
    ppid: int
    cpu_s: float
    children_cpu_s: float
    peak_rss_mb: float


def sample(pid: int) -> Sample | None:
    """The process's counters now, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may hold spaces; the fields after the last ")" are positional.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime 14, stime 15, cutime 16, cstime 17.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    hwm_kb = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            hwm_kb = int(line.split()[1])
            break
    return Sample(pid, comm, ppid, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS, hwm_kb / 1024)


def pss_mb(pid: int) -> float | None:
    """Proportional set size now: shared pages split between the processes sharing them, so summing
    it over 50 forked smtpd processes does not count their shared libraries 50 times (VmHWM does)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


def children(ppid: int) -> list[int]:
    """Pids whose parent is ``ppid`` (one pass over /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == ppid:
            found.append(int(entry.name))
    return found


class TreeSampler:
    """Samples a master process and its direct children every ``interval_s`` in a thread.

    Keeps the last sample of every pid seen, so short-lived children are counted up to their last
    sample; their remainder shows up in the master's ``children_cpu_s``.
    """

    def __init__(self, master_pid: int, interval_s: float = 0.5) -> None:
        self.master_pid = master_pid
        self.interval_s = interval_s
        self.baseline: dict[int, Sample] = {}
        self.last: dict[int, Sample] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _pass(self) -> dict[int, Sample]:
        found = {}
        for pid in [self.master_pid, *children(self.master_pid)]:
            s = sample(pid)
            if s is not None:
                found[pid] = s
        return found

    def start(self) -> None:
        self.baseline = self._pass()
        self.last = dict(self.baseline)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.last.update(self._pass())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.last.update(self._pass())

    def used(self) -> dict[int, tuple[Sample, float]]:
        """pid -> (last sample, CPU seconds used since ``start``)."""
        result = {}
        for pid, last in self.last.items():
            first = self.baseline.get(pid)
            result[pid] = (last, last.cpu_s - (first.cpu_s if first else 0.0))
        return result
