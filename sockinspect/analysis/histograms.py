"""Histograms the kernels keep: payload sizes, and durations (ACK delays, latencies,
UDP round trips) in buckets of 10 significant bits of microseconds (1/1024 to 1/512
of the value wide: memory stays bounded; see sockinspect._delays.bucket_width_us).
One hash table for all (open addressing, linear probing), keyed
(kind, id, value); Python doubles it before it is half full."""

from __future__ import annotations

from .._delays import SIGNIFICANT_BITS
from .jit import kernel
from .tables import (
    G_HIST_USED,
    H_DELAY,
    H_FIRST_BYTE,
    H_LATENCY,
    H_SIZE,
    HIST_COUNT,
    HIST_ID,
    HIST_KIND,
    HIST_VALUE,
    NONE,
)


@kernel
def row_of(HT, kind, ident, value):  # noqa: ANN001, ANN201
    """The row holding (kind, ident, value), or the free row where it belongs."""
    mask = len(HT) - 1
    h = (ident * 40503 + value * 2654435761 + kind * 97) & mask
    while True:
        row = HT[h]
        if row[HIST_COUNT] == 0 or (row[HIST_VALUE] == value and row[HIST_ID] == ident
                                    and row[HIST_KIND] == kind):
            return h
        h = (h + 1) & mask


@kernel
def add(HT, G, kind, ident, value, n):  # noqa: ANN001, ANN201
    """``n`` more of ``value`` in histogram (kind, ident)."""
    row = HT[row_of(HT, kind, ident, value)]
    if row[HIST_COUNT] == 0:
        row[HIST_KIND] = kind
        row[HIST_ID] = ident
        row[HIST_VALUE] = value
        G[0][G_HIST_USED] += 1
    row[HIST_COUNT] += n


@kernel
def duration(HT, G, kind, ident, ns):  # noqa: ANN001, ANN201
    """One more duration, counted in its bucket: microseconds with the bits below the
    10 most significant cleared (exact below 1.024 ms)."""
    us = ns // 1000
    bits = 0
    rest = us if us >= 0 else -us
    while rest:
        bits += 1
        rest >>= 1
    drop = bits - SIGNIFICANT_BITS
    if drop > 0:
        us = us >> drop << drop
    add(HT, G, kind, ident, us, 1)


@kernel
def rehash(old, new, G):  # noqa: ANN001, ANN201
    """Move every entry of ``old`` into the larger, empty table ``new``."""
    G[0][G_HIST_USED] = 0
    for k in range(len(old)):
        row = old[k]
        if row[HIST_COUNT]:
            add(new, G, row[HIST_KIND], row[HIST_ID], row[HIST_VALUE], row[HIST_COUNT])


@kernel
def take(old, new, G, owners, column, value, out):  # noqa: ANN001, ANN201
    """Split ``old`` between ``out`` (rows from 0), for the entries of the TCP connections
    whose row of ``owners`` holds ``value`` in ``column``, and ``new`` (empty, as large)
    for the rest. Returns the rows of ``out`` filled. A sender's histograms (ACK delays,
    sizes) belong to connection id // 2, a connection's (latencies) to connection id."""
    G[0][G_HIST_USED] = 0
    taken = 0
    for k in range(len(old)):
        row = old[k]
        if not row[HIST_COUNT]:
            continue
        kind, ident = row[HIST_KIND], row[HIST_ID]
        owner = NONE
        if kind in (H_DELAY, H_SIZE):
            owner = ident // 2
        elif kind in (H_LATENCY, H_FIRST_BYTE):
            owner = ident
        if owner != NONE and owners[owner][column] == value:
            o = out[taken]
            for j in range(len(row)):
                o[j] = row[j]
            taken += 1
        else:
            add(new, G, kind, ident, row[HIST_VALUE], row[HIST_COUNT])
    return taken
