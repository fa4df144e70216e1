"""Records from what the engine computed: size and duration statistics, Zeek-style
connection states. No I/O, no state."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

from ._delays import bucket_width_us, held_decimals_ms
from ._model import ConnState, Sizes, Stats
from .analysis.statistics import S_BUCKETS, S_COUNT, S_MAX, S_MEDIAN_HI, S_MEDIAN_LO, S_MIN, S_OVER, S_P95, S_SUB
from .analysis.zeek import CLOSED, ESTABLISHED, INACTIVE, PARTIAL, RESET, SYN_ACK_SENT, SYN_SENT


def duration_stats(row: list[int] | None, lo_ns: int, hi_ns: int) -> Stats:
    """Stats in ms of durations from their histogram's statistics (``row``, see
    analysis.statistics; None: no value): count, min and max exact (to the ns, given
    apart); median and p95 the middle of their bucket, inside [min, max], rounded to the
    digits the bucket holds (see ``held_decimals_ms``), towards the inside at the edges."""
    if not row:
        return NO_STATS
    lo, hi = lo_ns / 1e6, hi_ns / 1e6
    return Stats(count=row[S_COUNT], min=lo, median=_held(_median(row), lo, hi), p95=_held(row[S_P95], lo, hi),
                 max=hi)


NO_STATS = Stats()  # records are frozen: one empty Stats serves them all


def _held(us: float, lo: float, hi: float) -> float:
    """A bucket's value (``us``) as its middle in ms, inside [lo, hi], with the digits it holds."""
    ms = min(max((us + (bucket_width_us(int(us)) - 1) / 2) / 1000, lo), hi)
    if ms in (lo, hi):  # clamped: exact
        return ms
    rounded = round(ms, held_decimals_ms(ms))
    # Rounding must not carry it out of [min, max] (73 beside a max of 72.867): then
    # min and max, exact, say more than the bucket, and the value keeps its µs.
    return rounded if lo <= rounded <= hi else round(ms, 3)


@functools.lru_cache(maxsize=1024)
def size_edges(mss: int | None) -> tuple[tuple[str, int, int], ...]:
    """Payload-size buckets relative to the MSS: 1-63 B, 64-511 B, 512 B to MSS-1, exactly
    MSS, above MSS (segmentation offload at the capture point); (label, lo, hi)."""
    if mss is None:
        return ("1-63", 1, 63), ("64-511", 64, 511), ("512+", 512, 1 << 32)
    return (("1-63", 1, min(63, mss - 1)), ("64-511", 64, min(511, mss - 1)),
            (f"512-{mss - 1}", 512, mss - 1), (f"={mss}", mss, mss), (f">{mss}", mss + 1, 1 << 32))


def sizes(row: list[int] | None, mss: int | None) -> Sizes:
    """The size distribution from its histogram's statistics (None: no data segment)."""
    if not row:
        return _no_sizes(mss)
    histogram = tuple((label, row[S_BUCKETS + i]) for i, (label, _lo, _hi) in enumerate(size_edges(mss)))
    return Sizes(count=row[S_COUNT], min=row[S_MIN], median=_median(row), p95=row[S_P95], max=row[S_MAX],
                 mss=mss, sub_mss=row[S_SUB], over_mss=row[S_OVER], histogram=histogram)


@functools.lru_cache(maxsize=1024)
def _no_sizes(mss: int | None) -> Sizes:
    return Sizes(mss=mss)


def _median(row: list[int]) -> float:
    lo, hi = row[S_MEDIAN_LO], row[S_MEDIAN_HI]
    return lo if row[S_COUNT] % 2 else (lo + hi) / 2


def stats_from_values(values: Sequence[float]) -> Stats:
    """Stats of a list of values: median as the mean of the two middle ones, p95 by nearest rank."""
    n = len(values)
    if not n:
        return Stats()
    s = sorted(values)
    mid = n // 2
    median = s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2
    return Stats(count=n, min=s[0], median=median, p95=s[math.ceil(0.95 * n) - 1], max=s[-1])


_RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R")


def conn_state(*, orig: int, resp: int, orig_bytes: int, resp_bytes: int, history: str) -> ConnState:
    """Zeek's conn_state() (base/protocols/conn/main.zeek) from the two endpoint states:
    ``orig`` the client's, ``resp`` the server's; bytes are payload bytes; ``history``
    is the connection's Zeek history string (RSTOS0 needs a SYN then a RST in it)."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (orig == RESET and orig_bytes == 0 and resp_bytes == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0_HISTORY.match(history) else "OTH"
        return "RSTO"
    if resp == CLOSED and orig == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"


CONN_STATES = {
    "S0": "SYN seen, no reply",
    "S1": "established, not closed",
    "SF": "established, closed with FIN both ways",
    "REJ": "connection attempt rejected (SYN answered by RST)",
    "S2": "established, client sent FIN, no FIN from server",
    "S3": "established, server sent FIN, no FIN from client",
    "RSTO": "established, client reset it",
    "RSTR": "established, server reset it",
    "RSTOS0": "client sent SYN then RST, nothing seen from the server",
    "RSTRH": "server sent SYN-ACK (or data) then RST, no SYN seen",
    "SH": "client sent SYN (or data) then FIN, nothing seen from the server",
    "SHR": "server sent SYN-ACK (or data) then FIN, no SYN seen",
    "OTH": "none of the above: e.g. mid-stream traffic that did not close",
}
