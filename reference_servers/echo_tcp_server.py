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

Errors are one reply line starting with ``Error:``. Bytes that are not UTF-8:
``Error: message is not valid UTF-8 (byte N).``, and the connection goes on.

Size limit: a message may be up to ``max_message`` bytes (16 MiB), not counting
its newline. A longer one is answered, as soon as it is over the limit,
``Error: message longer than 16777216 bytes.``; the server then closes the
connection: it shuts down its sending side and reads and drops what the
client still sends for at most ``linger`` seconds (5), so that the client reads
the reply rather than a reset. Later clients are served as usual.

Memory per connection is bounded: a message is never held whole. Its bytes
are examined as they arrive (64 KiB at a time) and only its ASCII digits are
kept, in an anonymous memory map of ``max_message`` bytes that is touched only
as far as the digits go and is given back to the OS once the reply is sent.
So a connection costs about 130 KiB plus the digits of its current message,
and no memory stays with the server after a large message.

A client silent for ``timeout`` seconds (30) is disconnected; each client has
its own thread, so a silent one blocks nobody.

    python3 reference_servers/echo_tcp_server.py [--host 127.0.0.1] [--port 5000]
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import mmap
import socket
import socketserver
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import address_family, listen_error, parser, run, serve, setup_logging

SECRET = "SECRET"
ASCII_DIGITS = frozenset("0123456789")
RECV_SIZE = 65536
log = logging.getLogger("echo_tcp_server")

_SECRET = SECRET.encode()
_NOT_DIGITS = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)  # for bytes.translate(None, ...)


def answer(message: str) -> str:
    """The lab's reply to one message (without the newline)."""
    if SECRET not in message:
        return "Secret code not found."
    digits = "".join(ch for ch in message if ch in ASCII_DIGITS)
    return f"Digits: {digits + ' ' if digits else ''}Count: {len(digits)}"


class MessageTooLong(Exception):
    """A message went over ``max_message`` bytes."""


class Message:
    """What the reply to one message needs, gathered as its bytes arrive, without keeping them:
    its length, whether it holds SECRET, where its UTF-8 first goes wrong, and its ASCII digits
    (in an anonymous memory map of ``limit`` bytes, made at the first digit). Close it to give
    the digits' memory back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.length = 0
        self.found = False
        self.bad_at: int | None = None  # offset of the first byte that is not UTF-8
        self.digits: mmap.mmap | None = None
        self.count = 0  # digits so far
        self._tail = b""  # the last bytes, for a SECRET split between two pieces (until found)
        self._last = b""  # the last byte, whatever the message holds: the \r of a CRLF?
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def add(self, data: bytes) -> None:
        """The message's next bytes; MessageTooLong once it has more than ``limit`` (a last
        byte over the limit may be the ``\\r`` of a CRLF, which ``end`` drops)."""
        if self.length + len(data) > self.limit + 1:
            raise MessageTooLong
        if not self.found:
            self.found = _SECRET in self._tail + data[:len(_SECRET) - 1] or _SECRET in data
            self._tail = (self._tail + data[-(len(_SECRET) - 1):])[-(len(_SECRET) - 1):]
        if self.bad_at is None:
            waiting = len(self._utf8.getstate()[0])  # bytes of a character begun before `data`
            try:
                self._utf8.decode(data)  # the text itself is not needed: digits are ASCII
            except UnicodeDecodeError as exc:
                self.bad_at = self.length - waiting + exc.start
        digits = data.translate(None, _NOT_DIGITS)
        if digits:
            if self.digits is None:
                self.digits = mmap.mmap(-1, self.limit + 1)
            self.digits.write(digits)
            self.count += len(digits)
        self.length += len(data)
        self._last = data[-1:] or self._last

    def end(self, newline: bool) -> None:
        """The message is complete (at a newline, or not); MessageTooLong if over the limit."""
        if newline and self._last == b"\r":
            self.length -= 1  # CRLF: the \r is not part of the message
        if self.length > self.limit:
            raise MessageTooLong
        if self.bad_at is None:
            waiting = len(self._utf8.getstate()[0])
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError as exc:  # it ends inside a character
                self.bad_at = self.length - waiting + exc.start

    def reply(self) -> list[bytes | memoryview]:
        """The reply line, in pieces (the digits straight from their memory map)."""
        if self.bad_at is not None:
            return [f"Error: message is not valid UTF-8 (byte {self.bad_at}).\n".encode()]
        if not self.found:
            return [b"Secret code not found.\n"]
        if not self.count:
            return [b"Digits: Count: 0\n"]
        return [b"Digits: ", memoryview(self.digits)[:self.count], f" Count: {self.count}\n".encode()]

    def close(self) -> None:
        if self.digits is not None:
            with contextlib.suppress(BufferError):  # a view still alive (an exception's frame) frees it
                self.digits.close()  # munmap: the memory goes back to the OS, whatever malloc keeps
            self.digits = None


def send_pieces(sock: socket.socket, pieces: list[bytes | memoryview]) -> None:
    """``sendall`` of the pieces joined, without joining them: one write for a short reply."""
    views = [memoryview(p) for p in pieces if len(p)]
    try:
        while views:
            sent = sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if sent:
                views[0] = views[0][sent:]
    finally:
        for view in views:
            view.release()


def preview(pieces: list[bytes | memoryview], width: int = 100) -> str:
    """The reply for the log: cut to ``width`` characters, without its newline."""
    head = b"".join(bytes(p[:width]) for p in pieces).decode("utf-8").rstrip("\n")
    total = sum(len(p) for p in pieces) - 1
    return head if total < width else head[:width - 4] + "..."


class EchoHandler(socketserver.StreamRequestHandler):
    timeout = 30.0  # seconds a client may stay silent before it is disconnected
    quiet = 0.5  # seconds of silence that end a short unterminated message
    quiet_limit = 4096  # bytes: longer unterminated messages wait for `timeout`
    max_message = 16 << 20  # bytes, not counting the newline
    linger = 5.0  # seconds spent dropping what follows an over-long message, before closing

    def handle(self) -> None:
        peer = "{}:{}".format(*self.client_address[:2])
        self._rest = b""  # bytes received after the end of the last message
        while True:
            message = Message(self.max_message)
            try:
                try:
                    more = self._read(message)
                except MessageTooLong:
                    reply = f"Error: message longer than {self.max_message} bytes.\n".encode()
                    log.info("%s -> %s", peer, reply.decode().rstrip())
                    self._close_after(reply)
                    return
                except TimeoutError:
                    log.info("%s silent for %g s; disconnected", peer, self.timeout)
                    return
                except OSError as exc:
                    log.info("%s: %s", peer, exc)
                    return
                if not more:
                    return
                pieces = message.reply()
                log.info("%s -> %s", peer, preview(pieces))
                try:
                    send_pieces(self.connection, pieces)
                except OSError as exc:
                    log.info("%s: reply not delivered: %s", peer, exc)
                    return
                finally:
                    for piece in pieces:
                        if isinstance(piece, memoryview):
                            piece.release()  # the digits' map can be closed
            finally:
                message.close()

    def _read(self, message: Message) -> bool:
        """Read the next message into ``message`` (framing in the module docstring);
        False at the end of the stream before any of it."""
        data, self._rest = self._rest, b""
        while True:
            if data:
                end = data.find(b"\n")
                message.add(data if end < 0 else data[:end])
                if end >= 0:
                    self._rest = data[end + 1:]
                    message.end(newline=True)
                    return True
            short = 0 < message.length <= self.quiet_limit
            self.connection.settimeout(self.quiet if short else self.timeout)
            try:
                data = self.connection.recv(RECV_SIZE)
            except TimeoutError:
                if not message.length:
                    raise
                data = b""  # silence ends an unterminated message
            if not data:  # end of stream, or silence
                if not message.length:
                    return False
                message.end(newline=False)
                return True

    def _close_after(self, reply: bytes) -> None:
        """Send ``reply``, shut down the sending side, and drop what comes for at most ``linger``
        seconds (until the client closes), so the close does not reset the reply away."""
        try:
            self.connection.sendall(reply)
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.linger
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(RECV_SIZE):
                    return
        except OSError:  # TimeoutError included: the linger is over
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
