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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from .._capture import LiveCapture
from .._run import STAGE_PREFIX, Lease, spawn, stop_group, stopping
from .._topology import LabLoopback, NetnsPair, in_user_namespace
from ..errors import SockinspectError
from .programs import Program

NOBODY = 65534  # the unprivileged uid and gid programs run as, when this process is root
MAX_COPIED_BYTES = 4 << 20  # a submission's files copied beside each program
TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE_WAIT = "0A", "01", "08"  # /proc/net/tcp states (include/net/tcp_states.h)
OUTPUT_LIMIT = 1 << 20  # bytes of a program's stdout and stderr kept


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
        self._children: list[subprocess.Popen] = []
        self._live: LiveCapture | None = None
        self.work = lease.make_folder(Path(tempfile.gettempdir()), STAGE_PREFIX)
        os.chmod(self.work, 0o755)  # its programs' folders are theirs; the rest stays this user's
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

    def folder(self, program: Program, role: str) -> Path:
        """A new, empty folder for one run of ``program``, with its submission's files
        (a program may import a helper beside it), writable by the user it runs as."""
        self._count += 1
        folder = self.work / f"{self._count:03d}-{role}"
        folder.mkdir()
        if program.copy_folder:
            for src in sorted(program.path.parent.iterdir()):
                if src.is_file() and not src.is_symlink() and src.stat().st_size <= MAX_COPIED_BYTES:
                    shutil.copyfile(src, folder / src.name)
        if self.drop:
            for path in (folder, *folder.iterdir()):
                os.chown(path, NOBODY, NOBODY)
        return folder

    def give(self, path: Path) -> None:
        """Make a file written here the program's (when programs run as another user)."""
        if self.drop:
            os.chown(path, NOBODY, NOBODY)

    # --- running ------------------------------------------------------------------------

    def _argv(self, program: Program, folder: Path, args: list[str], host_cmd: list[str] | None = None,
              trace: Path | None = None) -> list[str]:
        drop = self.drop and not program.reference
        argv = [self.python if drop else sys.executable, str(program.script(folder)), *args]  # type: ignore[list-item]
        if drop:
            argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]
        if trace is not None:
            argv = ["strace", "-f", "-qq", "-e", "trace=connect,open,openat", "-o", str(trace), *argv]
        return argv

    def _env(self, folder: Path) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}

    def start_server(self, program: Program, port: int = 0) -> Server:
        """Start ``program`` on R2 in a new folder (a reference program on ``port``); return
        once it listens (SandboxError if it exits first or does not listen in the timeout)."""
        folder = self.folder(program, "server")
        log = self.work / f"{folder.name}.log"
        argv = self.topology.server_cmd(self._argv(program, folder, program.server_args(self.topology.server_addr,
                                                                                        port)))
        with open(log, "wb") as out:
            proc = spawn(argv, cwd=folder, env=self._env(folder), stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT)
        self._children.append(proc)
        deadline = time.monotonic() + self.timeout
        r2 = os.stat(self.topology.server_netns).st_ino
        while True:
            ports = listening_ports(proc.pid) if _netns_of(proc.pid) == r2 else set()
            if ports:
                server = Server(program, proc, folder, min(ports), log)
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
        """A server's end: SIGINT (Ctrl-C, as a student stops it), then the whole group killed."""
        stop_group(proc, signal.SIGINT, grace=0.5 if stopping() else 2.0)
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
        try:
            out, err = proc.communicate(timeout=self.timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            stop_group(proc, first=None)
            out, err = proc.communicate()
            code = None
        finally:
            if proc.returncode is None:
                stop_group(proc, first=None)
            self._children.remove(proc)
        return Outcome([program.name, *args], _text(out), _text(err), code, start, time.time_ns(), self.timeout)

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


@dataclass(frozen=True)
class Probe:
    port: int | None  # the port of the first connect() to an IPv4/IPv6 address
    opened: list[str]  # files of its folder it opened (or tried to) for reading, in order
    problem: str | None = None


_CONNECT = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\)')
_OPEN = re.compile(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)", ([A-Z_|]+)')


def parse_probe(trace: str, folder: Path) -> Probe:
    """The connect port and the files read of an strace log (see :meth:`Sandbox.probe_client`)."""
    port = None
    opened: list[str] = []
    for line in trace.splitlines():
        if port is None and (m := _CONNECT.search(line)):
            port = int(m.group(1))
        m = _OPEN.search(line)
        if m and "O_RDONLY" in m.group(2) and "O_DIRECTORY" not in m.group(2):
            name = m.group(1)
            if name.startswith(str(folder) + "/"):
                name = name[len(str(folder)) + 1:]
            if "/" not in name and not name.endswith((".py", ".pyc", ".so")) and name not in opened:
                opened.append(name)
    return Probe(port, opened)


def listening_ports(pid: int) -> set[int]:
    """TCP ports listening in the network namespace of process ``pid``."""
    return {port for state, port in _sockets(pid) if state == TCP_LISTEN}


def open_connections(pid: int, port: int) -> int:
    """Connections on local ``port`` the process's side has not closed yet."""
    return sum(1 for state, local in _sockets(pid) if local == port and state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT))


def _netns_of(pid: int) -> int | None:
    """The inode of process ``pid``'s network namespace (None once it is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _sockets(pid: int) -> list[tuple[str, int]]:
    found = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3:
                found.append((fields[3], int(fields[1].rsplit(":", 1)[1], 16)))
    return found


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
