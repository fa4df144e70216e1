"""One connection's packets, on demand: the capture read again, only that connection's
packets kept (as columns), and analysed alone so that the engine notes packet by packet
what it finds (retransmissions, zero windows, delayed ACKs, each ACK's delay). What the
ladder draws; nothing is kept of the other connections."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from ._analyze import PROGRESS_EVERY, Progress, analyze
from ._decode import SYN, TCP, Decoder, Packet, parse_sack_blocks
from ._model import Capture, TcpConnection
from ._read import MAX_INFLATION, CaptureReader
from ._record import record
from .analysis import jit
from .analysis.engine import CHUNK_PACKETS, Engine
from .analysis.tables import G_CLOCK, clamped
from .errors import CaptureFormatError

M32 = 0xFFFFFFFF
HALF32 = 1 << 31
MAX_WSCALE = 14  # RFC 7323 2.3: a larger shift is taken as 14
COMPILED_FROM = 100_000  # packets fed again from which the compiled engine is worth loading
End = tuple[bytes, int]  # an address and a port
Sacks = dict[int, tuple[tuple[int, int], ...]]  # packet number -> its SACK blocks, as sent


@record
class ConnectionPackets:
    """A TCP connection's packets as columns (position k is the k-th packet), in capture order."""

    connection: TcpConnection  # its record, from these packets alone (the same as in the whole capture)
    number: list[int]  # packet numbers in the capture (1-based)
    ts_ns: list[int | None]
    side: list[int]  # 0: client to server, 1: server to client
    flags: list[int]
    seq: list[int]  # relative to the sender's initial sequence number (its SYN is 0, its first byte 1), unwrapped
    ack: list[int]  # relative to the peer's initial sequence number, unwrapped (past 4 GiB, on from 2**32)
    length: list[int]  # payload bytes
    window: list[int]  # the receive window announced: scaled when both SYNs offered window scaling
    sack: list[tuple[tuple[int, int], ...]]  # SACK blocks (left, right), relative as ack is
    notes: list[tuple[int, str, int]]  # (packet number, kind, value): what the engine noticed
    ack_delays: dict[int, int]  # ACK packet number -> ns since the earliest data segment it newly covers
    warnings: tuple[str, ...] = ()  # the capture's (a truncated file, say)


def connection_packets(path: str | os.PathLike[str], index: int, max_inflation: int = MAX_INFLATION,
                       progress: Progress | None = None, again: Progress | None = None) -> ConnectionPackets:
    """The packets of TCP connection ``index`` of the capture. Raises ValueError when the
    capture has no such connection; CaptureFormatError when it cannot be read.
    ``progress``: of the analysis that finds the connection; ``again``: of the second reading."""
    return connections_packets(path, lambda _tcp: [index], max_inflation, progress, again)[1][0]


def connections_packets(path: str | os.PathLike[str], choose: Callable[[Sequence[TcpConnection]], Iterable[int]],
                        max_inflation: int = MAX_INFLATION, progress: Progress | None = None,
                        again: Progress | None = None) -> tuple[Capture, list[ConnectionPackets]]:
    """The capture's analysis, and the packets of the TCP connections ``choose`` picks
    from its records (their indices), in index order, from one more reading of the
    capture. ValueError when one it picks is not there."""
    cap = analyze(path, max_inflation=max_inflation, workers=1, progress=progress)
    by_index = {c.index: c for c in cap.tcp}
    wanted = sorted(set(choose(cap.tcp)))
    missing = [i for i in wanted if i not in by_index]
    if missing:
        have = f"it has {len(cap.tcp)}: 0..{len(cap.tcp) - 1}" if cap.tcp else "it has no TCP connections"
        raise ValueError(f"no TCP connection #{missing[0]} ({have})")
    found = [by_index[i] for i in wanted]
    clients = {c.index: (_address(c.client.addr), c.client.port) for c in found}
    pairs = {c.index: _pair(clients[c.index], (_address(c.server.addr), c.server.port)) for c in found}
    last = max((c.last_packet for c in found), default=0)
    fed, sacks = _between(path, set(pairs.values()), last, max_inflation, progress=again)
    out = []
    for c in found:
        cp = _alone_packets(fed[pairs[c.index]], sacks, c, clients[c.index])
        if cp is None:
            raise CaptureFormatError(f"{os.fspath(path)}: the capture changed since it was analysed")
        out.append(replace(cp, warnings=cap.warnings))
    return cap, out


def _alone_packets(fed: list[tuple[int | None, Packet]], sacks: Sacks,
                   conn: TcpConnection, client: End) -> ConnectionPackets | None:
    """``conn``'s packets from those between its two ends, analysed alone (None: not there)."""
    fed = [(before, p) for before, p in fed if p.number <= conn.last_packet]
    again, notes, log = _alone(fed, conn.first_packet)
    if again is None:
        return None
    mine = {n for n, what, index in notes if what == "connection" and index == again.index}
    kept = [p for _before, p in fed if p.number in mine]
    side = [0 if (p.src, p.sport) == client else 1 for p in kept]
    base = [_base(kept, side, s) for s in (0, 1)]
    scales = (again.c2s.wscale, again.s2c.wscale)
    shift = tuple(min(x, MAX_WSCALE) for x in scales) if None not in scales else (0, 0)
    seq = _unwrapped([(p.seq - base[s]) & M32 for p, s in zip(kept, side, strict=True)], side)
    ack = _unwrapped([(p.ack - base[1 - s]) & M32 for p, s in zip(kept, side, strict=True)], side)
    return ConnectionPackets(
        connection=replace(again, index=conn.index),
        number=[p.number for p in kept],
        ts_ns=[p.ts_ns for p in kept],
        side=side,
        flags=[p.flags for p in kept],
        seq=seq,
        ack=ack,
        length=[p.payload_len for p in kept],
        window=[p.window if p.flags & SYN else p.window << shift[s] for p, s in zip(kept, side, strict=True)],
        sack=[tuple((_near((left - base[1 - s]) & M32, a), _near((right - base[1 - s]) & M32, a))
                    for left, right in sacks[p.number]) if p.number in sacks else ()
              for p, s, a in zip(kept, side, ack, strict=True)],
        notes=[note for note in notes if note[0] in mine and note[1] != "connection"],
        ack_delays=_ack_delays(log, mine, {p.number: p.ts_ns for p in kept}),
    )


def _pair(a: End, b: End) -> tuple[End, End]:
    """Two ends in the same order whichever sends."""
    return (a, b) if a <= b else (b, a)


def _between(path: str | os.PathLike[str], pairs: set[tuple[End, End]], last: int, max_inflation: int,
             progress: Progress | None) -> tuple[dict[tuple[End, End], list[tuple[int | None, Packet]]], Sacks]:
    """For each pair of ends (see _pair), every TCP packet between them up to packet
    ``last``, each with the capture's clock before it (its latest TCP timestamp): earlier connections on the same
    ports (or on other VLANs) and the clock decide where the connection begins and ends.
    And the SACK blocks of those that carry some, by packet number."""
    fed: dict[tuple[End, End], list[tuple[int | None, Packet]]] = {pair: [] for pair in pairs}
    sacks: Sacks = {}
    clock = None
    reader = CaptureReader(path, max_inflation)
    decoder = Decoder(all_options=True)
    for number, frame in enumerate(reader, 1):
        if number > last:
            break
        if progress is not None and not number % PROGRESS_EVERY:
            progress(reader.position(), reader.size)
        pkt = decoder.decode(frame, number)
        if type(pkt) is not Packet or pkt.proto != TCP:
            continue
        to = fed.get(_pair((pkt.src, pkt.sport), (pkt.dst, pkt.dport)))
        if to is not None:
            if pkt.options and not pkt.flags & SYN:
                blocks = parse_sack_blocks(pkt.options)
                if blocks:
                    sacks[pkt.number] = blocks
                pkt = pkt._replace(options=b"")  # the engine reads SYNs' options only
            to.append((clock, pkt))
        if pkt.ts_ns is not None:
            clock = max(clock, clamped(pkt.ts_ns)) if clock is not None else clamped(pkt.ts_ns)
    return fed, sacks


def _alone(fed: list[tuple[int | None, Packet]], first_packet: int
           ) -> tuple[TcpConnection | None, list[tuple[int, str, int]], list]:
    """The engine's record of the connection whose first packet is ``first_packet``, its
    notes and its ACK log, from these packets with the clock as the whole capture set it."""
    log: list = []
    notes: list[tuple[int, str, int]] = []
    ours: list[TcpConnection] = []
    large = len(fed) >= COMPILED_FROM and (jit.compiled() or (jit.available() and jit.cache_ready()))
    engine = Engine(compiled=large, ack_log=log, notes=notes, on_connection=ours.append, record_only=first_packet)
    chunk: list[Packet] = []
    own = None  # the clock the packets fed so far set themselves
    for before, pkt in fed:
        if before is not None and (own is None or before > own):  # other packets moved the clock on
            engine.feed_chunk(chunk)
            chunk = []
            engine.G[0][G_CLOCK] = max(int(engine.G[0][G_CLOCK]), before)
            own = before
        chunk.append(pkt)
        if pkt.ts_ns is not None:
            own = max(own, clamped(pkt.ts_ns)) if own is not None else clamped(pkt.ts_ns)
        if len(chunk) == CHUNK_PACKETS:
            engine.feed_chunk(chunk)
            chunk = []
    engine.feed_chunk(chunk)
    engine.finish()
    return (ours[0] if ours else None), notes, log


def _near(value: int, ref: int) -> int:
    """The number congruent to ``value`` mod 2**32 nearest to ``ref``."""
    return ref + ((value - ref + HALF32) & M32) - HALF32


def _unwrapped(values: list[int], side: list[int]) -> list[int]:
    """Relative sequence numbers (mod 2**32) as each side's running count: past 4 GiB
    they go on growing, as tcptrace has them, instead of starting again from 0."""
    last = [0, 0]
    out = []
    for v, s in zip(values, side, strict=True):
        last[s] = _near(v, last[s])
        out.append(last[s])
    return out


def _ack_delays(log: list, mine: set[int], ts: dict[int, int | None]) -> dict[int, int]:
    """ACK -> ns from the earliest data segment it newly covers (the wait the delayed-ACK
    rule measures), for this connection's ACKs of timed packets."""
    out = {}
    for ack, first, *_ in log:
        if ack in mine and ts.get(ack) is not None and ts.get(first) is not None:
            out[ack] = ts[ack] - ts[first]
    return out


def _base(kept: list[Packet], side: list[int], s: int) -> int:
    """Side ``s``'s initial sequence number: its SYN's, else one before its first segment's."""
    first = None
    for p, k in zip(kept, side, strict=True):
        if k == s:
            if p.flags & SYN:
                return p.seq
            if first is None:
                first = (p.seq - 1) & M32
    return 0 if first is None else first


def _address(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
