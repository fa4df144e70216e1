"""Decode frames into TCP/UDP packet records: link layer, IPv4/IPv6, TCP/UDP.

The common path (Ethernet or loopback, IPv4/IPv6, TCP) is a straight line of
``struct.unpack_from`` calls on the frame's buffer with no intermediate objects.
Whatever is not a TCP or UDP packet comes back as a :class:`Defect` naming why,
so the caller can count it; nothing here raises on bad input.

Payload lengths come from the IP header (total length minus headers), as tshark
computes ``tcp.len``: Ethernet padding is not payload, and a segment captured
with a short snapshot length still counts its full payload.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from ._fragments import OVER_LIMIT, Reassembler
from ._read import Frame

TCP, UDP = 6, 17
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

LINKTYPE_NAMES = {
    0: "null", 1: "ether", 12: "rawip", 14: "rawip", 101: "rawip", 108: "loop",
    113: "linux-sll", 228: "rawip4", 229: "rawip6", 276: "linux-sll2",
}

_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)
_u16 = struct.Struct("!H").unpack_from
_ipv4 = struct.Struct("!BxHHHBBxx4s4s").unpack_from  # vihl, totlen, id, frag, ttl, proto, src, dst
_ipv4_fast = struct.Struct("!BxH2xHxB2x4s4s").unpack_from  # vihl, totlen, frag, proto, src, dst
_tcp = struct.Struct("!HHIIBBH").unpack_from  # sport, dport, seq, ack, off, flags, window
_udp = struct.Struct("!HHH").unpack_from  # sport, dport, length
_ipv6_ext = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))  # 802.1Q, 802.1ad, old QinQ
_DECODED_IN_IP = frozenset((TCP, UDP, 4, 41, 108))  # what IPv4 fragments are reassembled for
# Headers one packet may stack (VLAN tags, MPLS labels, IP headers, IPv6 extension
# headers, IPComp): real traffic uses a handful, hostile files thousands.
MAX_LAYERS = 32
MAX_DATAGRAM = 65535  # what one IP datagram can hold (jumbograms aside): bounds IPComp inflation


class Packet(NamedTuple):
    """A decoded TCP segment or UDP datagram. Addresses are raw bytes (4 or 16)."""

    number: int  # 1-based frame number in the file
    ts_ns: int | None
    wirelen: int  # frame length on the wire, link header included
    vlan: tuple[int, ...]  # 802.1Q ids, outermost first; () when untagged
    src: bytes
    dst: bytes
    proto: int  # 6 = TCP, 17 = UDP
    sport: int
    dport: int
    seq: int  # TCP only (0 for UDP)
    ack: int
    flags: int
    window: int
    payload_len: int
    options: bytes  # raw TCP options of SYN segments (what the analysis reads); b"" otherwise (see Decoder)


class Defect(NamedTuple):
    """Why a frame yielded no TCP/UDP packet. ``malformed`` ones deserve a warning."""

    kind: str
    detail: str
    malformed: bool


NOT_IP = Defect("not_ip", "not an IPv4/IPv6 packet", False)
OTHER_PROTOCOL = Defect("other_protocol", "IP protocol other than TCP/UDP", False)
FRAGMENT = Defect("ip_fragment", "IP fragment of a datagram not complete yet", False)
BAD_IPCOMP = Defect("bad_ipcomp", "IPComp payload that is not DEFLATE or does not inflate", True)
IPCOMP_TOO_LARGE = Defect("ipcomp_too_large", f"IPComp payload inflating past {MAX_DATAGRAM} bytes "
                          "(more than an IP datagram holds: a decompression bomb?)", True)
TOO_DEEP = Defect("too_deep", f"more than {MAX_LAYERS} nested headers (VLAN tags, MPLS labels, tunnelled IP, "
                  "IPv6 extension headers, IPComp)", True)
FRAGMENTS_OVER_LIMIT = Defect("fragments_over_limit", "IP datagram dropped: its fragments are over the "
                              "reassembly limits (count, size or pending memory)", True)

def _ipcomp(data: bytes, start: int, end: int) -> bytes | Defect:
    """Inflate an IPComp payload (RFC 3173) as DEFLATE (RFC 2394), as tshark does: for
    CPI 2 and for negotiated CPIs (>= 64), whose algorithm the packet does not say.
    A defect for the other well-known algorithms (OUI, LZS, LZJH), data that does not
    inflate, and output past what one datagram can hold (inflation stops there)."""
    if end - start < 4 or _u16(data, start + 2)[0] in (0, 1, 3, 4):
        return BAD_IPCOMP
    inflate = zlib.decompressobj(-15)
    try:
        plain = inflate.decompress(bytes(data[start + 4 : end]), MAX_DATAGRAM)
    except zlib.error:
        return BAD_IPCOMP
    if inflate.eof:
        return plain
    return IPCOMP_TOO_LARGE if len(plain) == MAX_DATAGRAM else BAD_IPCOMP


class Decoder:
    """Turns frames into :class:`Packet` or :class:`Defect`; reassembles IP fragments.
    ``all_options``: keep the TCP options of every segment, not only of SYNs (for
    their SACK blocks)."""

    def __init__(self, all_options: bool = False) -> None:
        self.fragments = Reassembler()
        self._all_options = all_options

    def decode(self, frame: Frame, number: int) -> Packet | Defect:
        ts, linktype, wirelen, data, off, caplen = frame
        end = off + caplen
        # Fast path: untagged Ethernet, unfragmented IPv4 without options, TCP.
        if linktype == 1 and caplen >= 54 and data[off + 12] == 8 and data[off + 13] == 0:
            vihl, total, frag, proto, src, dst = _ipv4_fast(data, off + 14)
            if vihl == 0x45 and proto == TCP and not frag & 0x3FFF:
                t = off + 34
                sport, dport, seq, ack, off_byte, flags, window = _tcp(data, t)
                hlen = (off_byte >> 4) * 4
                if hlen >= 20:
                    avail = wirelen - 14
                    length = (total if total <= avail else avail) - 20 if total else end - t
                    keep = hlen > 20 and (flags & SYN or self._all_options)
                    options = data[t + 20 : min(end, t + hlen)] if keep else b""
                    payload = length - hlen
                    return _new(Packet, (number, ts, wirelen, (), src, dst, TCP, sport, dport, seq, ack, flags,
                                         window, payload if payload > 0 else 0, options))
        vlan: tuple[int, ...] = ()
        if linktype == 1:  # Ethernet
            if end - off < 14:
                return Defect("truncated", "Ethernet header cut short", True)
            return self._by_ethertype(frame, number, data, off + 14, end, vlan, _u16(data, off + 12)[0])
        if linktype in (0, 108):  # BSD NULL / OpenBSD LOOP: 4-byte address family
            if end - off < 4:
                return Defect("truncated", "loopback header cut short", True)
            family = struct.unpack_from("<I" if linktype == 0 else "!I", data, off)[0]
            if family > 0xFFFF:
                family = struct.unpack_from(">I", data, off)[0]
            off += 4
            if family == 2:
                return self._ip(frame, number, data, off, end, vlan, 4, None, 0)
            if family in (10, 24, 28, 30):
                return self._ip(frame, number, data, off, end, vlan, 6, None, 0)
            return NOT_IP
        if linktype in (12, 14, 101, 228, 229):  # raw IP
            return self._ip_by_version(frame, number, data, off, end, vlan)
        if linktype == 113:  # Linux cooked SLL
            if end - off < 16:
                return Defect("truncated", "Linux cooked header cut short", True)
            return self._by_ethertype(frame, number, data, off + 16, end, vlan, _u16(data, off + 14)[0])
        if linktype == 276:  # Linux cooked SLL2
            if end - off < 20:
                return Defect("truncated", "Linux cooked v2 header cut short", True)
            return self._by_ethertype(frame, number, data, off + 20, end, vlan, _u16(data, off)[0])
        return Defect(f"unknown_linktype_{linktype}", f"link type {linktype} is not supported", False)

    # -- link-layer helpers ------------------------------------------------

    def _by_ethertype(self, frame, number, data, off, end, vlan, etype):  # noqa: ANN001
        """The payload of an Ethernet or Linux cooked header, 802.1Q/QinQ tags first
        (libpcap puts a stripped tag back after a cooked header too)."""
        while etype in _VLAN_TPIDS:
            if len(vlan) == MAX_LAYERS:
                return TOO_DEEP
            if end - off < 4:
                return Defect("truncated", "VLAN tag cut short", True)
            tci, etype = struct.unpack_from("!HH", data, off)
            vlan += (tci & 0x0FFF,)
            off += 4
        if etype == 0x0800:
            return self._ip(frame, number, data, off, end, vlan, 4, None, len(vlan))
        if etype == 0x86DD:
            return self._ip(frame, number, data, off, end, vlan, 6, None, len(vlan))
        return self._other_ethertype(frame, number, data, off, end, vlan, etype)

    def _other_ethertype(self, frame, number, data, off, end, vlan, etype):  # noqa: ANN001
        if etype in (0x8847, 0x8848):  # MPLS: skip labels to the bottom of the stack
            depth = len(vlan)
            while end - off >= 4:
                depth += 1
                if depth > MAX_LAYERS:
                    return TOO_DEEP
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    return self._ip_by_version(frame, number, data, off, end, vlan, depth)
            return Defect("truncated", "MPLS label stack cut short", True)
        if etype == 0x8864 and end - off >= 8:  # PPPoE session, then PPP protocol
            # The PPPoE length bounds the datagram: what follows it is padding.
            pppoe_len, proto = struct.unpack_from("!HH", data, off + 4)
            avail = min(pppoe_len - 2, frame.wirelen - (off + 8 - frame.offset))
            if proto == 0x0021:
                return self._ip(frame, number, data, off + 8, end, vlan, 4, avail, len(vlan) + 1)
            if proto == 0x0057:
                return self._ip(frame, number, data, off + 8, end, vlan, 6, avail, len(vlan) + 1)
        return NOT_IP

    def _ip_by_version(self, frame, number, data, off, end, vlan, depth=0):  # noqa: ANN001
        if off >= end:
            return Defect("truncated", "no IP header captured", True)
        version = data[off] >> 4
        if version == 4 or version == 6:
            return self._ip(frame, number, data, off, end, vlan, version, None, depth)
        return NOT_IP

    # -- IP ------------------------------------------------------------------

    def _ip(self, frame, number, data, off, end, vlan, version, avail, depth):  # noqa: ANN001, C901
        """Walk from an IP header at ``off`` through what it carries (tunnelled IP,
        IPv6 extension headers, IPComp, fragments) to the TCP or UDP header, one
        header per step, with no recursion: ``depth`` counts the headers so far (VLAN
        tags and MPLS labels included), and a packet of more than MAX_LAYERS is a
        defect (a hostile one may nest thousands).

        ``avail``: bytes the outer layers leave for the datagram (default: the rest
        of the frame's wire length). A length beyond it is cut to it, as tshark does."""
        if avail is None:
            avail = frame.wirelen - (off - frame.offset)
        src = dst = b""
        nxt = -1  # what starts at ``off``: -1 for an IP header of ``version``, else a protocol number
        while True:
            if nxt == -1 or nxt == 4 or nxt == 41:  # an IP header (first, or tunnelled in IP)
                depth += 1
                if depth > MAX_LAYERS:
                    return TOO_DEEP
                if nxt != -1:
                    version = 4 if nxt == 4 else 6
                if version == 4:
                    if end - off < 20:
                        return Defect("truncated", "IPv4 header cut short", True)
                    vihl, total, ident, frag, _ttl, nxt, src, dst = _ipv4(data, off)
                    ihl = (vihl & 0x0F) * 4
                    if vihl >> 4 != 4 or ihl < 20:
                        return Defect("bad_ip_header", "IPv4 header with a bad version or length", True)
                    start = off + ihl
                    # total == 0 happens with TSO on the capturing host: trust the captured bytes.
                    length = min(total, avail) - ihl if total else end - start
                    if length < 0:
                        return Defect("bad_ip_header", "IPv4 length shorter than its header", True)
                    if nxt not in _DECODED_IN_IP:
                        return OTHER_PROTOCOL
                    if frag & 0x3FFF:  # more-fragments flag or a non-zero offset
                        whole = self.fragments.add(
                            (src, dst, ident, nxt), (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                            data[start : min(end, start + length)], length,
                        )
                        if type(whole) is not bytes:
                            return FRAGMENTS_OVER_LIMIT if whole is OVER_LIMIT else FRAGMENT
                        data, start, end, length = whole, 0, len(whole), len(whole)
                else:
                    if end - off < 40:
                        return Defect("truncated", "IPv6 header cut short", True)
                    if data[off] >> 4 != 6:
                        return Defect("bad_ip_header", "IPv6 header with a bad version", True)
                    length = _u16(data, off + 4)[0]
                    nxt = data[off + 6]
                    src = data[off + 8 : off + 24]
                    dst = data[off + 24 : off + 40]
                    start = off + 40
                    if not length:  # jumbogram or TSO: trust the captured bytes
                        length = end - start
                    length = min(length, avail - 40)
                off, avail = start, length
                continue
            if nxt in (TCP, UDP):
                return self._transport(frame, number, vlan, src, dst, nxt, data, off, end, avail)
            depth += 1
            if depth > MAX_LAYERS:
                return TOO_DEEP
            if nxt == 108:  # IPComp: decompress and go on inside
                plain = _ipcomp(data, off, min(end, off + avail))
                if type(plain) is not bytes:
                    return plain
                nxt, data, off, end, avail = data[off], plain, 0, len(plain), len(plain)
                continue
            if version == 4 or (nxt not in _ipv6_ext and nxt != 44 and nxt != 51):
                return OTHER_PROTOCOL
            # IPv6 extension headers
            if end - off < 8:
                return Defect("truncated", "IPv6 extension header cut short", True)
            if nxt == 44:  # fragment header
                frag, ident = struct.unpack_from("!HI", data, off + 2)
                inner = data[off]
                if frag & 0xFFF9:  # offset or more-fragments: a real fragment
                    body, length = off + 8, avail - 8
                    whole = self.fragments.add(
                        (src, dst, ident, inner), (frag >> 3) * 8, bool(frag & 1),
                        data[body : min(end, body + length)], length,
                    )
                    if type(whole) is not bytes:
                        return FRAGMENTS_OVER_LIMIT if whole is OVER_LIMIT else FRAGMENT
                    # The reassembled payload may hold more headers (destination options, AH).
                    nxt, data, off, end, avail = inner, whole, 0, len(whole), len(whole)
                    continue
                hlen = 8  # atomic fragment: carry on with the next header
            elif nxt == 51:  # AH
                hlen = (data[off + 1] + 2) * 4
            else:
                hlen = (data[off + 1] + 1) * 8
            nxt = data[off]
            off += hlen
            avail -= hlen

    # -- TCP / UDP -------------------------------------------------------------

    def _transport(self, frame, number, vlan, src, dst, proto, data, start, end, length):  # noqa: ANN001
        if proto == TCP:
            if end - start < 20:
                return Defect("truncated", "TCP header cut short", True)
            sport, dport, seq, ack, off_byte, flags, window = _tcp(data, start)
            hlen = (off_byte >> 4) * 4
            if hlen < 20:
                return Defect("bad_tcp_header", "TCP data offset below 20 bytes", True)
            keep = hlen > 20 and (flags & SYN or self._all_options)
            options = data[start + 20 : min(end, start + hlen)] if keep else b""
            payload = length - hlen
        else:
            if end - start < 8:
                return Defect("truncated", "UDP header cut short", True)
            sport, dport, ulen = _udp(data, start)
            seq = ack = flags = window = 0
            options = b""
            payload = ulen - 8 if ulen >= 8 else length - 8
        return Packet(number, frame.ts_ns, frame.wirelen, vlan, src, dst, proto, sport, dport,
                      seq, ack, flags, window, max(payload, 0), options)


class SynOptions(NamedTuple):
    """Options a SYN announces; ``None`` where the option is absent."""

    mss: int | None
    wscale: int | None
    sack_perm: bool
    timestamps: bool


def _walk_options(options: bytes) -> Iterator[tuple[int, int, int]]:
    """(kind, start, size) of each TCP option, up to End of List or the first malformed one."""
    i, n = 0, len(options)
    while i < n:
        kind = options[i]
        if kind == 0:
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return
        size = options[i + 1]
        if size < 2 or i + size > n:
            return
        yield kind, i, size
        i += size


def parse_syn_options(options: bytes) -> SynOptions:
    """Parse MSS, window scale, SACK-permitted and timestamps from raw TCP options."""
    mss = wscale = None
    sack = ts = False
    for kind, i, size in _walk_options(options):
        if kind == 2 and size == 4:
            mss = _u16(options, i + 2)[0]
        elif kind == 3 and size == 3:
            wscale = options[i + 2]
        elif kind == 4:
            sack = True
        elif kind == 8:
            ts = True
    return SynOptions(mss, wscale, sack, ts)


def parse_sack_blocks(options: bytes) -> tuple[tuple[int, int], ...]:
    """The SACK option's blocks (RFC 2018), (left edge, right edge) as sent; () without one."""
    for kind, i, size in _walk_options(options):
        if kind == 5:
            return tuple(struct.unpack_from("!II", options, j) for j in range(i + 2, i + size - 7, 8))
    return ()
