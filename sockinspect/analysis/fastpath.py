"""The common path, as kernels: pcap records into packet columns.

:func:`walk_pcap` finds the records in a buffer of pcap bytes; :func:`decode`
reads, for each, what the engine needs when the frame is the common kind:
Ethernet, Linux cooked (v1, v2) or raw IP, then IPv4 (unfragmented) or IPv6
(no extension header), then TCP or UDP. Everything else (VLAN tags, tunnels,
fragments, damage) is left to the general decoder, sockinspect._decode, which
fills the same columns: the rules for lengths are the same (see its docstring).
"""

from __future__ import annotations

from . import keys
from .jit import kernel
from .tables import NONE

TCP, UDP, SYN = 6, 17, 0x02
SLOW = -2  # a record the general decoder must read (in the proto column)
# Columns of the record table R: where the frame starts, its lengths and time.
R_OFF, R_CAPLEN, R_WIRELEN, R_TS = range(4)
R_WIDTH = 4
# Columns of the address table A (one row per distinct address, in order of first sight).
A_FAMILY, A_HI, A_LO = range(3)
A_WIDTH = 3
WALK_MORE, WALK_CORRUPT, WALK_FULL = 0, 1, 2


@kernel
def walk_pcap(buf, pos, end, big_endian, ns_per_unit, limit, R, first):  # noqa: ANN001, ANN201
    """Records from ``pos`` on, into R from row ``first``: returns (rows filled, where the
    next record starts, why it stopped: WALK_MORE at the buffer's end, WALK_CORRUPT at a
    record whose captured length exceeds ``limit``, WALK_FULL when R is full)."""
    row = first
    while pos + 16 <= end:
        if row == len(R):
            return row, pos, WALK_FULL
        caplen = u32(buf, pos + 8, big_endian)
        if caplen > limit:
            return row, pos, WALK_CORRUPT
        if pos + 16 + caplen > end:
            break
        r = R[row]
        r[R_OFF] = pos + 16
        r[R_CAPLEN] = caplen
        r[R_WIRELEN] = u32(buf, pos + 12, big_endian)
        r[R_TS] = u32(buf, pos, big_endian) * 1_000_000_000 + u32(buf, pos + 4, big_endian) * ns_per_unit
        row += 1
        pos += 16 + caplen
    return row, pos, WALK_MORE


@kernel
def byte(buf, i):  # noqa: ANN001, ANN201
    """buf[i] as a signed 64-bit number (numba keeps uint8 unsigned, and unsigned
    mixed with signed becomes a float)."""
    return buf[i] + 0


@kernel
def u32(buf, i, big_endian):  # noqa: ANN001, ANN201
    if big_endian:
        return (byte(buf, i) << 24) | (byte(buf, i + 1) << 16) | (byte(buf, i + 2) << 8) | byte(buf, i + 3)
    return byte(buf, i) | (byte(buf, i + 1) << 8) | (byte(buf, i + 2) << 16) | (byte(buf, i + 3) << 24)


@kernel
def be16(buf, i):  # noqa: ANN001, ANN201
    return (byte(buf, i) << 8) | byte(buf, i + 1)


@kernel
def decode(buf, R, rows, linktype, first_number, addr_ids, A, G, number, ts, wirelen, src, dst,
           proto, sport, dport, seq, ackno, flags, win, plen, o_mss, o_wscale, o_sack, o_ts):  # noqa: ANN001, ANN201
    """Fill the packet columns for records 0..rows of R. A record the common path does
    not cover gets ``proto`` SLOW. Addresses get ids from
    ``addr_ids`` (new ones appended to A; G[0][0] counts them). Returns how many
    addresses A would need beyond its rows (0: all fitted; else decode again)."""
    for i in range(rows):
        r = R[i]
        off, caplen, wire = r[R_OFF], r[R_CAPLEN], r[R_WIRELEN]
        end = off + caplen
        number[i] = first_number + i
        ts[i] = r[R_TS]
        wirelen[i] = wire
        proto[i] = SLOW
        if linktype == 1:
            if caplen < 14:
                continue
            etype = be16(buf, off + 12)
            ip = off + 14
        elif linktype == 113:
            if caplen < 16:
                continue
            etype = be16(buf, off + 14)
            ip = off + 16
        elif linktype == 276:
            if caplen < 20:
                continue
            etype = be16(buf, off)
            ip = off + 20
        elif linktype == 12 or linktype == 14 or linktype == 101 or linktype == 228 or linktype == 229:
            if caplen < 1:
                continue
            version = byte(buf, off) >> 4
            etype = 0x0800 if version == 4 else (0x86DD if version == 6 else 0)
            ip = off
        else:
            continue
        avail = wire - (ip - off)
        if etype == 0x0800:
            if end - ip < 20:
                continue
            vihl = byte(buf, ip)
            ihl = (vihl & 0x0F) * 4
            total = be16(buf, ip + 2)
            nxt = byte(buf, ip + 9)
            if vihl >> 4 != 4 or ihl < 20 or be16(buf, ip + 6) & 0x3FFF or (nxt != TCP and nxt != UDP):
                continue
            start = ip + ihl
            length = (total if total < avail else avail) - ihl if total else end - start
            if length < 0:
                continue
            family, hi_s, hi_d = 4, 0, 0
            lo_s = u32(buf, ip + 12, True)
            lo_d = u32(buf, ip + 16, True)
        elif etype == 0x86DD:
            if end - ip < 40 or byte(buf, ip) >> 4 != 6:
                continue
            nxt = byte(buf, ip + 6)
            if nxt != TCP and nxt != UDP:
                continue
            start = ip + 40
            length = be16(buf, ip + 4)
            if not length:
                length = end - start
            if length > avail - 40:
                length = avail - 40
            family = 6
            hi_s, lo_s = be64(buf, ip + 8), be64(buf, ip + 16)
            hi_d, lo_d = be64(buf, ip + 24), be64(buf, ip + 32)
        else:
            continue
        if nxt == TCP:
            if end - start < 20:
                continue
            hlen = (byte(buf, start + 12) >> 4) * 4
            if hlen < 20:
                continue
            f = byte(buf, start + 13)
            seq[i] = u32(buf, start + 4, True)
            ackno[i] = u32(buf, start + 8, True)
            flags[i] = f
            win[i] = be16(buf, start + 14)
            payload = length - hlen
            o_mss[i], o_wscale[i], o_sack[i], o_ts[i] = NONE, NONE, 0, 0
            if f & SYN and hlen > 20:
                syn_options(buf, start + 20, min(end, start + hlen), i, o_mss, o_wscale, o_sack, o_ts)
        else:
            if end - start < 8:
                continue
            ulen = be16(buf, start + 4)
            seq[i] = ackno[i] = flags[i] = win[i] = 0
            o_mss[i], o_wscale[i], o_sack[i], o_ts[i] = NONE, NONE, 0, 0
            payload = ulen - 8 if ulen >= 8 else length - 8
        sp, dp = be16(buf, start), be16(buf, start + 2)
        s_id = address(addr_ids, A, G, family, hi_s, lo_s)
        d_id = address(addr_ids, A, G, family, hi_d, lo_d)
        if s_id == NONE or d_id == NONE:
            return 1
        src[i], dst[i] = s_id, d_id
        proto[i] = nxt
        sport[i], dport[i] = sp, dp
        plen[i] = payload if payload > 0 else 0
    return 0


@kernel
def be64(buf, i):  # noqa: ANN001, ANN201
    """8 bytes as a signed 64-bit number (the bits are what matters: a key)."""
    v = 0
    for k in range(8):
        v = (v << 8) | byte(buf, i + k)
    return v


@kernel
def address(addr_ids, A, G, family, hi, lo):  # noqa: ANN001, ANN201
    """The id of an address; NONE when the address table A (or its key table) is full."""
    key = (family, hi, lo)
    found = keys.get(addr_ids, key)
    if found != NONE:
        return found
    n = G[0][0]
    if n == len(A) or keys.full(addr_ids):
        return NONE
    keys.put(addr_ids, key, n)
    A[n][A_FAMILY], A[n][A_HI], A[n][A_LO] = family, hi, lo
    G[0][0] = n + 1
    return n


@kernel
def syn_options(buf, i, n, row, o_mss, o_wscale, o_sack, o_ts):  # noqa: ANN001, ANN201
    """MSS, window scale, SACK-permitted and timestamps from a SYN's options byte(buf, i:n)
    (the rules of sockinspect._decode.parse_syn_options)."""
    while i < n:
        kind = byte(buf, i)
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            break
        size = byte(buf, i + 1)
        if size < 2 or i + size > n:
            break
        if kind == 2 and size == 4:
            o_mss[row] = be16(buf, i + 2)
        elif kind == 3 and size == 3:
            o_wscale[row] = byte(buf, i + 2)
        elif kind == 4:
            o_sack[row] = 1
        elif kind == 8:
            o_ts[row] = 1
        i += size
