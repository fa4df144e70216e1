"""Part 3 of the lab: the file transfer client (KALI).

Sends a file to tcp_file_transfer_server (protocol in its docstring), waits
for the server's checksum and compares it with its own. Prints nothing and
exits 0 when the copy is identical, as in the lab; otherwise one line on
stderr and exit 1.

    python3 reference_servers/tcp_file_transfer_client.py FILE [--host H] [--port 5000]
"""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import parser

CHUNK = 1 << 20
TIMEOUT_S = 60.0


def send_file(host: str, port: int, path: Path, name: str | None = None) -> str:
    """Send ``path``; returns the server's sha256; raises OSError/ValueError on failure."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    header = f"SOCKINSPECT-FILE/1 {size} {name or path.name}\n".encode()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock, open(path, "rb") as f:
        sock.sendall(header)
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sock.sendall(chunk)
            digest.update(chunk)
        sock.shutdown(socket.SHUT_WR)
        reply = sock.makefile("rb").readline().decode("utf-8", errors="replace").strip()
    status, _, detail = reply.partition(" ")
    if status != "OK":
        raise ValueError(f"server refused the file: {detail or reply or 'no answer'}")
    if detail != digest.hexdigest():
        raise ValueError(f"the server's copy differs (sha256 {detail}, sent {digest.hexdigest()})")
    return detail


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's file transfer client: sends FILE, silent on success.", server=False)
    p.add_argument("file", type=Path, help="the file to send")
    args = p.parse_args(argv)
    if not args.file.is_file():
        print(f"tcp_file_transfer_client: {args.file}: no such file", file=sys.stderr)
        return 1
    try:
        send_file(args.host, args.port, args.file)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"tcp_file_transfer_client: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
