"""IP fragment reassembly, as tshark does it by default: the transport header and
the datagram's full length belong to the frame that completes the datagram.

Each pending datagram keeps one buffer and the sorted, disjoint byte ranges its
fragments cover (first copy wins where fragments overlap), so adding a fragment
costs O(log n) plus the ranges it merges: n fragments take O(n log n), in any
order. The work and memory are bounded, since a hostile capture may hold
thousands of fragments of one datagram:

- a datagram is at most what the IP length fields can describe
  (``MAX_REASSEMBLED``), and has at most ``MAX_FRAGMENTS`` fragments;
- all pending datagrams together hold at most ``MAX_PENDING_BYTES`` and number
  at most ``MAX_PENDING``; past that the oldest is dropped.

A datagram over its own limits is dropped, and so are its later fragments:
``add`` returns ``OVER_LIMIT`` for each.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Hashable

MAX_PENDING = 4096  # incomplete datagrams kept at once
MAX_PENDING_BYTES = 32 << 20  # their buffers together
MAX_FRAGMENTS = 8192  # per datagram: 64 KiB in 8-byte steps, the smallest fragment IPv4 allows
MAX_REASSEMBLED = 0xFFFF + 0xFFF8  # bytes: the largest fragment offset plus the largest fragment payload
OVER_LIMIT = object()  # what ``add`` returns for a fragment of a datagram over its limits


class Reassembler:
    """Collect fragments per datagram key; ``add`` returns the whole payload once complete."""

    def __init__(self, max_pending: int = MAX_PENDING, max_pending_bytes: int = MAX_PENDING_BYTES,
                 max_fragments: int = MAX_FRAGMENTS) -> None:
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.max_fragments = max_fragments
        self._pending: OrderedDict[Hashable, _Datagram] = OrderedDict()
        self._rejected: OrderedDict[Hashable, None] = OrderedDict()  # keys of datagrams over their limits
        self._bytes = 0
        self.dropped = 0  # evicted for room (never complete, not over a limit of their own)
        self.over_limit = 0  # datagrams dropped for their own limits

    def add(self, key: Hashable, offset: int, more: bool, data: bytes, length: int) -> bytes | object | None:
        """Add one fragment (``length`` is its size per the IP header, ``data`` what was
        captured of it). Returns the reassembled transport payload once complete, None
        while incomplete, OVER_LIMIT when the datagram is dropped for its limits.
        A fragment of negative length (a corrupt header) is ignored."""
        if length < 0:
            return None
        if key in self._rejected:
            return OVER_LIMIT
        dgram = self._pending.get(key)
        if dgram is None:
            dgram = self._pending[key] = _Datagram()
        end = offset + length
        dgram.count += 1
        # Too long, too many pieces, or two last fragments that disagree on the length.
        if end > MAX_REASSEMBLED or dgram.count > self.max_fragments or (not more and dgram.total not in (None, end)):
            self._reject(key)
            return OVER_LIMIT
        self._bytes += dgram.add(offset, end, data, more)
        whole = dgram.whole()
        if whole is not None:
            self._bytes -= len(self._pending.pop(key).buf)
            return whole
        while self._bytes > self.max_pending_bytes or len(self._pending) > self.max_pending:
            _old, evicted = self._pending.popitem(last=False)
            self._bytes -= len(evicted.buf)
            self.dropped += 1
        return None

    def _reject(self, key: Hashable) -> None:
        dgram = self._pending.pop(key, None)
        if dgram is not None:
            self._bytes -= len(dgram.buf)
        self.over_limit += 1
        self._rejected[key] = None
        if len(self._rejected) > self.max_pending:
            self._rejected.popitem(last=False)

    @property
    def pending(self) -> int:
        """Datagrams with fragments seen but never completed (plus those evicted for room)."""
        return len(self._pending) + self.dropped


class _Datagram:
    """One datagram's bytes so far and the disjoint ranges [starts[i], ends[i]) they cover."""

    __slots__ = ("buf", "count", "ends", "starts", "total")

    def __init__(self) -> None:
        self.count = 0
        self.buf = bytearray()
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.total: int | None = None

    def add(self, start: int, end: int, data: bytes, more: bool) -> int:
        """Record [start, end), copying the captured bytes where nothing was yet;
        returns by how much the buffer grew."""
        if not more:
            self.total = end
        grown = 0
        captured = min(end, start + len(data))
        if captured > len(self.buf):
            grown = captured - len(self.buf)
            self.buf.extend(bytes(grown))
        starts, ends = self.starts, self.ends
        # Ranges touching [start, end) are merged with it; the gaps between them get the new bytes.
        lo = bisect_left(ends, start)
        hi = bisect_right(starts, end)
        pos = start
        for i in range(lo, hi):
            self._copy(pos, min(starts[i], captured), data, start)
            pos = max(pos, ends[i])
        self._copy(pos, captured, data, start)
        if lo < hi:
            start, end = min(start, starts[lo]), max(end, ends[hi - 1])
        starts[lo:hi] = (start,)
        ends[lo:hi] = (end,)
        return grown

    def _copy(self, a: int, b: int, data: bytes, origin: int) -> None:
        if a < b:
            self.buf[a:b] = data[a - origin : b - origin]

    def whole(self) -> bytes | None:
        if self.total is None or self.starts != [0] or self.ends[0] < self.total:
            return None
        buf = self.buf
        if len(buf) < self.total:  # bytes the capture did not keep (a short snapshot length)
            buf.extend(bytes(self.total - len(buf)))
        return bytes(buf[: self.total])
