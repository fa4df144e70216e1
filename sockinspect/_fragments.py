"""IP fragment reassembly, as tshark does it by default: the transport header and
the datagram's full length belong to the frame that completes the datagram.

Only what the analysis needs is kept: the bytes of each fragment (first copy
wins where fragments overlap). Incomplete datagrams are bounded in number; the
oldest is dropped when the bound is reached.
"""

from __future__ import annotations

from collections.abc import Hashable

MAX_PENDING = 4096


class Reassembler:
    """Collect fragments per datagram key; ``add`` returns the whole payload once complete."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._pending: dict[Hashable, _Datagram] = {}
        self.dropped = 0

    def add(self, key: Hashable, offset: int, more: bool, data: bytes, length: int) -> bytes | None:
        """Add one fragment (``length`` is its size per the IP header, ``data`` what was
        captured of it). Returns the reassembled transport payload, or None.
        A fragment of negative length (a corrupt header) is ignored."""
        if length < 0:
            return None
        dgram = self._pending.get(key)
        if dgram is None:
            if len(self._pending) >= self.max_pending:
                self._pending.pop(next(iter(self._pending)))
                self.dropped += 1
            dgram = self._pending[key] = _Datagram()
        dgram.pieces.append((offset, data, length))
        if not more:
            dgram.total = offset + length
        whole = dgram.complete()
        if whole is not None:
            del self._pending[key]
        return whole

    @property
    def pending(self) -> int:
        """Datagrams with fragments seen but never completed (plus those dropped)."""
        return len(self._pending) + self.dropped


class _Datagram:
    __slots__ = ("pieces", "total")

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytes, int]] = []
        self.total: int | None = None

    def complete(self) -> bytes | None:
        if self.total is None:
            return None
        covered = 0
        for offset, _data, length in sorted(self.pieces, key=lambda p: p[0]):
            if offset > covered:
                return None
            covered = max(covered, offset + length)
        if covered < self.total:
            return None
        out = bytearray(self.total)
        # Later pieces first, so that the first copy of overlapping bytes wins.
        for offset, data, _length in reversed(self.pieces):
            out[offset : offset + len(data)] = data[: max(self.total - offset, 0)]
        return bytes(out)
