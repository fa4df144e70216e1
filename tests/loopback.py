"""Real Linux TCP traffic on loopback, captured, for the Nagle / delayed-ACK tests.

A request is a 10-byte header and a 90-byte body; the server reads both, then
answers 100 bytes. ``mode`` chooses how the client writes a request:
``"write-write"`` (two send() calls, the classic Nagle + delayed-ACK stall),
``"coalesced"`` (header and body joined, one send()), or ``"bulk"`` (one large
upload, no replies).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path

from sockinspect._capture import LiveCapture

HEADER, BODY, REPLY = 10, 90, 100


class _RequestHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while True:
            need, got = HEADER + BODY, b""
            while len(got) < need:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                got += chunk
                if got.startswith(b"B"):  # bulk: read to EOF
                    while sock.recv(1 << 20):
                        pass
                    return
            sock.sendall(b"r" * REPLY)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def run_requests(path: Path, mode: str = "write-write", nodelay: bool = False, requests: int = 25,
                 bulk_bytes: int = 4 << 20) -> Path:
    """Run one client connection in ``mode`` against a loopback server and capture it."""
    with _Server(("127.0.0.1", 0), _RequestHandler) as server:
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with LiveCapture(path, ports=[port]) as cap:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                if nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if mode == "bulk":
                    sock.sendall(b"B" + b"x" * (bulk_bytes - 1))
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(1)
                else:
                    for _ in range(requests):
                        if mode == "write-write":
                            sock.sendall(b"h" * HEADER)
                            sock.sendall(b"b" * BODY)
                        else:
                            sock.sendall(b"h" * HEADER + b"b" * BODY)
                        got = 0
                        while got < REPLY:
                            got += len(sock.recv(65536))
            server.shutdown()
    assert cap.stats is not None and cap.stats.dropped == 0, cap.stats
    return path
