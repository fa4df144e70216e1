"""Rebuild TCP connections and UDP flows from packets: ``feed()`` each packet in
file order, then ``finish()``.

Like h11, this is a state machine with no I/O. Memory is bounded by the number
of connections: each keeps counters and a histogram of payload sizes, never the
packets themselves. Connections are identified by both endpoints plus the VLAN
tags; a SYN starts a new connection on the same ports (port reuse) when the
previous one has ended, has been idle long, or began with a different initial
sequence number.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable

from . import _linux
from ._decode import ACK, FIN, RST, SYN, TCP, Packet, parse_syn_options
from ._delays import FOLLOW_BASE_NS, AckLog, NagleEvidence, SenderTimeline, Sketch, nagle_verdict
from ._metrics import (
    CLOSED,
    ESTABLISHED,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    conn_state,
    sizes_from_counts,
    sketch_stats,
)
from ._model import (
    Direction,
    Endpoint,
    Handshake,
    Selection,
    TcpConnection,
    UdpDirection,
    UdpFlow,
)

IDLE_RESTART_NS = 300 * 1_000_000_000  # a SYN after 5 idle minutes is a new connection


class _Side:
    """What one side of a TCP connection sent."""

    __slots__ = ("packets", "payload_bytes", "segments", "frame_bytes", "sizes", "syn_options",
                 "isn", "retransmissions", "fins", "rsts", "first_data_ts", "last_data_ts", "wnd",
                 "zero_windows", "zero_since", "zero_ns", "window_full")

    def __init__(self) -> None:
        self.packets = self.payload_bytes = self.segments = self.frame_bytes = 0
        self.sizes: Counter[int] = Counter()
        self.syn_options: bytes | None = None
        self.isn: int | None = None  # sequence number of this side's first SYN
        self.retransmissions = self.fins = self.rsts = 0
        self.first_data_ts: int | None = None
        self.last_data_ts: int | None = None
        # Its last segment's (flags, ack, raw window): the receive window it announced last
        # (a SYN's is never scaled), from the acknowledgment number (valid with ACK set).
        self.wnd = (0, 0, 0)
        self.zero_windows = self.zero_ns = self.window_full = 0
        self.zero_since: int | None = None  # when its window went to zero, while it stays there

    def direction(self, timeline: SenderTimeline, end_ts: int | None) -> Direction:
        """The record of what this side sent; ``end_ts``: the connection's last packet, which
        ends a zero window never reopened."""
        timeline.confirm_tail()  # the end of the capture ends the sender's queue too
        zero_ns = self.zero_ns
        if self.zero_since is not None and end_ts is not None:
            zero_ns += end_ts - self.zero_since
        opts = parse_syn_options(self.syn_options) if self.syn_options is not None else None
        evidence = NagleEvidence(timeline.small, timeline.held, timeline.small_unacked)
        return Direction(
            packets=self.packets,
            payload_bytes=self.payload_bytes,
            segments=self.segments,
            frame_bytes=self.frame_bytes,
            sizes=sizes_from_counts(self.sizes, timeline.mss),
            mss_option=opts.mss if opts else None,
            wscale=opts.wscale if opts else None,
            sack_perm=opts.sack_perm if opts else None,
            timestamps=opts.timestamps if opts else None,
            retransmissions=self.retransmissions,
            fins=self.fins,
            rsts=self.rsts,
            first_data_ts_ns=self.first_data_ts,
            last_data_ts_ns=self.last_data_ts,
            unique_bytes=timeline.unique,
            retransmitted_bytes=timeline.resent_bytes,
            zero_windows=self.zero_windows,
            zero_window_ns_total=zero_ns,
            window_full=self.window_full,
            nagle=nagle_verdict(evidence),
            nagle_evidence=evidence,
            ack_delay_ms=sketch_stats(timeline.delays),
            delayed_acks=timeline.delayed_acks,
            stall_list=tuple(timeline.stalls),
            stalls=timeline.stall_count,
            stall_ns_total=timeline.stall_ns,
        )


HISTORY_MAX = 100  # letters kept per connection (Zeek keeps all; s/h/f/r repeat on new sequence numbers)
# Zeek's history masks (src/analyzer/protocol/tcp/TCP_Endpoint.h), one set per side.
_H_SYN, _H_FIN, _H_RST, _H_FIN_RST, _H_DATA, _H_ACK, _H_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40


class _Zeek:
    """Zeek's view of a connection, to line sockinspect up with conn.log: each side's
    TCP endpoint state (TCP.cc's UpdateStateMachine) and the ``history`` letters
    (update_history, ScaledHistoryEntry), recorded by side and cased at the end."""

    __slots__ = ("state", "seen", "last", "letters", "scaled")

    def __init__(self) -> None:
        self.state = [INACTIVE, INACTIVE]
        self.seen = [0, 0]  # history masks already recorded, per side
        self.last: list[list[int | None]] = [[None, None, None], [None, None, None]]  # last SYN, FIN, RST seq
        self.letters: list[tuple[int, str]] = []  # (side, lower-case letter)
        self.scaled = [[0, 1, 0, 1], [0, 1, 0, 1]]  # per side: retransmissions, threshold, zero windows, threshold

    def _add(self, s: int, letter: str) -> None:
        if len(self.letters) < HISTORY_MAX:
            self.letters.append((s, letter))

    def _once(self, s: int, mask: int, letter: str) -> bool:
        """Record ``letter`` the first time; True if it had been recorded before (Zeek's CheckHistory)."""
        if self.seen[s] & mask:
            return True
        self.seen[s] |= mask
        self._add(s, letter)
        return False

    def _scaled(self, s: int, i: int, letter: str) -> None:
        """Zeek's logarithmic letters: at the 1st, 10th, 100th, ... occurrence."""
        counts = self.scaled[s]
        counts[i] += 1
        if counts[i] == counts[i + 1]:
            counts[i + 1] *= 10
            self._add(s, letter)

    def packet(self, s: int, orig: bool, orig_side: int, flags: int, seq: int, n: int, win: int,
               resent: bool) -> None:
        self._transition(s, orig, orig_side, flags, n)
        bits = bool(flags & SYN) + bool(flags & FIN) + bool(flags & RST)
        last = self.last[s]
        if bits > 1:
            if flags & FIN and flags & RST:
                self._once(s, _H_FIN_RST, "i")
            else:
                self._once(s, _H_MULTI, "q")
        elif bits:
            if flags & SYN:
                letter = "h" if flags & ACK else "s"
                if self._once(s, _H_SYN, letter) and seq != last[0]:
                    self._add(s, letter)
                last[0] = seq
            elif flags & FIN:
                end = (seq + n) & 0xFFFFFFFF  # a FIN's number is after its data
                if self._once(s, _H_FIN, "f") and end != last[1]:
                    self._add(s, "f")
                last[1] = end
            else:
                if self._once(s, _H_RST, "r") and seq != last[2]:
                    self._add(s, "r")
                last[2] = seq
        elif n:
            self._once(s, _H_DATA, "d")
        elif flags & ACK:
            self._once(s, _H_ACK, "a")
        # A zero window counts unless on a SYN or RST, from a reset side, or after the peer's FIN.
        if (win == 0 and not flags & (SYN | RST) and self.state[s] != RESET
                and self.state[1 - s] != CLOSED):
            self._scaled(s, 2, "w")
        if resent:
            self._scaled(s, 0, "t")

    def _transition(self, s: int, orig: bool, orig_side: int, flags: int, n: int) -> None:
        """One endpoint's state after its packet: Zeek's table, for the states conn_state reads."""
        state = self.state
        st, peer = state[s], state[1 - s]
        if st == INACTIVE:
            if flags & SYN:
                if orig:
                    st = SYN_ACK_SENT if flags & ACK else SYN_SENT
                else:  # the reply to a SYN: a SYN/ACK, or a bare SYN (split handshake, simultaneous open)
                    if peer == SYN_SENT:
                        state[1 - s] = ESTABLISHED
                    st = ESTABLISHED
            if flags & FIN:
                st = CLOSED
            if flags & RST:
                st = RESET
            if st == INACTIVE:  # no control flag moved it
                if not orig and not n and state[orig_side] == SYN_SENT:
                    pass  # an ACK of the SYN before the SYN/ACK: not yet a partial connection
                elif flags & ACK and state[1 - s] == ESTABLISHED:
                    st = ESTABLISHED  # the SYN was missed, the SYN/ACK was not
                else:
                    st = PARTIAL
        elif st in (SYN_SENT, SYN_ACK_SENT):
            if flags & FIN:
                st = CLOSED
            if flags & RST:
                st = RESET
        elif st in (ESTABLISHED, PARTIAL):
            if flags & SYN and st == PARTIAL and peer == INACTIVE and not flags & ACK:
                st = SYN_SENT
            if flags & FIN and not flags & RST:
                st = CLOSED
            if flags & RST:
                st = RESET
        elif st == CLOSED and flags & RST:
            st = RESET
        state[s] = st

    def history(self, client: int) -> str:
        """Zeek's history string: upper case for the originator (the client), '^' when
        the client is not the side that sent the first packet (Zeek flipped the roles)."""
        letters = "".join(c.upper() if s == client else c for s, c in self.letters)
        return ("^" if client != 0 else "") + letters


class _TcpBuilder:
    """A connection being rebuilt. Side 0 sent the first packet seen."""

    __slots__ = ("index", "vlan", "keys", "addr", "port", "sides", "client", "syn_ts", "last_syn_ts",
                 "synack_ts", "ack_ts", "syn_count", "synack_count", "first_close", "first_rst",
                 "first_ts", "last_ts", "first_packet", "last_packet", "timelines", "request_ts",
                 "reply_first_ts", "reply_last_ts", "latencies", "first_byte", "guessed_client", "zeek",
                 "wshift")

    def __init__(self, index: int, pkt: Packet, ack_log: AckLog | None = None) -> None:
        self.index = index
        self.vlan = pkt.vlan
        self.keys: list[tuple] = []  # the flow table's keys for this connection
        self.addr = (pkt.src, pkt.dst)
        self.port = (pkt.sport, pkt.dport)
        self.sides = (_Side(), _Side())
        self.client: int | None = None  # 0 or 1 once a SYN or SYN/ACK says so
        self.syn_ts = self.last_syn_ts = self.synack_ts = self.ack_ts = None
        self.syn_count = self.synack_count = 0
        self.first_close: int | None = None  # side that sent the first FIN or RST
        self.first_rst: int | None = None
        self.first_ts = self.last_ts = pkt.ts_ns
        self.first_packet = self.last_packet = pkt.number
        self.timelines = (SenderTimeline(ack_log), SenderTimeline(ack_log))  # by sending side
        self.request_ts: int | None = None  # first byte of the client's current request
        self.reply_first_ts: int | None = None  # first and last server data since that request
        self.reply_last_ts: int | None = None
        self.latencies = Sketch()  # request's first byte -> reply's last byte
        self.first_byte = Sketch()  # request's first byte -> reply's first byte
        self.guessed_client = _infer_client(self.port)  # the client's side while no SYN says so
        self.zeek = _Zeek()
        self.wshift: tuple[int, int] | None = None  # window-scale shift per side, once both SYNs are seen

    def ended(self) -> bool:
        a, b = self.sides
        return self.first_rst is not None or (a.fins > 0 and b.fins > 0)

    def starts_anew(self, pkt: Packet, s: int) -> bool:
        """Whether this SYN (without ACK) from side ``s`` opens a new connection."""
        if self.ended():  # even with the same ISN: a new attempt after a RST (or both FINs)
            return True
        side = self.sides[s]
        if side.isn is not None:
            return pkt.seq != side.isn  # the same ISN: a retransmitted SYN
        if self.client is None:  # no SYN seen yet: this one opens a new connection
            return True
        ts, last = pkt.ts_ns, self.last_ts
        if ts is not None and last is not None and ts - last > IDLE_RESTART_NS:
            return True
        return side.packets > 0 and self.client != s

    def feed(self, pkt: Packet, s: int) -> None:
        number, ts, wirelen, _vlan, _src, _dst, _proto, _sport, _dport, seq, ack, flags, win, n, opts = pkt
        side = self.sides[s]
        side.packets += 1
        side.frame_bytes += wirelen
        timelines = self.timelines
        resent = False
        if flags & ACK:
            timelines[1 - s].ack(ack, ts, number, n > 0)
        if not win:
            if not flags & (SYN | FIN | RST):
                self._zero_window(side, s, seq, n, ts)
        elif side.zero_since is not None and ts is not None:
            side.zero_ns += ts - side.zero_since  # the window reopened
            side.zero_since = None
        if n:
            wshift = self.wshift
            if wshift is not None and not flags & (SYN | FIN | RST):
                p_flags, p_ack, p_win = self.sides[1 - s].wnd  # tshark's window_full: data to the edge
                if p_flags & ACK and not (seq + n - p_ack - (p_win if p_flags & SYN else p_win << wshift[1 - s])
                                          ) & 0xFFFFFFFF:
                    side.window_full += 1
            if timelines[s].data(seq, n, ts, number, bool(flags & FIN)):
                side.retransmissions += 1
                resent = True
            if ts is not None:  # request -> reply latency, inline (hot)
                if s == (self.client if self.client is not None else self.guessed_client):
                    if self.reply_first_ts is not None:  # a new request: the last reply is complete
                        self._reply_done()
                        self.request_ts = ts
                    elif self.request_ts is None:
                        self.request_ts = ts
                elif self.request_ts is not None:
                    if self.reply_first_ts is None:
                        self.reply_first_ts = ts
                    self.reply_last_ts = ts
            if not side.segments:
                side.first_data_ts = ts
            if ts is not None:
                side.last_data_ts = ts
            side.payload_bytes += n
            side.segments += 1
            side.sizes[n] += 1
        side.wnd = (flags, ack, win)
        if flags & (SYN | FIN | RST):
            self._control(side, s, flags, seq, ts, opts)
        zeek = self.zeek
        if (flags & (SYN | FIN | RST) or resent or not win or zeek.state[s] == INACTIVE
                or not zeek.seen[s] & (_H_DATA if n else _H_ACK)):  # else nothing to change (hot)
            c = self.client if self.client is not None else self.guessed_client
            zeek.packet(s, s == c, c, flags, seq, n, win, resent)
        if (self.ack_ts is None and flags & (ACK | SYN | RST) == ACK and s == self.client
                and (self.synack_count or (self.syn_count and ack and not flags & FIN))):
            # The handshake's ACK (tshark's rule: ACK set, SYN and RST clear); after the SYN alone
            # when the capture missed the SYN/ACK (it sees one direction): a half-seen handshake,
            # if the ACK acknowledges something and is no FIN (tshark gives no RTT for a TCP Fast
            # Open SYN followed by FIN/ACK with acknowledgment number 0 in tcpdump__tfo-5c1fa7f9ae91).
            self.ack_ts = ts
            self._configure_timelines()
        if ts is not None:
            if self.last_ts is None:
                self.first_ts = self.last_ts = ts
            elif ts > self.last_ts:
                self.last_ts = ts
            elif ts < self.first_ts:
                self.first_ts = ts
        self.last_packet = number

    def _zero_window(self, side: _Side, s: int, seq: int, n: int, ts: int | None) -> None:
        """A segment announcing a zero window (no SYN, FIN or RST): tshark's zero_window,
        unless it is a zero-window probe (one byte at the next sequence number while the
        peer's window is zero), which tshark does not flag."""
        if not (n == 1 and seq == self.timelines[s].high and self.sides[1 - s].wnd[2] == 0):
            side.zero_windows += 1
        if side.zero_since is None:
            side.zero_since = ts

    def _reply_done(self) -> None:
        """The reply to the current request ended (the client spoke again, or the capture ended)."""
        start = self.request_ts
        self.latencies.add(self.reply_last_ts - start)
        self.first_byte.add(self.reply_first_ts - start)
        self.request_ts = self.reply_first_ts = self.reply_last_ts = None

    def _control(self, side: _Side, s: int, flags: int, seq: int, ts: int | None, opts: bytes) -> None:
        """SYN, SYN/ACK, FIN and RST: roles, handshake times, teardown."""
        if flags & SYN:
            if flags & ACK:
                if self.client is None:
                    self.client = 1 - s
                if s != self.client:
                    self.synack_count += 1
                    if self.synack_ts is None:
                        self.synack_ts = ts
                        side.syn_options = opts
                        self._window_scaling()
                    elif (self.ack_ts is None and ts is not None and self.last_syn_ts is not None
                          and self.synack_ts < self.last_syn_ts):  # it answers a retried SYN
                        self.synack_ts = ts
            else:
                if self.client is None or (self.syn_count == 0 and self.client != s):
                    self.client = s
                if s == self.client:
                    self.syn_count += 1
                    if side.isn is None:
                        side.isn = seq
                        side.syn_options = opts
                        self.syn_ts = ts
                        self._window_scaling()
                    if self.ack_ts is None:  # the RTT runs from the last SYN before the ACK (tshark's)
                        self.last_syn_ts = ts
        if flags & FIN:
            side.fins += 1
            if self.first_close is None:
                self.first_close = s
        if flags & RST:
            side.rsts += 1
            if self.first_rst is None:
                self.first_rst = s
            if self.first_close is None:
                self.first_close = s

    def _window_scaling(self) -> None:
        """Once both sides' SYN options are known: the shift of each side's windows (RFC 7323:
        only when both sent the option; at most 14), so that window_full can be judged."""
        a, b = (side.syn_options for side in self.sides)
        if a is None or b is None:
            return
        shifts = parse_syn_options(a).wscale, parse_syn_options(b).wscale
        both = None not in shifts
        self.wshift = (min(shifts[0], 14), min(shifts[1], 14)) if both else (0, 0)

    def _configure_timelines(self) -> None:
        """With the handshake done: each sender's MSS is what its peer announced."""
        opts = [parse_syn_options(side.syn_options or b"") for side in self.sides]
        both_ts = opts[0].timestamps and opts[1].timestamps
        start = self.last_syn_ts
        rtt = self.ack_ts - start if self.ack_ts is not None and start is not None else 0
        for s in (0, 1):
            peer_mss = opts[1 - s].mss
            timeline = self.timelines[s]
            if peer_mss:
                timeline.mss = peer_mss - (_linux.TIMESTAMP_OPTION_BYTES if both_ts else 0)
            timeline.follow_ns = FOLLOW_BASE_NS + max(rtt, 0)

    def build(self, name: Callable[[bytes], str]) -> TcpConnection:
        if self.reply_first_ts is not None:
            self._reply_done()
        inferred = self.client is None
        c = self.client if self.client is not None else self.guessed_client
        s = 1 - c
        role = {c: "client", s: "server"}
        history = self.zeek.history(c)
        client_port = self.port[c]
        return TcpConnection(
            index=self.index,
            client=Endpoint(name(self.addr[c]), client_port),
            server=Endpoint(name(self.addr[s]), self.port[s]),
            inferred=inferred,
            vlan=self.vlan,
            handshake=Handshake(
                syn_ts_ns=self.syn_ts,
                last_syn_ts_ns=self.last_syn_ts,
                synack_ts_ns=self.synack_ts,
                ack_ts_ns=self.ack_ts,
                syn_count=self.syn_count,
                synack_count=self.synack_count,
            ),
            c2s=self.sides[c].direction(self.timelines[c], self.last_ts),
            s2c=self.sides[s].direction(self.timelines[s], self.last_ts),
            state=conn_state(
                orig=self.zeek.state[c],
                resp=self.zeek.state[s],
                orig_bytes=self.sides[c].payload_bytes,
                resp_bytes=self.sides[s].payload_bytes,
                history=history,
            ),
            history=history,
            closed_by=role.get(self.first_close),
            first_ts_ns=self.first_ts,
            last_ts_ns=self.last_ts,
            first_packet=self.first_packet,
            last_packet=self.last_packet,
            client_port_ephemeral_linux=client_port in _linux.LINUX_EPHEMERAL_PORTS,
            client_port_ephemeral_iana=client_port in _linux.IANA_EPHEMERAL_PORTS,
            request_latency_ms=sketch_stats(self.latencies),
            response_first_byte_ms=sketch_stats(self.first_byte),
        )


def _infer_client(ports: tuple[int, int]) -> int:
    """Guess which side (0 = first sender) is the client of a mid-stream connection:
    the side not on a well-known port, else the side on an ephemeral port, else 0."""
    well_known = [p in _linux.WELL_KNOWN_PORTS for p in ports]
    if well_known[0] != well_known[1]:
        return 0 if well_known[1] else 1
    ephemeral = [p in _linux.LINUX_EPHEMERAL_PORTS or p in _linux.IANA_EPHEMERAL_PORTS for p in ports]
    if ephemeral[0] != ephemeral[1]:
        return 0 if ephemeral[0] else 1
    return 0


class _UdpBuilder:
    __slots__ = ("index", "vlan", "keys", "addr", "port", "packets", "bytes", "frame_bytes",
                 "pending_ts", "rtts", "first_ts", "last_ts", "first_packet", "last_packet")

    def __init__(self, index: int, pkt: Packet) -> None:
        self.index = index
        self.vlan = pkt.vlan
        self.keys: list[tuple] = []  # the flow table's keys for this connection
        self.addr = (pkt.src, pkt.dst)
        self.port = (pkt.sport, pkt.dport)
        self.packets = [0, 0]
        self.bytes = [0, 0]
        self.frame_bytes = [0, 0]
        self.pending_ts: int | None = None  # an a->b datagram not yet answered
        self.rtts = Sketch()  # as TCP's delays: memory stays bounded
        self.first_ts = self.last_ts = pkt.ts_ns
        self.first_packet = self.last_packet = pkt.number

    def feed(self, pkt: Packet) -> None:
        s = 0 if pkt.sport == self.port[0] and pkt.src == self.addr[0] else 1
        self.packets[s] += 1
        self.bytes[s] += pkt.payload_len
        self.frame_bytes[s] += pkt.wirelen
        ts = pkt.ts_ns
        if ts is not None:
            if s == 0:
                if self.pending_ts is None:
                    self.pending_ts = ts
            elif self.pending_ts is not None:
                self.rtts.add(ts - self.pending_ts)
                self.pending_ts = None
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
        self.last_packet = pkt.number

    def build(self, name: Callable[[bytes], str]) -> UdpFlow:
        return UdpFlow(
            index=self.index,
            a=Endpoint(name(self.addr[0]), self.port[0]),
            b=Endpoint(name(self.addr[1]), self.port[1]),
            vlan=self.vlan,
            a2b=UdpDirection(self.packets[0], self.bytes[0], self.frame_bytes[0]),
            b2a=UdpDirection(self.packets[1], self.bytes[1], self.frame_bytes[1]),
            rtt_ms=sketch_stats(self.rtts),
            first_ts_ns=self.first_ts,
            last_ts_ns=self.last_ts,
            first_packet=self.first_packet,
            last_packet=self.last_packet,
        )


class _Table:
    """Finds the connection a packet belongs to. Keys are per direction and include
    the VLAN tags; a connection whose reverse direction has not been seen yet takes
    the first reverse packet on any VLAN (preferring its own), because routers on a
    stick put the two directions of one connection on different VLANs."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, _TcpBuilder | _UdpBuilder] = {}
        self.half_open: dict[tuple, list[_TcpBuilder | _UdpBuilder]] = {}

    def get(self, pkt: Packet, key: tuple) -> _TcpBuilder | _UdpBuilder | None:
        """The connection for ``pkt``, whose directional key is ``key``."""
        found = self.by_key.get(key)
        if found is not None:
            return found
        waiting = self.half_open.get((pkt.dst, pkt.dport, pkt.src, pkt.sport))
        if not waiting:
            return None
        found = next((b for b in waiting if b.vlan == pkt.vlan), waiting[-1])
        waiting.remove(found)
        self.by_key[key] = found
        found.keys.append(key)
        return found

    def add(self, builder: _TcpBuilder | _UdpBuilder, key: tuple) -> None:
        """Register ``builder`` for the direction ``key``, replacing any older connection."""
        old = self.by_key.get(key)
        if old is not None:
            self._drop(old)
        self.by_key[key] = builder
        builder.keys.append(key)
        self.half_open.setdefault(key[1:], []).append(builder)

    def _drop(self, old: _TcpBuilder | _UdpBuilder) -> None:
        for key in old.keys:
            if self.by_key.get(key) is old:
                del self.by_key[key]
            waiting = self.half_open.get(key[1:])
            if waiting and old in waiting:
                waiting.remove(old)


class FlowTracker:
    """Feed packets in file order; ``finish()`` returns the connections and flows.
    ``ack_log``: a list to which every ACK that newly covers data is appended (see _delays)."""

    def __init__(self, ack_log: AckLog | None = None) -> None:
        self._ack_log = ack_log
        self._tcp = _Table()
        self._udp = _Table()
        self._tcp_all: list[_TcpBuilder] = []
        self._udp_all: list[_UdpBuilder] = []
        self._names: dict[bytes, str] = {}

    def feed(self, pkt: Packet) -> None:
        """Account one packet to its connection or flow."""
        vlan, src, dst, proto, sport, dport = pkt[3:9]  # one slice beats six attribute reads
        key = (vlan, src, sport, dst, dport)
        if proto == TCP:
            conn = self._tcp.by_key.get(key) or self._tcp.get(pkt, key)
            if conn is None:
                conn = self._new_tcp(pkt, key)
                s = 0
            else:
                s = 0 if sport == conn.port[0] and src == conn.addr[0] else 1
                if pkt.flags & (SYN | ACK) == SYN and conn.starts_anew(pkt, s):
                    conn = self._new_tcp(pkt, key)
                    s = 0
            conn.feed(pkt, s)
            return
        flow = self._udp.get(pkt, key)
        if flow is None:
            flow = _UdpBuilder(len(self._udp_all), pkt)
            self._udp_all.append(flow)
            self._udp.add(flow, key)
        flow.feed(pkt)

    def _new_tcp(self, pkt: Packet, key: tuple) -> _TcpBuilder:
        conn = _TcpBuilder(len(self._tcp_all), pkt, self._ack_log)
        self._tcp_all.append(conn)
        self._tcp.add(conn, key)
        return conn

    def finish(self) -> tuple[Selection[TcpConnection], Selection[UdpFlow]]:
        tcp = Selection(b.build(self._name) for b in self._tcp_all)
        udp = Selection(b.build(self._name) for b in self._udp_all)
        return tcp, udp

    def _name(self, addr: bytes) -> str:
        text = self._names.get(addr)
        if text is None:
            family = socket.AF_INET if len(addr) == 4 else socket.AF_INET6
            text = self._names[addr] = socket.inet_ntop(family, addr)
        return text
