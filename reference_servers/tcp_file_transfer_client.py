"""Part 3 of the lab: the file transfer client (KALI).

Sends a file to tcp_file_transfer_server (protocol in its docstring), then
compares the sha256 the server reports for its copy with its own. As in the
lab, it prints nothing and exits 0 when the copy is identical; otherwise it
prints one line on stderr and exits 1.

    python3 reference_servers/tcp_file_transfer_client.py FILE [--host H] [--port 5000]

With ``--raw`` it speaks the lab's plain protocol instead, as ``nc -N`` does: the
file's bytes alone, then the end of its sending side; it then reads (and drops)
what the server sends until the server closes, for at most ``--linger`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import connect, parser, run

CHUNK = 1 << 20
TIMEOUT_S = 60.0
MAGIC = "SOCKINSPECT-FILE/1"


class TransferFailed(ValueError):
    """The server refused the file, or its copy differs."""


def clean_name(name: str) -> str:
    """A local file's name as sent: control characters, which the server refuses, become ``_``."""
    return re.sub(r"[\x00-\x1f\x7f]", "_", name)


def send_file(host: str, port: int, path: Path, name: str | None = None, timeout: float = TIMEOUT_S,
              nodelay: bool = False) -> str:
    """Send the file at ``path``; return the sha256 of the server's copy. ``name``: the name
    to ask the server for, as it is (default: the file's own name, cleaned). Raises OSError,
    or TransferFailed (a ValueError)."""
    digest = hashlib.sha256()
    path = Path(path)
    name = clean_name(path.name) if name is None else name
    if "\n" in name or "\r" in name:
        raise TransferFailed(f"a file name cannot hold a line break: {name!r}")
    with open(path, "rb") as f, connect(host, port, timeout, nodelay) as sock:
        size = path.stat().st_size
        send_error = None
        try:
            sock.sendall(f"{MAGIC} {size} {name}\n".encode("utf-8", errors="surrogateescape"))
            left = size
            while left and (chunk := f.read(min(CHUNK, left))):  # no more than announced
                sock.sendall(chunk)
                digest.update(chunk)
                left -= len(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server may have refused the file early: read why
            send_error = exc
        try:
            reply = sock.makefile("rb").readline().decode("utf-8", errors="replace").strip()
        except OSError:
            reply = ""
    if send_error is not None and not reply:
        raise send_error
    status, _, detail = reply.partition(" ")
    if status != "OK":
        raise TransferFailed(f"the server refused the file: {detail or reply or 'no answer'}")
    if detail != digest.hexdigest():
        raise TransferFailed(f"the server's copy differs (its sha256 {detail}, the file's {digest.hexdigest()})")
    return detail


def send_raw(host: str, port: int, path: Path, linger: float = 2.0, timeout: float = TIMEOUT_S) -> None:
    """Send the bytes of ``path`` alone, end the sending side, then wait up to ``linger``
    seconds for the server to close (what it sends meanwhile is dropped). Raises OSError."""
    with open(path, "rb") as f, connect(host, port, timeout) as sock:
        while chunk := f.read(CHUNK):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(linger)
        with contextlib.suppress(TimeoutError):
            while sock.recv(CHUNK):
                pass


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's file transfer client: sends FILE, silent on success.", server=False)
    p.add_argument("file", type=Path, help="the file to send")
    p.add_argument("--raw", action="store_true",
                   help="send the file's bytes alone, as the lab's plain client (and nc -N) do")
    p.add_argument("--linger", type=float, default=2.0, metavar="S",
                   help="with --raw: seconds to wait for the server to close (default 2)")
    args = p.parse_args(argv)
    if not args.file.is_file():
        print(f"tcp_file_transfer_client: {args.file}: no such file", file=sys.stderr)
        return 1
    try:
        if args.raw:
            send_raw(args.host, args.port, args.file, args.linger)
        else:
            send_file(args.host, args.port, args.file)
    except OSError as exc:
        where = exc.filename or f"{args.host} port {args.port}"
        print(f"tcp_file_transfer_client: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except TransferFailed as exc:
        print(f"tcp_file_transfer_client: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run(main)
