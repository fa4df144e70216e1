"""TCP connections from packet columns: which connection and side each packet
belongs to (keys, VLANs, port reuse), roles, the handshake, what each side sent,
zero windows, request latency; per sender, ACK timing (:mod:`.acks`); Zeek's
states and history (:mod:`.zeek`).

One kernel, :func:`feed`, walks the packets in file order; no packet is kept.
Connections are identified by both endpoints plus the VLAN tags; a SYN starts a
new connection on the same ports (port reuse) when the previous one has ended,
has been idle long, or began with a different initial sequence number. A
connection that has closed (both FINs acknowledged) and then been quiet for
``CLOSED_QUIET_NS`` of capture time, or ended otherwise (a RST, or FINs not
both acknowledged) and been quiet for ``ENDED_QUIET_NS``, is over: its next
packet starts another, and :func:`expire` retires it, so that memory follows
the connections open at once. A retired connection goes out as an EV_RETIRE
event; Python makes its record, then :func:`release_recorded` frees its rows.
The client is the SYN sender (or, mid-stream, a guess from the ports: marked
inferred). Rows: ``C`` per connection (columns ``C_*``, then Zeek's from
``Z_BASE``), ``D`` per side (``D_*``, row 2 x connection + side, side 0 the
first sender), ``T`` per sender (acks.T_*).
"""

from __future__ import annotations

from .. import _linux
from .._linux import TIMESTAMP_OPTION_BYTES
from . import acks, histograms, keys, zeek
from .jit import kernel
from .tables import (
    EV_RETIRE,
    G_CLOCK,
    G_CONN_FREE,
    G_CONNS,
    G_EVENTS,
    G_HOLE_FREE,
    G_SEG_FREE,
    G_SEG_USED,
    H_FIRST_BYTE,
    H_LATENCY,
    HALF,
    M32,
    NO_MAX,
    NO_MIN,
    NONE,
    NOTE_CONNECTION,
    NOTE_RETRANSMISSION,
    NOTE_WINDOW_FULL,
    NOTE_ZERO_WINDOW,
    capped_sum,
    event,
    note,
)

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP = 6
IDLE_RESTART_NS = 300 * 1_000_000_000  # a SYN after 5 idle minutes is a new connection
# A connection that ended and was then quiet this long is over. After a complete close only a
# FIN resent for an ACK lost beyond the capture point may follow: 1 s. After a RST (packets in
# flight, injected RSTs) or an unacknowledged FIN: 5 s, Zeek's tcp_reset_delay and tcp_close_delay.
CLOSED_QUIET_NS = 1_000_000_000
ENDED_QUIET_NS = 5 * 1_000_000_000
# C_LIVE: a free row, a connection, one that is over (its record is due), one whose record is made
FREE, LIVE, RETIRING, RECORDING = range(4)
# The port ranges as numbers (a kernel reads no range objects).
WELL_KNOWN_END = _linux.WELL_KNOWN_PORTS.stop
LINUX_EPHEMERAL = (_linux.LINUX_EPHEMERAL_PORTS.start, _linux.LINUX_EPHEMERAL_PORTS.stop)
IANA_EPHEMERAL = (_linux.IANA_EPHEMERAL_PORTS.start, _linux.IANA_EPHEMERAL_PORTS.stop)

(C_VLAN0, C_VLAN1, C_A0, C_A1, C_P0, C_P1, C_CLIENT, C_GUESSED, C_SYN_TS, C_LAST_SYN_TS, C_SYNACK_TS,
 C_ACK_TS, C_SYNS, C_SYNACKS, C_FIRST_CLOSE, C_FIRST_RST, C_FIRST_TS, C_LAST_TS, C_FIRST_PKT, C_LAST_PKT,
 C_REQ_TS, C_REPLY_FIRST_TS, C_REPLY_LAST_TS, C_WSHIFT, C_WSHIFT0, C_WSHIFT1, C_WAIT_NEXT,
 C_WAITING, C_LAT_LO, C_LAT_HI, C_FB_LO, C_FB_HI, C_LIVE, C_INDEX) = range(34)
Z_BASE = 34
C_WIDTH = Z_BASE + zeek.Z_WIDTH

(D_PACKETS, D_PAYLOAD, D_SEGMENTS, D_FRAME_BYTES, D_ISN, D_RETRANS, D_FINS, D_RSTS, D_FIRST_DATA_TS,
 D_LAST_DATA_TS, D_WND_FLAGS, D_WND_ACK, D_WND_WIN, D_ZERO_WINDOWS, D_ZERO_SINCE, D_ZERO_NS,
 D_WINDOW_FULL, D_OPTS, D_MSS, D_WSCALE, D_SACK, D_TSOPT, D_FIN_END, D_FIN_ACKED) = range(24)
D_WIDTH = 24


@kernel
def feed(start, stop, order, clock, number, ts, has_ts, wirelen, vlan, src, dst, sport, dport, seq, ackno,
         flags, win, plen, o_mss, o_wscale, o_sack, o_ts, by_key, half_open, C, D, T, P, H, G, EV, HT):  # noqa: ANN001, ANN201
    """Account the TCP packets ``order[start:stop]`` (rows of the packet columns, in file
    order) to their connections; ``clock[i]``: the latest TCP timestamp up to packet ``i``
    in the file (see :func:`clock_column`). Returns the position in ``order`` of the first
    packet not done: before it, a table ran short of rows."""
    for j in range(start, stop):
        i = order[j]
        g = G[0]
        if (g[G_CONN_FREE] == NONE or g[G_SEG_FREE] == NONE or g[G_HOLE_FREE] == NONE
                or g[G_EVENTS] + g[G_SEG_USED] + 16 > len(EV) or histograms.crowded(HT, G, g[G_SEG_USED] + 16)
                or keys.full(by_key) or keys.full(half_open)):
            return j
        g[G_CLOCK] = clock[i]
        key = (vlan[i], src[i], sport[i], dst[i], dport[i])
        slot = lookup(by_key, half_open, C, key, vlan[i])
        if slot != NONE and expired(C[slot], D, slot, g[G_CLOCK]):
            retire(by_key, half_open, C, HT, G, EV, slot)
            slot = NONE
        f = flags[i]
        if slot == NONE:
            slot = new_connection(i, key, by_key, half_open, C, D, T, G, EV, HT, number, ts, has_ts)
            s = 0
        else:
            c = C[slot]
            s = 0 if sport[i] == c[C_P0] and src[i] == c[C_A0] else 1
            if f & (SYN | ACK) == SYN and starts_anew(C[slot], D, slot, s, seq[i], ts[i], has_ts[i]):
                slot = new_connection(i, key, by_key, half_open, C, D, T, G, EV, HT, number, ts, has_ts)
                s = 0
        note(EV, G, number[i], NOTE_CONNECTION, C[slot][C_INDEX])
        packet(C, D, T, P, H, G, EV, HT, slot, s, number[i], ts[i], has_ts[i], wirelen[i], seq[i], ackno[i], f,
               win[i], plen[i], o_mss[i], o_wscale[i], o_sack[i], o_ts[i])
    return stop


@kernel
def lookup(by_key, half_open, C, key, vlan):  # noqa: ANN001, ANN201
    """The connection of a packet with directional ``key``: by the key, else the
    connection that waits for its first reverse packet (on its own VLAN if one
    does, else the last one), since routers on a stick put the two directions of
    one connection on different VLANs. NONE: a new connection."""
    found = keys.get(by_key, key)
    if found != NONE:
        return found
    reverse = (key[3], key[4], key[1], key[2])
    head = keys.get(half_open, reverse)
    if head == NONE:
        return NONE
    found = k = head
    while k != NONE:  # the first on the packet's VLAN, else the last
        if C[k][C_VLAN0] == vlan:
            found = k
            break
        found = k
        k = C[k][C_WAIT_NEXT]
    unwait(half_open, C, reverse, found)
    keys.put(by_key, key, found)
    C[found][C_VLAN1] = vlan
    return found


@kernel
def unwait(half_open, C, wkey, slot):  # noqa: ANN001, ANN201
    """Take ``slot`` off the list of connections waiting under ``wkey``."""
    prev = NONE
    k = keys.get(half_open, wkey)
    while k != NONE and k != slot:
        prev = k
        k = C[k][C_WAIT_NEXT]
    if k == NONE:
        return
    after = C[k][C_WAIT_NEXT]
    if prev == NONE:
        if after == NONE:
            keys.pop(half_open, wkey)
        else:
            keys.put(half_open, wkey, after)
    else:
        C[prev][C_WAIT_NEXT] = after
    C[k][C_WAIT_NEXT] = NONE
    C[k][C_WAITING] = 0


@kernel
def new_connection(i, key, by_key, half_open, C, D, T, G, EV, HT, number, ts, has_ts):  # noqa: ANN001, ANN201
    """A connection whose first packet is ``i``, registered under ``key`` (retiring
    any older connection there), in a free row."""
    old = keys.get(by_key, key)
    if old != NONE:
        retire(by_key, half_open, C, HT, G, EV, old)
    slot = G[0][G_CONN_FREE]
    G[0][G_CONN_FREE] = C[slot][C_WAIT_NEXT]
    c = C[slot]
    for k in range(len(c)):
        c[k] = 0
    c[C_LIVE] = LIVE
    c[C_INDEX] = G[0][G_CONNS]
    G[0][G_CONNS] += 1
    c[C_VLAN0], c[C_A0], c[C_P0], c[C_A1], c[C_P1] = key[0], key[1], key[2], key[3], key[4]
    c[C_VLAN1] = NONE
    c[C_CLIENT] = NONE
    c[C_GUESSED] = infer_client(key[2], key[4])
    for k in (C_SYN_TS, C_LAST_SYN_TS, C_SYNACK_TS, C_ACK_TS, C_FIRST_CLOSE, C_FIRST_RST, C_REQ_TS,
              C_REPLY_FIRST_TS, C_REPLY_LAST_TS, C_WAIT_NEXT):
        c[k] = NONE
    c[C_FIRST_TS] = c[C_LAST_TS] = ts[i] if has_ts[i] else NONE
    c[C_FIRST_PKT] = c[C_LAST_PKT] = number[i]
    c[C_LAT_LO] = c[C_FB_LO] = NO_MIN
    c[C_LAT_HI] = c[C_FB_HI] = NO_MAX
    zeek_init(c)
    for s in (0, 1):
        d = D[2 * slot + s]
        for k in range(len(d)):
            d[k] = 0
        d[D_ISN] = d[D_FIRST_DATA_TS] = d[D_LAST_DATA_TS] = d[D_ZERO_SINCE] = NONE
        d[D_MSS] = d[D_WSCALE] = d[D_FIN_END] = NONE
        sender_init(T[2 * slot + s])
    register(by_key, half_open, C, key, slot)
    return slot


@kernel
def register(by_key, half_open, C, key, slot):  # noqa: ANN001, ANN201
    """File row ``slot`` (a connection, or a UDP flow: the same key columns) under its
    first packet's ``key``, and as waiting for its first reverse packet."""
    keys.put(by_key, key, slot)
    wkey = (key[1], key[2], key[3], key[4])
    head = keys.get(half_open, wkey)
    if head == NONE:
        keys.put(half_open, wkey, slot)
    else:
        while C[head][C_WAIT_NEXT] != NONE:
            head = C[head][C_WAIT_NEXT]
        C[head][C_WAIT_NEXT] = slot
    C[slot][C_WAITING] = 1


@kernel
def drop(by_key, half_open, C, old):  # noqa: ANN001, ANN201
    """Forget connection ``old``'s keys: a new connection took its place."""
    c = C[old]
    key = (c[C_VLAN0], c[C_A0], c[C_P0], c[C_A1], c[C_P1])
    if keys.get(by_key, key) == old:
        keys.pop(by_key, key)
    if c[C_VLAN1] != NONE:
        reverse = (c[C_VLAN1], c[C_A1], c[C_P1], c[C_A0], c[C_P0])
        if keys.get(by_key, reverse) == old:
            keys.pop(by_key, reverse)
    if c[C_WAITING]:
        unwait(half_open, C, (c[C_A0], c[C_P0], c[C_A1], c[C_P1]), old)


@kernel
def expired(c, D, slot, clock):  # noqa: ANN001, ANN201
    """Whether connection ``slot`` is over: closed, or ended, and quiet since by the
    capture's ``clock`` (its latest timestamp so far, so that the answer never depends on
    when it is asked)."""
    if c[C_LAST_TS] == NONE:
        return False
    quiet = clock - c[C_LAST_TS]
    a, b = D[2 * slot], D[2 * slot + 1]
    if a[D_FIN_ACKED] and b[D_FIN_ACKED]:
        return quiet > CLOSED_QUIET_NS
    return quiet > ENDED_QUIET_NS and (c[C_FIRST_RST] != NONE or (a[D_FINS] > 0 and b[D_FINS] > 0))


@kernel
def retire(by_key, half_open, C, HT, G, EV, slot):  # noqa: ANN001, ANN201
    """Connection ``slot`` is over: the reply going on ends, its keys are forgotten, and
    an EV_RETIRE event asks for its record (its rows stay until :func:`release_recorded`)."""
    c = C[slot]
    if c[C_REPLY_FIRST_TS] != NONE:
        reply_done(c, slot, HT, G)
    drop(by_key, half_open, C, slot)
    c[C_LIVE] = RETIRING
    e = EV[event(EV, G, EV_RETIRE)]
    e[1] = slot


@kernel
def expire(by_key, half_open, C, D, HT, G, EV, start, everything):  # noqa: ANN001, ANN201
    """Retire the connections of rows ``start``.. that have expired (every one, with
    ``everything``: the capture's end). Returns the row where it stopped: len(C), or
    before when EV or HT ran short of room."""
    g = G[0]
    for slot in range(start, len(C)):
        if g[G_EVENTS] >= len(EV) or histograms.crowded(HT, G, 2):
            return slot
        if C[slot][C_LIVE] == LIVE and (everything or expired(C[slot], D, slot, g[G_CLOCK])):
            retire(by_key, half_open, C, HT, G, EV, slot)
    return len(C)


@kernel
def release_recorded(C, T, P, H, G):  # noqa: ANN001, ANN201
    """Free the rows of the connections whose records are made."""
    for slot in range(len(C)):
        if C[slot][C_LIVE] == RECORDING:
            acks.forget(T, P, H, G, 2 * slot)
            acks.forget(T, P, H, G, 2 * slot + 1)
            C[slot][C_LIVE] = FREE
            C[slot][C_WAIT_NEXT] = G[0][G_CONN_FREE]
            G[0][G_CONN_FREE] = slot


@kernel
def zeek_init(c):  # noqa: ANN001, ANN201
    for k in range(zeek.Z_WIDTH):
        c[Z_BASE + k] = 0
    for k in (zeek.Z_LAST_SYN, zeek.Z_LAST_FIN, zeek.Z_LAST_RST):
        c[Z_BASE + k] = NONE
        c[Z_BASE + k + 1] = NONE
    for s in (0, 1):
        c[Z_BASE + zeek.Z_SCALED + 4 * s + 1] = 1
        c[Z_BASE + zeek.Z_SCALED + 4 * s + 3] = 1


@kernel
def sender_init(t):  # noqa: ANN001, ANN201
    for k in range(len(t)):
        t[k] = 0
    t[acks.T_HEAD] = t[acks.T_TAIL] = t[acks.T_SND_UNA] = t[acks.T_HIGH] = NONE
    t[acks.T_SML_END] = t[acks.T_HOLES] = NONE
    t[acks.T_FOLLOW] = acks.FOLLOW_BASE_NS
    t[acks.T_DELAY_LO] = NO_MIN
    t[acks.T_DELAY_HI] = NO_MAX


@kernel
def infer_client(port0, port1):  # noqa: ANN001, ANN201
    """Guess which side (0 = first sender) is the client of a mid-stream connection:
    the side not on a well-known port, else the side on an ephemeral port, else 0."""
    well0, well1 = port0 < WELL_KNOWN_END, port1 < WELL_KNOWN_END
    if well0 != well1:
        return 0 if well1 else 1
    eph0 = LINUX_EPHEMERAL[0] <= port0 < LINUX_EPHEMERAL[1] or IANA_EPHEMERAL[0] <= port0 < IANA_EPHEMERAL[1]
    eph1 = LINUX_EPHEMERAL[0] <= port1 < LINUX_EPHEMERAL[1] or IANA_EPHEMERAL[0] <= port1 < IANA_EPHEMERAL[1]
    if eph0 != eph1:
        return 0 if eph0 else 1
    return 0


@kernel
def starts_anew(c, D, slot, s, seq, ts, has_ts):  # noqa: ANN001, ANN201
    """Whether this SYN (without ACK) from side ``s`` opens a new connection."""
    if c[C_FIRST_RST] != NONE or (D[2 * slot][D_FINS] > 0 and D[2 * slot + 1][D_FINS] > 0):
        return True  # it ended: even with the same ISN, a new attempt after a RST (or both FINs)
    side = D[2 * slot + s]
    if side[D_ISN] != NONE:
        return seq != side[D_ISN]  # the same ISN: a retransmitted SYN
    if c[C_CLIENT] == NONE:  # no SYN seen yet: this one opens a new connection
        return True
    if has_ts and c[C_LAST_TS] != NONE and ts - c[C_LAST_TS] > IDLE_RESTART_NS:
        return True
    return side[D_PACKETS] > 0 and c[C_CLIENT] != s


@kernel
def packet(C, D, T, P, H, G, EV, HT, slot, s, number, ts, has_ts, wirelen, seq, ackno, flags, win, n, o_mss,
           o_wscale, o_sack, o_ts):  # noqa: ANN001, ANN201
    """One packet from side ``s`` of connection ``slot``."""
    c = C[slot]
    side = D[2 * slot + s]
    peer = D[2 * slot + 1 - s]
    d = 2 * slot + s
    side[D_PACKETS] += 1
    side[D_FRAME_BYTES] += wirelen
    resent = 0
    if flags & ACK:
        acks.ack(T, P, G, EV, HT, 2 * slot + 1 - s, ackno, ts, number, n > 0, has_ts)
        if peer[D_FIN_END] != NONE and ((ackno - peer[D_FIN_END]) & M32) < HALF:
            peer[D_FIN_ACKED] = 1
    if not win:
        if not flags & (SYN | FIN | RST):
            # tshark's zero_window, unless a zero-window probe: one byte at the next
            # sequence number while the peer's window is zero
            if not (n == 1 and seq == T[d][acks.T_HIGH] and peer[D_WND_WIN] == 0):
                side[D_ZERO_WINDOWS] += 1
                note(EV, G, number, NOTE_ZERO_WINDOW, 0)
            if side[D_ZERO_SINCE] == NONE and has_ts:
                side[D_ZERO_SINCE] = ts
    elif side[D_ZERO_SINCE] != NONE and has_ts:
        side[D_ZERO_NS] = capped_sum(side[D_ZERO_NS], ts - side[D_ZERO_SINCE])  # the window reopened
        side[D_ZERO_SINCE] = NONE
    if n:
        if c[C_WSHIFT] and not flags & (SYN | FIN | RST) and peer[D_WND_FLAGS] & ACK:
            # tshark's window_full: data up to the right edge of the peer's window
            shift = c[C_WSHIFT1] if s == 0 else c[C_WSHIFT0]
            p_win = peer[D_WND_WIN] if peer[D_WND_FLAGS] & SYN else peer[D_WND_WIN] << shift
            if not (seq + n - peer[D_WND_ACK] - p_win) & M32:
                side[D_WINDOW_FULL] += 1
                note(EV, G, number, NOTE_WINDOW_FULL, 0)
        if acks.data(T, P, H, G, EV, d, seq, n, ts, number, flags & FIN, has_ts):
            side[D_RETRANS] += 1
            note(EV, G, number, NOTE_RETRANSMISSION, 0)
            resent = 1
        if has_ts:  # request -> reply latency
            client = c[C_CLIENT] if c[C_CLIENT] != NONE else c[C_GUESSED]
            if s == client:
                if c[C_REPLY_FIRST_TS] != NONE:  # a new request: the last reply is complete
                    reply_done(c, slot, HT, G)
                    c[C_REQ_TS] = ts
                elif c[C_REQ_TS] == NONE:
                    c[C_REQ_TS] = ts
            elif c[C_REQ_TS] != NONE:
                if c[C_REPLY_FIRST_TS] == NONE:
                    c[C_REPLY_FIRST_TS] = ts
                c[C_REPLY_LAST_TS] = ts
        if not side[D_SEGMENTS]:
            side[D_FIRST_DATA_TS] = ts if has_ts else NONE
        if has_ts:
            side[D_LAST_DATA_TS] = ts
        side[D_PAYLOAD] += n
        side[D_SEGMENTS] += 1
        histograms.size(HT, G, d, n)
    side[D_WND_FLAGS] = flags
    side[D_WND_ACK] = ackno
    side[D_WND_WIN] = win
    if flags & (SYN | FIN | RST):
        control(c, D, slot, s, flags, seq, n, ts, has_ts, o_mss, o_wscale, o_sack, o_ts)
    client = c[C_CLIENT] if c[C_CLIENT] != NONE else c[C_GUESSED]
    zeek.packet(c, Z_BASE, s, s == client, client, flags, seq, n, win, resent)
    if (c[C_ACK_TS] == NONE and flags & (ACK | SYN | RST) == ACK and s == c[C_CLIENT]
            and (c[C_SYNACKS] or (c[C_SYNS] and ackno and not flags & FIN))):
        # The handshake's ACK (tshark's rule: ACK set, SYN and RST clear); after the SYN
        # alone when the capture missed the SYN/ACK (it sees one direction): a half-seen
        # handshake, if the ACK acknowledges something and is no FIN (tshark gives no RTT
        # for a TCP Fast Open SYN followed by FIN/ACK with acknowledgment number 0).
        c[C_ACK_TS] = ts if has_ts else NONE
        configure_senders(c, D, T, slot)
    if has_ts:
        if c[C_LAST_TS] == NONE:
            c[C_FIRST_TS] = c[C_LAST_TS] = ts
        elif ts > c[C_LAST_TS]:
            c[C_LAST_TS] = ts
        elif ts < c[C_FIRST_TS]:
            c[C_FIRST_TS] = ts
    c[C_LAST_PKT] = number


@kernel
def reply_done(c, slot, HT, G):  # noqa: ANN001, ANN201
    """The reply to the current request ended (the client spoke again): its latency to the
    reply's last byte and to its first."""
    latency = c[C_REPLY_LAST_TS] - c[C_REQ_TS]
    first_byte = c[C_REPLY_FIRST_TS] - c[C_REQ_TS]
    histograms.duration(HT, G, H_LATENCY, slot, latency)
    histograms.duration(HT, G, H_FIRST_BYTE, slot, first_byte)
    c[C_LAT_LO] = min(c[C_LAT_LO], latency)
    c[C_LAT_HI] = max(c[C_LAT_HI], latency)
    c[C_FB_LO] = min(c[C_FB_LO], first_byte)
    c[C_FB_HI] = max(c[C_FB_HI], first_byte)
    c[C_REQ_TS] = c[C_REPLY_FIRST_TS] = c[C_REPLY_LAST_TS] = NONE


@kernel
def control(c, D, slot, s, flags, seq, n, ts, has_ts, o_mss, o_wscale, o_sack, o_ts):  # noqa: ANN001, ANN201
    """SYN, SYN/ACK, FIN and RST: roles, handshake times, teardown."""
    side = D[2 * slot + s]
    t = ts if has_ts else NONE
    if flags & SYN:
        if flags & ACK:
            if c[C_CLIENT] == NONE:
                c[C_CLIENT] = 1 - s
            if s != c[C_CLIENT]:
                c[C_SYNACKS] += 1
                if c[C_SYNACK_TS] == NONE:
                    c[C_SYNACK_TS] = t
                    syn_options(side, o_mss, o_wscale, o_sack, o_ts)
                    window_scaling(c, D, slot)
                elif (c[C_ACK_TS] == NONE and has_ts and c[C_LAST_SYN_TS] != NONE
                      and c[C_SYNACK_TS] < c[C_LAST_SYN_TS]):  # it answers a retried SYN
                    c[C_SYNACK_TS] = t
        else:
            if c[C_CLIENT] == NONE or (c[C_SYNS] == 0 and c[C_CLIENT] != s):
                c[C_CLIENT] = s
            if s == c[C_CLIENT]:
                c[C_SYNS] += 1
                if side[D_ISN] == NONE:
                    side[D_ISN] = seq
                    syn_options(side, o_mss, o_wscale, o_sack, o_ts)
                    c[C_SYN_TS] = t
                    window_scaling(c, D, slot)
                if c[C_ACK_TS] == NONE:  # the RTT runs from the last SYN before the ACK (tshark's)
                    c[C_LAST_SYN_TS] = t
    if flags & FIN:
        side[D_FINS] += 1
        side[D_FIN_END] = (seq + n + 1) & M32
        if c[C_FIRST_CLOSE] == NONE:
            c[C_FIRST_CLOSE] = s
    if flags & RST:
        side[D_RSTS] += 1
        if c[C_FIRST_RST] == NONE:
            c[C_FIRST_RST] = s
        if c[C_FIRST_CLOSE] == NONE:
            c[C_FIRST_CLOSE] = s


@kernel
def syn_options(side, o_mss, o_wscale, o_sack, o_ts):  # noqa: ANN001, ANN201
    side[D_OPTS] = 1
    side[D_MSS] = o_mss
    side[D_WSCALE] = o_wscale
    side[D_SACK] = o_sack
    side[D_TSOPT] = o_ts


@kernel
def window_scaling(c, D, slot):  # noqa: ANN001, ANN201
    """Once both sides' SYN options are known: the shift of each side's windows (RFC 7323:
    only when both sent the option; at most 14), so that window_full can be judged."""
    a, b = D[2 * slot], D[2 * slot + 1]
    if not a[D_OPTS] or not b[D_OPTS]:
        return
    c[C_WSHIFT] = 1
    if a[D_WSCALE] != NONE and b[D_WSCALE] != NONE:
        c[C_WSHIFT0] = min(a[D_WSCALE], 14)
        c[C_WSHIFT1] = min(b[D_WSCALE], 14)
    else:
        c[C_WSHIFT0] = c[C_WSHIFT1] = 0


@kernel
def configure_senders(c, D, T, slot):  # noqa: ANN001, ANN201
    """With the handshake done: each sender's MSS is what its peer announced."""
    a, b = D[2 * slot], D[2 * slot + 1]
    both_ts = a[D_OPTS] and b[D_OPTS] and a[D_TSOPT] and b[D_TSOPT]
    rtt = 0
    if c[C_ACK_TS] != NONE and c[C_LAST_SYN_TS] != NONE:
        rtt = c[C_ACK_TS] - c[C_LAST_SYN_TS]
    # Each receiver's leg: from the capture point to it and back, as the handshake timed it
    # (SYN -> SYN/ACK for the server, SYN/ACK -> ACK for the client).
    to_server = to_client = 0
    if c[C_SYNACK_TS] != NONE and c[C_LAST_SYN_TS] != NONE:
        to_server = max(c[C_SYNACK_TS] - c[C_LAST_SYN_TS], 0)
        if c[C_ACK_TS] != NONE:
            to_client = max(c[C_ACK_TS] - c[C_SYNACK_TS], 0)
    for s in (0, 1):
        peer = D[2 * slot + 1 - s]
        peer_mss = peer[D_MSS] if peer[D_OPTS] else NONE
        t = T[2 * slot + s]
        if peer_mss != NONE and peer_mss != 0:
            t[acks.T_MSS] = peer_mss - (TIMESTAMP_OPTION_BYTES if both_ts else 0)
            t[acks.T_HAS_MSS] = 1
        t[acks.T_FOLLOW] = capped_sum(acks.FOLLOW_BASE_NS, max(rtt, 0))
        t[acks.T_LEG] = to_server if s == c[C_CLIENT] else to_client
