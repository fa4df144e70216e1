"""The benchmark's capture: a deterministic nanosecond pcap of TCP connections.

``generate(path, packets, connections)`` writes ``packets`` Ethernet frames over
``connections`` TCP connections (90% IPv4, 10% IPv6; handshake, data both ways
with varied sizes, ACKs, FIN teardown; up to 2,000 connections open at once).
The same arguments always give the same bytes.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import struct
import sys
from pathlib import Path

SEED = 20261125
CAPTURE_VERSION = "v2"  # v2: the close ends with the last ACK (v1 left the second FIN unacknowledged)
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
    # ACK, then data and ACKs alternating, then FIN/ACK, FIN/ACK and the last ACK.
    lengths = [per + (1 if i < extra else 0) for i in range(connections)]
    state = [0] * connections
    open_ = list(range(min(connections, 2000)))
    next_conn = len(open_)
    written = 0
    ts = T0
    part = path.with_name(path.name + ".part")  # renamed when complete: an interrupted run leaves no short file
    with open(part, "wb") as out:
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
    part.rename(path)
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
    if i >= n - 3:  # the close: each FIN acknowledged (the last ACK makes it complete)
        c_fin, s_fin = c_isn + 1 + ((n - 3) // 2) * 700, s_isn + 1 + ((n - 3) // 2) * 1400
        if i == n - 3:
            return _pkt(ts, v6, client, server, cport, sport, c_fin, s_fin, 0x11, 0, False)
        if i == n - 2:
            return _pkt(ts, v6, server, client, sport, cport, s_fin, c_fin + 1, 0x11, 0, False)
        return _pkt(ts, v6, client, server, cport, sport, c_fin + 1, s_fin + 1, 0x10, 0, False)
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
