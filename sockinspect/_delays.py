"""ACK delays, delayed ACKs, Nagle evidence and the stalls they cause, for one
direction of a TCP connection (the *sender*'s data and the *receiver*'s ACKs).

An incremental state machine fed by the flow tracker in file order; it keeps
only the sender's unacknowledged segments, so memory is bounded by the window.

Rules (Linux, see _linux.py for the constants and their sources):

- **ACK delay** of a data segment: time from the segment to the first ACK from
  the receiver that covers its last byte. Segments sent more than once are
  left out (Karn's rule: the ACK cannot tell which copy it answers).
- **Delayed ACK**: an ACK that newly covers data, carries no data itself, came
  at least ``DELAYED_ACK_THRESHOLD_NS`` (35 ms) after the earliest segment it
  newly covers, covers less than two full-sized segments (Linux ACKs every
  second full segment at once, so larger ACKs are not the delayed-ACK timer),
  and covers only segments sent once (Karn again).
- **Nagle** (tcp_output.c, ``tcp_nagle_test`` / ``tcp_minshall_check``): with
  Nagle on, a sub-MSS segment is not sent while the sender's previous sub-MSS
  segment is unacknowledged; FIN is exempt (so is urgent data, not modelled
  here). So a sub-MSS segment sent while an earlier sub-MSS one is
  unacknowledged proves Nagle is off (``small_while_small_unacked``) -- as
  far as the capture holds every ACK, so a verdict needs two such cases. A sub-MSS segment sent right after a
  pure ACK (no data) that acknowledged the previous sub-MSS segment, when the
  wait for that ACK was much longer than the follow-up, is data that waited for
  the ACK (``held_until_ack``): evidence for Nagle on. A pure ACK gives the
  application no reason to write, so a write that follows it at once was
  queued before it. Neither seen: ``unknown``. Linux applies Nagle only to
  the tail of the send queue (``tcp_write_xmit``: ``tcp_skb_is_last ? nonagle :
  TCP_NAGLE_PUSH``), so a segment counts as evidence only once it proves to be
  a tail: the sender sent no new data before the receiver's next data (or the
  end of the capture). Window-limited pieces of a bulk write are not.
- **Stall**: a delayed ACK after which the sender's next data segment followed
  within the follow window: the sender was waiting for that ACK. The time lost
  is from the late-acknowledged segment to that next segment.

Limits: the capture point's view of time matters: a capture near the receiver
sees the sender's follow-up one RTT after the ACK, so the follow window is 2 ms
plus the handshake RTT. TCP_CORK also holds sub-MSS data (until 200 ms), and an
application that writes late right after a pure ACK by coincidence looks the
same; repeated evidence is required for ``on``. Sub-MSS uses the MSS the
receiver announced (minus 12 bytes when TCP timestamps are in use); without a
SYN it is the largest payload seen so far, at least 536 bytes (RFC 1122).
"""

from __future__ import annotations

from collections import Counter, deque

from ._linux import DELAYED_ACK_THRESHOLD_NS
from ._record import record

SEQ_MOD = 1 << 32
SEQ_HALF = 1 << 31
FOLLOW_BASE_NS = 2_000_000  # the follow window: 2 ms + the handshake RTT
WAIT_RATIO = 5  # "held": the wait for the ACK was at least 5x the follow-up
MIN_MSS = 536  # RFC 1122 default when no MSS option was seen
MAX_STALLS_LISTED = 1000
MAX_HOLES = 64  # gaps in the sequence space seen (reordering, capture loss) kept per sender
# An ACK log entry: (ACK packet, first and last covered data packet, segments covered,
# delay from the last one in ns, all sent once, ends exactly at the last data byte (not
# beyond, at a FIN)); for comparing with tshark's tcp.analysis.ack_rtt.
AckLog = list[tuple[int, int, int, int, int, bool, bool]]


SIGNIFICANT_BITS = 10  # bucket width: 1/1024 to 1/512 of the value; memory stays bounded per connection
_NO_MIN, _NO_MAX = 1 << 80, -(1 << 80)


def quantize_us(us: int) -> int:
    """``us`` with its low bits cleared beyond 10 significant bits (exact below 1.024 ms)."""
    drop = us.bit_length() - SIGNIFICANT_BITS
    return us >> drop << drop if drop > 0 else us


def bucket_width_us(us: int) -> int:
    """Width of the sketch bucket that holds ``us`` (1 below 1.024 ms)."""
    drop = us.bit_length() - SIGNIFICANT_BITS
    return 1 << drop if drop > 0 else 1


def held_decimals_ms(ms: float) -> int:
    """Decimals of a value in ms that the sketch holds, never more: the largest d with
    10**-d ms >= the bucket width (3 below 1.024 ms, 2 to 8.191 ms, 1 to 65.535 ms,
    0 to 524.287 ms, then -1, ...)."""
    width_ms = bucket_width_us(abs(int(ms * 1000))) / 1000
    d = 3
    while 10.0 ** -d < width_ms:
        d -= 1
    return d


class Sketch:
    """Durations in bounded memory: a count per 10-significant-bit bucket (1/1024 to 1/512
    of the value wide; a quantile, its bucket's middle, is within half of that), plus the
    exact smallest and largest, in ns."""

    __slots__ = ("counts", "lo", "hi")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()  # quantize_us(duration in µs) -> how many
        self.lo = _NO_MIN
        self.hi = _NO_MAX

    def add(self, ns: int) -> None:
        self.counts[quantize_us(ns // 1000)] += 1
        if ns < self.lo:
            self.lo = ns
        if ns > self.hi:
            self.hi = ns


def _after(a: int, b: int) -> bool:
    return 0 < (a - b) % SEQ_MOD < SEQ_HALF


@record
class Stall:
    """The sender waited for a delayed ACK before sending more."""

    data_packet: int  # the segment whose ACK was delayed
    ack_packet: int  # the delayed ACK
    next_packet: int  # the sender's next data segment
    data_ts_ns: int
    ack_ts_ns: int
    next_ts_ns: int

    @property
    def ack_delay_ms(self) -> float:
        return (self.ack_ts_ns - self.data_ts_ns) / 1e6

    @property
    def gap_ms(self) -> float:
        """Time lost: from the late-acknowledged segment to the next one."""
        return (self.next_ts_ns - self.data_ts_ns) / 1e6


@record
class NagleEvidence:
    small_segments: int = 0  # sub-MSS data segments sent (first transmissions)
    held_until_ack: int = 0  # sub-MSS data that waited for a pure ACK and followed it at once
    small_while_small_unacked: int = 0  # sub-MSS data sent while earlier sub-MSS data was unacknowledged


MIN_EVIDENCE = 2  # one case either way can be an ACK missing from the capture, or chance


def nagle_verdict(e: NagleEvidence) -> str:
    """``on``, ``off`` or ``unknown`` from the counted evidence, never a guess."""
    on, off = e.held_until_ack, e.small_while_small_unacked
    if off >= MIN_EVIDENCE and not on:
        return "off"
    if on >= MIN_EVIDENCE and not off:
        return "on"
    if on and off:  # conflicting: believe a clear majority only
        if off >= 3 * on:
            return "off"
        if on >= 3 * off:
            return "on"
    return "unknown"


class SenderTimeline:
    """Data of one sender and the ACKs its peer returns; see the module docstring."""

    __slots__ = ("ack_log", "mss", "follow_ns", "outstanding", "snd_una", "high", "sml_end", "sml_ts",
                 "release", "pending_stall", "delays", "delayed_acks", "stalls", "stall_count",
                 "stall_ns", "small", "held", "small_unacked", "max_payload", "candidate", "gap_bytes",
                 "filled", "resent_bytes", "abs_high", "holes")

    def __init__(self, ack_log: AckLog | None = None) -> None:
        self.ack_log = ack_log  # when a list, every ACK that newly covers data is appended
        self.mss: int | None = None  # sub-MSS threshold (effective MSS), once known
        self.follow_ns = FOLLOW_BASE_NS
        # Unacknowledged segments: [end_seq, ts_ns, packet number, sent once?]
        self.outstanding: deque[list] = deque()
        self.snd_una: int | None = None
        self.high: int | None = None  # highest end sequence sent
        self.sml_end: int | None = None  # end of the last sub-MSS segment (Minshall's snd_sml)
        self.sml_ts = 0
        self.release: tuple[int, int] | None = None  # (ts, packet) of a pure ACK covering snd_sml
        self.pending_stall: tuple[int, int, int, int] | None = None  # data pkt, data ts, ack pkt, ack ts
        self.delays = Sketch()  # ACK delays
        self.delayed_acks = 0
        self.stalls: list[Stall] = []
        self.stall_count = 0
        self.stall_ns = 0
        self.small = self.held = self.small_unacked = 0
        self.max_payload = 0
        self.candidate: str | None = None  # "held" or "unacked": evidence if the segment proves a tail
        # Sequence space. ``abs_high``: how far ``high`` advanced, unwrapped (no modulo);
        # ``holes``: the ranges below it not seen yet, [lo, hi) in those numbers, oldest first,
        # at most MAX_HOLES (an older one is forgotten: data filling it then counts as resent).
        # Bytes seen for the first time (``unique``) = abs_high - gap_bytes + filled.
        self.abs_high = self.gap_bytes = self.filled = self.resent_bytes = 0
        self.holes: list[tuple[int, int]] = []

    def data(self, seq: int, n: int, ts: int | None, number: int, fin: bool) -> bool:
        """The sender sent ``n`` > 0 bytes at ``seq``. Returns whether they were sent before
        (a retransmission or out-of-order arrival; a 1-byte keep-alive probe is not).
        Called for every data segment: the common case is kept inline."""
        end = (seq + n) & 0xFFFFFFFF
        high = self.high
        if n > self.max_payload:
            self.max_payload = n
        if high is not None and not 0 < (end - high) & 0xFFFFFFFF < SEQ_HALF:  # nothing new
            if ts is not None:
                self._resent(end, ts, number)
            # A keep-alive (one old byte, all data acknowledged) is not resent data.
            if n == 1 and (high - seq) & 0xFFFFFFFF == 1 and self.snd_una == high:
                return False
            top = self.abs_high - ((high - end) & 0xFFFFFFFF)
            self._seen_again(top - n, top)
            return True
        if high is None or seq == high:  # in order (hot)
            self.abs_high += n
        else:
            self._beyond(seq, n, end, high)
        self.high = end
        if ts is None:
            return False
        if self.snd_una is None:
            self.snd_una = seq
        self.outstanding.append([end, ts, number, True])
        self.candidate = None  # more new data: the previous segment was not the queue's tail
        if n < (self.mss or max(self.max_payload, MIN_MSS)):
            self.small += 1
            if not fin:
                self._nagle_evidence(ts)
            self.sml_end = end
            self.sml_ts = ts
        if self.pending_stall is not None:
            self._stall(ts, number)
        self.release = None
        return False

    @property
    def unique(self) -> int:
        """Payload bytes of sequence space seen for the first time."""
        return self.abs_high - self.gap_bytes + self.filled

    def _beyond(self, seq: int, n: int, end: int, high: int) -> None:
        """New data that does not start at the highest sequence seen: it overlaps it, or
        leaves a gap (a reordered or lost segment, perhaps seen later)."""
        advance = (end - high) & 0xFFFFFFFF
        below = (high - seq) & 0xFFFFFFFF  # bytes of this segment below the highest seen
        top = self.abs_high
        if below < SEQ_HALF:
            self._seen_again(top - below, top)
        else:
            gap = advance - n
            self.gap_bytes += gap
            self.holes.append((top, top + gap))
            if len(self.holes) > MAX_HOLES:
                del self.holes[0]
        self.abs_high = top + advance

    def _seen_again(self, lo: int, hi: int) -> None:
        """Bytes [lo, hi) (unwrapped) below the highest seen: new where they fill a hole."""
        fresh = 0
        if self.holes:
            kept = []
            for h_lo, h_hi in self.holes:
                o_lo, o_hi = max(h_lo, lo), min(h_hi, hi)
                if o_lo < o_hi:
                    fresh += o_hi - o_lo
                    if h_lo < o_lo:
                        kept.append((h_lo, o_lo))
                    if o_hi < h_hi:
                        kept.append((o_hi, h_hi))
                else:
                    kept.append((h_lo, h_hi))
            self.holes = kept[-MAX_HOLES:]
        self.filled += fresh
        self.resent_bytes += hi - lo - fresh

    def _nagle_evidence(self, ts: int) -> None:
        """A sub-MSS segment: was earlier small data unacknowledged, or did it wait for the ACK?"""
        sml = self.sml_end
        if sml is not None and 0 < (sml - self.snd_una) & 0xFFFFFFFF < SEQ_HALF:
            self.candidate = "unacked"
        elif self.release is not None:
            ack_ts = self.release[0]
            follow = ts - ack_ts
            if follow <= self.follow_ns and ack_ts - self.sml_ts >= WAIT_RATIO * max(follow, 1):
                self.candidate = "held"

    def _resent(self, end: int, ts: int, number: int) -> None:
        """Outstanding copies of resent data become ambiguous for ACK timing."""
        for seg in self.outstanding:
            if not _after(seg[0], end):
                seg[3] = False
        if self.pending_stall is not None:
            self._stall(ts, number)
        self.release = None

    def _stall(self, ts: int, number: int) -> None:
        """The sender's data after a delayed ACK: a stall if it followed the ACK at once."""
        data_pkt, data_ts, ack_pkt, ack_ts = self.pending_stall
        if ts - ack_ts <= self.follow_ns:
            self.stall_count += 1
            self.stall_ns += ts - data_ts
            if len(self.stalls) < MAX_STALLS_LISTED:
                self.stalls.append(Stall(data_pkt, ack_pkt, number, data_ts, ack_ts, ts))
        self.pending_stall = None

    def confirm_tail(self) -> None:
        """The last new segment was the tail of the send queue: count its evidence."""
        if self.candidate == "held":
            self.held += 1
        elif self.candidate == "unacked":
            self.small_unacked += 1
        self.candidate = None

    def ack(self, ack: int, ts: int | None, number: int, carries_data: bool) -> None:
        """The receiver acknowledged up to ``ack``."""
        if carries_data:  # the sender's application may be answering this data
            self.release = None
            self.pending_stall = None
            if self.candidate is not None:
                self.confirm_tail()
        una = self.snd_una
        if una is None or ts is None:
            return
        newly = (ack - una) & 0xFFFFFFFF
        if not 0 < newly < SEQ_HALF:  # acknowledges nothing new (the hot path: inlined _after)
            return
        self.snd_una = ack
        first: list | None = None
        clean = True
        out = self.outstanding
        covered = 0
        delays = self.delays
        while out and not 0 < (out[0][0] - ack) & 0xFFFFFFFF < SEQ_HALF:
            seg = out.popleft()
            covered += 1
            if first is None:
                first = seg
            if seg[3]:
                d = ts - seg[1]  # Sketch.add, inlined (hot)
                delays.counts[quantize_us(d // 1000)] += 1
                if d < delays.lo:
                    delays.lo = d
                if d > delays.hi:
                    delays.hi = d
            else:
                clean = False
        if first is None:
            return
        if self.ack_log is not None:
            self.ack_log.append((number, first[2], seg[2], covered, ts - seg[1], clean, ack == seg[0]))
        mss = self.mss or max(self.max_payload, MIN_MSS)
        if (not carries_data and clean and ts - first[1] >= DELAYED_ACK_THRESHOLD_NS
                and newly < 2 * mss):
            self.delayed_acks += 1
            self.pending_stall = (first[2], first[1], number, ts)
        if not carries_data and self.sml_end is not None and not _after(self.sml_end, ack):
            self.release = (ts, number)
