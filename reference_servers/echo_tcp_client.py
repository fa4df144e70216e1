"""Part 2 of the lab: the secret-code echo client (KALI).

Sends its arguments, joined by single spaces, as one newline-terminated
message, shuts down its sending side, and prints what it sent and the reply:

    $ python3 reference_servers/echo_tcp_client.py 123Ted 32is 343SECRET cool
    Sent:      123Ted 32is 343SECRET cool
    Received: Digits: 12332343 Count: 8

Exit status 0 when a reply came, 1 (one line on stderr) when none did.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import connect, parser, run

TIMEOUT_S = 30.0


def encode(message: str) -> bytes:
    """UTF-8; command-line bytes that are not UTF-8 are sent as they are (the server says so)."""
    return message.encode("utf-8", errors="surrogateescape")


def request(host: str, port: int, message: str | bytes, timeout: float = TIMEOUT_S, nodelay: bool = False) -> str:
    """Send one message (newline added), return the server's reply line without its newline.
    ``nodelay``: set TCP_NODELAY on the client socket. Raises OSError (TimeoutError included)."""
    data = message if isinstance(message, bytes) else encode(message)
    with connect(host, port, timeout, nodelay) as sock:
        sock.sendall(data + b"\n")
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while b"\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if not reply:
        raise ConnectionError("the server closed the connection without a reply")
    return reply.split(b"\n", 1)[0].decode("utf-8", errors="replace")


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
    shown = encode(message).decode("utf-8", errors="replace")
    print(f"Sent:      {shown}")
    print(f"Received: {reply}")
    return 0


if __name__ == "__main__":
    run(main)
