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

    python3 reference_servers/chat_server.py --name R2 [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, listen_error, parser, run, serve, setup_logging, stdin_lines

log = logging.getLogger("chat_server")


def as_text(raw: bytes) -> str:
    """A received line for display: UTF-8 (undecodable bytes shown as U+FFFD), no line end."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


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
        super().__init__(address, handler)

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
        """Print a chat line on this side (stdout)."""
        with self._changed, contextlib.suppress(OSError):
            print(line, flush=True)

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
    keyboard = threading.Thread(target=_read_keyboard, args=(server,), daemon=True)
    try:
        return serve(server, log, on_ready=keyboard.start)
    finally:
        server.end()


if __name__ == "__main__":
    run(main)
