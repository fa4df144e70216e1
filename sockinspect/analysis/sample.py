"""A pcap file of a few packets of every kind the kernels handle (a TCP exchange with
a delayed ACK, a stall, a reply and a close; a UDP round trip), so that compiling
the engine (jit.warm_up) goes through every kernel with the types a real run uses."""

from __future__ import annotations

import struct

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10
MS = 1_000_000


def sample_pcap() -> bytes:
    """A nanosecond pcap: handshake, a request in two writes whose first is ACKed 47 ms
    late, a reply, FIN both ways; then a UDP datagram and its answer."""
    c, s = 40000, 5000
    packets = [
        (0, _tcp(CLIENT, SERVER, c, s, 100, 0, SYN)),
        (1, _tcp(SERVER, CLIENT, s, c, 500, 101, SYN | ACK)),
        (2, _tcp(CLIENT, SERVER, c, s, 101, 501, ACK)),
        (3, _tcp(CLIENT, SERVER, c, s, 101, 501, PSH | ACK, b"h" * 10)),
        (50, _tcp(SERVER, CLIENT, s, c, 501, 111, ACK)),
        (51, _tcp(CLIENT, SERVER, c, s, 111, 501, PSH | ACK, b"b" * 90)),
        (52, _tcp(SERVER, CLIENT, s, c, 501, 201, PSH | ACK, b"r" * 100)),
        (53, _tcp(CLIENT, SERVER, c, s, 201, 601, FIN | ACK)),
        (54, _tcp(SERVER, CLIENT, s, c, 601, 202, FIN | ACK)),
        (55, _tcp(CLIENT, SERVER, c, s, 202, 602, ACK)),
        (56, _udp(CLIENT, SERVER, 40001, 5001, b"ping")),
        (57, _udp(SERVER, CLIENT, 5001, 40001, b"pong")),
    ]
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    for ms, frame in packets:
        ns = 1_700_000_000 * 10**9 + ms * MS
        out.append(struct.pack("<IIII", ns // 10**9, ns % 10**9, len(frame), len(frame)) + frame)
    return b"".join(out)


def _ip(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    ether = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    return ether + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0, src, dst) + body


def _tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
         payload: bytes = b"") -> bytes:
    options = struct.pack("!BBH", 2, 4, 1460) if flags & SYN else b""  # MSS
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0, 0) + options
    return _ip(src, dst, 6, header + payload)


def _udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return _ip(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
