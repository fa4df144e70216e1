"""Fixtures for the reference programs' end-to-end tests: loopback only, ports chosen
by the OS (``--port 0`` and the readiness line), a timeout on every wait."""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import sigint_by_default

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
WAIT_S = 10.0  # the longest any single wait may take before the test fails
READY = "listening on 127.0.0.1 "


def _pump(stream, lines: queue.Queue) -> None:  # noqa: ANN001
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)  # end of stream


class Program:
    """A reference program running as a subprocess; its output read line by line, with timeouts."""

    def __init__(self, argv: list[str], stdin: bool, cwd: Path) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                     encoding="utf-8", errors="replace", preexec_fn=sigint_by_default)
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []  # stderr lines read so far
        self._pumps = [threading.Thread(target=_pump, args=(stream, lines), daemon=True)
                       for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for pump in self._pumps:
            pump.start()
        self.port = 0

    def readline(self, timeout: float = WAIT_S) -> str:
        """The next stdout line ('' at the end of the stream)."""
        try:
            line = self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.argv[2:]}: no stdout line within {timeout} s") from None
        return "" if line is None else line

    def wait_ready(self) -> int:
        line = self.readline()
        assert line.startswith(READY) and line.endswith("\n"), f"readiness line: {line!r}"
        self.port = int(line[len(READY):])
        return self.port

    def wait_for_log(self, text: str, timeout: float = WAIT_S) -> str:
        """Read stderr until a line containing ``text``; return that line."""
        while True:
            try:
                line = self.err.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.argv[2:]} never logged {text!r}; log: {self.log}") from None
            if line is None:
                raise AssertionError(f"{self.argv[2:]} ended without logging {text!r}; log: {self.log}")
            self.log.append(line)
            if text in line:
                return line

    def say(self, text: str) -> None:
        """A line typed on the program's stdin."""
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig``; the exit status and the rest of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.finish()

    def finish(self) -> tuple[int, str]:
        """Wait for the program to end; the exit status and the rest of stderr."""
        status = self.proc.wait(WAIT_S)
        rest = []
        while (line := self.err.get(timeout=WAIT_S)) is not None:
            rest.append(line)
        self.log.extend(rest)
        return status, "".join(self.log)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT_S)
        for pump in self._pumps:  # they reach the end of the streams once the program is gone
            pump.join(WAIT_S)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def command(program: str, form: str = "module") -> list[str]:
    """How to run a reference program: ``python -m reference_servers.X`` or the script path."""
    if form == "script":
        return [sys.executable, str(ROOT / "reference_servers" / f"{program}.py")]
    return [sys.executable, "-m", f"reference_servers.{program}"]


@pytest.fixture
def spawn() -> Iterator[Callable[..., Program]]:
    """Start a program (``spawn("echo_tcp_server")``); a server is given ``--port 0`` and
    waited for. Everything started is stopped afterwards."""
    started: list[Program] = []

    def start(program: str, *args: str, stdin: bool = False, form: str = "module", server: bool | None = None
              ) -> Program:
        server = program.endswith("_server") if server is None else server
        argv = [*command(program, form), *args, *(["--port", "0"] if server else [])]
        prog = Program(argv, stdin, cwd=ROOT if form == "module" else Path("/"))
        started.append(prog)
        if server:
            prog.wait_ready()
        return prog

    yield start
    for prog in started:
        prog.kill()


@pytest.fixture
def client() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a client program to its end (``client("echo_tcp_client", "--port", p, "hi")``)."""

    def run(program: str, *args: str, form: str = "module", timeout: float = WAIT_S, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command(program, form), *args], input=stdin, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT if form == "module" else "/")

    return run


@pytest.fixture
def serve() -> Iterator[Callable[[socketserver.BaseServer], int]]:
    """Run a server object in a thread of this process; returns its port. Stopped afterwards."""
    servers: list[socketserver.BaseServer] = []

    def start(server: socketserver.BaseServer) -> int:
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server.server_address[1]

    yield start
    for server in servers:
        if hasattr(server, "end"):
            server.end()
        server.shutdown()
        server.server_close()


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback TCP port nobody listens on (bound, never listening, until the test ends)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        yield s.getsockname()[1]
