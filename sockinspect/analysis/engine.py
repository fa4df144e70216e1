"""The engine's driver: packets in chunks of columns through the kernels, the
kernels' events aggregated, and one record per TCP connection as it retires (see
.tcp: it ended and went quiet, or the capture ended), one per UDP flow at the end.

Python does what is per connection (records, names, statistics); the kernels do
what is per packet. ``compiled``: run them with numba on int64 arrays (see .jit).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterable

from .._decode import Packet, parse_syn_options
from .._delays import NagleEvidence, Stall, nagle_verdict
from .._linux import IANA_EPHEMERAL_PORTS, LINUX_EPHEMERAL_PORTS
from .._metrics import conn_state, duration_stats, size_edges, sizes
from .._model import Direction, Endpoint, Handshake, Selection, TcpConnection, UdpDirection, UdpFlow
from . import acks, fastpath, histograms, jit, keys, statistics, tcp, udp, zeek
from .tables import (
    EV_ACK_LOG,
    EV_NOTE,
    EV_RETIRE,
    EV_STALL,
    EV_WIDTH,
    G_CLOCK,
    G_CONN_FREE,
    G_EVENTS,
    G_HIST_USED,
    G_HOLE_FREE,
    G_LOG,
    G_SEG_FREE,
    G_SEG_USED,
    G_UDP,
    G_WIDTH,
    H_DELAY,
    H_FIRST_BYTE,
    H_LATENCY,
    H_SIZE,
    H_UDP_RTT,
    HIST_COUNT,
    HIST_KEY,
    HIST_WIDTH,
    HOLE_NEXT,
    HOLE_WIDTH,
    NO_MAX,
    NONE,
    SEG_NEXT,
    SEG_WIDTH,
    capped_sum,
    clamped,
    grow,
    link_free,
    new_table,
)

CHUNK_PACKETS = 1 << 16
RETIRE_BATCH = 4096  # connections whose records are made at once (they wait in their rows)
SCAN_EVERY_NS = 125_000_000  # of capture time: how late a connection may be found over (see .tcp)
_NO_OPTIONS = (NONE, NONE, 0, 0)
NOTES = ("retransmission", "zero_window", "window_full", "delayed_ack", "connection", "nagle_held")  # by NOTE_*


class Engine:
    """Feed packets in file order (:meth:`feed`), then :meth:`finish`.
    ``ack_log``: a list to which every ACK that newly covers data is appended, as
    (ACK packet, first and last covered data packet, segments covered, delay from the
    last one in ns, all sent once, ends exactly at the last data byte).
    ``notes``: a list to which (packet number, what, value) is appended for each
    packet the rules single out: "retransmission", "zero_window", "window_full",
    "delayed_ack" (value: its delay in ns), in the order the engine found them; and
    "connection" for every TCP packet (value: the index of its connection's record).
    ``record_only``: make the record of the connection whose first packet has this
    number, and of no other (one connection looked at closely, see sockinspect._packets).
    ``on_connection``: called with each TCP connection's record as it retires, which
    the engine then forgets (memory follows the connections open at once); without
    it, :meth:`finish` returns them all."""

    def __init__(self, compiled: bool = False, ack_log: list | None = None,
                 on_connection: Callable[[TcpConnection], None] | None = None,
                 notes: list[tuple[int, str, int]] | None = None, record_only: int | None = None) -> None:
        compiled = compiled or jit.compiled()  # once compiled, the kernels are numba's
        if compiled:
            jit.compile_kernels()
        self.compiled = compiled
        self.ack_log = ack_log
        self.notes = notes
        self._addrs: dict[bytes, int] = {}
        self._vlans: dict[tuple[int, ...], int] = {(): 0}
        self._options: dict[bytes, tuple[int, int, int, int]] = {b"": _NO_OPTIONS}
        c = compiled
        self.G = new_table(1, G_WIDTH, c)
        self.G[0][G_LOG] = 1 if ack_log is not None or notes is not None else 0
        self.G[0][G_CLOCK] = NO_MAX  # no timestamp yet
        # Small at first (a capture of 30 packets is the common case), doubled when full.
        self.C = new_table(16, tcp.C_WIDTH, c)
        self.D = new_table(32, tcp.D_WIDTH, c)
        self.T = new_table(32, acks.T_WIDTH, c)
        self.U = new_table(16, udp.U_WIDTH, c)
        self.P = new_table(64, SEG_WIDTH, c)
        self.H = new_table(16, HOLE_WIDTH, c)
        link_free(self.C, 0, tcp.C_WAIT_NEXT)
        link_free(self.P, 0, SEG_NEXT)
        link_free(self.H, 0, HOLE_NEXT)
        self.G[0][G_CONN_FREE] = self.G[0][G_SEG_FREE] = self.G[0][G_HOLE_FREE] = 0
        self.EV = new_table(CHUNK_PACKETS * 2 if c else 256, EV_WIDTH, c)  # drained after every chunk
        # Addresses by id when packets come as columns from the pcap kernels (.pcapfile):
        # (family, high 64 bits, low 64 bits) -> id, and a row of A per id.
        self.addr_ids = keys.new_keys(3, c)
        self.A = new_table(1024, fastpath.A_WIDTH, c)
        self.AG = new_table(1, 1, c)
        self.tcp_keys, self.tcp_waiting = keys.new_keys(5, c), keys.new_keys(4, c)
        self.udp_keys, self.udp_waiting = keys.new_keys(5, c), keys.new_keys(4, c)
        self.HT = new_table(1 << 16 if c else 64, HIST_WIDTH, c)
        # What the events add up to, per sender row (d).
        self.stalls: dict[int, list[Stall]] = {}
        self._retiring: list[int] = []
        self._scanned_at = NO_MAX  # the clock when expired connections were last looked for
        self.on_connection = on_connection
        self.record_only = record_only
        self.connections: list[TcpConnection] = []
        self._names: list[str] = []  # by address id
        self._named = 0  # rows of A named so far

    def feed(self, packets: Iterable[Packet]) -> None:
        """Account packets (in file order) to their connections and flows."""
        chunk: list[Packet] = []
        for pkt in packets:
            chunk.append(pkt)
            if len(chunk) == CHUNK_PACKETS:
                self.feed_chunk(chunk)
                chunk = []
        if chunk:
            self.feed_chunk(chunk)

    def feed_chunk(self, pkts: list[Packet]) -> None:
        """Account a list of packets, the next in file order (best at most CHUNK_PACKETS)."""
        if pkts:
            self.feed_columns(self._columns(pkts))

    def feed_columns(self, cols: tuple) -> None:
        """Account packets given as columns (see ``_columns``; rows whose protocol is
        neither TCP nor UDP are left out)."""
        (number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
         o_mss, o_wscale, o_sack, o_ts) = cols
        n = len(number)
        i = 0
        while i < n:
            i = tcp.feed(i, n, number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno,
                         flags, win, plen, o_mss, o_wscale, o_sack, o_ts, self.tcp_keys, self.tcp_waiting,
                         self.C, self.D, self.T, self.P, self.H, self.G, self.EV, self.HT)
            self._drain()
            if i < n:
                self._make_room()
        clock = int(self.G[0][G_CLOCK])
        if clock - self._scanned_at >= SCAN_EVERY_NS:  # not every block: the scan reads every row
            self._scanned_at = clock
            self._expire(everything=False)
        i = 0
        while i < n:
            i = udp.feed(i, n, number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, plen,
                         self.udp_keys, self.udp_waiting, self.U, self.G, self.EV, self.HT)
            self._drain()
            if i < n:
                self._make_room()

    def _columns(self, pkts: list[Packet]) -> tuple:
        """The chunk's packets as columns of integers (addresses, VLANs and SYN options by id)."""
        (number, ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
         options) = zip(*pkts, strict=True)
        has_ts = [t is not None for t in ts]
        ts = [0 if t is None else clamped(t) for t in ts]
        addrs, vlans, parsed = self._addrs, self._vlans, self._options
        src = [addrs.setdefault(a, len(addrs)) for a in src]
        dst = [addrs.setdefault(a, len(addrs)) for a in dst]
        vlan = [vlans.setdefault(v, len(vlans)) for v in vlan]
        o_mss, o_wscale, o_sack, o_ts = zip(*(parsed[o] if o in parsed else self._syn_options(o) for o in options),
                                            strict=True)
        cols = (number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
                o_mss, o_wscale, o_sack, o_ts)
        if not self.compiled:
            return cols
        import numpy as np

        return tuple(np.asarray(c, dtype=np.int64) for c in cols)

    def grow_addresses(self) -> None:
        """Make room for more addresses (the kernel that stopped needed it)."""
        if self.AG[0][0] == len(self.A):
            self.A = grow(self.A, len(self.A), fastpath.A_WIDTH, self.compiled)
        if keys.full(self.addr_ids):
            self.addr_ids = keys.grown(self.addr_ids, self.compiled)

    def put_packet(self, cols: list, i: int, pkt: Packet) -> None:
        """Row ``i`` of packet columns (from .pcapfile) from what the general decoder made."""
        (_number, _ts, _wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
         options) = pkt
        for column, addr in ((5, src), (6, dst)):
            key = _address_key(addr)
            found = keys.get(self.addr_ids, key)
            if found == NONE:
                if self.AG[0][0] == len(self.A) or keys.full(self.addr_ids):
                    self.grow_addresses()
                found = int(self.AG[0][0])
                keys.put(self.addr_ids, key, found)
                self.A[found] = key
                self.AG[0][0] += 1
            cols[column][i] = found
        cols[4][i] = self._vlans.setdefault(vlan, len(self._vlans))
        for column, value in zip(range(7, 15), (proto, sport, dport, seq, ackno, flags, win, plen), strict=True):
            cols[column][i] = value
        for column, value in zip(range(15, 19), self._syn_options(options), strict=True):
            cols[column][i] = value

    def _syn_options(self, options: bytes) -> tuple[int, int, int, int]:
        """The option columns of a SYN with these raw options (remembered: SYNs repeat them)."""
        found = self._options.get(options)
        if found is None:
            m = parse_syn_options(options)
            found = self._options[options] = (NONE if m.mss is None else m.mss,
                                              NONE if m.wscale is None else m.wscale,
                                              int(m.sack_perm), int(m.timestamps))
        return found

    def _make_room(self) -> None:
        """The kernel stopped: a table is full. Double it."""
        g, c = self.G[0], self.compiled
        if g[G_CONN_FREE] == NONE and self._retiring:
            self._retire()  # their rows first
        if g[G_CONN_FREE] == NONE:
            rows = len(self.C)
            self.C = grow(self.C, rows, tcp.C_WIDTH, c)
            self.D = grow(self.D, 2 * rows, tcp.D_WIDTH, c)
            self.T = grow(self.T, 2 * rows, acks.T_WIDTH, c)
            link_free(self.C, rows, tcp.C_WAIT_NEXT)
            g[G_CONN_FREE] = rows
        if g[G_UDP] >= len(self.U):
            self.U = grow(self.U, len(self.U), udp.U_WIDTH, c)
        for name in ("tcp_keys", "tcp_waiting", "udp_keys", "udp_waiting"):
            if keys.full(getattr(self, name)):
                setattr(self, name, keys.grown(getattr(self, name), c))
        if g[G_SEG_FREE] == NONE:
            rows = len(self.P)
            self.P = grow(self.P, rows, SEG_WIDTH, c)
            link_free(self.P, rows, SEG_NEXT)
            g[G_SEG_FREE] = rows
        if g[G_HOLE_FREE] == NONE:
            rows = len(self.H)
            self.H = grow(self.H, rows, HOLE_WIDTH, c)
            link_free(self.H, rows, HOLE_NEXT)
            g[G_HOLE_FREE] = rows
        if g[G_EVENTS] + g[G_SEG_USED] + 16 > len(self.EV):
            self.EV = grow(self.EV, len(self.EV), EV_WIDTH, c)
        if 2 * (g[G_HIST_USED] + g[G_SEG_USED] + 16) > len(self.HT):
            old, self.HT = self.HT, new_table(2 * len(self.HT), HIST_WIDTH, c)
            histograms.rehash(old, self.HT, self.G)

    def _expire(self, everything: bool) -> None:
        """Retire the connections that have expired (all, with ``everything``)."""
        row = 0
        while row < len(self.C):
            row = tcp.expire(self.tcp_keys, self.tcp_waiting, self.C, self.D, self.HT, self.G, self.EV, row,
                             everything)
            self._drain()
            if row < len(self.C):
                self._make_room()

    def _drain(self) -> None:
        """Add the kernels' events up, then empty the event table; make the records of the
        connections that retired in batches (a quarter of the rows, at most RETIRE_BATCH):
        taking their histograms out costs a pass over the histogram table."""
        count = int(self.G[0][G_EVENTS])
        if not count:
            return
        events = self.EV[:count]
        if self.compiled:
            events = events.tolist()
        for e in events:
            kind = e[0]
            if kind == EV_STALL:
                self.stalls.setdefault(e[1], []).append(Stall(e[2], e[3], e[4], e[5], e[6], e[7]))
            elif kind == EV_ACK_LOG:
                if self.ack_log is not None:
                    self.ack_log.append((e[1], e[2], e[3], e[4], e[5], bool(e[6]), bool(e[7])))
            elif kind == EV_NOTE:
                if self.notes is not None:
                    self.notes.append((e[1], NOTES[e[2]], e[3]))
            elif kind == EV_RETIRE:
                self._retiring.append(e[1])
        self.G[0][G_EVENTS] = 0
        if len(self._retiring) >= min(len(self.C) // 4, RETIRE_BATCH):
            self._retire()

    # -- records ----------------------------------------------------------------

    def finish(self) -> tuple[Selection[TcpConnection], Selection[UdpFlow]]:
        """The end of the capture: every connection retires. Returns the connections (unless
        ``on_connection`` took them) and flows, in order of their first packets."""
        self._expire(everything=True)
        self._retire()
        hist = Histograms(self.HT, self.compiled, lambda d: None)  # what is left is UDP's
        udp_rows = _rows(self.U, int(self.G[0][G_UDP]), self.compiled)
        vlans = self._vlan_names()
        names = self._address_names()
        tcp_records = sorted(self.connections, key=lambda c: c.index)
        self.connections = []
        return (Selection(tcp_records),
                Selection(self._flow(k, u, hist, names, vlans) for k, u in enumerate(udp_rows)))

    def _retire(self) -> None:
        """Make the records of the connections that retired, RETIRE_BATCH at a time (memory
        stays bounded however many end at once), freeing their rows."""
        while self._retiring:
            self._records(self._retiring[:RETIRE_BATCH])
            del self._retiring[:RETIRE_BATCH]

    def _records(self, slots: list[int]) -> None:
        """The records of the connections in rows ``slots``, to on_connection or kept."""
        c = self.compiled
        for slot in slots:
            self.C[slot][tcp.C_LIVE] = tcp.RECORDING
        out = new_table(int(self.G[0][G_HIST_USED]), HIST_WIDTH, c)
        taken = histograms.take(self.HT, self.G, self.C, tcp.C_LIVE, tcp.RECORDING, out)
        senders = [2 * slot + s for slot in slots for s in (0, 1)]
        if c:
            rows, D, T = self.C[slots].tolist(), self.D[senders].tolist(), self.T[senders].tolist()
        else:
            rows, D, T = [self.C[k] for k in slots], [self.D[d] for d in senders], [self.T[d] for d in senders]
        sender = dict(zip(senders, T, strict=True))
        hist = Histograms(out[:taken], c, lambda d: sender[d][acks.T_MSS] if sender[d][acks.T_HAS_MSS] else None)
        names, vlans = self._address_names(), self._vlan_names()
        for k, (slot, row) in enumerate(zip(slots, rows, strict=True)):
            if self.record_only is not None and row[tcp.C_FIRST_PKT] != self.record_only:
                continue
            record = self._connection(slot, row, D[2 * k: 2 * k + 2], T[2 * k: 2 * k + 2], hist, names, vlans)
            if self.on_connection is None:
                self.connections.append(record)
            else:
                self.on_connection(record)
        tcp.release_recorded(self.C, self.T, self.P, self.H, self.G)

    def _address_names(self) -> list[str]:
        """Addresses by id, as text (from either id table: the general path's or the pcap kernels')."""
        names = self._names
        if len(names) < len(self._addrs):
            names += [_name(a) for a in list(self._addrs)[len(names):]]
        count = int(self.AG[0][0])
        if self._named < count:
            for family, hi, lo in _rows(self.A, count, self.compiled)[self._named:]:
                names.append(_name(lo.to_bytes(8, "big", signed=True)[4:] if family == 4 else
                                   hi.to_bytes(8, "big", signed=True) + lo.to_bytes(8, "big", signed=True)))
            self._named = count
        return names

    def _vlan_names(self) -> dict[int, tuple[int, ...]]:
        return {i: v for v, i in self._vlans.items()}

    def _connection(self, slot: int, c: list[int], D: list, T: list, hist: Histograms, names: list[str],
                    vlans: dict) -> TcpConnection:
        """The record of the connection in row ``slot`` (``c``; its sides' rows ``D`` and ``T``)."""
        inferred = c[tcp.C_CLIENT] == NONE
        cs = c[tcp.C_GUESSED] if inferred else c[tcp.C_CLIENT]
        ss = 1 - cs
        letters = zeek.history(c, tcp.Z_BASE)
        history = ("^" if cs != 0 else "") + "".join(ch.upper() if s == cs else ch for s, ch in letters)
        addr = (c[tcp.C_A0], c[tcp.C_A1])
        port = (c[tcp.C_P0], c[tcp.C_P1])
        client_port = port[cs]
        last_ts = _ts(c[tcp.C_LAST_TS])
        c2s = self._direction(2 * slot + cs, D[cs], T[cs], hist, last_ts)
        s2c = self._direction(2 * slot + ss, D[ss], T[ss], hist, last_ts)
        zstate = tcp.Z_BASE + zeek.Z_STATE
        first_close = c[tcp.C_FIRST_CLOSE]
        return TcpConnection(
            index=c[tcp.C_INDEX],
            client=Endpoint(names[addr[cs]], client_port),
            server=Endpoint(names[addr[ss]], port[ss]),
            inferred=inferred,
            vlan=vlans[c[tcp.C_VLAN0]],
            handshake=Handshake(
                syn_ts_ns=_ts(c[tcp.C_SYN_TS]),
                last_syn_ts_ns=_ts(c[tcp.C_LAST_SYN_TS]),
                synack_ts_ns=_ts(c[tcp.C_SYNACK_TS]),
                ack_ts_ns=_ts(c[tcp.C_ACK_TS]),
                syn_count=c[tcp.C_SYNS],
                synack_count=c[tcp.C_SYNACKS],
            ),
            c2s=c2s,
            s2c=s2c,
            state=conn_state(orig=c[zstate + cs], resp=c[zstate + ss], orig_bytes=c2s.payload_bytes,
                             resp_bytes=s2c.payload_bytes, history=history),
            history=history,
            closed_by=None if first_close == NONE else ("client" if first_close == cs else "server"),
            first_ts_ns=_ts(c[tcp.C_FIRST_TS]),
            last_ts_ns=last_ts,
            first_packet=c[tcp.C_FIRST_PKT],
            last_packet=c[tcp.C_LAST_PKT],
            client_port_ephemeral_linux=client_port in LINUX_EPHEMERAL_PORTS,
            client_port_ephemeral_iana=client_port in IANA_EPHEMERAL_PORTS,
            request_latency_ms=duration_stats(hist.stats(H_LATENCY, slot), c[tcp.C_LAT_LO], c[tcp.C_LAT_HI]),
            response_first_byte_ms=duration_stats(hist.stats(H_FIRST_BYTE, slot), c[tcp.C_FB_LO],
                                                  c[tcp.C_FB_HI]),
        )

    def _direction(self, d: int, side: list[int], t: list[int], hist: Histograms, end_ts: int | None) -> Direction:
        """What sender ``d`` sent (its rows ``side`` of D, ``t`` of T); ``end_ts``: the
        connection's last packet, which ends a zero window never reopened (and the
        connection's end ends the sender's queue)."""
        held, unacked = t[acks.T_HELD], t[acks.T_UNACKED]
        if t[acks.T_CANDIDATE] == acks.HELD:
            held += 1
            if self.notes is not None:  # the capture's end proves it the tail
                self.notes.append((t[acks.T_CAND_PKT], "nagle_held", t[acks.T_CAND_ACK]))
        elif t[acks.T_CANDIDATE] == acks.UNACKED:
            unacked += 1
        zero_ns = side[tcp.D_ZERO_NS]
        if side[tcp.D_ZERO_SINCE] != NONE and end_ts is not None:
            zero_ns = capped_sum(zero_ns, end_ts - side[tcp.D_ZERO_SINCE])
        opts = bool(side[tcp.D_OPTS])
        evidence = NagleEvidence(t[acks.T_SMALL], held, unacked)
        return Direction(
            packets=side[tcp.D_PACKETS],
            payload_bytes=side[tcp.D_PAYLOAD],
            segments=side[tcp.D_SEGMENTS],
            frame_bytes=side[tcp.D_FRAME_BYTES],
            sizes=sizes(hist.stats(H_SIZE, d), t[acks.T_MSS] if t[acks.T_HAS_MSS] else None),
            mss_option=_ts(side[tcp.D_MSS]) if opts else None,
            wscale=_ts(side[tcp.D_WSCALE]) if opts else None,
            sack_perm=bool(side[tcp.D_SACK]) if opts else None,
            timestamps=bool(side[tcp.D_TSOPT]) if opts else None,
            retransmissions=side[tcp.D_RETRANS],
            fins=side[tcp.D_FINS],
            rsts=side[tcp.D_RSTS],
            first_data_ts_ns=_ts(side[tcp.D_FIRST_DATA_TS]),
            last_data_ts_ns=_ts(side[tcp.D_LAST_DATA_TS]),
            unique_bytes=t[acks.T_ABS_HIGH] - t[acks.T_GAP] + t[acks.T_FILLED],
            retransmitted_bytes=t[acks.T_RESENT],
            zero_windows=side[tcp.D_ZERO_WINDOWS],
            zero_window_ns_total=zero_ns,
            window_full=side[tcp.D_WINDOW_FULL],
            nagle=nagle_verdict(evidence),
            nagle_evidence=evidence,
            ack_delay_ms=duration_stats(hist.stats(H_DELAY, d), t[acks.T_DELAY_LO], t[acks.T_DELAY_HI]),
            delayed_acks=t[acks.T_DELAYED],
            stall_list=tuple(self.stalls.pop(d, ())),
            stalls=t[acks.T_STALLS],
            stall_ns_total=t[acks.T_STALL_NS],
        )

    def _flow(self, slot: int, u: list[int], hist: Histograms, names: list[str], vlans: dict) -> UdpFlow:
        return UdpFlow(
            index=slot,
            a=Endpoint(names[u[udp.U_A0]], u[udp.U_P0]),
            b=Endpoint(names[u[udp.U_A1]], u[udp.U_P1]),
            vlan=vlans[u[udp.U_VLAN0]],
            a2b=UdpDirection(u[udp.U_PACKETS], u[udp.U_BYTES], u[udp.U_FRAME_BYTES]),
            b2a=UdpDirection(u[udp.U_PACKETS + 1], u[udp.U_BYTES + 1], u[udp.U_FRAME_BYTES + 1]),
            rtt_ms=duration_stats(hist.stats(H_UDP_RTT, slot), u[udp.U_RTT_LO], u[udp.U_RTT_HI]),
            first_ts_ns=_ts(u[udp.U_FIRST_TS]),
            last_ts_ns=_ts(u[udp.U_LAST_TS]),
            first_packet=u[udp.U_FIRST_PKT],
            last_packet=u[udp.U_LAST_PKT],
        )


class Histograms:
    """Histogram rows (key, count) from the kernels' table, sorted, and the statistics of
    every histogram in them (a row of analysis.statistics' output per (kind, id))."""

    def __init__(self, HT, compiled: bool, size_mss: Callable[[int], int | None]) -> None:  # noqa: ANN001
        """``size_mss(d)``: the MSS the size buckets of sender row ``d`` use."""
        if compiled:
            import numpy as np

            rows = HT[HT[:, HIST_COUNT] > 0]
            rows = rows[np.argsort(rows[:, HIST_KEY], kind="stable")]
            keys, counts = rows[:, HIST_KEY], rows[:, HIST_COUNT].copy()
            groups = keys >> histograms.ID_SHIFT
            starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(rows) else np.zeros(0, np.int64)
            ends = np.r_[starts[1:], len(rows)].astype(np.int64)
            firsts = groups[starts].tolist()
        else:
            rows = sorted(row for row in HT if row[HIST_COUNT])
            keys, counts = [r[HIST_KEY] for r in rows], [r[HIST_COUNT] for r in rows]
            starts = [k for k in range(len(keys)) if not k or keys[k] >> histograms.ID_SHIFT
                      != keys[k - 1] >> histograms.ID_SHIFT]
            ends = [*starts[1:], len(keys)]
            firsts = [keys[k] >> histograms.ID_SHIFT for k in starts]
        values = histograms.values_of(keys)
        shift = histograms.KIND_SHIFT - histograms.ID_SHIFT
        groups = [(g >> shift, g & histograms.ID_MASK) for g in firsts]
        edges = [_edges(size_mss(ident)) if kind == H_SIZE else _NO_EDGES for kind, ident in groups]
        if compiled:
            edges = np.array(edges, dtype=np.int64).reshape(len(groups), statistics.E_WIDTH)
        out = new_table(len(groups), statistics.S_WIDTH, compiled)
        if groups:
            statistics.group_stats(values, counts, starts, ends, edges, out)
        self._rows = dict(zip(groups, out.tolist() if compiled else out, strict=True))

    def stats(self, kind: int, ident: int) -> list[int] | None:
        """The statistics of histogram (kind, id); None when it is empty."""
        return self._rows.get((kind, ident))


_NO_EDGES = [0, NONE] + [0] * (statistics.E_WIDTH - 2)


@functools.lru_cache(maxsize=1024)
def _edges(mss: int | None) -> list[int]:
    """A row of the bucket-edge table for payload sizes (see analysis.statistics)."""
    bounds = size_edges(mss)
    row = [len(bounds), NONE if mss is None else mss]
    for _label, lo, hi in bounds:
        row += [lo, hi]
    return row + [0] * (statistics.E_WIDTH - len(row))


def _rows(table, count: int, compiled: bool) -> list[list[int]]:  # noqa: ANN001
    """The first ``count`` rows as lists of Python ints."""
    return table[:count].tolist() if compiled else table[:count]


def _ts(value: int) -> int | None:
    return None if value == NONE else value


def _address_key(addr: bytes) -> tuple[int, int, int]:
    """(family, high, low 64 bits as signed numbers): an address as the pcap kernels key it."""
    if len(addr) == 4:
        return 4, 0, int.from_bytes(addr, "big")
    return 6, int.from_bytes(addr[:8], "big", signed=True), int.from_bytes(addr[8:], "big", signed=True)


def _name(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
