"""Run one command and measure its whole process tree.

``run(cmd, stdout)`` returns the wall time, the CPU time (user + system of the
process and of every descendant it waited for, from ``os.wait4``) and the peak
resident memory of the tree: the largest sum of ``VmRSS`` over the process and
its descendants (pages shared between processes count once per process), or the
command's own ``VmHWM`` if that is more. It samples every 10 ms, then every 50 ms
after the first 2 s, to cost the machine little (1-2% of a core). Not
``ru_maxrss``: after a vfork it includes the parent's memory, this script's.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_mib: float


def run(cmd: list[str], stdout: Path) -> Run:
    """Run ``cmd`` with its standard output in the file ``stdout``; raise if it fails."""
    with open(stdout, "wb") as out, open(stdout.with_suffix(".err"), "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = _TreeMemory(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
    if proc.returncode != 0:
        tail = stdout.with_suffix(".err").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime, sampler.peak_kib / 1024)


class _TreeMemory(threading.Thread):
    """Samples the resident memory of a process and its descendants every 10 ms, then 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self.stop.wait(0.01 if time.perf_counter() - start < 2 else 0.05):
            tree = sum(_status_kib(p, "VmRSS:") for p in _tree(self.pid))
            self.peak_kib = max(self.peak_kib, tree, _status_kib(self.pid, "VmHWM:"))


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
