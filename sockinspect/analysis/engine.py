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
from .._delays import Stall
from .._metrics import size_edges
from .._model import Selection, TcpConnection, UdpFlow
from . import acks, fastpath, histograms, jit, keys, records, statistics, tcp, udp
from .records import Packed, PackedStats, RecordMaker, Retired
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
    H_SIZE,
    HIST_COUNT,
    HIST_KEY,
    HIST_WIDTH,
    HOLE_NEXT,
    HOLE_WIDTH,
    NO_MAX,
    NONE,
    SEG_NEXT,
    SEG_WIDTH,
    clamped,
    grow,
    link_free,
    new_flags,
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
    it, :meth:`finish` returns them all. ``on_retired``: instead, called with the rows
    of each batch of connections that retired (a :class:`.records.Retired`), whose
    records another process makes (see sockinspect._analyze)."""

    def __init__(self, compiled: bool = False, ack_log: list | None = None,
                 on_connection: Callable[[TcpConnection], None] | None = None,
                 notes: list[tuple[int, str, int]] | None = None, record_only: int | None = None,
                 on_retired: Callable[[Retired], None] | None = None) -> None:
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
        logging = ack_log is not None or notes is not None
        self.G[0][G_LOG] = int(logging)
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
        # Drained after every kernel call. Logging, a chunk makes events for every packet;
        # otherwise few (stalls, retirements): the table doubles when a kernel needs more.
        self.EV = new_table(CHUNK_PACKETS * 2 if c and logging else 4096 if c else 256, EV_WIDTH, c)
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
        self._at_end = False  # finish() has begun
        self._scanned_at = NO_MAX  # the clock when expired connections were last looked for
        self.record_only = record_only
        # Set by .threads: the records of connections that retire wait for :meth:`settle`
        # (the chunk's end), when the indexes of the connections it began are final.
        self.defer_records = False
        self.connections: list[TcpConnection] = []
        self.on_retired = on_retired or RecordMaker(on_connection or self.connections.append).add
        self._names: list[str] = []  # by address id
        self._named = 0  # rows of A named so far
        self._shipped = 0  # names handed over with the batches so far

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

    def feed_columns(self, cols: tuple, order=None, clock=None, flows: bool = True) -> None:  # noqa: ANN001
        """Account packets given as columns (see ``_columns``; rows whose protocol is
        neither TCP nor UDP are left out). ``order``, ``clock``: the TCP packets to
        account, and the clock column (see :func:`tcp_order`; by default all of them);
        ``flows``: account the UDP ones too."""
        (number, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
         o_mss, o_wscale, o_sack, o_ts) = cols
        if order is None:
            order, clock = tcp_order(proto, ts, has_ts, int(self.G[0][G_CLOCK]), self.compiled)
        n = len(order)
        j = 0
        while j < n:
            j = tcp.feed(j, n, order, clock, number, ts, has_ts, wirelen, vlan, src, dst, sport, dport, seq,
                         ackno, flags, win, plen, o_mss, o_wscale, o_sack, o_ts, self.tcp_keys, self.tcp_waiting,
                         self.C, self.D, self.T, self.P, self.H, self.G, self.EV, self.HT)
            self._drain()
            if j < n:
                self._make_room()
        if len(clock):
            self.G[0][G_CLOCK] = clock[-1]  # the chunk's, whichever of its packets were accounted here
        clock_now = int(self.G[0][G_CLOCK])
        if clock_now - self._scanned_at >= SCAN_EVERY_NS:  # not every block: the scan reads every row
            self._scanned_at = clock_now
            self._expire(everything=False)
        if not flows:
            return
        n = len(number)
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

    @property
    def decoding(self) -> Engine:
        """The engine whose address table the pcap kernels fill (see .pcapfile): this one."""
        return self

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
        if g[G_CONN_FREE] == NONE and self._retiring and not self.defer_records:
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
        if histograms.crowded(self.HT, self.G, g[G_SEG_USED] + 16):
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
        if not self.defer_records:
            self.settle()

    def settle(self) -> None:
        """Make the records of the connections that retired, once enough of them wait."""
        if len(self._retiring) >= min(len(self.C) // 4, RETIRE_BATCH):
            self._retire()

    # -- records ----------------------------------------------------------------

    def finish(self) -> tuple[Selection[TcpConnection], Selection[UdpFlow]]:
        """The end of the capture: every connection retires. Returns the connections (unless
        ``on_connection`` took them) and flows, in order of their first packets."""
        self._at_end = True
        self._expire(everything=True)
        self._retire()
        stats = Histograms(self.HT, self.compiled, {}).rows  # what is left is UDP's
        udp_rows = _rows(self.U, int(self.G[0][G_UDP]), self.compiled)
        vlans = self._vlan_names()
        names = self._address_names()
        tcp_records = sorted(self.connections, key=lambda c: c.index)
        self.connections = []
        return (Selection(tcp_records),
                Selection(records.flow(k, u, stats, names, vlans) for k, u in enumerate(udp_rows)))

    def _retire(self) -> None:
        """Make the records of the connections that retired, RETIRE_BATCH at a time (memory
        stays bounded however many end at once), freeing their rows."""
        while self._retiring:
            self._records(self._retiring[:RETIRE_BATCH])
            del self._retiring[:RETIRE_BATCH]

    def _records(self, slots: list[int]) -> None:
        """Hand the rows of the connections in rows ``slots`` over as a batch (see
        .records), then free them."""
        c = self.compiled
        taken_from = new_flags(len(self.C), c)
        for slot in slots:
            self.C[slot][tcp.C_LIVE] = tcp.RECORDING
            taken_from[slot] = 1
        out = new_table(int(self.G[0][G_HIST_USED]), HIST_WIDTH, c)
        taken = histograms.take(self.HT, self.G, taken_from, out)
        stalls = {d: self.stalls.pop(d) for slot in slots for d in (2 * slot, 2 * slot + 1) if d in self.stalls}
        if self.record_only is not None:
            slots = [k for k in slots if self.C[k][tcp.C_FIRST_PKT] == self.record_only]
        senders = [2 * slot + s for slot in slots for s in (0, 1)]
        if c:  # copies, packed: the rows are reused once freed
            senders_t = self.T[senders]
            rows, D, T = (Packed(self.C[slots].tobytes(), tcp.C_WIDTH), Packed(self.D[senders].tobytes(), tcp.D_WIDTH),
                          Packed(senders_t.tobytes(), acks.T_WIDTH))
            mss_column = senders_t[:, (acks.T_HAS_MSS, acks.T_MSS)].tolist()
        else:
            rows = [list(self.C[k]) for k in slots]
            D, T = [list(self.D[d]) for d in senders], [list(self.T[d]) for d in senders]
            mss_column = [(t[acks.T_HAS_MSS], t[acks.T_MSS]) for t in T]
        tcp.release_recorded(self.C, self.T, self.P, self.H, self.G)
        if not slots:
            return
        mss = {d: m if has else None for d, (has, m) in zip(senders, mss_column, strict=True)}
        if self.notes is not None:  # the capture's end proves a held Nagle candidate the tail
            self.notes += [(t[acks.T_CAND_PKT], "nagle_held", t[acks.T_CAND_ACK]) for t in T
                           if t[acks.T_CANDIDATE] == acks.HELD]
        names = self._address_names()
        batch = Retired(slots, rows, D, T, Histograms(out[:taken], c, mss).rows, stalls, names[self._shipped:],
                        self._vlan_names(), self._at_end)
        self._shipped = len(names)
        self.on_retired(batch)

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


class Histograms:
    """Histogram rows (key, count) from the kernels' table, sorted, and the statistics of
    every histogram in them: ``rows``, a row of analysis.statistics' output per (kind, id)
    (a dict; compiled, packed: see .records.PackedStats)."""

    def __init__(self, HT, compiled: bool, size_mss: dict[int, int | None]) -> None:  # noqa: ANN001
        """``size_mss``: the MSS the size buckets of each sender row use (None: not known)."""
        if not compiled:
            self._python(HT, size_mss)
            return
        import numpy as np

        used = HT[:, HIST_COUNT] > 0
        rows = HT if used.all() else HT[used]  # all, when taken out of the table
        rows = rows[np.argsort(rows[:, HIST_KEY])]  # keys are unique: any sort gives the same order
        keys, counts = rows[:, HIST_KEY], rows[:, HIST_COUNT].copy()
        groups = keys >> histograms.ID_SHIFT
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(rows) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(rows)].astype(np.int64)
        firsts = groups[starts]
        kinds, idents = firsts >> (histograms.KIND_SHIFT - histograms.ID_SHIFT), firsts & histograms.ID_MASK
        # Each group's bucket edges, by what they depend on: _NOT_SIZES, or a size group's MSS (NONE: not known).
        by = np.full(len(firsts), _NOT_SIZES, dtype=np.int64)
        sized = np.flatnonzero(kinds == H_SIZE)
        by[sized] = [NONE if (m := size_mss.get(d)) is None else m for d in idents[sized].tolist()]
        distinct, which = np.unique(by, return_inverse=True)
        table = np.array([_NO_EDGES if b == _NOT_SIZES else _edges(None if b == NONE else b)
                          for b in distinct.tolist()], dtype=np.int64).reshape(len(distinct), statistics.E_WIDTH)
        out = new_table(len(firsts), statistics.S_WIDTH, True)
        if len(firsts):
            statistics.group_stats(histograms.values_of(keys), counts, starts, ends, table[which], out)
        self.rows = PackedStats(firsts.tobytes(), Packed(out.tobytes(), statistics.S_WIDTH))

    def _python(self, HT, size_mss: dict[int, int | None]) -> None:  # noqa: ANN001
        rows = sorted(row for row in HT if row[HIST_COUNT])
        keys, counts = [r[HIST_KEY] for r in rows], [r[HIST_COUNT] for r in rows]
        starts = [k for k in range(len(keys)) if not k or keys[k] >> histograms.ID_SHIFT
                  != keys[k - 1] >> histograms.ID_SHIFT]
        ends = [*starts[1:], len(keys)]
        shift = histograms.KIND_SHIFT - histograms.ID_SHIFT
        groups = [((g := keys[k] >> histograms.ID_SHIFT) >> shift, g & histograms.ID_MASK) for k in starts]
        edges = [_edges(size_mss.get(ident)) if kind == H_SIZE else _NO_EDGES for kind, ident in groups]
        out = new_table(len(groups), statistics.S_WIDTH, False)
        if groups:
            statistics.group_stats(histograms.values_of(keys), counts, starts, ends, edges, out)
        self.rows = dict(zip(groups, out, strict=True))


_NOT_SIZES = -2  # a group that is no payload-size histogram: no buckets


_NO_EDGES = [0, NONE] + [0] * (statistics.E_WIDTH - 2)


@functools.lru_cache(maxsize=1024)
def _edges(mss: int | None) -> list[int]:
    """A row of the bucket-edge table for payload sizes (see analysis.statistics)."""
    bounds = size_edges(mss)
    row = [len(bounds), NONE if mss is None else mss]
    for _label, lo, hi in bounds:
        row += [lo, hi]
    return row + [0] * (statistics.E_WIDTH - len(row))


def tcp_order(proto, ts, has_ts, since: int, compiled: bool):  # noqa: ANN001, ANN201
    """The rows of a chunk's TCP packets, in file order, and the clock column: at each
    row, the latest TCP timestamp so far (``since``: before the chunk), by which a
    connection is found over however its packets are shared out (see .threads)."""
    if compiled:
        import numpy as np

        is_tcp = proto == tcp.TCP
        return np.flatnonzero(is_tcp), np.maximum.accumulate(np.where(is_tcp & (has_ts != 0) & (ts > since), ts,
                                                                       since))
    order, clock, latest = [], [], since
    for i, (p, t, h) in enumerate(zip(proto, ts, has_ts, strict=True)):
        if p == tcp.TCP:
            order.append(i)
            if h and t > latest:
                latest = t
        clock.append(latest)
    return order, clock


def _rows(table, count: int, compiled: bool) -> list[list[int]]:  # noqa: ANN001
    """The first ``count`` rows as lists of Python ints."""
    return table[:count].tolist() if compiled else table[:count]


def _address_key(addr: bytes) -> tuple[int, int, int]:
    """(family, high, low 64 bits as signed numbers): an address as the pcap kernels key it."""
    if len(addr) == 4:
        return 4, 0, int.from_bytes(addr, "big")
    return 6, int.from_bytes(addr[:8], "big", signed=True), int.from_bytes(addr[8:], "big", signed=True)


def _name(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
