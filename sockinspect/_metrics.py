"""Pure computations over what the flow tracker accumulated: size statistics,
Zeek-style connection states. No I/O, no state."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ._delays import Sketch, bucket_width_us, held_decimals_ms
from ._model import Sizes, Stats
from .analysis.zeek import CLOSED, ESTABLISHED, INACTIVE, PARTIAL, RESET, SYN_ACK_SENT, SYN_SENT


def stats_from_counts(counts: Counter[int]) -> Stats:
    """Stats of a multiset given as value -> count (payload sizes, bounded memory)."""
    n = sum(counts.values())
    if not n:
        return Stats()
    values = sorted(counts)
    return Stats(
        count=n,
        min=values[0],
        median=_median_of_counts(values, counts, n),
        p95=_nth_of_counts(values, counts, math.ceil(0.95 * n)),
        max=values[-1],
    )


def sketch_stats(sketch: Sketch) -> Stats:
    """Stats in ms of durations kept in a :class:`Sketch`: count, min and max exact (to the
    ns); median and p95 the middle of their bucket, inside [min, max], rounded to the
    digits the bucket holds (see ``held_decimals_ms``)."""
    counts = sketch.counts
    st = stats_from_counts(counts)
    if not st.count:
        return Stats()
    lo, hi = sketch.lo / 1e6, sketch.hi / 1e6

    def held(us: float) -> float:
        ms = min(max((us + (bucket_width_us(int(us)) - 1) / 2) / 1000, lo), hi)
        return ms if ms in (lo, hi) else round(ms, held_decimals_ms(ms))  # clamped: exact

    return Stats(count=st.count, min=lo, median=held(st.median), p95=held(st.p95), max=hi)


def sizes_from_counts(counts: Counter[int], mss: int | None) -> Sizes:
    """Size distribution with buckets relative to the MSS: 1-63 B, 64-511 B,
    512 B to MSS-1, exactly MSS, above MSS (segmentation offload at the capture point)."""
    st = stats_from_counts(counts)
    if not st.count:
        return Sizes(mss=mss)
    if mss is None:
        edges = [("1-63", 1, 63), ("64-511", 64, 511), ("512+", 512, 1 << 32)]
    else:
        edges = [("1-63", 1, min(63, mss - 1)), ("64-511", 64, min(511, mss - 1)),
                 (f"512-{mss - 1}", 512, mss - 1), (f"={mss}", mss, mss), (f">{mss}", mss + 1, 1 << 32)]
    buckets = [0] * len(edges)
    sub = over = 0
    for value, count in counts.items():
        for i, (_label, lo, hi) in enumerate(edges):
            if lo <= value <= hi:
                buckets[i] += count
                break
        if mss is not None and value < mss:
            sub += count
        elif mss is not None and value > mss:
            over += count
    histogram = tuple((label, n) for (label, _lo, _hi), n in zip(edges, buckets, strict=True))
    return Sizes(count=st.count, min=st.min, median=st.median, p95=st.p95, max=st.max, mss=mss,
                 sub_mss=sub, over_mss=over, histogram=histogram)


def stats_from_values(values: Sequence[float]) -> Stats:
    """Stats of a list of values: median as the mean of the two middle ones, p95 by nearest rank."""
    n = len(values)
    if not n:
        return Stats()
    s = sorted(values)
    mid = n // 2
    median = s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2
    return Stats(count=n, min=s[0], median=median, p95=s[math.ceil(0.95 * n) - 1], max=s[-1])


def _nth_of_counts(values: list[int], counts: Counter[int], rank: int) -> int:
    """The rank-th smallest value (1-based)."""
    seen = 0
    for v in values:
        seen += counts[v]
        if seen >= rank:
            return v
    return values[-1]


def _median_of_counts(values: list[int], counts: Counter[int], n: int) -> float:
    lo = _nth_of_counts(values, counts, (n + 1) // 2)
    hi = _nth_of_counts(values, counts, n // 2 + 1)
    return lo if n % 2 else (lo + hi) / 2


_RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R")


def conn_state(*, orig: int, resp: int, orig_bytes: int, resp_bytes: int, history: str) -> str:
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
