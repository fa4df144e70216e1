"""For Part 4 e of the lab: send N small messages to udp_echo_server, time each round trip.

UDP (default): one datagram per message, ``ping <seq>``. A reply that does not
come within ``--timeout`` seconds counts as lost: the client never hangs, and a
late reply to an earlier message is ignored. ``--tcp`` (against
``udp_echo_server --tcp``): a new TCP connection per message (handshake,
message, reply, close), timed from connect() to the reply, so the handshake
is part of every round trip. ``--size BYTES`` pads each message to that many
bytes (up to the largest datagram: 65,507 over IPv4, 65,527 over IPv6), to
time large datagrams. One line per message, then a summary:

    seq=1 rtt=0.081 ms
    seq=2 lost
    udp: 2 sent, 1 received, 1 lost; rtt min/median/max 0.081/0.081/0.081 ms

Exit status 0 when at least one reply came, 1 when none did.

    python3 reference_servers/udp_echo_client.py --count 10 [--tcp] [--size B] [--timeout 1] [--host H] [--port 5000]
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import UDP_MAX_DATAGRAM, address_family, connect, parser, run


def max_size(host: str) -> int:
    """The largest UDP payload to ``host``: 65,535 less the UDP header, and less IPv4's header
    (IPv6's payload length does not count its own header)."""
    return 65527 if address_family(host) == socket.AF_INET6 else 65507


def _payload(seq: int, size: int = 0) -> bytes:
    """``ping <seq>``, padded with dots to ``size`` bytes when that is longer."""
    text = f"ping {seq}".encode()
    return text + b" " + b"." * (size - len(text) - 1) if size > len(text) else text


def udp_round_trips(host: str, port: int, count: int, timeout: float = 1.0, size: int = 0
                    ) -> Iterator[float | None]:
    """Round-trip time in ms of each of ``count`` datagrams (of ``size`` bytes, if given), as each
    completes; None for a lost one (or one that came back changed)."""
    with socket.socket(address_family(host), socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        for seq in range(1, count + 1):
            payload = _payload(seq, size)
            start = time.perf_counter()
            try:
                sock.send(payload)
            except OSError:  # e.g. ICMP port unreachable from an earlier datagram
                yield None
                continue
            yield _await(sock, payload, start, timeout)


def _await(sock: socket.socket, payload: bytes, start: float, timeout: float) -> float | None:
    deadline = start + timeout
    while (left := deadline - time.perf_counter()) > 0:
        sock.settimeout(left)
        try:
            reply = sock.recv(UDP_MAX_DATAGRAM)
        except TimeoutError:
            return None
        except ConnectionRefusedError:  # ICMP port unreachable: nobody listens there
            return None
        if reply == payload:  # anything else is a late reply to an earlier message
            return (time.perf_counter() - start) * 1000
    return None


def tcp_round_trips(host: str, port: int, count: int, timeout: float = 1.0, nodelay: bool = False,
                    size: int = 0) -> Iterator[float | None]:
    """Like udp_round_trips, over a new TCP connection per message (``nodelay``: TCP_NODELAY)."""
    for seq in range(1, count + 1):
        payload = _payload(seq, size)
        start = time.perf_counter()
        try:
            with connect(host, port, timeout, nodelay) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                got = b""
                while len(got) < len(payload) and (chunk := sock.recv(65536)):
                    got += chunk
        except OSError:
            got = b""
        yield (time.perf_counter() - start) * 1000 if got == payload else None


def summary(transport: str, rtts: list[float | None]) -> str:
    """The last line: counts, and min/median/max of the round trips that completed."""
    got = [r for r in rtts if r is not None]
    line = f"{transport}: {len(rtts)} sent, {len(got)} received, {len(rtts) - len(got)} lost"
    if got:
        line += f"; rtt min/median/max {min(got):.3f}/{statistics.median(got):.3f}/{max(got):.3f} ms"
    return line


def main(argv: list[str] | None = None) -> int:
    p = parser("Time N echo round trips over UDP (or TCP, a new connection each).", server=False)
    p.add_argument("--count", type=int, default=10, help="messages to send (default 10)")
    p.add_argument("--tcp", action="store_true", help="TCP, a new connection per message")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply (default 1)")
    p.add_argument("--size", type=int, default=0, help="bytes per message (default: just 'ping N')")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    if not 0 <= args.size <= max_size(args.host):
        p.error(f"--size must be between 0 and {max_size(args.host)} (the largest datagram to {args.host})")
    if not args.timeout > 0:
        p.error("--timeout must be more than 0")
    run_trips = tcp_round_trips if args.tcp else udp_round_trips
    rtts = []
    for seq, rtt in enumerate(run_trips(args.host, args.port, args.count, args.timeout, size=args.size), 1):
        print(f"seq={seq} " + ("lost" if rtt is None else f"rtt={rtt:.3f} ms"), flush=True)
        rtts.append(rtt)
    print(summary("tcp" if args.tcp else "udp", rtts))
    return 0 if any(r is not None for r in rtts) else 1


if __name__ == "__main__":
    run(main)
