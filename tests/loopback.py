"""Real Linux TCP traffic on loopback, captured, for the Nagle / delayed-ACK tests.

``mode`` chooses how the client writes each request to the nagle scenario's
server (sockinspect._nagle_peer: a 10-byte header and a 90-byte body, answered
with 100 bytes): ``"write-write"`` (two send() calls, the classic Nagle +
delayed-ACK stall) or ``"coalesced"`` (one send()); ``"bulk"`` is one large
upload with no replies.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path

from sockinspect._capture import LiveCapture
from sockinspect._nagle_peer import RequestHandler, RequestServer, run_client


class _Sink(socketserver.BaseRequestHandler):
    """Bulk: read to the end of the stream, then answer one byte."""

    def handle(self) -> None:
        while self.request.recv(1 << 20):
            pass
        self.request.sendall(b"k")


def run_requests(path: Path, mode: str = "write-write", nodelay: bool = False, requests: int = 25,
                 bulk_bytes: int = 4 << 20) -> Path:
    """Run one client connection in ``mode`` against a loopback server and capture it."""
    with RequestServer(("127.0.0.1", 0), _Sink if mode == "bulk" else RequestHandler) as server:
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with LiveCapture(path, ports=[port]) as cap:
            if mode == "bulk":
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"x" * bulk_bytes)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(1)
            else:
                run_client("127.0.0.1", port, requests, nodelay, mode)
        server.shutdown()
    assert cap.stats is not None and cap.stats.dropped == 0, cap.stats
    return path
