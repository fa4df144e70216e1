"""What the engine hands over when connections retire (analysis.records): packed rows
that cross a pipe small and come back as the same lists of ints; and the histogram
table's room."""

from __future__ import annotations

import pickle
import tracemalloc
from array import array

import pytest

from sockinspect.analysis import histograms, records
from sockinspect.analysis.tables import G_HIST_USED, G_WIDTH, H_DELAY, H_SIZE, HIST_WIDTH, new_table

ROWS = [[0, -1, 2**62, -(2**62)], [5, 6, 7, 8], [9, 10, 11, 12]]


def packed(rows: list[list[int]]) -> records.Packed:
    return records.Packed(array("q", [v for row in rows for v in row]).tobytes(), len(rows[0]))


def test_packed_rows_are_the_lists_again_after_a_pipe():
    rows = pickle.loads(pickle.dumps(packed(ROWS)))
    assert len(rows) == 3 and rows[2] == ROWS[2] and list(rows) == ROWS
    with pytest.raises(IndexError):
        rows[3]
    with pytest.raises(IndexError):
        rows[-1]  # rows are numbered from 0; none counts from the end
    assert list(records.Packed(b"", 4)) == []


def test_packed_rows_weigh_a_fraction_of_lists_once_across():
    rows = [[k * 1_000_003 + i for i in range(60)] for k in range(1000)]

    def weight(thing: object) -> int:
        data = pickle.dumps(thing)
        tracemalloc.start()
        try:
            kept = pickle.loads(data)  # noqa: F841 - held while measured
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    assert weight(packed(rows)) * 3 < weight(rows)


def test_packed_statistics_are_found_by_kind_and_id():
    shift = histograms.KIND_SHIFT - histograms.ID_SHIFT
    groups = array("q", [H_DELAY << shift | 7, H_SIZE << shift | 7, H_SIZE << shift | (1 << 35)]).tobytes()
    stats = pickle.loads(pickle.dumps(records.PackedStats(groups, packed(ROWS))))
    assert stats.get((H_DELAY, 7)) == ROWS[0]
    assert stats.get((H_SIZE, 7)) == ROWS[1]
    assert stats.get((H_SIZE, 1 << 35)) == ROWS[2]
    assert stats.get((H_DELAY, 8)) is None and stats.get((H_SIZE, 0)) is None


@pytest.mark.parametrize("size", [64, 1 << 16])
def test_the_histogram_table_is_crowded_past_three_quarters(size):
    table, g = new_table(size, HIST_WIDTH, False), new_table(1, G_WIDTH, False)
    g[0][G_HIST_USED] = size * 3 // 4 - 2
    assert not histograms.crowded(table, g, 2)
    assert histograms.crowded(table, g, 3)
