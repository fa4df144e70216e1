"""analyze --json keeps the connections' JSON in a spool until the document is written."""

from __future__ import annotations

import random

from sockinspect import _spool
from sockinspect._spool import Spool


def test_texts_come_back_in_the_order_of_their_keys(monkeypatch):
    monkeypatch.setattr(_spool, "MEMORY_BYTES", 1000)  # past it, on disk: the same
    rng = random.Random(3)
    keys = list(range(500))
    rng.shuffle(keys)
    with Spool() as spool:
        for key in keys:
            spool.add(key, f'{{"index": {key}, "note": "{"é" * (key % 7)}"}}')
        assert len(spool) == 500
        assert list(spool.texts()) == [f'{{"index": {key}, "note": "{"é" * (key % 7)}"}}' for key in range(500)]


def test_an_empty_spool_gives_nothing():
    with Spool() as spool:
        assert not spool and list(spool.texts()) == []
