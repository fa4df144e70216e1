"""Throughput and peak memory of ``sockinspect analyze``, side by side with tshark.

    .venv/bin/python benchmarks/bench_analyze.py [--packets 1000000] [--connections 10000] [--json]

Generates (once, then reused) a deterministic nanosecond pcap of ``--packets``
Ethernet frames over ``--connections`` TCP connections (90% IPv4, 10% IPv6;
handshake, data both ways with varied sizes, ACKs, FIN teardown; many
connections open at once), plus a second file with a quarter of the packets
over the same number of connections, to show that memory follows connections,
not packets. Then it runs, as subprocesses, ``sockinspect analyze FILE --json``
and, when installed, ``tshark -q -n -z conv,tcp -r FILE``, ``--repeat`` times
each, and reports the best wall time, packets per second and the peak resident
memory of the whole process tree (sockinspect uses one process per core for
large files).
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from tabulate import tabulate

SEED = 20261125
T0 = 1_760_000_000_000_000_000
ETH4 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
ETH6 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x86\xdd"
FILLER = bytes(range(256)) * 6


def generate(path: Path, packets: int, connections: int) -> None:
    """Write the capture: each connection's packets, interleaved in time."""
    rng = random.Random(SEED)
    per = packets // connections
    extra = packets - per * connections
    # Every connection gets `per` packets (the first `extra` one more): SYN, SYN/ACK,
    # ACK, then data and ACKs alternating, then FIN/ACK, FIN/ACK (and a last ACK).
    lengths = [per + (1 if i < extra else 0) for i in range(connections)]
    state = [0] * connections
    open_ = list(range(min(connections, 2000)))
    next_conn = len(open_)
    written = 0
    ts = T0
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262_144, 1))
        while open_:
            k = rng.randrange(len(open_))
            c = open_[k]
            i = state[c]
            out.write(_frame(c, i, lengths[c], ts, rng))
            ts += rng.randrange(200, 2_000)
            written += 1
            state[c] += 1
            if state[c] == lengths[c]:
                open_[k] = open_[-1]
                open_.pop()
                if next_conn < connections:
                    open_.append(next_conn)
                    next_conn += 1
            if written % 100_000 == 0:
                print(f"\rgenerating {path.name}: {written}/{packets}", end="", file=sys.stderr, flush=True)
    print(f"\rgenerated {path.name}: {written} packets, {path.stat().st_size >> 20} MiB", file=sys.stderr)


def _frame(c: int, i: int, n: int, ts: int, rng: random.Random) -> bytes:
    v6 = c % 10 == 9
    client = (f"2001:db8::{c >> 16:x}:{c & 0xFFFF:x}" if v6 else f"10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}")
    server = "2001:db8:ffff::1" if v6 else "192.0.2.1"
    cport, sport = 32768 + c % 28000, 443
    c_isn, s_isn = (c * 7919) & 0xFFFFFFFF, (c * 104729) & 0xFFFFFFFF
    c_seq, s_seq = c_isn + 1 + (i // 2) * 700, s_isn + 1 + (i // 2) * 1400
    if i == 0:
        return _pkt(ts, v6, client, server, cport, sport, c_isn, 0, 0x02, 0, True)
    if i == 1:
        return _pkt(ts, v6, server, client, sport, cport, s_isn, c_isn + 1, 0x12, 0, True)
    if i == n - 2:
        return _pkt(ts, v6, client, server, cport, sport, c_seq, s_seq, 0x11, 0, False)
    if i == n - 1:
        return _pkt(ts, v6, server, client, sport, cport, s_seq, c_seq + 1, 0x11, 0, False)
    if i % 2:  # client: a request of varied size, or a bare ACK
        size = rng.choice((0, 0, 120, 700))
        return _pkt(ts, v6, client, server, cport, sport, c_seq, s_seq, 0x18 if size else 0x10, size, False)
    size = rng.choice((0, 1400, 1400, 300))
    return _pkt(ts, v6, server, client, sport, cport, s_seq, c_seq, 0x18 if size else 0x10, size, False)


@functools.lru_cache(maxsize=1 << 16)
def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _pkt(ts: int, v6: bool, src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
         size: int, syn: bool) -> bytes:
    options = b"\x02\x04\x05\xb4\x01\x03\x03\x07" if syn else b""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, 65535, 0, 0) + options
    payload = FILLER[:size]
    if v6:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + size, 6, 64, _addr(src), _addr(dst))
        frame = ETH6 + ip + tcp + payload
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + size, 0, 0x4000, 64, 6, 0,
                         _addr(src), _addr(dst))
        frame = ETH4 + ip + tcp + payload
    return struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(frame), len(frame)) + frame


def measure(cmd: list[str], repeat: int) -> tuple[float, float, bytes]:
    """Best wall time of ``repeat`` runs (seconds), the largest peak memory of the
    process tree (MiB, children included: sockinspect may use several processes),
    and the last run's stdout."""
    best, peak, out = float("inf"), 0.0, b""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        sampler = _TreeMemory(proc.pid)
        sampler.start()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with {os.waitstatus_to_exitcode(status)}")
        best = min(best, elapsed)
        peak = max(peak, sampler.peak_kib / 1024, usage.ru_maxrss / 1024)
    return best, peak, out


class _TreeMemory(threading.Thread):
    """Samples the resident memory of a process and its descendants every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in _tree(self.pid)))


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--dir", type=Path, default=Path("/tmp/sockinspect-bench"), help="where the captures are kept")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool and file; the best time counts (default 3)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    files = []
    for packets in (args.packets, args.packets // 4):
        path = args.dir / f"bench-{packets}p-{args.connections}c.pcap"
        if not path.exists():
            generate(path, packets, args.connections)
        files.append((path, packets))
    sockinspect = [sys.executable, "-m", "sockinspect", "analyze", "--json"]
    tshark = shutil.which("tshark")
    rows, results = [], []
    for path, packets in files:
        seconds, rss, out = measure([*sockinspect, str(path)], args.repeat)
        doc = json.loads(out)
        if doc["packets"] != packets or len(doc["tcp"]) != args.connections:
            raise SystemExit(f"sockinspect found {doc['packets']} packets and {len(doc['tcp'])} connections "
                             f"in {path.name}; expected {packets} and {args.connections}")
        results.append({"tool": "sockinspect", "file": path.name, "packets": packets, "seconds": seconds,
                        "packets_per_second": packets / seconds, "peak_rss_mib": rss})
        if tshark:
            seconds, rss, _ = measure([tshark, "-q", "-n", "-z", "conv,tcp", "-r", str(path)], args.repeat)
            results.append({"tool": "tshark -z conv,tcp", "file": path.name, "packets": packets,
                            "seconds": seconds, "packets_per_second": packets / seconds, "peak_rss_mib": rss})
    if args.json:
        print(json.dumps({"connections": args.connections, "tshark": tshark, "results": results}, indent=2))
        return 0
    for r in results:
        rows.append([r["tool"], r["file"], r["packets"], f"{r['seconds']:.2f}", f"{r['packets_per_second']:,.0f}",
                     f"{r['peak_rss_mib']:.0f}"])
    print(tabulate(rows, ["tool", "capture", "packets", "seconds", "packets/s", "peak RSS (MiB)"],
                   colalign=("left", "left", "right", "right", "right", "right")))
    if not tshark:
        print("tshark: not installed, not measured (apt-get install tshark to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
