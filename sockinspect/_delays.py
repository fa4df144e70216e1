"""What ACK timing yields, as records: the stalls, the Nagle evidence and its verdict;
and how precisely durations are held (10 significant bits of microseconds). The
rules that find them are the engine's (sockinspect.analysis.acks states them)."""

from __future__ import annotations

from typing import Literal

from ._record import record

NagleVerdict = Literal["on", "off", "unknown"]

# An ACK log entry: (ACK packet, first and last covered data packet, segments covered,
# delay from the last one in ns, all sent once, ends exactly at the last data byte (not
# beyond, at a FIN)); for comparing with tshark's tcp.analysis.ack_rtt.
AckLog = list[tuple[int, int, int, int, int, bool, bool]]


SIGNIFICANT_BITS = 10  # bucket width: 1/1024 to 1/512 of the value; memory stays bounded per connection


def bucket_width_us(us: int) -> int:
    """Width of the sketch bucket that holds ``us`` (1 below 1.024 ms)."""
    drop = us.bit_length() - SIGNIFICANT_BITS
    return 1 << drop if drop > 0 else 1


def held_decimals_ms(ms: float) -> int:
    """Decimals of a value in ms that the sketch holds, never more: the largest d with
    10**-d ms >= the bucket width (3 below 1.024 ms, 2 to 8.191 ms, 1 to 65.535 ms,
    0 to 524.287 ms, then -1, ...)."""
    return _DECIMALS[max(abs(int(ms * 1000)).bit_length() - SIGNIFICANT_BITS, 0)]


def _decimals(width_us: int) -> int:
    d = 3
    while 10.0 ** -d < width_us / 1000:
        d -= 1
    return d


_DECIMALS = [_decimals(1 << drop) for drop in range(64)]  # by the bits a bucket drops


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


def nagle_verdict(e: NagleEvidence) -> NagleVerdict:
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
