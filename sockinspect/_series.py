"""What the plots draw, as numbers: one direction of a connection's packets turned into
series (time in ms since the connection's first packet; sequence numbers relative, as
the ladder shows them). Pure: packets in, series out; no drawing here (see _plot)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ._decode import ACK, FIN, RST, SYN
from ._packets import ConnectionPackets

THROUGHPUT_POINTS = 200  # where the sliding throughput is evaluated
MIN_WINDOW_MS = 0.001  # the sliding window is never narrower


@dataclass
class Series:
    """One direction's data (sent by ``sender``, 0 the client) and the peer's answers to it."""

    sender: int
    segments: list[tuple[float, int, int]] = field(default_factory=list)  # (ms, seq start, end): first sent
    resent: list[tuple[float, int, int]] = field(default_factory=list)  # the same, retransmissions
    marks: list[tuple[float, int, str]] = field(default_factory=list)  # (ms, seq, "SYN"|"FIN"|"RST")
    acks: list[tuple[float, int]] = field(default_factory=list)  # (ms, ack) of the peer's ACKs
    window_edge: list[tuple[float, int]] = field(default_factory=list)  # (ms, ack + window)
    window: list[tuple[float, int]] = field(default_factory=list)  # (ms, window the peer announced)
    sacks: list[tuple[float, int, int]] = field(default_factory=list)  # (ms, left, right) of SACK blocks
    in_flight: list[tuple[float, int]] = field(default_factory=list)  # (ms, bytes sent, not acknowledged)
    ack_delays: list[tuple[float, float, bool]] = field(default_factory=list)  # (ms, delay ms, delayed ACK)
    delayed_acks: list[tuple[float, float, int]] = field(default_factory=list)  # (from ms, to ms, ack)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (from ms, to ms): time lost
    zero_windows: list[float] = field(default_factory=list)  # ms of the receiver's zero-window announcements
    thinned: int = 1  # drawn: every k-th point of the longest series (see _plot)
    timed: int = 0  # packets of the connection with a timestamp (the others are left out)
    leg_ms: float = 0.0  # the receiver's round trip from the capture point (the handshake's), in every ACK delay
    duration_ms: float = 0.0

    @property
    def payload_bytes(self) -> int:
        return sum(end - start for _, start, end in self.segments + self.resent)


def sender_with_more_data(cp: ConnectionPackets) -> int:
    """The side (0 client, 1 server) that sent more payload: the one a plot is about."""
    c = cp.connection
    return 0 if c.c2s.payload_bytes >= c.s2c.payload_bytes else 1


def series(cp: ConnectionPackets, sender: int) -> Series:
    """Direction ``sender``'s series. Packets without a timestamp are left out."""
    times = [t for t in cp.ts_ns if t is not None]
    s = Series(sender, timed=len(times))
    if not times:
        return s
    t0 = times[0]
    s.duration_ms = (max(times) - t0) / 1e6
    resent = {number for number, kind, _ in cp.notes if kind == "retransmission"}
    delayed = {number: value for number, kind, value in cp.notes if kind == "delayed_ack"}
    zero = {number for number, kind, _ in cp.notes if kind == "zero_window"}
    h = cp.connection.handshake
    s.leg_ms = (h.syn_synack_ms if sender == 0 else h.synack_ack_ms) or 0.0
    highest = acked = None
    for k, number in enumerate(cp.number):
        if cp.ts_ns[k] is None:
            continue
        ms = (cp.ts_ns[k] - t0) / 1e6
        flags, seq, n = cp.flags[k], cp.seq[k], cp.length[k]
        if cp.side[k] == sender:
            if n:
                (s.resent if number in resent else s.segments).append((ms, seq, seq + n))
                highest = seq + n if highest is None else max(highest, seq + n)
            for bit, name in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST")):
                if flags & bit:
                    s.marks.append((ms, seq + n, name))
        elif flags & ACK and not flags & RST:
            ack, win = cp.ack[k], cp.window[k]
            acked = ack if acked is None else max(acked, ack)
            s.acks.append((ms, ack))
            s.window.append((ms, win))
            s.window_edge.append((ms, ack + win))
            s.sacks += [(ms, left, right) for left, right in cp.sack[k]]
            if number in zero:
                s.zero_windows.append(ms)
            if number in cp.ack_delays:
                s.ack_delays.append((ms, cp.ack_delays[number] / 1e6, number in delayed))
            if number in delayed:
                s.delayed_acks.append((ms - delayed[number] / 1e6, ms, ack))
        if highest is not None and (cp.side[k] == sender and n or cp.side[k] != sender and flags & ACK):
            s.in_flight.append((ms, max(highest - (acked if acked is not None else 1), 0)))
    direction = cp.connection.c2s if sender == 0 else cp.connection.s2c
    s.stalls = [((st.data_ts_ns - t0) / 1e6, (st.next_ts_ns - t0) / 1e6) for st in direction.stall_list]
    return s


def sliding_rates(s: Series, window_ms: float | None = None) -> tuple[float, list[tuple[float, float, float]]]:
    """(window ms, [(ms, throughput, goodput)]) in bits per second over a sliding window
    ending at each point: throughput counts every payload byte sent (retransmissions too),
    goodput the bytes of data newly acknowledged (not the SYN's or FIN's sequence number).
    The window is 1/20 of the connection."""
    if window_ms is None:
        window_ms = max(s.duration_ms / 20, MIN_WINDOW_MS)
    sent = sorted([(ms, end - start) for ms, start, end in s.segments + s.resent])
    data_end = max((end for _, _, end in s.segments + s.resent), default=0)
    good, top = [], None
    for ms, ack in s.acks:
        ack = min(ack, data_end)
        if top is not None and ack > top:
            good.append((ms, ack - top))
        top = ack if top is None else max(top, ack)
    if not sent:
        return window_ms, []
    points = [s.duration_ms * i / THROUGHPUT_POINTS for i in range(THROUGHPUT_POINTS + 1)]
    rates = []
    totals = [_cumulative(sent), _cumulative(good)]
    for ms in points:
        got = [_within(times, sums, ms - window_ms, ms) * 8e3 / window_ms for times, sums in totals]
        rates.append((ms, got[0], got[1]))
    return window_ms, rates


def _cumulative(events: list[tuple[float, int]]) -> tuple[list[float], list[int]]:
    times, sums, total = [], [], 0
    for ms, n in events:
        total += n
        times.append(ms)
        sums.append(total)
    return times, sums


def _within(times: list[float], sums: list[int], start: float, end: float) -> int:
    """Bytes of the events with start < time <= end."""
    hi = bisect.bisect_right(times, end)
    lo = bisect.bisect_right(times, start)
    return (sums[hi - 1] if hi else 0) - (sums[lo - 1] if lo else 0)
