"""For Part 4 e of the lab: an echo server over UDP (default) or TCP (``--tcp``).

UDP: every datagram is sent back to its sender as it came, whatever its size
up to the largest UDP allows (65,507 bytes over IPv4, 65,527 over IPv6). TCP: every
connection's data is sent back until the client closes its side; the client
opens a new connection per message, so TCP's handshake is part of each round
trip. Compare the two with udp_echo_client.

    python3 reference_servers/udp_echo_server.py [--tcp] [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import logging
import socketserver
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import UDP_MAX_DATAGRAM, address_family, listen_error, parser, run, serve, setup_logging

log = logging.getLogger("udp_echo_server")


class DatagramEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        with contextlib.suppress(OSError):
            sock.sendto(data, self.client_address)


class StreamEcho(socketserver.StreamRequestHandler):
    timeout = 30.0  # seconds a client may stay silent before it is disconnected

    def handle(self) -> None:
        try:
            while chunk := self.connection.recv(65536):
                self.connection.sendall(chunk)
        except OSError as exc:
            log.info("%s:%d: %s", *self.client_address[:2], exc)


class UDPEchoServer(socketserver.UDPServer):
    allow_reuse_address = True
    max_packet_size = UDP_MAX_DATAGRAM  # socketserver's default of 8192 would cut larger datagrams

    def __init__(self, address: tuple[str, int]) -> None:
        self.address_family = address_family(address[0])
        super().__init__(address, DatagramEcho)


class TCPEchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int]) -> None:
        self.address_family = address_family(address[0])
        super().__init__(address, StreamEcho)


def main(argv: list[str] | None = None) -> int:
    p = parser("Echo server over UDP, or TCP with --tcp.", server=True)
    p.add_argument("--tcp", action="store_true", help="echo over TCP instead of UDP")
    args = p.parse_args(argv)
    setup_logging()
    cls = TCPEchoServer if args.tcp else UDPEchoServer
    try:
        server = cls((args.host, args.port))
    except OSError as exc:
        return listen_error("udp_echo_server", args.host, args.port, exc)
    return serve(server, log)


if __name__ == "__main__":
    run(main)
