"""Part 2 of the lab: the secret-code echo server (R2).

Framing. A message is UTF-8 text; it ends at the first of:

1. a newline (``\\n``; a ``\\r`` before it is dropped too), which is what the
   reference client and an interactive ``nc`` send;
2. the end of the client's stream (``shutdown(SHUT_WR)`` or close), so a
   client may also send its text and shut down its sending side;
3. silence: a message of at most ``quiet_limit`` bytes (4096) without a
   newline ends after ``quiet`` seconds (0.5) without more data. The lab's
   minimal client sends its words without a newline and waits for the answer
   without shutting down; it still gets it. A longer unterminated message
   ends after ``timeout`` seconds of silence instead, so a pause in the
   network never cuts a large message in two.

A connection may carry several messages; each gets one reply line, and the
server closes the connection when the client closes its side. The reply is
``Digits: <every digit of the message, in order> Count: <how many>`` when the
message contains ``SECRET`` (case-sensitive; ``Digits: Count: 0`` when there
are none), otherwise ``Secret code not found.``. A digit is an ASCII ``0``-``9``:
other scripts' digits (Arabic-Indic, full-width) are text like any other.

Errors are one reply line starting with ``Error:``, and the server goes on
serving: bytes that are not UTF-8, or a message longer than ``max_message``
bytes (16 MiB; the rest of that message is read and dropped). A client silent
for ``timeout`` seconds (30) is disconnected; each client has its own thread,
so a silent one blocks nobody.

    python3 reference_servers/echo_tcp_server.py [--host 127.0.0.1] [--port 5000]
"""

from __future__ import annotations

import logging
import socketserver
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, listen_error, parser, run, serve, setup_logging

SECRET = "SECRET"
ASCII_DIGITS = frozenset("0123456789")
RECV_SIZE = 65536
log = logging.getLogger("echo_tcp_server")


def answer(message: str) -> str:
    """The lab's reply to one message (without the newline)."""
    if SECRET not in message:
        return "Secret code not found."
    digits = "".join(ch for ch in message if ch in ASCII_DIGITS)
    return f"Digits: {digits + ' ' if digits else ''}Count: {len(digits)}"


class MessageTooLong(Exception):
    """A message went over ``max_message`` bytes; its rest has been dropped."""


class EchoHandler(socketserver.StreamRequestHandler):
    timeout = 30.0  # seconds a client may stay silent before it is disconnected
    quiet = 0.5  # seconds of silence that end a short unterminated message
    quiet_limit = 4096  # bytes: longer unterminated messages wait for `timeout`
    max_message = 16 << 20  # bytes

    def handle(self) -> None:
        peer = "{}:{}".format(*self.client_address[:2])
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        while True:
            try:
                message = self._next_message()
            except MessageTooLong:
                reply = f"Error: message longer than {self.max_message} bytes."
            except TimeoutError:
                log.info("%s silent for %g s; disconnected", peer, self.timeout)
                return
            except OSError as exc:
                log.info("%s: %s", peer, exc)
                return
            else:
                if message is None:
                    return
                try:
                    reply = answer(message.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    reply = f"Error: message is not valid UTF-8 (byte {exc.start})."
            log.info("%s -> %s", peer, reply if len(reply) < 100 else reply[:96] + "...")
            try:
                self.connection.sendall(reply.encode("utf-8") + b"\n")
            except OSError as exc:
                log.info("%s: reply not delivered: %s", peer, exc)
                return

    def _next_message(self) -> bytes | None:
        """The next message (framing in the module docstring); None at the end of the stream."""
        while True:
            end = self._buf.find(b"\n", self._scanned)
            if end >= 0:
                message = bytes(self._buf[:end]).removesuffix(b"\r")
                del self._buf[: end + 1]
                self._scanned = 0
                if len(message) > self.max_message:
                    raise MessageTooLong
                return message
            self._scanned = len(self._buf)
            if len(self._buf) > self.max_message:
                self._drop_rest()
                raise MessageTooLong
            short = 0 < len(self._buf) <= self.quiet_limit
            self.connection.settimeout(self.quiet if short else self.timeout)
            try:
                chunk = self.connection.recv(RECV_SIZE)
            except TimeoutError:
                if not self._buf:
                    raise
                chunk = b""  # silence ends an unterminated message
            if not chunk:  # end of stream, or silence
                if not self._buf:
                    return None
                message = bytes(self._buf)
                self._buf.clear()
                self._scanned = 0
                return message
            self._buf += chunk

    def _drop_rest(self) -> None:
        """Read and drop the rest of an over-long message, up to its newline or the end."""
        self._buf.clear()
        self._scanned = 0
        self.connection.settimeout(self.timeout)
        while True:
            try:
                chunk = self.connection.recv(RECV_SIZE)
            except TimeoutError:
                return
            if not chunk:
                return
            end = chunk.find(b"\n")
            if end >= 0:
                self._buf += chunk[end + 1 :]  # the start of the next message
                return


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler] = EchoHandler
                 ) -> None:
        self.address_family = address_family(address[0])
        super().__init__(address, handler)


def main(argv: list[str] | None = None) -> int:
    args = parser("The lab's secret-code echo server.", server=True).parse_args(argv)
    setup_logging()
    try:
        server = EchoServer((args.host, args.port))
    except OSError as exc:
        return listen_error("echo_tcp_server", args.host, args.port, exc)
    return serve(server, log)


if __name__ == "__main__":
    run(main)
