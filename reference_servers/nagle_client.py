"""For Part 4 f, g of the lab: write-write-read requests to echo_tcp_server, Nagle on or off.

One connection, ``--count`` requests. A request is two small writes, the
message ``SECRET <n>`` and then its newline, followed by a read of the reply
line. With Nagle's algorithm on (the default) the newline is held back until
the first write is acknowledged, and the server delays that ACK (at least
40 ms on Linux): every request stalls. ``--nodelay`` sets TCP_NODELAY and the
newline leaves at once. One line per request, then a summary:

    request=1 rtt=41.862 ms
    ...
    nagle on: 10 requests; rtt min/median/max 0.093/41.920/44.107 ms

    python3 reference_servers/nagle_client.py [--count 10] [--nodelay] [--host H] [--port 5000]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import connect, parser, run

TIMEOUT_S = 10.0


def write_write_read(host: str, port: int, count: int, nodelay: bool = False, timeout: float = TIMEOUT_S
                     ) -> Iterator[float]:
    """Round-trip time in ms of each request, as each completes. Raises OSError, or
    ValueError when a reply is not the expected one."""
    with connect(host, port, timeout, nodelay) as sock, sock.makefile("rb") as replies:
        for n in range(1, count + 1):
            start = time.perf_counter()
            sock.sendall(f"SECRET {n}".encode())
            sock.sendall(b"\n")
            reply = replies.readline()
            took = (time.perf_counter() - start) * 1000
            expected = f"Digits: {n} Count: {len(str(n))}\n".encode()
            if reply != expected:
                raise ValueError(f"request {n}: expected {expected!r}, got {reply!r}")
            yield took


def main(argv: list[str] | None = None) -> int:
    p = parser("Write-write-read requests to echo_tcp_server, with Nagle on or off.", server=False)
    p.add_argument("--count", type=int, default=10, help="requests to make (default 10)")
    p.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY: Nagle's algorithm off")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    rtts = []
    try:
        for n, rtt in enumerate(write_write_read(args.host, args.port, args.count, args.nodelay), 1):
            print(f"request={n} rtt={rtt:.3f} ms", flush=True)
            rtts.append(rtt)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"nagle_client: {args.host} port {args.port}: {reason}", file=sys.stderr)
        return 1
    label = "nagle off (TCP_NODELAY)" if args.nodelay else "nagle on"
    print(f"{label}: {len(rtts)} requests; rtt min/median/max "
          f"{min(rtts):.3f}/{statistics.median(rtts):.3f}/{max(rtts):.3f} ms")
    return 0


if __name__ == "__main__":
    run(main)
