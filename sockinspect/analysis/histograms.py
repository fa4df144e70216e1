"""Histograms the kernels keep: payload sizes, and durations (ACK delays, latencies,
UDP round trips) in buckets of 10 significant bits of microseconds (1/1024 to 1/512
of the value wide: memory stays bounded; see sockinspect._delays.bucket_width_us).

One hash table for all (open addressing, linear probing), of rows (key, count); the
key packs (kind, id, value code) so that keys sort as (kind, id, value). A duration's
code is order-preserving: its bucket's exponent and 10-bit mantissa, offset so that
negative durations (timestamps going back) sort first. 16 bytes per entry; Python
doubles the table before it is three quarters full (see ``crowded``)."""

from __future__ import annotations

from .._delays import SIGNIFICANT_BITS
from .jit import kernel
from .tables import G_HIST_USED, H_DELAY, H_FIRST_BYTE, H_LATENCY, H_SIZE, HIST_COUNT, HIST_KEY, NONE

KIND_SHIFT, ID_SHIFT = 59, 23  # key: kind (3 bits) | id (36 bits) | value code (23 bits)
ID_MASK, CODE_MASK = (1 << 36) - 1, (1 << 23) - 1
SIZE_MAX = CODE_MASK  # larger payload sizes (only hostile frames have them) count as this
MANTISSA = (1 << SIGNIFICANT_BITS) - 1
CODE_ZERO = 1 << 17  # a duration's code for 0 us: codes of |us| are below 2**16 (us < 2**53)


@kernel
def crowded(HT, G, more):  # noqa: ANN001, ANN201
    """Whether ``more`` entries might take HT past three quarters full: then the kernels
    stop and Python doubles it (linear probes stay short up to there)."""
    return 4 * (G[0][G_HIST_USED] + more) > 3 * len(HT)


@kernel
def key_of(kind, ident, code):  # noqa: ANN001, ANN201
    return (kind << KIND_SHIFT) | (ident << ID_SHIFT) | code


@kernel
def row_of(HT, key):  # noqa: ANN001, ANN201
    """The row holding ``key``, or the free row where it belongs."""
    mask = len(HT) - 1
    h = home(key, mask)
    while True:
        row = HT[h]
        if row[HIST_COUNT] == 0 or row[HIST_KEY] == key:
            return h
        h = (h + 1) & mask


@kernel
def home(key, mask):  # noqa: ANN001, ANN201
    """Where ``key`` probes from: a multiplicative mix, in 63-bit arithmetic (no overflow,
    so Python and numba agree)."""
    x = key ^ (key >> 31)
    x = ((x & 0x7FFFFFFF) * 0x9E3779B1) ^ ((x >> 31) * 0x85EBCA6B)
    return (x ^ (x >> 29)) & mask


@kernel
def add(HT, G, kind, ident, code, n):  # noqa: ANN001, ANN201
    """``n`` more of the value with ``code`` in histogram (kind, ident)."""
    key = key_of(kind, ident, code)
    row = HT[row_of(HT, key)]
    if row[HIST_COUNT] == 0:
        row[HIST_KEY] = key
        G[0][G_HIST_USED] += 1
    row[HIST_COUNT] += n


@kernel
def size(HT, G, ident, n):  # noqa: ANN001, ANN201
    """One more payload of ``n`` bytes from sender ``ident``."""
    add(HT, G, H_SIZE, ident, min(n, SIZE_MAX), 1)


@kernel
def duration(HT, G, kind, ident, ns):  # noqa: ANN001, ANN201
    """One more duration, counted in its bucket: microseconds with the bits below the
    10 most significant cleared (exact below 1.024 ms)."""
    us = ns // 1000
    rest = us if us >= 0 else -us
    bits = 0
    while rest >> bits:
        bits += 1
    shift = max(bits - SIGNIFICANT_BITS, 0)
    code = (shift << SIGNIFICANT_BITS) | (rest >> shift)
    add(HT, G, kind, ident, CODE_ZERO + code if us >= 0 else CODE_ZERO - code, 1)


def values_of(keys):  # noqa: ANN001, ANN201
    """The values of histogram keys (a list of ints, or an int64 array): a payload size
    as it is, a duration as its bucket in microseconds."""
    if isinstance(keys, list):
        return [_value(key) for key in keys]
    import numpy as np

    codes = keys & CODE_MASK
    signed = codes - CODE_ZERO
    magnitude = np.abs(signed)
    durations = np.sign(signed) * ((magnitude & MANTISSA) << (magnitude >> SIGNIFICANT_BITS))
    return np.where(keys >> KIND_SHIFT == H_SIZE, codes, durations)


def _value(key: int) -> int:
    code = key & CODE_MASK
    if key >> KIND_SHIFT == H_SIZE:
        return code
    signed = code - CODE_ZERO
    magnitude = abs(signed)
    value = (magnitude & MANTISSA) << (magnitude >> SIGNIFICANT_BITS)
    return value if signed >= 0 else -value


@kernel
def rehash(old, new, G):  # noqa: ANN001, ANN201
    """Move every entry of ``old`` into the larger, empty table ``new``."""
    G[0][G_HIST_USED] = 0
    for k in range(len(old)):
        if old[k][HIST_COUNT]:
            row = new[row_of(new, old[k][HIST_KEY])]
            row[HIST_KEY] = old[k][HIST_KEY]
            row[HIST_COUNT] = old[k][HIST_COUNT]
            G[0][G_HIST_USED] += 1


@kernel
def take(HT, G, taken_from, out):  # noqa: ANN001, ANN201
    """Move the entries of the TCP connections ``k`` with ``taken_from[k]`` set out of HT
    into ``out`` (rows from 0); returns how many (a flag per connection row, not the rows
    themselves: the flags stay in cache, the rows would be a miss per entry). A sender's
    histograms (ACK delays, sizes) belong to connection id // 2, a connection's
    (latencies) to connection id. In place: the rest are then moved back along their
    probe paths, in one pass from a row that was free (no probe path crosses it)."""
    start = 0
    while HT[start][HIST_COUNT]:  # the table is never full
        start += 1
    taken = 0
    for k in range(len(HT)):
        row = HT[k]
        if not row[HIST_COUNT]:
            continue
        kind, ident = row[HIST_KEY] >> KIND_SHIFT, (row[HIST_KEY] >> ID_SHIFT) & ID_MASK
        owner = NONE
        if kind in (H_DELAY, H_SIZE):
            owner = ident // 2
        elif kind in (H_LATENCY, H_FIRST_BYTE):
            owner = ident
        if owner != NONE and taken_from[owner]:
            out[taken][HIST_KEY] = row[HIST_KEY]
            out[taken][HIST_COUNT] = row[HIST_COUNT]
            taken += 1
            row[HIST_COUNT] = 0
    G[0][G_HIST_USED] -= taken
    mask = len(HT) - 1
    for step in range(1, len(HT)):
        k = (start + step) & mask
        if not HT[k][HIST_COUNT]:
            continue
        j = home(HT[k][HIST_KEY], mask)
        while j != k and HT[j][HIST_COUNT]:
            j = (j + 1) & mask
        if j != k:
            HT[j][HIST_KEY] = HT[k][HIST_KEY]
            HT[j][HIST_COUNT] = HT[k][HIST_COUNT]
            HT[k][HIST_COUNT] = 0
    return taken
