"""Edge: run a lab scenario's programs on a topology while capturing their traffic.

Every program runs as a subprocess under ``python -m sockinspect._accounting``,
so what it sent is known and can be checked against the capture: a capture
that dropped packets, or misses bytes the programs sent, is reported loudly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._analyze import analyze
from ._capture import LiveCapture
from ._model import Capture
from ._topology import Loopback, NetnsPair
from .errors import SockinspectError

READY_TIMEOUT_S = 10
CLIENT_TIMEOUT_S = 120


class ScenarioError(SockinspectError):
    """A scenario's program failed or did not do what the lab says."""


@dataclass
class Run:
    """One captured run: the capture, its analysis, and what the programs reported."""

    label: str
    capture: Path
    analysis: Capture | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # accounting records of every program
    dropped: int = 0
    problems: list[str] = field(default_factory=list)  # capture vs programs mismatches
    outputs: list[str] = field(default_factory=list)  # the clients' stdout, in order
    facts: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Starts servers and clients on ``topology`` and captures them into ``outdir``."""

    def __init__(self, topology: Loopback | NetnsPair, outdir: Path, progress: bool = False) -> None:
        self.topology = topology
        self.outdir = outdir.resolve()  # the programs run with the work folder as their cwd
        self.progress = progress
        self.outdir.mkdir(parents=True, exist_ok=True)
        # A folder of its own (never one the user had): logs and accounting records.
        self.workdir = Path(tempfile.mkdtemp(prefix=".work-", dir=self.outdir))
        self._seq = 0
        self.server_log = self.workdir / "server.log"

    def say(self, message: str) -> None:
        if self.progress:
            print(f"sockinspect: {message}", file=sys.stderr, flush=True)

    def _accounted(self, module: str, args: list[str]) -> tuple[list[str], Path]:
        self._seq += 1
        record = self.workdir / f"sent-{self._seq}.jsonl"
        record.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "sockinspect._accounting", str(record), "-m", module, *args]
        return argv, record

    @contextmanager
    def server(self, module: str, args: list[str], run: Run, trace: Path | None = None
               ) -> Iterator[tuple[int, subprocess.Popen]]:
        """Start a server with ``--host ADDR --port 0``; yield (its port, the process).
        ``trace``: record its socket system calls there with strace."""
        argv, record = self._accounted(module, [*args, "--host", self.topology.server_addr, "--port", "0"])
        argv = _traced(argv, trace)
        log = self.server_log = self.workdir / f"server-{self._seq}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(self.topology.server_cmd(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True, env=child_env(), cwd=self.workdir)
        try:
            port = _read_port(proc, module, log)
            yield port, proc
        finally:
            if trace is not None:  # strace keeps SIGINT for itself: signal the traced program
                _signal_tracee(trace)
            _stop(proc)
            run.sent.extend(_records(record))

    def client(self, module: str, args: list[str], run: Run, stdin: str | None = None,
               check: bool = True, trace: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv, record = self._accounted(module, args)
        argv = _traced(argv, trace)
        try:
            done = subprocess.run(self.topology.client_cmd(argv), input=stdin, capture_output=True, text=True,
                                  env=child_env(), cwd=self.workdir, timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScenarioError(f"{module} did not finish within {CLIENT_TIMEOUT_S} s") from None
        run.sent.extend(_records(record))
        run.outputs.append(done.stdout)
        if check and done.returncode:
            raise ScenarioError(f"{module} {' '.join(args)} exited {done.returncode}: "
                                f"{done.stderr.strip().splitlines()[-1:] or ''}")
        return done

    @contextmanager
    def capture(self, run: Run, ports: list[int]) -> Iterator[None]:
        live = LiveCapture(run.capture, ports=ports, interface=self.topology.capture_interface,
                           in_netns=self.topology.in_server_netns)
        with live:
            yield
        run.dropped = live.stats.dropped if live.stats else 0

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until the last server started has logged ``text`` (e.g. a client joined)."""
        deadline = time.monotonic() + timeout
        while text not in self.server_log.read_text():
            if time.monotonic() > deadline:
                raise ScenarioError(f"the server never logged {text!r} within {timeout} s")
            time.sleep(0.02)

    def new_run(self, label: str, name: str) -> Run:
        return Run(label=label, capture=self.outdir / name)

    def finish(self, run: Run) -> Run:
        """Analyze the capture and cross-check it with what the programs sent."""
        run.analysis = analyze(run.capture)
        run.problems = cross_check(run.analysis, run.sent, run.dropped)
        return run


def cross_check(cap: Capture, sent: list[dict[str, Any]], dropped: int) -> list[str]:
    """Compare the capture with the programs' own counts; one line per mismatch."""
    problems = [f"the kernel dropped {dropped} packets during the capture"] if dropped else []
    by_ends = {}
    for conn in cap.tcp:
        c, s = (conn.client.addr, conn.client.port), (conn.server.addr, conn.server.port)
        by_ends[(c, s)] = conn.c2s
        by_ends[(s, c)] = conn.s2c
    for rec in sent:
        if rec["proto"] != "tcp" or not rec.get("local") or not rec.get("peer"):
            continue
        key = (tuple(rec["local"]), tuple(rec["peer"]))
        direction = by_ends.get(key)
        if direction is None:
            if rec["sent"]:
                problems.append(f"connection {key[0][0]}:{key[0][1]} -> {key[1][0]}:{key[1][1]} "
                                f"sent {rec['sent']} bytes but is not in the capture")
            continue
        info = rec.get("tcp_info") or {}
        resent = info.get("bytes_retrans", 0)
        captured = direction.payload_bytes
        if captured < rec["sent"] or (not resent and not direction.retransmissions and captured != rec["sent"]):
            problems.append(f"{key[0][0]}:{key[0][1]} -> {key[1][0]}:{key[1][1]}: the program sent {rec['sent']} "
                            f"bytes, the capture holds {captured}")
    return problems


def child_env() -> dict[str, str]:
    """The programs import reference_servers and sockinspect from this checkout."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}


def _read_port(proc: subprocess.Popen, module: str, log: Path) -> int:
    """The server's first stdout line ends with the port it listens on."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    text = line[0].strip() if line else ""
    if not text:
        _stop(proc)
        err = log.read_text().strip().splitlines()
        raise ScenarioError(f"{module} did not say which port it listens on within {READY_TIMEOUT_S} s"
                            + (f": {err[-1]}" if err else ""))
    try:
        return int(text.split()[-1])
    except ValueError:
        _stop(proc)
        raise ScenarioError(f"{module}: cannot read a port from its first line {text!r}") from None


STRACE_CALLS = "trace=socket,bind,listen,accept,accept4,connect"


def _traced(argv: list[str], trace: Path | None) -> list[str]:
    return argv if trace is None else ["strace", "-f", "-qq", "-e", STRACE_CALLS, "-o", str(trace), *argv]


def _signal_tracee(trace: Path) -> None:
    try:
        first = trace.read_text().split(maxsplit=1)[0]
        os.kill(int(first), signal.SIGINT)
    except (OSError, ValueError, IndexError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _records(path: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 2
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_topology(name: str, ipv6: bool = False) -> Loopback | NetnsPair:
    return NetnsPair() if name == "netns" else Loopback(ipv6=ipv6)
