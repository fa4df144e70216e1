"""The pipeline: read -> decode -> flows -> records. One function, ``analyze``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from ._decode import LINKTYPE_NAMES, Decoder, Defect
from ._flows import FlowTracker
from ._model import Capture
from ._read import CaptureReader

PROGRESS_EVERY = 1 << 16  # packets between two progress callbacks

Progress = Callable[[int, int], None]  # (bytes consumed, file size)


def analyze(path: str | os.PathLike[str], *, progress: Progress | None = None) -> Capture:
    """Read a pcap/pcapng file (optionally gzip-compressed) and rebuild its TCP
    connections and UDP flows.

    Raises :class:`~sockinspect.errors.CaptureFormatError` only when the file
    cannot be read at all; anything odd inside it becomes a warning or a defect
    count on the returned :class:`Capture`.
    """
    reader = CaptureReader(path)
    decoder = Decoder()
    tracker = FlowTracker()
    decode, feed = decoder.decode, tracker.feed
    defects: Counter[str] = Counter()
    first_malformed: dict[str, tuple[int, str]] = {}
    first_ts = last_ts = None
    number = 0
    for number, frame in enumerate(reader, 1):  # noqa: B007 - number is used after the loop
        ts = frame.ts_ns
        if ts is not None:
            if first_ts is None or ts < first_ts:
                first_ts = ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
        pkt = decode(frame, number)
        if type(pkt) is Defect:
            defects[pkt.kind] += 1
            if pkt.malformed and pkt.kind not in first_malformed:
                first_malformed[pkt.kind] = (number, pkt.detail)
        else:
            feed(pkt)
        if progress is not None and not number % PROGRESS_EVERY:
            progress(reader.position(), reader.size)
    tcp, udp = tracker.finish()
    warnings = list(reader.warnings)
    for kind, (first, detail) in first_malformed.items():
        more = defects[kind] - 1
        warnings.append(f"packet {first}: {detail}" + (f" (and {more} more such packets)" if more else ""))
    if decoder.fragments.pending:
        warnings.append(f"{decoder.fragments.pending} IP datagrams were never completely reassembled")
    return Capture(
        file=os.fspath(path),
        format=reader.format,
        linktypes=tuple(dict.fromkeys(LINKTYPE_NAMES.get(t, str(t)) for t in reader.linktypes)),
        packets=number,
        first_ts_ns=first_ts,
        last_ts_ns=last_ts,
        warnings=tuple(warnings),
        defects=dict(sorted(defects.items())),
        tcp=tcp,
        udp=udp,
    )
