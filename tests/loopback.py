"""Real Linux TCP traffic on loopback, captured, for the Nagle / delayed-ACK tests.

``mode`` chooses how the client writes each request to the lab's secret-code echo
server (reference_servers/echo_tcp_server.py; a request is ``SECRET <n>`` and its
newline, answered with one line): ``"write-write"`` (two send() calls, as
reference_servers/nagle_client.py makes them: the classic Nagle + delayed-ACK
stall) or ``"coalesced"`` (one send()); ``"bulk"`` is one large upload with no
replies.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path

from sockinspect._capture import LiveCapture
from sockinspect.reference_servers.echo_tcp_server import EchoServer
from sockinspect.reference_servers.nagle_client import write_write_read


class _Sink(socketserver.BaseRequestHandler):
    """Bulk: read to the end of the stream, then answer one byte."""

    def handle(self) -> None:
        while self.request.recv(1 << 20):
            pass
        self.request.sendall(b"k")


def _coalesced(port: int, requests: int) -> None:
    """The same requests as write_write_read, each in one send()."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as replies:
        for n in range(1, requests + 1):
            sock.sendall(f"SECRET {n}\n".encode())
            if not replies.readline().startswith(b"Digits: "):
                raise ValueError(f"request {n}: no reply")


def run_requests(path: Path, mode: str = "write-write", nodelay: bool = False, requests: int = 25,
                 bulk_bytes: int = 4 << 20) -> Path:
    """Run one client connection in ``mode`` against a loopback server and capture it."""
    with EchoServer(("127.0.0.1", 0), *([_Sink] if mode == "bulk" else [])) as server:
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with LiveCapture(path, ports=[port]) as cap:
            if mode == "bulk":
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"x" * bulk_bytes)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(1)
            elif mode == "coalesced":
                _coalesced(port, requests)
            else:
                for _rtt in write_write_read("127.0.0.1", port, requests, nodelay):
                    pass
        server.shutdown()
    assert cap.stats is not None and cap.stats.dropped == 0, cap.stats
    return path
