"""Edge: texts spooled to a temporary file (in memory while small) and given back in
the order of their keys. ``analyze --json`` keeps each connection's JSON so until the
end, when the document lists them in order: its memory stays that of the engine, not
of the whole document (300 MB of JSON for 100,000 connections)."""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from types import TracebackType

MEMORY_BYTES = 1 << 20  # kept in memory up to this, then in a temporary file ($TMPDIR)


class Spool:
    """Add (key, text) pairs; read the texts back once, ordered by key (equal keys: as added)."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)  # noqa: SIM115 - closed by __exit__
        # Each text's key, and where it ends in the file: 16 bytes a text (tuples: 120).
        self._keys, self._ends = array("q"), array("q")

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: int, text: str) -> None:
        self._file.write(text.encode())
        self._keys.append(key)
        self._ends.append(self._file.tell())

    def texts(self) -> Iterator[str]:
        for k in sorted(range(len(self._keys)), key=self._keys.__getitem__):
            start = self._ends[k - 1] if k else 0
            self._file.seek(start)
            yield self._file.read(self._ends[k] - start).decode()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file.close()
