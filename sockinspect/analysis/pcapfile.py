"""Edge: a pcap file read in large blocks into packet columns, by the kernels of
:mod:`.fastpath`, for the compiled engine. Frames the common path does not cover
go through the general decoder, one by one, into the same columns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from .._decode import Decoder, Defect, Packet
from .._read import CaptureReader, Frame
from . import fastpath
from .fastpath import SLOW
from .tables import new_table

BLOCK = 4 << 20  # bytes read at once
RECORDS = 1 << 16  # records decoded at once


class Block(NamedTuple):
    """Columns of consecutive records: the engine's packet columns, plus the records'
    timestamps (all frames, whatever they carry) and the general decoder's verdicts."""

    columns: tuple  # as Engine.feed_columns takes them
    frames: int
    first_ts: int | None
    last_ts: int | None
    defects: list[tuple[int, Defect]]  # (packet number, defect) from the general decoder


def pcap_blocks(reader: CaptureReader, decoder: Decoder, engine) -> Iterator[Block]:  # noqa: ANN001
    """The records of the pcap file ``reader`` has open, as blocks of columns."""
    big_endian, ns_per_unit, snaplen, linktype, limit, rest = reader.pcap_header()
    buf = np.empty(max(BLOCK, 2 * limit + 32), dtype=np.uint8)
    held = len(rest)
    buf[:held] = np.frombuffer(rest, dtype=np.uint8)
    base = 24  # file offset of buf[0]
    R = new_table(RECORDS, fastpath.R_WIDTH, True)
    cols = [np.zeros(RECORDS, dtype=np.int64) for _ in range(19)]
    number = 1
    pos = 0
    while True:
        rows, pos, why = fastpath.walk_pcap(buf, pos, held, big_endian, ns_per_unit, limit, R, 0)
        if rows:
            yield _decode(buf, R, rows, linktype, number, decoder, engine, cols)
            number += rows
        if why == fastpath.WALK_CORRUPT:
            caplen = int.from_bytes(buf[pos + 8: pos + 12].tobytes(), "big" if big_endian else "little")
            reader.corrupt_record(base + pos, caplen, snaplen)
            return
        if why == fastpath.WALK_FULL:
            continue
        left = held - pos  # a record cut at the block's end moves to the front
        buf[:left] = buf[pos:held]
        got = reader.more_into(memoryview(buf)[left:], base, pos, held)
        if not got:
            return
        base += pos
        held = left + got
        pos = 0


def _decode(buf: np.ndarray, R: np.ndarray, rows: int, linktype: int, number: int, decoder: Decoder,
            engine, cols: list[np.ndarray]) -> Block:  # noqa: ANN001
    (numbers, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win, plen,
     o_mss, o_wscale, o_sack, o_ts) = (c[:rows] for c in cols)
    has_ts[:] = 1
    vlan[:] = 0
    while fastpath.decode(buf, R, rows, linktype, number, engine.addr_ids, engine.A,
                          engine.AG, numbers, ts, wirelen, src, dst, proto, sport, dport, seq, ackno, flags, win,
                          plen, o_mss, o_wscale, o_sack, o_ts):
        engine.grow_addresses()
    defects: list[tuple[int, Defect]] = []
    for i in np.flatnonzero(proto == SLOW).tolist():
        off, caplen = int(R[i][fastpath.R_OFF]), int(R[i][fastpath.R_CAPLEN])
        frame = Frame(int(ts[i]), linktype, int(wirelen[i]), buf[off: off + caplen].tobytes(), 0, caplen)
        pkt = decoder.decode(frame, number + i)
        if type(pkt) is Packet:
            engine.put_packet(cols, i, pkt)
        else:
            defects.append((number + i, pkt))
    return Block((numbers, ts, has_ts, wirelen, vlan, src, dst, proto, sport, dport, seq, ackno, flags, win,
                  plen, o_mss, o_wscale, o_sack, o_ts), rows, int(ts.min()), int(ts.max()), defects)

