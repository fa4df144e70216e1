"""Run a Python program while counting what its TCP/UDP sockets send and receive.

    python -m sockinspect._accounting OUT.jsonl -m reference_servers.echo_tcp_client WORDS...
    python -m sockinspect._accounting OUT.jsonl path/to/script.py ARGS...

Every socket the program closes (or still holds at exit) adds one JSON line to
OUT.jsonl: its local and peer endpoints, the bytes the program passed to
send/sendall/sendto/sendmsg and got from recv*, and for TCP the kernel's TCP_INFO
counts (data segments out, bytes sent and retransmitted). run-and-capture
compares these with the capture, so a lost packet cannot go unnoticed.

The program dies with its parent (a parent-death signal): run-and-capture sets
one for its children already, but strace's tracee is strace's own child, so the
shim sets it again whenever the runner is not its parent.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import runpy
import signal
import socket
import struct
import sys
import threading
from typing import Any

from ._linux import PR_SET_PDEATHSIG

TCP_INFO_LEN = 232
_lock = threading.Lock()
_records: dict[int, dict[str, Any]] = {}
_out_path = ""


def _tcp_info(sock: socket.socket) -> dict[str, int] | None:
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    except OSError:
        return None
    if len(raw) < 216:
        return None
    # struct tcp_info (include/uapi/linux/tcp.h): offsets of the fields used here.
    (data_segs_out,) = struct.unpack_from("I", raw, 156)
    bytes_sent, bytes_retrans = struct.unpack_from("QQ", raw, 200)
    (total_retrans,) = struct.unpack_from("I", raw, 100)
    return {"data_segs_out": data_segs_out, "bytes_sent": bytes_sent, "bytes_retrans": bytes_retrans,
            "total_retrans": total_retrans}


def _endpoint(get: Any) -> list[Any] | None:
    try:
        addr = get()
    except OSError:
        return None
    return [addr[0], addr[1]] if isinstance(addr, tuple) else None


def _record(sock: socket.socket) -> dict[str, Any]:
    key = id(sock)
    rec = _records.get(key)
    if rec is None:
        with _lock:
            rec = _records.setdefault(key, {"proto": "tcp" if sock.type == socket.SOCK_STREAM else "udp",
                                            "local": None, "peer": None, "sent": 0, "received": 0, "peers": {}})
    if rec["local"] is None:
        rec["local"] = _endpoint(sock.getsockname)
    if rec["peer"] is None and rec["proto"] == "tcp":
        rec["peer"] = _endpoint(sock.getpeername)
    return rec


def _finish(sock: socket.socket) -> None:
    rec = _records.get(id(sock))
    if rec is None or rec.get("done"):
        return
    if rec["proto"] == "tcp":
        rec["tcp_info"] = _tcp_info(sock)
    rec["done"] = True
    with _lock, open(_out_path, "a") as f:
        f.write(json.dumps({k: v for k, v in rec.items() if k != "done"}) + "\n")


def _wrap(cls: type[socket.socket]) -> None:
    orig_send, orig_sendall, orig_sendto = cls.send, cls.sendall, cls.sendto
    orig_recv, orig_recv_into, orig_recvfrom = cls.recv, cls.recv_into, cls.recvfrom
    orig_sendmsg, orig_recvmsg, orig_recvmsg_into = cls.sendmsg, cls.recvmsg, cls.recvmsg_into
    orig_recvfrom_into = cls.recvfrom_into
    orig_close, orig_shutdown = cls.close, cls.shutdown

    def send(self, data, *args):  # noqa: ANN001, ANN202
        n = orig_send(self, data, *args)
        _record(self)["sent"] += n
        return n

    def sendall(self, data, *args):  # noqa: ANN001, ANN202
        orig_sendall(self, data, *args)
        _record(self)["sent"] += len(memoryview(data).cast("B"))

    def sendto(self, data, *args):  # noqa: ANN001, ANN202
        n = orig_sendto(self, data, *args)
        rec = _record(self)
        rec["sent"] += n
        peer = ":".join(map(str, args[-1][:2]))
        rec["peers"][peer] = rec["peers"].get(peer, 0) + n
        return n

    def sendmsg(self, buffers, *args):  # noqa: ANN001, ANN202
        n = orig_sendmsg(self, buffers, *args)
        rec = _record(self)
        rec["sent"] += n
        if len(args) >= 3 and args[2] is not None:  # (ancdata, flags, address)
            peer = ":".join(map(str, args[2][:2]))
            rec["peers"][peer] = rec["peers"].get(peer, 0) + n
        return n

    def recvmsg(self, *args):  # noqa: ANN002, ANN202
        result = orig_recvmsg(self, *args)
        _record(self)["received"] += len(result[0])
        return result

    def recvmsg_into(self, buffers, *args):  # noqa: ANN001, ANN202
        result = orig_recvmsg_into(self, buffers, *args)
        _record(self)["received"] += result[0]
        return result

    def recvfrom_into(self, buf, *args):  # noqa: ANN001, ANN202
        n, addr = orig_recvfrom_into(self, buf, *args)
        _record(self)["received"] += n
        return n, addr

    def recv(self, *args):  # noqa: ANN002, ANN202
        data = orig_recv(self, *args)
        _record(self)["received"] += len(data)
        return data

    def recv_into(self, buf, *args):  # noqa: ANN001, ANN202
        n = orig_recv_into(self, buf, *args)
        _record(self)["received"] += n
        return n

    def recvfrom(self, *args):  # noqa: ANN002, ANN202
        data, addr = orig_recvfrom(self, *args)
        _record(self)["received"] += len(data)
        return data, addr

    def shutdown(self, how):  # noqa: ANN001, ANN202
        if id(self) in _records:
            _records[id(self)]["tcp_info_at_shutdown"] = _tcp_info(self)
        return orig_shutdown(self, how)

    def close(self):  # noqa: ANN202
        if id(self) in _records:
            _finish(self)
        return orig_close(self)

    cls.send, cls.sendall, cls.sendto = send, sendall, sendto
    cls.recv, cls.recv_into, cls.recvfrom = recv, recv_into, recvfrom
    cls.sendmsg, cls.recvmsg, cls.recvmsg_into, cls.recvfrom_into = sendmsg, recvmsg, recvmsg_into, recvfrom_into
    cls.close, cls.shutdown = close, shutdown


def _die_with_parent() -> None:
    """Under a tracer, die with it (it dies with the runner); if the runner has already
    gone (before the request could be made), die now."""
    runner = os.environ.get("SOCKINSPECT_RUNNER_PID", "")  # _run.RUNNER_PID_VAR (not imported: slow)
    if not runner.isdigit() or os.getppid() == int(runner):
        return  # the runner's preexec did it
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        with open(f"/proc/{runner}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]  # field 3 (proc(5))
    except (OSError, IndexError):
        state = "X"  # no such process
    if state in ("Z", "X"):
        os._exit(128 + signal.SIGKILL)


def main() -> None:
    global _out_path
    if len(sys.argv) < 3:
        sys.exit("usage: python -m sockinspect._accounting OUT.jsonl (-m MODULE | SCRIPT) [ARGS...]")
    _die_with_parent()
    _out_path = sys.argv[1]
    _wrap(socket.socket)
    atexit.register(lambda: [_finish(s) for s in list(_live_sockets())])
    if sys.argv[2] == "-m":
        module, sys.argv = sys.argv[3], [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, sys.argv = sys.argv[2], sys.argv[2:]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")


def _live_sockets() -> list[socket.socket]:
    import gc

    return [o for o in gc.get_objects() if isinstance(o, socket.socket) and id(o) in _records and o.fileno() >= 0]


if __name__ == "__main__":
    main()
