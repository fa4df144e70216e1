"""Part 2 of the lab: the secret-code echo client (KALI).

Sends its arguments, joined by single spaces, as one newline-terminated
message, then closes its sending side; prints what it sent and what it got:

    $ python3 reference_servers/echo_tcp_client.py 123Ted 32is 343SECRET cool
    Sent:      123Ted 32is 343SECRET cool
    Received: Digits: 12332343 Count: 8
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import parser

TIMEOUT_S = 30.0


def request(host: str, port: int, message: str, timeout: float = TIMEOUT_S) -> str:
    """Send one message, return the server's reply line (without its newline)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(message.encode("utf-8") + b"\n")
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode("utf-8", errors="replace").rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's secret-code echo client: sends its words, prints the reply.", server=False)
    p.add_argument("words", nargs="+", help="the message, as words (joined by single spaces)")
    args = p.parse_args(argv)
    message = " ".join(args.words)
    try:
        reply = request(args.host, args.port, message)
    except OSError as exc:
        print(f"echo_tcp_client: {args.host} port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"Sent:      {message}")
    print(f"Received: {reply}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
