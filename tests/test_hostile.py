"""Hostile packets: deep nesting, decompression bombs, fragment floods. Each becomes a
counted defect with one warning, in bounded work and memory, never a traceback."""

from __future__ import annotations

import random
import struct
import tracemalloc
import zlib

import pytest
from helpers import T0, analyze_frames, write_pcap

from sockinspect import analyze
from sockinspect._decode import MAX_DATAGRAM, MAX_LAYERS
from sockinspect._fragments import MAX_FRAGMENTS, OVER_LIMIT, Reassembler

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6, DST6 = bytes(15) + b"\x01", bytes(15) + b"\x02"


def tcp_header(flags: int = 0x02, sport: int = 40000, dport: int = 80) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 1000, 0, 0)


def ipv4(proto: int, payload: bytes, frag: int = 0, ident: int = 1) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, SRC4, DST4) + payload


def ipv6(nxt: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, SRC6, DST6) + payload


def ether(etype: int, payload: bytes) -> bytes:
    return bytes(12) + struct.pack("!H", etype) + payload


def ip_in_ip(headers: int, six: bool = False) -> bytes:
    """``headers`` nested IP headers (IPv4 or IPv6), a TCP SYN innermost."""
    wrap, tunnel = (ipv6, 41) if six else (ipv4, 4)
    packet = wrap(6, tcp_header())
    for _ in range(headers - 1):
        packet = wrap(tunnel, packet)
    return ether(0x86DD if six else 0x0800, packet)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"".join(c.compress(data[i : i + (1 << 20)]) for i in range(0, len(data), 1 << 20)) + c.flush()


def ipcomp(nxt: int, payload: bytes) -> bytes:
    return struct.pack("!BBH", nxt, 0, 2) + deflate(payload)


@pytest.mark.parametrize("six", [False, True])
def test_ip_in_ip_decodes_up_to_the_layer_limit(tmp_path, six):
    cap = analyze_frames(tmp_path, [ip_in_ip(MAX_LAYERS, six)])
    assert len(cap.tcp) == 1 and not cap.defects


@pytest.mark.parametrize("six", [False, True])
@pytest.mark.parametrize("headers", [MAX_LAYERS + 1, 1000])
def test_ip_nested_deeper_is_a_defect_not_a_recursion_error(tmp_path, six, headers):
    cap = analyze_frames(tmp_path, [ip_in_ip(headers, six)] * 2)
    assert cap.defects == {"too_deep": 2} and not cap.tcp
    assert any("more than 32 nested headers" in w and "1 more" in w for w in cap.warnings)


@pytest.mark.parametrize("tags, decoded", [(MAX_LAYERS - 1, True), (MAX_LAYERS, False), (20_000, False)])
def test_stacked_vlan_tags_are_bounded(tmp_path, tags, decoded):
    frame = bytes(12) + b"\x81\x00\x00\x05" * tags + b"\x08\x00" + ipv4(6, tcp_header())
    cap = analyze_frames(tmp_path, [frame])
    assert (cap.defects == {}) is decoded
    if not decoded:
        assert cap.defects == {"too_deep": 1}


@pytest.mark.parametrize("labels, decoded", [(MAX_LAYERS - 1, True), (MAX_LAYERS, False), (20_000, False)])
def test_stacked_mpls_labels_are_bounded(tmp_path, labels, decoded):
    stack = b"\x00\x01\x00\x40" * (labels - 1) + b"\x00\x01\x01\x40"  # the last one has bottom-of-stack set
    cap = analyze_frames(tmp_path, [ether(0x8847, stack + ipv4(6, tcp_header()))])
    assert (len(cap.tcp) == 1) is decoded
    if not decoded:
        assert cap.defects == {"too_deep": 1}


def test_ipv6_extension_header_chain_is_bounded(tmp_path):
    options = b"".join(struct.pack("!BB6x", 60, 0) for _ in range(5000)) + struct.pack("!BB6x", 6, 0)
    cap = analyze_frames(tmp_path, [ether(0x86DD, ipv6(60, options + tcp_header()))])
    assert cap.defects == {"too_deep": 1}


@pytest.mark.parametrize("six", [False, True])
def test_ipcomp_inflates_what_one_datagram_holds(tmp_path, six):
    """Nested IPComp, in IPv4 as in IPv6, down to a TCP segment."""
    inner = ipcomp(108, ipcomp(6, tcp_header(0x18) + b"x" * 60_000))
    frame = ether(0x86DD, ipv6(108, inner)) if six else ether(0x0800, ipv4(108, inner))
    cap = analyze_frames(tmp_path, [frame])
    assert not cap.defects
    assert cap.tcp.only().c2s.payload_bytes == 60_000


def test_nested_ipcomp_bomb_stops_at_one_datagram(tmp_path):
    """A 1 KB packet that would inflate to 64 MiB, then further: only one datagram's worth is inflated."""
    bomb = ipcomp(108, ipcomp(6, bytes(64 << 20)))
    assert len(bomb) < 200_000
    path = write_pcap(tmp_path / "bomb.pcap", [(T0, ether(0x86DD, ipv6(108, bomb)))])
    tracemalloc.start()
    try:
        cap = analyze(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cap.defects == {"ipcomp_too_large": 1}
    assert peak < 4 * MAX_DATAGRAM + 2 * len(bomb) + (1 << 20)
    assert any("decompression bomb" in w for w in cap.warnings)


def fragments(payload: bytes, size: int, ident: int = 7) -> list[bytes]:
    """IPv4 fragments of a TCP datagram, ``size`` payload bytes each (a multiple of 8)."""
    out = []
    for off in range(0, len(payload), size):
        more = 0x2000 if off + size < len(payload) else 0
        out.append(ether(0x0800, ipv4(6, payload[off : off + size], frag=more | off // 8, ident=ident)))
    return out


def test_the_most_fragments_a_datagram_can_have_reassemble_in_any_order(tmp_path):
    payload = tcp_header(0x18) + bytes(range(256)) * 255
    pieces = fragments(payload, 8)
    assert 8000 < len(pieces) <= MAX_FRAGMENTS  # 65,300 bytes in 8-byte steps
    random.Random(1).shuffle(pieces)
    cap = analyze_frames(tmp_path, pieces)
    assert cap.tcp.only().c2s.payload_bytes == len(payload) - 20
    assert cap.defects == {"ip_fragment": len(pieces) - 1}


def test_a_fragment_flood_drops_the_datagram_as_a_defect(tmp_path):
    """20,000 fragments of one datagram: past the limit, the datagram and its later fragments are defects."""
    pieces = [ether(0x0800, ipv4(6, b"A" * 8, frag=0x2000 | (i % 8000), ident=9)) for i in range(20_000)]
    cap = analyze_frames(tmp_path, pieces)
    assert cap.defects == {"ip_fragment": MAX_FRAGMENTS, "fragments_over_limit": 20_000 - MAX_FRAGMENTS}
    assert any("reassembly limits" in w for w in cap.warnings)


def test_fragments_past_the_largest_datagram_are_over_the_limit():
    r = Reassembler()
    assert r.add("k", 0xFFF8, True, b"x" * 8, 0x10000) is OVER_LIMIT  # ends past offset + length maxima
    assert r.add("k", 0, False, b"x" * 8, 8) is OVER_LIMIT  # later fragments of a dropped datagram too
    assert r.over_limit == 1


def test_last_fragments_that_disagree_drop_the_datagram():
    r = Reassembler()
    assert r.add("k", 8, False, b"y" * 8, 8) is None
    assert r.add("k", 8, False, b"y" * 16, 16) is OVER_LIMIT


def test_pending_reassembly_memory_is_bounded():
    r = Reassembler(max_pending_bytes=10_000)
    for key in range(100):
        assert r.add(key, 0, True, b"z" * 1000, 1000) is None
    assert r._bytes <= 10_000 and r.dropped == 90
    assert r.add(99, 1000, False, b"w" * 8, 8) == b"z" * 1000 + b"w" * 8  # the newest survive


def test_overlapping_fragments_keep_the_first_copy():
    r = Reassembler()
    assert r.add("k", 8, True, b"B" * 16, 16) is None
    assert r.add("k", 0, True, b"A" * 16, 16) is None
    assert r.add("k", 16, False, b"C" * 16, 16) == b"A" * 8 + b"B" * 16 + b"C" * 8
