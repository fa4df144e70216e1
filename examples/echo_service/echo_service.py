"""A tiny third-party-style service: a line echo server on socketserver.

    python echo_service.py serve --port 7007          # prints "listening on 127.0.0.1 PORT"
    python echo_service.py client --port 7007 hello world

Each line a client sends comes back prefixed with "echo: ". ECHO_SERVICE_BUG
breaks it on purpose, so the example's tests can show what sockinspect's
assertions say: ``reset`` closes connections with RST instead of FIN;
``split-reply`` writes each reply in two small writes with Nagle on, which
stalls on the client's delayed ACK.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import socketserver
import struct
import sys

BUG = os.environ.get("ECHO_SERVICE_BUG", "")


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            if BUG == "split-reply":
                self.wfile.write(b"echo: ")
                self.wfile.write(line)
            else:
                self.wfile.write(b"echo: " + line)


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    disable_nagle_algorithm = BUG != "split-reply"

    def shutdown_request(self, request: socket.socket) -> None:
        if BUG == "reset":  # linger 0 and no shutdown(): close() sends RST instead of FIN
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close()
        else:
            super().shutdown_request(request)


def client(host: str, port: int, lines: list[str]) -> list[str]:
    """Send each line, wait for its echo; one connection for all."""
    replies = []
    with socket.create_connection((host, port)) as sock, sock.makefile("rwb") as f:
        for line in lines:
            f.write(line.encode() + b"\n")
            f.flush()
            replies.append(f.readline().decode().rstrip("\n"))
    return replies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve", "client"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7007)
    parser.add_argument("words", nargs="*")
    args = parser.parse_intermixed_args()
    if args.mode == "client":
        for reply in client(args.host, args.port, args.words or ["hello"]):
            print(reply)
        return 0
    with EchoServer((args.host, args.port), EchoHandler) as server:
        print(f"listening on {args.host} {server.server_address[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
