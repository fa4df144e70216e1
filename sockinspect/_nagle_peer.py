"""The two programs of the ``nagle`` scenario (Part 4 f, g of the lab).

    python -m sockinspect._nagle_peer server [--host H] [--port 0]
    python -m sockinspect._nagle_peer client --port P [--requests 25] [--nodelay] [--mode write-write]

A request is a 10-byte header and a 90-byte body; the server reads both, then
answers with 100 bytes. The client's ``--mode``: ``write-write`` sends header and
body with two send() calls (with Nagle on, the body waits for the ACK of the
header, which the server delays: the classic stall), ``coalesced`` joins them
in one send(). The server prints ``listening on HOST PORT``; the client prints
one line of request latencies.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import socketserver
import statistics
import sys
import time

HEADER, BODY, REPLY = 10, 90, 100


class RequestHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        buf = b""
        while True:
            while len(buf) < HEADER + BODY:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[HEADER + BODY :]
            sock.sendall(b"r" * REPLY)


class RequestServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    address_family = socket.AF_INET


class RequestServer6(RequestServer):
    address_family = socket.AF_INET6


def run_client(host: str, port: int, requests: int, nodelay: bool, mode: str) -> list[float]:
    """Do ``requests`` request/reply rounds on one connection; latencies in ms."""
    latencies = []
    with socket.create_connection((host, port)) as sock:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            start = time.perf_counter()
            if mode == "write-write":
                sock.sendall(b"h" * HEADER)
                sock.sendall(b"b" * BODY)
            else:
                sock.sendall(b"h" * HEADER + b"b" * BODY)
            got = 0
            while got < REPLY:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                got += len(chunk)
            latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sockinspect._nagle_peer", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on the client")
    parser.add_argument("--mode", choices=["write-write", "coalesced"], default="write-write")
    args = parser.parse_args(argv)
    if args.role == "client":
        lat = run_client(args.host, args.port, args.requests, args.nodelay, args.mode)
        print(f"{len(lat)} requests, median {statistics.median(lat):.3f} ms, max {max(lat):.3f} ms")
        return 0
    cls = RequestServer6 if ":" in args.host else RequestServer
    with cls((args.host, args.port), RequestHandler) as server:
        print(f"listening on {args.host} {server.server_address[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
