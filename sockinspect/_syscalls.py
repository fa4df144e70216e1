"""Programs' socket system calls from an strace log (``strace -f -ttt -T -yy``), to set
beside the packets they caused. Pure: text in, records out.

With ``-yy`` strace names each socket by its addresses (``5<TCP:[127.0.0.1:34292->
127.0.0.1:43967]>``), so a call is tied to its connection, and its caller is the
client or the server by which end is local. ``connect`` runs before the socket has
a local port: its socket is named by the caller's next call on it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ._model import Endpoint
from ._record import record

CALLS = frozenset({"connect", "accept", "accept4", "send", "sendto", "sendmsg", "write", "writev", "recv",
                   "recvfrom", "recvmsg", "read", "readv", "shutdown", "close"})
SENDS = frozenset({"send", "sendto", "sendmsg", "write", "writev"})
RECEIVES = frozenset({"recv", "recvfrom", "recvmsg", "read", "readv"})
# What run-and-capture --syscalls asks strace for.
STRACE_ARGS = ("-f", "-qq", "-ttt", "-T", "-yy", "-e", "trace=" + ",".join(sorted(CALLS)))

_LINE = re.compile(r"(?:(?P<pid>\d+)\s+)?(?P<sec>\d+)\.(?P<frac>\d+)\s+(?P<rest>.*)")
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


def parse(lines: Iterable[str]) -> list[Syscall]:
    """The TCP socket calls of an strace log, in order of their return. Lines that are
    not calls (signals, exits) or not on a TCP socket are left out."""
    pending: dict[int, tuple[int, str, str]] = {}  # pid -> (start, name, args so far)
    named: dict[tuple[int, int], tuple[Endpoint, Endpoint]] = {}  # (pid, fd) -> its ends
    unnamed: dict[tuple[int, int], list[int]] = {}  # calls waiting for their socket's name
    calls: list[Syscall] = []
    for line in lines:
        m = _LINE.match(line.strip())
        if not m:
            continue
        pid = int(m["pid"] or 0)
        ts = int(m["sec"]) * 1_000_000_000 + int((m["frac"] + "000000000")[:9])
        rest = m["rest"]
        if rest.endswith("<unfinished ...>"):
            start = _START.match(rest)
            if start and start["name"] in CALLS:
                pending[pid] = (ts, start["name"], start["args"].removesuffix("<unfinished ...>"))
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            if pid not in pending or pending[pid][1] != resumed["name"]:
                continue
            ts, name, args = pending.pop(pid)
            args += resumed["args"]
        else:
            start = _START.match(rest)
            if not start or start["name"] not in CALLS:
                continue
            name, args = start["name"], start["args"]
        call = _call(pid, ts, name, args)
        if call is None:
            continue
        key = (pid, call.fd)
        if call.local is not None:
            named[key] = (call.local, call.remote)
            for k in unnamed.pop(key, ()):
                calls[k] = _named(calls[k], call.local, call.remote)
        elif key in named:
            call = _named(call, *named[key])
        else:
            unnamed.setdefault(key, []).append(len(calls))
        if name == "close":
            named.pop(key, None)
        calls.append(call)
    return sorted((c for c in calls if c.local is not None), key=lambda c: c.end_ns)


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


def _named(call: Syscall, local: Endpoint, remote: Endpoint) -> Syscall:
    from dataclasses import replace

    return replace(call, local=local, remote=remote)


def _host(text: str) -> str:
    return str(ipaddress.ip_address(text.strip("[]")))


def of_connection(calls: Iterable[Syscall], client: Endpoint, server: Endpoint) -> list[tuple[int, Syscall]]:
    """(side, call) for the calls on this connection's sockets: side 0 the client's, 1 the server's."""
    out = []
    for call in calls:
        if (call.local, call.remote) == (client, server):
            out.append((0, call))
        elif (call.local, call.remote) == (server, client):
            out.append((1, call))
    return out
