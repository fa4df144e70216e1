"""Edge: texts spooled to a temporary file (in memory while small) and given back in
the order of their keys. ``analyze --json`` keeps each connection's JSON so until the
end, when the document lists them in order: its memory stays that of the engine, not
of the whole document (300 MB of JSON for 100,000 connections)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from types import TracebackType

MEMORY_BYTES = 8 << 20  # kept in memory up to this, then in a temporary file ($TMPDIR)


class Spool:
    """Add (key, text) pairs; read the texts back once, ordered by key (equal keys: as added)."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)  # noqa: SIM115 - closed by __exit__
        self._places: list[tuple[int, int, int]] = []  # (key, offset, length)
        self._end = 0

    def __len__(self) -> int:
        return len(self._places)

    def add(self, key: int, text: str) -> None:
        data = text.encode()
        self._file.write(data)
        self._places.append((key, self._end, len(data)))
        self._end += len(data)

    def texts(self) -> Iterator[str]:
        self._places.sort(key=lambda place: place[0])
        for _key, offset, length in self._places:
            self._file.seek(offset)
            yield self._file.read(length).decode()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file.close()
