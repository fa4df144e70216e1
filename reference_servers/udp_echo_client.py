"""For Part 4 e of the lab: send N small messages, time each round trip.

UDP (default): one datagram per message; a reply that does not come within
``--timeout`` counts as lost, the client never hangs. ``--tcp``: a new TCP
connection per message (handshake, message, reply, close), timed from
connect() to the reply. Prints one line per message and a summary:

    seq=1 rtt=0.081 ms
    ...
    udp: 10 sent, 10 received, 0 lost; rtt min/median/max 0.052/0.081/0.203 ms

    python3 reference_servers/udp_echo_client.py --count 10 [--tcp] [--host H] [--port 5000]
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, parser


def udp_round_trips(host: str, port: int, count: int, timeout: float) -> list[float | None]:
    """RTT in ms per message, None for a lost one."""
    results: list[float | None] = []
    with socket.socket(address_family(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        for seq in range(1, count + 1):
            payload = f"ping {seq}".encode()
            start = time.perf_counter()
            sock.send(payload)
            results.append(_await(sock, payload, start, timeout))
    return results


def _await(sock: socket.socket, payload: bytes, start: float, timeout: float) -> float | None:
    deadline = start + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            reply = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionRefusedError:  # ICMP port unreachable: nobody listens
            return None
        if reply == payload:  # a late reply to an earlier message is ignored
            return (time.perf_counter() - start) * 1000


def tcp_round_trips(host: str, port: int, count: int, timeout: float) -> list[float | None]:
    results: list[float | None] = []
    for seq in range(1, count + 1):
        payload = f"ping {seq}".encode()
        start = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                got = b""
                while len(got) < len(payload) and (chunk := sock.recv(65536)):
                    got += chunk
            results.append((time.perf_counter() - start) * 1000 if got == payload else None)
        except OSError:
            results.append(None)
    return results


def main(argv: list[str] | None = None) -> int:
    p = parser("Time N echo round trips over UDP (or TCP, a new connection each).", server=False)
    p.add_argument("--count", type=int, default=10, help="messages to send (default 10)")
    p.add_argument("--tcp", action="store_true", help="TCP, a new connection per message")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply (default 1)")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    run = tcp_round_trips if args.tcp else udp_round_trips
    rtts = run(args.host, args.port, args.count, args.timeout)
    for seq, rtt in enumerate(rtts, 1):
        print(f"seq={seq} " + ("lost" if rtt is None else f"rtt={rtt:.3f} ms"))
    got = [r for r in rtts if r is not None]
    summary = f"{'tcp' if args.tcp else 'udp'}: {len(rtts)} sent, {len(got)} received, {len(rtts) - len(got)} lost"
    if got:
        summary += f"; rtt min/median/max {min(got):.3f}/{statistics.median(got):.3f}/{max(got):.3f} ms"
    print(summary)
    return 0 if got else 1


if __name__ == "__main__":
    sys.exit(main())
