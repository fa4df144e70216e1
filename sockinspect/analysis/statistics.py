"""Order statistics of every histogram at once: count, extremes, median, p95, and
payload-size buckets, over the histogram table sorted by (kind, id, value)."""

from __future__ import annotations

import math

from .jit import kernel

# A group's row of the output table.
S_COUNT, S_MIN, S_MAX, S_MEDIAN_LO, S_MEDIAN_HI, S_P95, S_SUB, S_OVER, S_BUCKETS = range(9)
MAX_BUCKETS = 5
S_WIDTH = S_BUCKETS + MAX_BUCKETS
# A group's row of the bucket-edge table: how many edges, then (lo, hi) pairs; and the
# MSS that sub- and over-MSS counts use (-1: none).
E_COUNT, E_MSS, E_EDGES = 0, 1, 2
E_WIDTH = E_EDGES + 2 * MAX_BUCKETS


@kernel
def group_stats(values, counts, starts, ends, edges, out):  # noqa: ANN001, ANN201
    """For group g, rows starts[g]..ends[g] of ``values`` (ascending) and their
    ``counts``: out[g] gets the count, min, max, the two middle values (the median
    is their mean when the count is even), the p95 by nearest rank, and the counts per
    bucket of edges[g] (a value goes to the first bucket that holds it)."""
    for g in range(len(starts)):
        a, b = starts[g], ends[g]
        o = out[g]
        n = 0
        for k in range(a, b):
            n += counts[k]
        o[S_COUNT] = n
        o[S_MIN] = values[a]
        o[S_MAX] = values[b - 1]
        o[S_MEDIAN_LO] = nth(values, counts, a, b, (n + 1) // 2)
        o[S_MEDIAN_HI] = nth(values, counts, a, b, n // 2 + 1)
        o[S_P95] = nth(values, counts, a, b, math.ceil(0.95 * n))
        e = edges[g]
        mss = e[E_MSS]
        for i in range(MAX_BUCKETS):
            o[S_BUCKETS + i] = 0
        o[S_SUB] = o[S_OVER] = 0
        for k in range(a, b):
            v = values[k]
            for i in range(e[E_COUNT]):
                if e[E_EDGES + 2 * i] <= v <= e[E_EDGES + 2 * i + 1]:
                    o[S_BUCKETS + i] += counts[k]
                    break
            if mss >= 0 and v < mss:
                o[S_SUB] += counts[k]
            elif mss >= 0 and v > mss:
                o[S_OVER] += counts[k]


@kernel
def nth(values, counts, a, b, rank):  # noqa: ANN001, ANN201
    """The rank-th smallest value (1-based) of rows a..b."""
    seen = 0
    for k in range(a, b):
        seen += counts[k]
        if seen >= rank:
            return values[k]
    return values[b - 1]
