"""Edge: run untrusted lab programs on the lab's hosts, each in a folder of its own,
as an unprivileged user where the machine allows it, killed after a timeout.

A :class:`Sandbox` owns the hosts (a topology of :mod:`sockinspect._topology`), a
work folder, and a capture of everything on the server's interface. Servers are
found listening from the socket table of their network namespace; a client's
port and the files it opens from a traced probe run (strace), so programs that
hard-code their port and file names run unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .._capture import LiveCapture
from .._run import STAGE_PREFIX, Lease, spawn, stop_group, stopping
from .._topology import LabLoopback, NetnsPair, in_user_namespace
from ..errors import SockinspectError
from .programs import Program

NOBODY = 65534  # the unprivileged uid and gid programs run as, when this process is root
MAX_COPIED_BYTES = 4 << 20  # a submission's files copied beside each program
TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE_WAIT = "0A", "01", "08"  # /proc/net/tcp states (include/net/tcp_states.h)
OUTPUT_LIMIT = 1 << 20  # bytes of a program's stdout and stderr kept (the rest is read and dropped)
MAX_FILE_BYTES = 64 << 20  # RLIMIT_FSIZE of a student's program: the 1 MB copy, its logs
MAX_PROCESSES = 256  # RLIMIT_NPROC of a student's program (per user: a fork bomb stops there)


class SandboxError(SockinspectError):
    """A program could not be run at all (it never listened, it has a syntax error...)."""


@dataclass
class Outcome:
    """What one run of a client did."""

    argv: list[str]
    stdout: str
    stderr: str
    returncode: int | None  # None: killed after the timeout
    start_ns: int
    end_ns: int
    timeout: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def failure(self) -> str | None:
        """Why the run failed, in a few words; None when it exited 0."""
        if self.timed_out:
            return f"timed out after {self.timeout:g} s"
        if self.returncode:
            last = self.stderr.strip().splitlines()[-1:] or [""]
            return f"exited {self.returncode}" + (f": {last[0][:200]}" if last[0] else "")
        return None


@dataclass
class Server:
    program: Program
    proc: subprocess.Popen
    folder: Path
    port: int
    log: Path
    session: Session | None = None  # its terminal, when started interactive
    started: dict[str, tuple[int, int]] = field(default_factory=dict)  # its folder's files: (size, mtime)

    def alive(self, grace: float = 0.2) -> bool:
        """Whether it still runs ``grace`` seconds from now (a server that serves one client
        exits just after it)."""
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        return self.proc.poll() is None


class Sandbox:
    """The hosts, a work folder and a capture; see the module docstring. A context manager:
    on the way out every program is killed and everything it made is removed."""

    def __init__(self, topology: LabLoopback | NetnsPair, capture: Path, lease: Lease, timeout: float) -> None:
        self.topology = topology
        self.timeout = timeout
        self.capture_path = capture
        self.lease = lease
        # Root runs students' programs as nobody (with a Python nobody may run); inside a user
        # namespace (rootless) they already run as this user. Reference programs are trusted.
        self.drop = os.geteuid() == 0 and not in_user_namespace() and shutil.which("setpriv") is not None
        self.python = _python_for(NOBODY) if self.drop else sys.executable
        self.notes: list[str] = []
        if self.drop and self.python is None:
            self.notes.append("the programs ran as root: user nobody may run no Python here")
            self.drop, self.python = False, sys.executable
        self.pid_namespace = _can_unshare_pid()
        if not self.pid_namespace:
            self.notes.append("no PID namespace here: a program's background children may outlive it")
        self._children: list[subprocess.Popen] = []
        self._live: LiveCapture | None = None
        self.work = lease.make_folder(Path(tempfile.gettempdir()), STAGE_PREFIX)
        os.chmod(self.work, 0o711)  # a program reaches its own folder, lists none
        self._count = 0

    def __enter__(self) -> Sandbox:
        self._live = LiveCapture(self.capture_path, interface=self.topology.capture_interface,
                                 in_netns=self.topology.in_server_netns)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._children:
            stop_group(proc, first=None)
        self._children.clear()
        if self._live is not None:
            self._live.__exit__(None, None, None)
        shutil.rmtree(self.work, ignore_errors=True)

    @property
    def dropped(self) -> int:
        stats = self._live.stats if self._live else None
        return stats.dropped if stats else 0

    # --- folders ------------------------------------------------------------------------

    def folder(self, program: Program, role: str, files: dict[str, bytes] | None = None) -> Path:
        """A new folder for one run of ``program``, with ``files`` (name -> bytes) and, for a
        student's, its submission's files (a program may import a helper beside it). It is
        made whole before the program's user gets it: nothing it plants can redirect a write."""
        self._count += 1
        folder = self.work / f"{self._count:03d}-{role}"
        folder.mkdir(mode=0o700)
        if program.copy_folder:
            for src in sorted(program.path.parent.iterdir()):
                if src.is_file() and not src.is_symlink() and src.stat().st_size <= MAX_COPIED_BYTES:
                    shutil.copyfile(src, folder / src.name)
        for name, data in (files or {}).items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if self.drop and not program.reference:
            for path in (folder, *folder.rglob("*")):
                os.lchown(path, NOBODY, NOBODY)
        return folder

    # --- running ------------------------------------------------------------------------

    def _argv(self, program: Program, folder: Path, args: list[str], trace: Path | None = None) -> list[str]:
        """How ``program`` runs: a student's in a PID namespace of its own (whatever it forks
        dies with it), with limits, as nobody where this process is root."""
        if program.reference:
            argv = [sys.executable, str(program.script(folder)), *args]
        else:
            argv = [self.python, str(program.script(folder)), *args]
            if self.drop:
                argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--pdeathsig=KILL",
                        "--", *argv]
            argv = ["prlimit", f"--fsize={MAX_FILE_BYTES}", f"--nproc={MAX_PROCESSES}", "--", *argv]
            if self.pid_namespace:
                argv = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--", *argv]
        if trace is not None:
            argv = ["strace", "-f", "-qq", "-e", "trace=connect,open,openat", "-o", str(trace), *argv]
        return argv

    def _env(self, folder: Path) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}

    def start_server(self, program: Program, port: int = 0, prefer: int | None = None,
                     interactive: bool = False) -> Server:
        """Start ``program`` on R2 in a new folder (a reference program on ``port``); return
        once it listens (SandboxError if it exits first or does not listen in the timeout).
        Its port: the one of its own listening sockets that is ``prefer`` (where the
        student's client connects), else the lowest."""
        folder = self.folder(program, "server")
        log = self.work / f"{folder.name}.log"
        argv = self.topology.server_cmd(self._argv(program, folder, program.server_args(self.topology.server_addr,
                                                                                        port)))
        with open(log, "wb") as out:
            if interactive:  # a terminal to type into and read; its log apart
                proc = spawn(argv, cwd=folder, env=self._env(folder), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=out)
            else:
                proc = spawn(argv, cwd=folder, env=self._env(folder), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
        self._children.append(proc)
        session = Session(proc) if interactive else None
        deadline = time.monotonic() + self.timeout
        while True:
            ports = own_listening(proc.pid)
            if ports:
                chosen = prefer if prefer in ports else min(ports)
                server = Server(program, proc, folder, chosen, log, session)
                server.started = snapshot(folder)
                return server
            if proc.poll() is not None:
                last = _last_line(log)
                self._children.remove(proc)
                raise SandboxError(f"{program.name} exited {proc.returncode} before it listened"
                                   + (f": {last}" if last else ""))
            if time.monotonic() > deadline:
                self.stop(proc)
                raise SandboxError(f"{program.name} never listened within {self.timeout:g} s")
            time.sleep(0.02)

    def stop(self, proc: subprocess.Popen) -> None:
        """A server's end: SIGINT to its process group (Ctrl-C, as a student stops it: the
        PID namespace's first process forwards nothing), then the whole group killed."""
        if proc.poll() is None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(0.5 if stopping() else 2.0)
        stop_group(proc, first=None)
        with suppress(ValueError):
            self._children.remove(proc)

    def run_client(self, program: Program, args: list[str], folder: Path | None = None,
                   trace: Path | None = None) -> Outcome:
        """Run ``program`` on KALI until it exits or the timeout kills it."""
        folder = folder or self.folder(program, "client")
        argv = self._argv(program, folder, args, trace=trace)
        start = time.time_ns()
        proc = spawn(self.topology.client_cmd(argv), cwd=folder, env=self._env(folder),
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._children.append(proc)
        readers = [_Reader(proc.stdout), _Reader(proc.stderr)]
        try:
            code: int | None = proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_group(proc, first=None)  # and what it left running in its group
            self._children.remove(proc)
        out, err = (reader.text() for reader in readers)
        return Outcome([program.name, *args], out, err, code, start, time.time_ns(), self.timeout)

    def start_client(self, program: Program, args: list[str]) -> Session:
        """Start ``program`` on KALI in a new folder, as a terminal to type into and read."""
        folder = self.folder(program, "client")
        proc = spawn(self.topology.client_cmd(self._argv(program, folder, args)), cwd=folder, env=self._env(folder),
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._children.append(proc)
        return Session(proc)

    def listen(self, port: int) -> socket.socket:
        """A listening socket on R2 (a plain ``nc -l``), on ``port``."""
        addr = (self.topology.server_addr, port)
        return self.topology.in_server_netns(lambda: socket.create_server(addr, reuse_port=False))

    def wait_connected(self, server: Server) -> bool:
        """Wait until a client is connected to ``server``; whether one is, within the timeout."""
        deadline = time.monotonic() + self.timeout
        while not open_connections(server.proc.pid, server.port):
            if time.monotonic() > deadline or not server.alive(0):
                return False
            time.sleep(0.02)
        return True

    def probe_client(self, program: Program, args: list[str], folder: Path) -> Probe:
        """Run ``program`` once under strace: where it connects, and which files of its
        folder it opens for reading."""
        if shutil.which("strace") is None:
            return Probe(None, [], "strace is not installed")
        trace = self.work / f"{folder.name}.strace"
        self.run_client(program, args, folder, trace=trace)
        text = trace.read_text(errors="replace") if trace.exists() else ""
        return parse_probe(text, folder)

    @contextmanager
    def held_connection(self, port: int) -> Iterator[socket.socket]:
        """A connection from KALI to the server that sends nothing while held."""
        addr = (self.topology.server_addr, port)
        sock = self.topology.in_client_netns(lambda: socket.create_connection(addr, timeout=self.timeout))
        try:
            yield sock
        finally:
            sock.close()

    def wait_closed(self, server: Server, timeout: float, still_open: int = 0) -> bool:
        """Wait until the server has no more than ``still_open`` connections left open on its
        port (it closed the others it accepted); whether it did within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if open_connections(server.proc.pid, server.port) <= still_open:
                return True
            if not server.alive():
                return True  # its sockets went with it
            time.sleep(0.02)
        return False


class Session:
    """A program someone types into: its stdin a pipe, its stdout read into lines."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.start_ns = time.time_ns()
        self.end_ns: int | None = None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        size = 0
        for raw in self.proc.stdout:
            size += len(raw)
            if size > OUTPUT_LIMIT:
                break
            with self._changed:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                self._changed.notify_all()

    def say(self, line: str) -> None:
        """Type ``line`` and Enter."""
        with suppress(OSError, ValueError):
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def end_input(self) -> None:
        """Ctrl-D: the end of its input."""
        with suppress(OSError, ValueError):
            self.proc.stdin.close()

    def expect(self, line: str, timeout: float) -> bool:
        """Whether its terminal shows ``line`` (a whole line) within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: line in self.lines, timeout)

    def shown(self, last: int = 3) -> str:
        with self._changed:
            tail = self.lines[-last:]
        return " | ".join(tail) if tail else "nothing"

    def exited(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        stop_group(self.proc, first=None)
        self.end_ns = self.end_ns or time.time_ns()


@dataclass(frozen=True)
class Probe:
    port: int | None  # the port of the first connect() to an IPv4/IPv6 address
    opened: list[str]  # files of its folder it opened (or tried to) for reading, in order
    problem: str | None = None


_CONNECT = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\)')
_OPEN = re.compile(r'open(?:at)?\((?:AT_FDCWD, )?"((?:[^"\\]|\\.)*)", ([A-Z_|]+)')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_C_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f", b'"': b'"', b"\\": b"\\"}


def parse_probe(trace: str, folder: Path) -> Probe:
    """The connect port and the files read of an strace log (see :meth:`Sandbox.probe_client`)."""
    port = None
    opened: list[str] = []
    for line in trace.splitlines():
        if port is None and (m := _CONNECT.search(line)):
            port = int(m.group(1))
        m = _OPEN.search(line)
        if m and "O_RDONLY" in m.group(2) and "O_DIRECTORY" not in m.group(2):
            name = _unescape(m.group(1))
            if name.startswith(str(folder) + "/"):
                name = name[len(str(folder)) + 1:]
            name = os.path.normpath(name)
            if not name.startswith(("/", "..")) and "__pycache__" not in name \
                    and not name.endswith((".py", ".pyc", ".so")) and name not in opened:
                opened.append(name)
    return Probe(port, opened)


def _unescape(text: str) -> str:
    """A path as strace prints it (C escapes for bytes it does not show) as Python names it."""
    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code[:1] == b"x":
            return bytes([int(code[1:], 16)])
        if code[:1].isdigit():
            return bytes([int(code, 8) & 0xFF])
        return _C_ESCAPES.get(code, code)
    raw = _ESCAPE.sub(one, text.encode("utf-8", errors="surrogateescape"))
    return raw.decode("utf-8", errors="surrogateescape")


def own_listening(pid: int) -> set[int]:
    """The TCP ports the processes of ``pid``'s tree listen on."""
    inodes = set()
    for p in _tree(pid):
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{p}/fd"):
                with suppress(OSError):
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return {port for state, port, inode in _sockets(pid) if state == TCP_LISTEN and inode in inodes}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo and len(found) < MAX_PROCESSES:
        p = todo.pop()
        found.append(p)
        with suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with suppress(OSError), open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return found


def open_connections(pid: int, port: int) -> int:
    """Connections on local ``port`` the process's side has not closed yet."""
    return sum(1 for state, local, _inode in _sockets(pid)
               if local == port and state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT))


def _sockets(pid: int) -> list[tuple[str, int, str]]:
    """The TCP sockets of ``pid``'s network namespace: (state, local port, inode)."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9:
                found.append((fields[3], int(fields[1].rsplit(":", 1)[1], 16), fields[9]))
    return found


def read_regular(path: Path, limit: int) -> bytes | None:
    """The first ``limit`` bytes of ``path`` if it is a regular file, not following a symlink
    (a program's folder is the program's: what it put there is not to be trusted)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(limit)


class _Reader:
    """Reads a pipe to its end in a thread; keeps the first OUTPUT_LIMIT bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        kept = 0
        with suppress(OSError, ValueError), pipe:
            while chunk := pipe.read1(1 << 16):
                if kept < OUTPUT_LIMIT:
                    self._chunks.append(chunk[:OUTPUT_LIMIT - kept])
                    kept += len(self._chunks[-1])

    def text(self, wait: float = 2.0) -> str:
        self._thread.join(wait)
        return _text(b"".join(self._chunks))


def _can_unshare_pid() -> bool:
    """Whether programs can have a PID namespace of their own here."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True,
                          check=False).returncode == 0


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """The regular files of ``folder``: name -> (size, mtime in ns)."""
    found = {}
    with suppress(OSError):
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found[entry.name] = (st.st_size, st.st_mtime_ns)
    return found


def _python_for(uid: int) -> str | None:
    """A Python 3 that user ``uid`` may run: this one, else the system's (this one may live
    in a folder only its owner can enter)."""
    for python in dict.fromkeys((sys.executable, shutil.which("python3"), "/usr/bin/python3")):
        if python is None:
            continue
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", python,
                                "-c", "import socket, threading"], capture_output=True, check=False, cwd="/")
        if probe.returncode == 0:
            return python
    return None


def _text(data: bytes) -> str:
    return data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")


def _last_line(path: Path) -> str:
    with suppress(OSError):
        lines = path.read_bytes()[-4096:].decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else ""
    return ""
