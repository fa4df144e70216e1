"""Part 1 of the lab: the named chat, server side (R2).

A line is ``NAME: text\\n`` in UTF-8 on the wire. Lines typed here are sent to
every connected client as ``R2: text`` (``--name``) and shown here too; lines
from a client are shown here and passed on to every other client as they
came (so a plain ``nc`` peer, with or without the lab's mawk prefix, works).
End of input (Ctrl-D) or Ctrl-C here ends the chat for everyone; a client
leaving ends it for that client only.

    python3 reference_servers/chat_server.py --name R2 [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, parser, serve, setup_logging

log = setup_logging("chat_server")


class ChatHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ChatServer = self.server  # type: ignore[assignment]
        peer = "{}:{}".format(*self.client_address[:2])
        server.join(self.request)
        log.info("%s joined", peer)
        try:
            for raw in self.rfile:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                server.show(line)
                server.broadcast(line, exclude=self.request)
        except OSError:
            pass
        finally:
            server.leave(self.request)
            log.info("%s left", peer)


class ChatServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int], name: str) -> None:
        self.address_family = address_family(address[0])
        self.name = name
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, ChatHandler)

    def join(self, sock: socket.socket) -> None:
        with self._lock:
            self._clients.add(sock)

    def leave(self, sock: socket.socket) -> None:
        with self._lock:
            self._clients.discard(sock)

    def show(self, line: str) -> None:
        with self._lock:
            print(line, flush=True)

    def broadcast(self, line: str, exclude: socket.socket | None = None) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            clients = [c for c in self._clients if c is not exclude]
        for client in clients:
            try:
                client.sendall(data)
            except OSError:
                self.leave(client)

    def say(self, text: str) -> None:
        """A line typed on this side."""
        line = f"{self.name}: {text}"
        self.show(line)
        self.broadcast(line)

    def end(self) -> None:
        """Close every client connection (they see the end of the chat)."""
        with self._lock:
            clients, self._clients = list(self._clients), set()
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def _read_keyboard(server: ChatServer) -> None:
    for raw in sys.stdin:
        server.say(raw.rstrip("\r\n"))
    server.end()
    server.shutdown()  # end of input ends the chat


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's named chat server.", server=True)
    p.add_argument("--name", default="R2", help="the name before each of your lines (default R2)")
    args = p.parse_args(argv)
    try:
        server = ChatServer((args.host, args.port), args.name)
    except OSError as exc:
        print(f"chat_server: cannot listen on {args.host} port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    threading.Thread(target=_read_keyboard, args=(server,), daemon=True).start()
    try:
        return serve(server, log)
    finally:
        server.end()


if __name__ == "__main__":
    sys.exit(main())
