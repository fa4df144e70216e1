"""Programs' socket system calls from an strace log (``strace -f -ttt -T -yy``), to set
beside the packets they caused. Pure: text in, records out.

With ``-yy`` strace names each socket by its addresses (``5<TCP:[127.0.0.1:34292->
127.0.0.1:43967]>``), so a call is tied to its connection, and its caller is the
client or the server by which end is local. ``connect`` runs before the socket has
a local port: its socket is named by the caller's next call on it.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TextIO

from ._model import Endpoint, TcpConnection
from ._record import record

CALLS = frozenset({"connect", "accept", "accept4", "send", "sendto", "sendmsg", "write", "writev", "recv",
                   "recvfrom", "recvmsg", "read", "readv", "shutdown", "close"})
SENDS = frozenset({"send", "sendto", "sendmsg", "write", "writev"})
RECEIVES = frozenset({"recv", "recvfrom", "recvmsg", "read", "readv"})
# What run-and-capture --syscalls asks strace for.
TRACED = CALLS | {"socket", "bind", "listen"}  # these three for the lab's Part 4 c and d
STRACE_ARGS = ("-f", "-qq", "-ttt", "-T", "-yy", "-e", "trace=" + ",".join(sorted(TRACED)))
MAX_LINE = 64 << 10  # characters of a trace line read; the rest of a longer one is skipped


def read(path: str | os.PathLike[str], ends: tuple[Endpoint, Endpoint] | None = None) -> list[Syscall]:
    """:func:`parse` of an strace log file (a regular file: not a pipe or device that may
    never end). Raises OSError when it cannot be read."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file (an strace log is one)", os.fspath(path))
    with open(path, errors="replace") as f:
        return parse(_bounded_lines(f), ends)


def _bounded_lines(f: TextIO) -> Iterator[str]:
    while line := f.readline(MAX_LINE):
        if not line.endswith("\n") and len(line) == MAX_LINE:
            while (more := f.readline(MAX_LINE)) and not more.endswith("\n"):
                pass
            continue
        yield line

_LINE = re.compile(r"(?:(?P<pid>\d+)\s+|\[pid\s+(?P<tid>\d+)\]\s+)?(?P<sec>\d{1,12})\.(?P<frac>\d{1,9})\s+(?P<rest>.*)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_START = re.compile(r"(?P<name>\w+)\((?P<args>.*)")
_RESUMED = re.compile(r"<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)")
_RESULT = re.compile(r"\)\s+=\s+(?P<ret>-?\d+|\?)(?P<sock><[^ ]*>)?(?:\s+(?P<errno>E[A-Z0-9]+))?.*?"
                     r"(?:<(?P<dur>\d+\.\d+)>)?\s*$")
_FD = re.compile(r"(?P<fd>\d+)<(?P<what>[^:>]+)(?::\[(?P<name>.*?)\])?>")
_ADDR = r"(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)"
_PAIR = re.compile(_ADDR + "->" + _ADDR)
_HOW = re.compile(r"SHUT_(RD|WR|RDWR)")


@record
class Syscall:
    """One socket call of a traced program."""

    pid: int  # strace's process (thread) id; 0 when the log has none
    start_ns: int
    end_ns: int  # when it returned (start_ns when strace gave no duration)
    name: str
    fd: int
    local: Endpoint | None  # the socket's ends, None until known
    remote: Endpoint | None
    result: int | None  # None: strace printed ? (the call never returned)
    error: str | None  # errno name when it failed
    detail: str = ""  # shutdown's SHUT_WR and such
    socket: int = 0  # which socket: a number per socket the trace opened (an fd is reused)

    def text(self) -> str:
        """The call as the ladder prints it: ``send(10 B) = 10``, ``recv() = 0 (EOF)``."""
        name = {"sendto": "send", "recvfrom": "recv", "accept4": "accept"}.get(self.name, self.name)
        if self.error:
            outcome = f"-1 {self.error}"
        elif self.result is None:
            outcome = "?"
        elif self.name in RECEIVES:
            outcome = f"{self.result} B" + (" (EOF)" if self.result == 0 else "")
        else:
            outcome = str(self.result)
        args = f"{self.result} B" if self.name in SENDS and self.result is not None and not self.error else ""
        waited = self.end_ns - self.start_ns
        blocked = f", blocked {waited / 1e6:.1f} ms" if waited >= 1_000_000 else ""
        return f"{name}({args or self.detail}) = {outcome}{blocked}"


def parse(lines: Iterable[str], ends: tuple[Endpoint, Endpoint] | None = None) -> list[Syscall]:
    """The TCP socket calls of an strace log, in order of their return; only those between
    ``ends`` (either way round) when given. Lines that are not calls (signals, exits),
    not on a TCP socket, or not understood are left out."""
    pending: dict[int, tuple[int, str, str]] = {}  # pid -> (start, name, args so far)
    sockets: dict[tuple[int, int], int] = {}  # (pid, fd) -> the socket open there (a serial number)
    named: dict[int, tuple[Endpoint, Endpoint]] = {}  # socket -> its ends
    unnamed: dict[int, list[Syscall]] = {}  # socket -> its calls, until it has a name
    calls: list[Syscall] = []
    serials = itertools.count()

    def keep(call: Syscall) -> None:
        if ends is None or (call.local, call.remote) in (ends, ends[::-1]):
            calls.append(call)

    for line in lines:
        try:
            call = _line(line, pending, sockets, serials)
        except (ValueError, OverflowError):  # digits beyond reason, an address that is none
            continue
        if call is None:
            continue
        if call.local is not None:
            named[call.socket] = (call.local, call.remote)
            for waiting in unnamed.pop(call.socket, ()):
                keep(replace(waiting, local=call.local, remote=call.remote))
            keep(call)
        elif call.socket in named:
            keep(replace(call, local=named[call.socket][0], remote=named[call.socket][1]))
        else:
            unnamed.setdefault(call.socket, []).append(call)
        if call.name == "close":  # the fd may be a new socket's next
            sockets.pop((call.pid, call.fd), None)
            named.pop(call.socket, None)
            unnamed.pop(call.socket, None)  # never named: not a connection's
    return sorted(calls, key=lambda c: c.end_ns)


def _line(line: str, pending: dict[int, tuple[int, str, str]], sockets: dict[tuple[int, int], int],
          serials: Iterator[int]) -> Syscall | None:
    """The call a line ends (None: none, or not one of CALLS on a TCP socket)."""
    m = _LINE.match(line.strip())
    if not m:
        return None
    pid = int(m["pid"] or m["tid"] or 0)
    ts = int(m["sec"]) * 1_000_000_000 + int((m["frac"] + "000000000")[:9])
    rest = m["rest"]
    if rest.endswith("<unfinished ...>"):
        start = _START.match(rest)
        if start and start["name"] in CALLS:
            pending[pid] = (ts, start["name"], start["args"].removesuffix("<unfinished ...>"))
        return None
    resumed = _RESUMED.match(rest)
    if resumed:
        if pid not in pending or pending[pid][1] != resumed["name"]:
            return None
        ts, name, args = pending.pop(pid)
        args += resumed["args"]
    else:
        start = _START.match(rest)
        if not start or start["name"] not in CALLS:
            return None
        name, args = start["name"], start["args"]
    call = _call(pid, ts, name, _STRING.sub('""', args))  # a payload may hold ") = "
    if call is None:
        return None
    key = (pid, call.fd)
    if key not in sockets or name in ("accept", "accept4"):
        sockets[key] = next(serials)
    return replace(call, socket=sockets[key])


def _call(pid: int, ts: int, name: str, args: str) -> Syscall | None:
    fd = _FD.match(args)
    result = _RESULT.search(args)
    if not fd or not fd["what"].startswith("TCP") or not result:
        return None
    sock = fd["name"] or ""
    number = int(fd["fd"])
    if name in ("accept", "accept4") and result["sock"]:  # the new socket is the connection's
        inner = _FD.match(result["ret"] + result["sock"])
        sock = inner["name"] if inner and inner["name"] else ""
        number = int(result["ret"])
    ends = _PAIR.search(sock)
    local = remote = None
    if ends:
        local, remote = Endpoint(_host(ends[1]), int(ends[2])), Endpoint(_host(ends[3]), int(ends[4]))
    dur = result["dur"]
    end = ts + (round(float(dur) * 1e9) if dur else 0)
    how = _HOW.search(args) if name == "shutdown" else None
    return Syscall(pid=pid, start_ns=ts, end_ns=end, name=name, fd=number, local=local, remote=remote,
                   result=None if result["ret"] == "?" else int(result["ret"]), error=result["errno"],
                   detail=how[0] if how else "")


def _host(text: str) -> str:
    """An address as the capture names it (an IPv4-mapped IPv6 one is the IPv4 on the wire)."""
    ip = ipaddress.ip_address(text.strip("[]"))
    return str(ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip)


def of_connection(calls: Iterable[Syscall], conn: TcpConnection) -> list[tuple[int, Syscall]]:
    """(side, call) for the calls on this connection's sockets (side 0 the client's, 1 the
    server's): sockets between its two ends whose calls overlap its time in the capture.
    (The same ends a moment earlier or later are another connection's.)"""
    by_socket: dict[int, list[tuple[int, Syscall]]] = {}
    for call in calls:
        if (call.local, call.remote) == (conn.client, conn.server):
            by_socket.setdefault(call.socket, []).append((0, call))
        elif (call.local, call.remote) == (conn.server, conn.client):
            by_socket.setdefault(call.socket, []).append((1, call))
    first, last = conn.first_ts_ns, conn.last_ts_ns
    out = []
    for made in by_socket.values():
        start, end = min(c.start_ns for _, c in made), max(c.end_ns for _, c in made)
        if first is None or last is None or (start <= last and end >= first):
            out += made
    return sorted(out, key=lambda sc: sc[1].end_ns)
