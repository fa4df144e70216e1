"""ACK timing, delayed ACKs, Nagle evidence and stalls, and which bytes are new, for
one sender of a TCP connection: its data segments and the ACKs its peer returns.

A sender's row of the table ``T`` (columns ``T_*``) holds its state; its
unacknowledged segments are linked entries of the pool ``P`` (memory bounded by
the window), the holes in its sequence space entries of the pool ``H``; stalls
and the ACK log go out as events in ``EV``; ACK delays go to the histograms
``HT`` (with the exact smallest and largest in T).

Rules (Linux, see _linux.py for the constants and their sources):

- **ACK delay** of a data segment: time from the segment to the first ACK from
  the receiver that covers its last byte. Segments sent more than once are
  left out (Karn's rule: the ACK cannot tell which copy it answers).
- **Delayed ACK**: an ACK that newly covers data, carries no data itself, was
  held by the receiver at least ``DELAYED_ACK_THRESHOLD_NS`` (35 ms) after the
  earliest segment it newly covers (the time between them at the capture point,
  less the receiver's round trip from there, which the handshake timed: on
  loopback or beside the receiver nothing; beside a sender, the path's RTT)
  and less than ``DELAYED_ACK_LIMIT_NS`` (RFC 1122 4.2.3.2: an ACK is never
  delayed 0.5 s; a later one is loss recovery or a silent receiver, not the
  timer), covers less than two full-sized segments (Linux ACKs every second
  full segment at once, so larger ACKs are not the delayed-ACK timer), and
  covers only segments sent once (Karn again).
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
- **Stall**: a delayed ACK that left none of the sender's data unacknowledged
  (it had sent nothing since: it was waiting), after which the sender's next
  data segment followed within the follow window: it was waiting for that ACK. The time lost
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

from .._linux import DELAYED_ACK_LIMIT_NS, DELAYED_ACK_THRESHOLD_NS
from . import histograms
from .jit import kernel
from .tables import (
    EV_ACK_LOG,
    EV_STALL,
    G_HOLE_FREE,
    G_LOG,
    G_SEG_FREE,
    G_SEG_USED,
    H_DELAY,
    HALF,
    HOLE_HI,
    HOLE_LO,
    HOLE_NEXT,
    M32,
    NONE,
    NOTE_DELAYED_ACK,
    NOTE_NAGLE_HELD,
    SEG_END,
    SEG_NEXT,
    SEG_ONCE,
    SEG_PKT,
    SEG_TS,
    capped_sum,
    event,
    note,
)

FOLLOW_BASE_NS = 2_000_000  # the follow window: 2 ms + the handshake RTT
WAIT_RATIO = 5  # "held": the wait for the ACK was at least 5x the follow-up
MIN_MSS = 536  # RFC 1122 default when no MSS option was seen
MAX_STALLS_LISTED = 1000
MAX_HOLES = 64  # gaps in the sequence space kept per sender; an older one is forgotten

# The sender table's columns; T_MSS counts once T_HAS_MSS is set. CANDIDATE: evidence waiting for the
# segment to prove the tail of the send queue (0 none, 1 held, 2 unacked); a held one's packet is CAND_PKT,
# the ACK it waited for CAND_ACK (REL_PKT: the last pure ACK of all the small data). LEG: the receiver's
# round trip from the capture point, from the handshake (0 without one).
(T_MSS, T_FOLLOW, T_HEAD, T_TAIL, T_OUT, T_SND_UNA, T_HIGH, T_SML_END, T_SML_TS, T_REL, T_REL_TS,
 T_PENDING, T_PEND_DATA_PKT, T_PEND_DATA_TS, T_PEND_ACK_PKT, T_PEND_ACK_TS, T_DELAYED, T_STALLS,
 T_STALL_NS, T_LISTED, T_SMALL, T_HELD, T_UNACKED, T_MAX_PAYLOAD, T_CANDIDATE, T_ABS_HIGH, T_GAP,
 T_FILLED, T_RESENT, T_HOLES, T_NHOLES, T_HAS_MSS, T_HOLES_TAIL, T_DELAY_LO, T_DELAY_HI, T_REL_PKT,
 T_CAND_PKT, T_CAND_ACK, T_LEG) = range(39)
T_WIDTH = 39
HELD, UNACKED = 1, 2



@kernel
def data(T, P, H, G, EV, d, seq, n, ts, number, fin, has_ts):  # noqa: ANN001, ANN201
    """The sender sent ``n`` > 0 bytes at ``seq``. Returns 1 if they were sent before
    (a retransmission or out-of-order arrival; a 1-byte keep-alive probe is not)."""
    t = T[d]
    end = (seq + n) & M32
    high = t[T_HIGH]
    if n > t[T_MAX_PAYLOAD]:
        t[T_MAX_PAYLOAD] = n
    if high != NONE and not 0 < ((end - high) & M32) < HALF:  # nothing new
        if has_ts:
            resent(T, P, d, end, ts, number, EV, G)
        if n == 1 and ((high - seq) & M32) == 1 and t[T_SND_UNA] == high:  # a keep-alive
            return 0
        top = t[T_ABS_HIGH] - ((high - end) & M32)
        seen_again(T, H, G, d, top - n, top)
        return 1
    if high == NONE or seq == high:  # in order
        t[T_ABS_HIGH] += n
    else:
        beyond(T, H, G, d, seq, n, end, high)
    t[T_HIGH] = end
    if not has_ts:
        return 0
    if t[T_SND_UNA] == NONE:
        t[T_SND_UNA] = seq
    k = G[0][G_SEG_FREE]  # append [end, ts, number, once] to the outstanding segments
    G[0][G_SEG_FREE] = P[k][SEG_NEXT]
    G[0][G_SEG_USED] += 1
    P[k][SEG_END] = end
    P[k][SEG_TS] = ts
    P[k][SEG_PKT] = number
    P[k][SEG_ONCE] = 1
    P[k][SEG_NEXT] = NONE
    if t[T_TAIL] == NONE:
        t[T_HEAD] = k
    else:
        P[t[T_TAIL]][SEG_NEXT] = k
    t[T_TAIL] = k
    t[T_OUT] += 1
    t[T_CANDIDATE] = 0  # more new data: the previous segment was not the queue's tail
    if n < small_threshold(t):
        t[T_SMALL] += 1
        if not fin:
            nagle_evidence(t, ts, number)
        t[T_SML_END] = end
        t[T_SML_TS] = ts
    if t[T_PENDING]:
        stall(t, d, ts, number, EV, G)
    t[T_REL] = 0
    return 0


@kernel
def small_threshold(t):  # noqa: ANN001, ANN201
    """Segments below this many bytes are sub-MSS: the MSS, else the largest seen, at least 536."""
    if t[T_HAS_MSS] and t[T_MSS]:
        return t[T_MSS]
    max_payload = t[T_MAX_PAYLOAD]
    return max_payload if max_payload > MIN_MSS else MIN_MSS


@kernel
def nagle_evidence(t, ts, number):  # noqa: ANN001, ANN201
    """A sub-MSS segment: was earlier small data unacknowledged, or did it wait for the ACK?"""
    sml = t[T_SML_END]
    if sml != NONE and 0 < ((sml - t[T_SND_UNA]) & M32) < HALF:
        t[T_CANDIDATE] = UNACKED
    elif t[T_REL]:
        ack_ts = t[T_REL_TS]
        follow = ts - ack_ts
        # (wait // WAIT_RATIO >= follow) is (wait >= WAIT_RATIO * follow) without overflow
        if follow <= t[T_FOLLOW] and (ack_ts - t[T_SML_TS]) // WAIT_RATIO >= max(follow, 1):
            t[T_CANDIDATE] = HELD
            t[T_CAND_PKT] = number
            t[T_CAND_ACK] = t[T_REL_PKT]


@kernel
def resent(T, P, d, end, ts, number, EV, G):  # noqa: ANN001, ANN201
    """Outstanding copies of resent data become ambiguous for ACK timing."""
    t = T[d]
    k = t[T_HEAD]
    while k != NONE:
        if not 0 < ((P[k][SEG_END] - end) & M32) < HALF:
            P[k][SEG_ONCE] = 0
        k = P[k][SEG_NEXT]
    if t[T_PENDING]:
        stall(t, d, ts, number, EV, G)
    t[T_REL] = 0


@kernel
def beyond(T, H, G, d, seq, n, end, high):  # noqa: ANN001, ANN201
    """New data that does not start at the highest sequence seen: it overlaps it, or
    leaves a gap (a reordered or lost segment, perhaps seen later)."""
    t = T[d]
    advance = (end - high) & M32
    below = (high - seq) & M32  # bytes of this segment below the highest seen
    top = t[T_ABS_HIGH]
    if below < HALF:
        seen_again(T, H, G, d, top - below, top)
    else:
        gap = advance - n
        t[T_GAP] += gap
        k = G[0][G_HOLE_FREE]  # append the hole [top, top + gap)
        G[0][G_HOLE_FREE] = H[k][HOLE_NEXT]
        H[k][HOLE_LO] = top
        H[k][HOLE_HI] = top + gap
        H[k][HOLE_NEXT] = NONE
        if t[T_HOLES] == NONE:
            t[T_HOLES] = k
        else:
            H[t[T_HOLES_TAIL]][HOLE_NEXT] = k
        t[T_HOLES_TAIL] = k
        t[T_NHOLES] += 1
        trim_holes(t, H, G)
    t[T_ABS_HIGH] = top + advance


@kernel
def trim_holes(t, H, G):  # noqa: ANN001, ANN201
    """Forget the oldest holes beyond MAX_HOLES."""
    while t[T_NHOLES] > MAX_HOLES:
        k = t[T_HOLES]
        t[T_HOLES] = H[k][HOLE_NEXT]
        H[k][HOLE_NEXT] = G[0][G_HOLE_FREE]
        G[0][G_HOLE_FREE] = k
        t[T_NHOLES] -= 1


@kernel
def seen_again(T, H, G, d, lo, hi):  # noqa: ANN001, ANN201
    """Bytes [lo, hi) (unwrapped) below the highest seen: new where they fill a hole."""
    t = T[d]
    fresh = 0
    prev = NONE
    k = t[T_HOLES]
    while k != NONE:
        h_lo, h_hi, after = H[k][HOLE_LO], H[k][HOLE_HI], H[k][HOLE_NEXT]
        o_lo, o_hi = max(h_lo, lo), min(h_hi, hi)
        if o_lo < o_hi:
            fresh += o_hi - o_lo
            if h_lo < o_lo and o_hi < h_hi:  # split: [h_lo, o_lo) here, [o_hi, h_hi) after it
                j = G[0][G_HOLE_FREE]
                G[0][G_HOLE_FREE] = H[j][HOLE_NEXT]
                H[k][HOLE_HI] = o_lo
                H[j][HOLE_LO] = o_hi
                H[j][HOLE_HI] = h_hi
                H[j][HOLE_NEXT] = after
                H[k][HOLE_NEXT] = j
                t[T_NHOLES] += 1
                prev = j
            elif h_lo < o_lo:
                H[k][HOLE_HI] = o_lo
                prev = k
            elif o_hi < h_hi:
                H[k][HOLE_LO] = o_hi
                prev = k
            else:  # filled: unlink it
                if prev == NONE:
                    t[T_HOLES] = after
                else:
                    H[prev][HOLE_NEXT] = after
                H[k][HOLE_NEXT] = G[0][G_HOLE_FREE]
                G[0][G_HOLE_FREE] = k
                t[T_NHOLES] -= 1
        else:
            prev = k
        k = after
    t[T_HOLES_TAIL] = prev
    trim_holes(t, H, G)
    t[T_FILLED] += fresh
    t[T_RESENT] += hi - lo - fresh


@kernel
def stall(t, d, ts, number, EV, G):  # noqa: ANN001, ANN201
    """The sender's data after a delayed ACK: a stall if it followed the ACK at once."""
    ack_ts = t[T_PEND_ACK_TS]
    if ts - ack_ts <= t[T_FOLLOW]:
        t[T_STALLS] += 1
        t[T_STALL_NS] = capped_sum(t[T_STALL_NS], ts - t[T_PEND_DATA_TS])
        if t[T_LISTED] < MAX_STALLS_LISTED:
            t[T_LISTED] += 1
            e = EV[event(EV, G, EV_STALL)]
            e[1] = d
            e[2] = t[T_PEND_DATA_PKT]
            e[3] = t[T_PEND_ACK_PKT]
            e[4] = number
            e[5] = t[T_PEND_DATA_TS]
            e[6] = ack_ts
            e[7] = ts
    t[T_PENDING] = 0


@kernel
def confirm_tail(t, EV, G):  # noqa: ANN001, ANN201
    """The last new segment was the tail of the send queue: count its evidence."""
    c = t[T_CANDIDATE]
    if c == HELD:
        t[T_HELD] += 1
        note(EV, G, t[T_CAND_PKT], NOTE_NAGLE_HELD, t[T_CAND_ACK])
    elif c == UNACKED:
        t[T_UNACKED] += 1
    t[T_CANDIDATE] = 0


@kernel
def ack(T, P, G, EV, HT, d, ackno, ts, number, carries_data, has_ts):  # noqa: ANN001, ANN201
    """The receiver acknowledged up to ``ackno``."""
    t = T[d]
    if carries_data:  # the sender's application may be answering this data
        t[T_REL] = 0
        t[T_PENDING] = 0
        if t[T_CANDIDATE]:
            confirm_tail(t, EV, G)
    una = t[T_SND_UNA]
    if una == NONE or not has_ts:
        return
    newly = (ackno - una) & M32
    if not 0 < newly < HALF:  # acknowledges nothing new
        return
    t[T_SND_UNA] = ackno
    covered = 0
    clean = 1
    first_pkt = first_ts = last_pkt = last_ts = last_end = 0
    k = t[T_HEAD]
    while k != NONE and not 0 < ((P[k][SEG_END] - ackno) & M32) < HALF:
        seg = P[k]
        if covered == 0:
            first_pkt, first_ts = seg[SEG_PKT], seg[SEG_TS]
        covered += 1
        last_pkt, last_ts, last_end = seg[SEG_PKT], seg[SEG_TS], seg[SEG_END]
        if seg[SEG_ONCE]:
            delay = ts - last_ts
            histograms.duration(HT, G, H_DELAY, d, delay)
            if delay < t[T_DELAY_LO]:
                t[T_DELAY_LO] = delay
            if delay > t[T_DELAY_HI]:
                t[T_DELAY_HI] = delay
        else:
            clean = 0
        after = seg[SEG_NEXT]
        seg[SEG_NEXT] = G[0][G_SEG_FREE]
        G[0][G_SEG_FREE] = k
        G[0][G_SEG_USED] -= 1
        k = after
    t[T_HEAD] = k
    if k == NONE:
        t[T_TAIL] = NONE
    t[T_OUT] -= covered
    if covered == 0:
        return
    if G[0][G_LOG]:
        e = EV[event(EV, G, EV_ACK_LOG)]
        e[1] = number
        e[2] = first_pkt
        e[3] = last_pkt
        e[4] = covered
        e[5] = ts - last_ts
        e[6] = clean
        e[7] = 1 if ackno == last_end else 0
    mss = small_threshold(t)
    held = ts - first_ts - t[T_LEG]  # what the receiver held it: the path's share taken out
    if not carries_data and clean and DELAYED_ACK_THRESHOLD_NS <= held <= DELAYED_ACK_LIMIT_NS and newly < 2 * mss:
        t[T_DELAYED] += 1
        note(EV, G, number, NOTE_DELAYED_ACK, ts - first_ts)
        t[T_PENDING] = 1 if k == NONE else 0  # nothing left in flight: the sender can only have been waiting
        t[T_PEND_DATA_PKT] = first_pkt
        t[T_PEND_DATA_TS] = first_ts
        t[T_PEND_ACK_PKT] = number
        t[T_PEND_ACK_TS] = ts
    if not carries_data and t[T_SML_END] != NONE and not 0 < ((t[T_SML_END] - ackno) & M32) < HALF:
        t[T_REL] = 1
        t[T_REL_TS] = ts
        t[T_REL_PKT] = number


@kernel
def forget(T, P, H, G, d):  # noqa: ANN001, ANN201
    """Give sender ``d``'s outstanding segments and holes back to their pools."""
    t = T[d]
    k = t[T_HEAD]
    while k != NONE:
        after = P[k][SEG_NEXT]
        P[k][SEG_NEXT] = G[0][G_SEG_FREE]
        G[0][G_SEG_FREE] = k
        G[0][G_SEG_USED] -= 1
        k = after
    k = t[T_HOLES]
    while k != NONE:
        after = H[k][HOLE_NEXT]
        H[k][HOLE_NEXT] = G[0][G_HOLE_FREE]
        G[0][G_HOLE_FREE] = k
        k = after
    t[T_HEAD] = t[T_TAIL] = t[T_HOLES] = t[T_HOLES_TAIL] = NONE
    t[T_OUT] = t[T_NHOLES] = 0
