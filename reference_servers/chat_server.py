"""Part 1 of the lab: the named chat, server side (R2).

On the wire a line is ``NAME: text\\n`` in UTF-8. Lines typed here (stdin) go
to every connected client as ``R2: text`` (``--name``) and are shown here too.
Lines from a client are shown here and passed on, byte for byte, to every
other client: a plain ``nc`` peer works, with or without the lab's mawk
prefix. A line longer than ``max_line`` bytes is passed on in pieces.

End of input (Ctrl-D) or Ctrl-C / SIGTERM here ends the chat for everyone:
each client sees the connection close. A client leaving (EOF, Ctrl-C) ends the
chat for that client only; the others go on. A client that stops reading is
dropped after ``send_timeout`` seconds, so it cannot stall the others.

Stdout: the readiness line ``listening on HOST PORT``, then the chat. Stderr:
the log (``HOST:PORT joined``, ``HOST:PORT left``).

Relaying never waits on this side's own terminal. What is shown here (the chat
on stdout, the log on stderr) is written by a printer thread of its own, from
a queue of at most ``Printer.budget`` bytes (1 MiB): when the terminal does not
read (paused with Ctrl-S, a pipe nobody reads), lines past the budget are not
shown, and the log says how many once it is read again; clients are relayed to
all the while.

    python3 reference_servers/chat_server.py --name R2 [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import struct
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import address_family, listen_error, parser, run, serve, setup_logging, stdin_lines

log = logging.getLogger("chat_server")


def as_text(raw: bytes) -> str:
    """A received line for display: UTF-8 (undecodable bytes shown as U+FFFD), no line end."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _write(stream: TextIO, data: bytes) -> None:
    """Write ``data`` to ``stream``'s file descriptor when it has one: a thread blocked in
    ``os.write`` holds no lock of the stream, so the program can still exit."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in-process)
        stream.write(data.decode("utf-8"))
        stream.flush()
        return
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Printer:
    """Lines for streams that may stop reading (a paused terminal, a full pipe), written by a
    thread of their own: ``put`` never waits. Lines waiting take at most ``budget`` bytes; a line
    past that is dropped and counted, and the count is logged once the queue has drained."""

    budget = 1 << 20  # bytes
    drain_timeout = 2.0  # seconds ``close`` waits for waiting lines to be written

    def __init__(self) -> None:
        self._lines: deque[tuple[TextIO, bytes]] = deque()
        self._size = 0
        self._dropped = 0
        self._closed = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def put(self, stream: TextIO, line: str) -> None:
        data = (line + "\n").encode("utf-8", errors="replace")
        with self._ready:
            if self._closed or self._size + len(data) > self.budget:
                self._dropped += 1
                return
            self._lines.append((stream, data))
            self._size += len(data)
            self._ready.notify()

    def close(self) -> None:
        """Stop after writing what waits, for at most ``drain_timeout`` seconds."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(self.drain_timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._lines or self._closed)
                if not self._lines:
                    return
                stream, data = self._lines.popleft()
                self._size -= len(data)
            with contextlib.suppress(OSError, ValueError):  # ValueError: a closed stream
                _write(stream, data)
            with self._ready:
                dropped = self._dropped if not self._lines else 0
                self._dropped -= dropped
            if dropped:
                log.warning("%d line(s) not shown: the terminal was not reading", dropped)


class PrinterHandler(logging.Handler):
    """A log handler that hands its lines to a Printer, so logging never waits on stderr."""

    def __init__(self, printer: Printer, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.printer = printer
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.printer.put(sys.stderr, self.format(record))
        except Exception:  # noqa: BLE001 (logging's own rule: a handler never raises)
            self.handleError(record)


class ChatHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ChatServer = self.server  # type: ignore[assignment]
        peer = "{}:{}".format(*self.client_address[:2])
        server.join(self.connection)
        log.info("%s joined", peer)
        try:
            while raw := self.rfile.readline(server.max_line):
                server.show(as_text(raw))
                server.relay(raw if raw.endswith(b"\n") else raw + b"\n", exclude=self.connection)
        except OSError:
            pass
        finally:
            server.leave(self.connection)
            log.info("%s left", peer)


class ChatServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients
    send_timeout = 5.0  # seconds a client may leave a line unread before it is dropped
    max_line = 65536  # bytes

    def __init__(self, address: tuple[str, int], name: str = "R2",
                 handler: type[socketserver.BaseRequestHandler] = ChatHandler) -> None:
        self.address_family = address_family(address[0])
        self.name = name
        self._clients: set[socket.socket] = set()
        self._changed = threading.Condition()
        self.printer = Printer()  # what this side shows: never waited for while relaying
        super().__init__(address, handler)  # closes the printer too if it cannot listen

    def server_close(self) -> None:
        super().server_close()
        self.printer.close()

    def join(self, sock: socket.socket) -> None:
        seconds, micro = divmod(int(self.send_timeout * 1_000_000), 1_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, micro))
        with self._changed:
            self._clients.add(sock)
            self._changed.notify_all()

    def leave(self, sock: socket.socket) -> None:
        with self._changed:
            self._clients.discard(sock)
            self._changed.notify_all()

    def wait_for_clients(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` clients are connected; False if not within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._clients) == count, timeout)

    def show(self, line: str) -> None:
        """Show a chat line on this side (stdout), without waiting for the terminal."""
        self.printer.put(sys.stdout, line)

    def relay(self, data: bytes, exclude: socket.socket | None = None) -> None:
        """Send ``data`` to every client but ``exclude``; drop those that cannot take it."""
        with self._changed:
            clients = [c for c in self._clients if c is not exclude]
        for client in clients:
            try:
                client.sendall(data)
            except OSError:  # gone, or not reading for send_timeout seconds
                self.leave(client)
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)

    def broadcast(self, line: str, exclude: socket.socket | None = None) -> None:
        self.relay((line + "\n").encode("utf-8", errors="replace"), exclude)

    def say(self, text: str) -> None:
        """A line typed on this side: shown here, sent to everyone as ``NAME: text``."""
        line = f"{self.name}: {text}"
        self.show(line)
        self.broadcast(line)

    def end(self) -> None:
        """End the chat: close every client connection (each sees the end of the stream)."""
        with self._changed:
            clients, self._clients = list(self._clients), set()
            self._changed.notify_all()
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def _read_keyboard(server: ChatServer) -> None:
    for raw in stdin_lines():
        server.say(as_text(raw))
    log.info("end of input: the chat is over")
    server.end()
    server.shutdown()  # end of input ends the chat


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's named chat server.", server=True)
    p.add_argument("--name", default="R2", help="the name before each of your lines (default R2)")
    args = p.parse_args(argv)
    setup_logging()
    try:
        server = ChatServer((args.host, args.port), args.name)
    except OSError as exc:
        return listen_error("chat_server", args.host, args.port, exc)
    root = logging.getLogger()  # the log, too, must not make relaying wait for stderr
    root.handlers = [PrinterHandler(server.printer, root.handlers[0].formatter if root.handlers else None)]
    keyboard = threading.Thread(target=_read_keyboard, args=(server,), daemon=True)
    try:
        return serve(server, log, on_ready=keyboard.start)
    finally:
        server.end()


if __name__ == "__main__":
    run(main)
