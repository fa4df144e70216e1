"""The compiled engine on two cores: one decode, the TCP connections shared out by their
endpoints between two engines whose kernels run at once in two threads (they release
the GIL), and one stream of records as from a single engine.

Every packet of a connection, both directions, and every connection between the same
two endpoints (port reuse, the VLANs of a router on a stick) go to the same engine: the
share is a hash of the endpoint pair, the same either way round. What one engine needs
of the other's packets is the capture's clock (by which a connection is found over),
and that is a column of the chunk (see engine.tcp_order). UDP flows stay with the
first engine, which also holds the address table the decoder fills.

A connection's index counts the connections before its first packet in the file,
whichever engine had them: during a chunk the engines number theirs provisionally
and hold back the records of connections that retire; at the chunk's end the chunk's
new connections get their indexes in the order of their first packets, and then the
records go out, the first engine's batches before the second's.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._model import Selection, TcpConnection, UdpFlow
from . import tcp
from .engine import Engine, tcp_order
from .records import RecordMaker, Retired
from .tables import G_CLOCK, G_CONNS

PROVISIONAL = 1 << 50  # indexes at and above are a chunk's provisional ones
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the product's top bit says the share


class ThreadedEngine:
    """Like :class:`.engine.Engine` (compiled, without the per-packet logs) for the
    columns of .pcapfile: :meth:`feed_columns`, then :meth:`finish`."""

    def __init__(self, on_connection: Callable[[TcpConnection], None] | None = None,
                 on_retired: Callable[[Retired], None] | None = None) -> None:
        self.connections: list[TcpConnection] = []
        self._out = on_retired or RecordMaker(on_connection or self.connections.append).add
        self._waiting: list[Retired] = []
        self._at_end = False  # finish() has begun: no connection is new, batches go out as made
        self.engines = (Engine(compiled=True, on_retired=self._retired),
                        Engine(compiled=True, on_retired=self._retired))
        for engine in self.engines:
            engine.defer_records = True
            engine.G[0][G_CONNS] = PROVISIONAL
        self.compiled = True
        self._numbered = 0  # connections given their final index so far
        self.shares = [0, 0]  # connections each engine had
        self._shipped = 0  # address names handed over so far
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sockinspect-engine")

    @property
    def decoding(self) -> Engine:
        """The engine whose address table the decoder fills (see .pcapfile)."""
        return self.engines[0]

    def feed_columns(self, cols: tuple) -> None:
        """Account a chunk of packet columns (see Engine.feed_columns)."""
        number, ts, has_ts, _wirelen, _vlan, src, dst, proto, sport, dport = cols[:10]
        first, second = self.engines
        order, clock = tcp_order(proto, ts, has_ts, int(first.G[0][G_CLOCK]), True)
        side = _shares(src[order], sport[order], dst[order], dport[order])
        theirs = self._pool.submit(second.feed_columns, cols, order[side], clock, False)
        try:
            first.feed_columns(cols, order[~side], clock)
        finally:
            theirs.result()  # its exception, if it raised one; else it is done
        self._number()
        for engine in self.engines:
            engine.settle()
        self._ship()

    def finish(self) -> tuple[Selection[TcpConnection], Selection[UdpFlow]]:
        """The capture's end: every connection retires (see Engine.finish)."""
        self._at_end = True
        try:
            second = self.engines[1].finish()[1]
            _, udp = self.engines[0].finish()
            assert not second, "UDP flows are the first engine's"
        finally:
            self._pool.shutdown(wait=True)
        tcp_records = sorted(self.connections, key=lambda c: c.index)
        self.connections = []
        return Selection(tcp_records), udp

    def _number(self) -> None:
        """The chunk's new connections, of both engines, numbered in the order of their
        first packets; then a new chunk's provisional numbers."""
        found = []
        for engine in self.engines:
            C = engine.C
            rows = np.flatnonzero((C[:, tcp.C_INDEX] >= PROVISIONAL) & (C[:, tcp.C_LIVE] != tcp.FREE))
            found.append(rows)
            engine.G[0][G_CONNS] = PROVISIONAL
        firsts = np.concatenate([e.C[rows, tcp.C_FIRST_PKT] for e, rows in zip(self.engines, found, strict=True)])
        if not len(firsts):
            return
        index = np.empty(len(firsts), dtype=np.int64)
        index[np.argsort(firsts, kind="stable")] = np.arange(self._numbered, self._numbered + len(firsts))
        self._numbered += len(firsts)
        start = 0
        for k, (engine, rows) in enumerate(zip(self.engines, found, strict=True)):
            engine.C[rows, tcp.C_INDEX] = index[start: start + len(rows)]
            start += len(rows)
            self.shares[k] += len(rows)

    def _retired(self, batch: Retired) -> None:
        self._waiting.append(batch)
        if self._at_end:  # the other process makes these records while the next batch is made
            self._ship()

    def _ship(self) -> None:
        """The records held back, with the address names they need (all in the first
        engine's table)."""
        if not self._waiting:
            return
        names = self.decoding._address_names()
        vlans = self.decoding._vlan_names()
        for batch in self._waiting:
            self._out(batch._replace(names=names[self._shipped:], vlans=vlans))
            self._shipped = len(names)
        self._waiting.clear()


def _shares(src: np.ndarray, sport: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> np.ndarray:
    """For each packet, whether its connection is the second engine's: by a hash of its
    endpoints that does not depend on the direction."""
    pair = ((src << 16) | sport) ^ ((dst << 16) | dport)
    return (pair.astype(np.uint64) * _MIX) >> np.uint64(63) == 1
