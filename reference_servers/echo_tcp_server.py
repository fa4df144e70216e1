"""Part 2 of the lab: the secret-code echo server (R2).

Protocol: the client sends one message, UTF-8 text. The message ends at the
first newline, at the end of the client's stream (shutdown/close), or, for a
message that fits in one recv buffer (4096 bytes) and has no newline, after
0.5 s without more data: the lab's minimal client sends its text without a
newline and waits for the answer, and still gets it. The reply is one line:
``Digits: <every ASCII digit 0-9 of the message, in order> Count: <how many>``
when the message contains ``SECRET`` (case-sensitive; ``Digits: Count: 0``
when there are none), otherwise ``Secret code not found.`` Digits are the
ASCII 0-9 only: other scripts' digits (Arabic-Indic, full-width) do not count.
Errors are one reply line starting with ``Error:`` (not UTF-8, message longer
than ``max_message``); the server keeps serving. A client that connects and
sends nothing is dropped after ``timeout`` seconds; each client has its own
thread, so nobody waits for another.

    python3 reference_servers/echo_tcp_server.py [--host 127.0.0.1] [--port 5000]
"""

from __future__ import annotations

import socket
import socketserver
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, parser, serve, setup_logging

SECRET = "SECRET"
ASCII_DIGITS = "0123456789"
RECV_BUFFER = 4096
QUIET_S = 0.5
log = setup_logging("echo_tcp_server")


def answer(message: str) -> str:
    """The lab's reply to one message (without the newline)."""
    if SECRET not in message:
        return "Secret code not found."
    digits = "".join(ch for ch in message if ch in ASCII_DIGITS)
    return f"Digits: {digits + ' ' if digits else ''}Count: {len(digits)}"


class EchoHandler(socketserver.BaseRequestHandler):
    timeout = 30.0  # seconds a client may stay silent before it is dropped
    max_message = 16 << 20  # bytes

    def handle(self) -> None:
        sock: socket.socket = self.request
        peer = "{}:{}".format(*self.client_address[:2])
        try:
            data = self._read_message(sock)
        except TimeoutError:
            log.info("%s sent nothing for %.0f s; closed", peer, self.timeout)
            return
        except ConnectionError as exc:
            log.info("%s: %s", peer, exc)
            return
        if data is None:
            reply = f"Error: message longer than {self.max_message} bytes."
        else:
            try:
                reply = answer(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                reply = f"Error: message is not valid UTF-8 (byte {exc.start})."
        log.info("%s: %d bytes -> %s", peer, len(data or b""), reply)
        try:
            sock.sendall(reply.encode() + b"\n")
        except OSError as exc:
            log.info("%s: reply not delivered: %s", peer, exc)

    def _read_message(self, sock: socket.socket) -> bytes | None:
        """The message without its newline; None when it is too long."""
        sock.settimeout(self.timeout)
        buf = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if buf:  # the quiet period ended an unterminated short message
                    return bytes(buf)
                raise
            if not chunk:
                return bytes(buf)
            end = chunk.find(b"\n")
            if end >= 0:
                buf += chunk[:end]
                return bytes(buf) if len(buf) <= self.max_message else None
            buf += chunk
            if len(buf) > self.max_message:
                return None
            # A short unterminated message may be all there is: wait briefly for more.
            sock.settimeout(QUIET_S if len(buf) <= RECV_BUFFER else self.timeout)


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int], handler: type = EchoHandler) -> None:
        self.address_family = address_family(address[0])
        super().__init__(address, handler)


def main(argv: list[str] | None = None) -> int:
    args = parser("The lab's secret-code echo server.", server=True).parse_args(argv)
    try:
        server = EchoServer((args.host, args.port))
    except OSError as exc:
        print(f"echo_tcp_server: cannot listen on {args.host} port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return serve(server, log)


if __name__ == "__main__":
    sys.exit(main())
