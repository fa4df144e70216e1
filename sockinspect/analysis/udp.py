"""UDP flows from packet columns: a flow per pair of endpoints (and VLANs, as for
TCP: :func:`.tcp.lookup`), side 0 the first sender; a datagram one way answered
by the next one back gives a round-trip time."""

from __future__ import annotations

from . import histograms, keys, tcp
from .jit import kernel
from .tables import G_EVENTS, G_UDP, H_UDP_RTT, NO_MAX, NO_MIN, NONE

UDP = 17
# A flow's row; U_VLAN0 .. U_P1, U_VLAN1, U_WAIT_NEXT and U_WAITING are where tcp.lookup and register
# expect them (the same columns as a TCP connection's).
(U_VLAN0, U_VLAN1, U_A0, U_A1, U_P0, U_P1) = (tcp.C_VLAN0, tcp.C_VLAN1, tcp.C_A0, tcp.C_A1, tcp.C_P0, tcp.C_P1)
U_WAIT_NEXT, U_WAITING = tcp.C_WAIT_NEXT, tcp.C_WAITING
U_PACKETS, U_BYTES, U_FRAME_BYTES = 6, 8, 10  # per side (+0, +1)
U_PENDING_TS, U_FIRST_TS, U_LAST_TS, U_FIRST_PKT, U_LAST_PKT, U_RTT_LO, U_RTT_HI = 12, 13, 14, 15, 16, 17, 18
U_WIDTH = max(tcp.C_WAITING, U_RTT_HI) + 1


@kernel
def feed(start, stop, number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, plen, by_key,
         half_open, U, G, EV, HT):  # noqa: ANN001, ANN201
    """Account packets ``start``..``stop`` (UDP ones) to their flows; returns the index
    of the first packet not done (a table ran short of rows)."""
    for i in range(start, stop):
        if proto[i] != UDP:
            continue
        g = G[0]
        if (g[G_UDP] >= len(U) or g[G_EVENTS] + 2 > len(EV) or histograms.crowded(HT, G, 2)
                or keys.full(by_key) or keys.full(half_open)):
            return i
        key = (vlan[i], src[i], sport[i], dst[i], dport[i])
        slot = tcp.lookup(by_key, half_open, U, key, vlan[i])
        if slot == NONE:
            slot = new_flow(i, key, by_key, half_open, U, G, number, ts, has_ts)
        u = U[slot]
        s = 0 if sport[i] == u[U_P0] and src[i] == u[U_A0] else 1
        u[U_PACKETS + s] += 1
        u[U_BYTES + s] += plen[i]
        u[U_FRAME_BYTES + s] += wirelen[i]
        if has_ts[i]:
            t = ts[i]
            if s == 0:
                if u[U_PENDING_TS] == NONE:
                    u[U_PENDING_TS] = t
            elif u[U_PENDING_TS] != NONE:
                rtt = t - u[U_PENDING_TS]
                histograms.duration(HT, G, H_UDP_RTT, slot, rtt)
                u[U_RTT_LO] = min(u[U_RTT_LO], rtt)
                u[U_RTT_HI] = max(u[U_RTT_HI], rtt)
                u[U_PENDING_TS] = NONE
            if u[U_LAST_TS] == NONE or t > u[U_LAST_TS]:
                u[U_LAST_TS] = t
            if u[U_FIRST_TS] == NONE or t < u[U_FIRST_TS]:
                u[U_FIRST_TS] = t
        u[U_LAST_PKT] = number[i]
    return stop


@kernel
def new_flow(i, key, by_key, half_open, U, G, number, ts, has_ts):  # noqa: ANN001, ANN201
    slot = G[0][G_UDP]
    G[0][G_UDP] += 1
    u = U[slot]
    for k in range(len(u)):
        u[k] = 0
    u[U_VLAN0], u[U_A0], u[U_P0], u[U_A1], u[U_P1] = key[0], key[1], key[2], key[3], key[4]
    u[U_VLAN1] = u[U_WAIT_NEXT] = u[U_PENDING_TS] = NONE
    u[U_FIRST_TS] = u[U_LAST_TS] = ts[i] if has_ts[i] else NONE
    u[U_FIRST_PKT] = u[U_LAST_PKT] = number[i]
    u[U_RTT_LO] = NO_MIN
    u[U_RTT_HI] = NO_MAX
    tcp.register(by_key, half_open, U, key, slot)
    return slot
