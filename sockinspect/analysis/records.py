"""Records from the engine's rows: what a connection that is over left in the tables
(see :mod:`.engine`), turned into a typed :class:`~sockinspect._model.TcpConnection`.

Pure and picklable on both sides: the engine hands over a :class:`Retired` batch,
in its own process or through a pipe from another (see sockinspect._analyze), and a
:class:`RecordMaker` makes the records. Neither needs numba.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from .._delays import NagleEvidence, Stall, nagle_verdict
from .._linux import IANA_EPHEMERAL_PORTS, LINUX_EPHEMERAL_PORTS
from .._metrics import conn_state, duration_stats, sizes
from .._model import Direction, Endpoint, Handshake, TcpConnection, UdpDirection, UdpFlow
from . import acks, tcp, udp, zeek
from .histograms import ID_SHIFT, KIND_SHIFT
from .tables import H_DELAY, H_FIRST_BYTE, H_LATENCY, H_SIZE, H_UDP_RTT, NONE, capped_sum


class Packed:
    """Rows of a table of int64s, packed in bytes: how a batch of rows crosses a pipe
    (as lists of ints they weigh eight times more, on both sides). Row k becomes a list
    of ints again when asked for."""

    __slots__ = ("data", "width", "_view")

    def __init__(self, data: bytes, width: int) -> None:
        self.data, self.width = data, width
        self._view = memoryview(data).cast("q")

    def __reduce__(self) -> tuple[type[Packed], tuple[bytes, int]]:
        return Packed, (self.data, self.width)

    def __len__(self) -> int:
        return len(self._view) // self.width

    def __getitem__(self, k: int) -> list[int]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self._view[k * self.width:(k + 1) * self.width].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[k] for k in range(len(self)))


class Stats(Protocol):
    """A histogram's statistics (a row of analysis.statistics' output) by (kind, id):
    a dict, or :class:`PackedStats`."""

    def get(self, key: tuple[int, int], /) -> list[int] | None: ...


class PackedStats:
    """Histogram statistics as :class:`Packed` rows, with their (kind, id) packed as
    histogram keys shifted right by ID_SHIFT (kind << 36 | id), in the same order."""

    __slots__ = ("groups", "rows", "_index")

    def __init__(self, groups: bytes, rows: Packed) -> None:
        self.groups, self.rows = groups, rows
        self._index: dict[int, int] | None = None

    def __reduce__(self) -> tuple[type[PackedStats], tuple[bytes, Packed]]:
        return PackedStats, (self.groups, self.rows)

    def get(self, key: tuple[int, int], /) -> list[int] | None:
        if self._index is None:
            self._index = {group: k for k, group in enumerate(memoryview(self.groups).cast("q").tolist())}
        k = self._index.get(key[0] << (KIND_SHIFT - ID_SHIFT) | key[1])
        return None if k is None else self.rows[k]


Rows = list[list[int]] | Packed  # a table's rows (Packed: by index or in order only, no slices)


class Retired(NamedTuple):
    """Connections that are over, as the engine's rows."""

    slots: list[int]  # their rows of C; sender rows 2 x slot + side of D and T
    C: Rows
    D: Rows  # two per connection, side 0 then side 1
    T: Rows
    stats: Stats
    stalls: dict[int, list[Stall]]  # by sender row
    names: list[str]  # addresses named since the last batch (ids go on from there)
    vlans: dict[int, tuple[int, ...]]  # VLAN tags by id, all so far
    at_end: bool = False  # handed over at the capture's end (no packet is left to read)


class RecordMaker:
    """Makes the records of :class:`Retired` batches, in order, and hands each to ``out``."""

    def __init__(self, out: Callable[[TcpConnection], None]) -> None:
        self.out = out
        self.names: list[str] = []  # addresses by id

    def add(self, batch: Retired) -> None:
        self.names += batch.names
        D, T = batch.D, batch.T
        for k, (slot, row) in enumerate(zip(batch.slots, batch.C, strict=True)):
            self.out(connection(slot, row, (D[2 * k], D[2 * k + 1]), (T[2 * k], T[2 * k + 1]), batch.stats,
                                batch.stalls, self.names, batch.vlans))


def connection(slot: int, c: list[int], D: Rows, T: Rows, stats: Stats,
               stalls: dict[int, list[Stall]], names: list[str], vlans: dict[int, tuple[int, ...]]) -> TcpConnection:
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
    c2s = direction(2 * slot + cs, D[cs], T[cs], stats, stalls, last_ts)
    s2c = direction(2 * slot + ss, D[ss], T[ss], stats, stalls, last_ts)
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
        request_latency_ms=duration_stats(stats.get((H_LATENCY, slot)), c[tcp.C_LAT_LO], c[tcp.C_LAT_HI]),
        response_first_byte_ms=duration_stats(stats.get((H_FIRST_BYTE, slot)), c[tcp.C_FB_LO], c[tcp.C_FB_HI]),
    )


def direction(d: int, side: list[int], t: list[int], stats: Stats, stalls: dict[int, list[Stall]],
              end_ts: int | None) -> Direction:
    """What sender ``d`` sent (its rows ``side`` of D, ``t`` of T); ``end_ts``: the
    connection's last packet, which ends a zero window never reopened (and the
    connection's end ends the sender's queue: a Nagle candidate counts, see .acks)."""
    held, unacked = t[acks.T_HELD], t[acks.T_UNACKED]
    if t[acks.T_CANDIDATE] == acks.HELD:
        held += 1
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
        sizes=sizes(stats.get((H_SIZE, d)), t[acks.T_MSS] if t[acks.T_HAS_MSS] else None),
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
        ack_delay_ms=duration_stats(stats.get((H_DELAY, d)), t[acks.T_DELAY_LO], t[acks.T_DELAY_HI]),
        delayed_acks=t[acks.T_DELAYED],
        stall_list=tuple(stalls.get(d, ())),
        stalls=t[acks.T_STALLS],
        stall_ns_total=t[acks.T_STALL_NS],
    )


def flow(slot: int, u: list[int], stats: Stats, names: list[str], vlans: dict[int, tuple[int, ...]]) -> UdpFlow:
    """The record of the UDP flow in row ``slot`` (``u``)."""
    return UdpFlow(
        index=slot,
        a=Endpoint(names[u[udp.U_A0]], u[udp.U_P0]),
        b=Endpoint(names[u[udp.U_A1]], u[udp.U_P1]),
        vlan=vlans[u[udp.U_VLAN0]],
        a2b=UdpDirection(u[udp.U_PACKETS], u[udp.U_BYTES], u[udp.U_FRAME_BYTES]),
        b2a=UdpDirection(u[udp.U_PACKETS + 1], u[udp.U_BYTES + 1], u[udp.U_FRAME_BYTES + 1]),
        rtt_ms=duration_stats(stats.get((H_UDP_RTT, slot)), u[udp.U_RTT_LO], u[udp.U_RTT_HI]),
        first_ts_ns=_ts(u[udp.U_FIRST_TS]),
        last_ts_ns=_ts(u[udp.U_LAST_TS]),
        first_packet=u[udp.U_FIRST_PKT],
        last_packet=u[udp.U_LAST_PKT],
    )


def _ts(value: int) -> int | None:
    return None if value == NONE else value
