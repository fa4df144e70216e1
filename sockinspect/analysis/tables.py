"""The engine's state: fixed-width integer tables, one row per connection, per
direction or per pool entry, as lists of lists (Python) or 2-D int64 arrays (numba).

Each table's columns are named by constants, in the module that owns the table.
``NONE`` stands for a missing number (Python's None) in columns
that hold sequence numbers, timestamps or packet numbers, all non-negative.
"""

from __future__ import annotations

from .jit import kernel

NONE = -1
M32 = 0xFFFFFFFF
HALF = 1 << 31



# Globals (one row): counters and free lists shared by the kernels. G_CONNS counts the TCP
# connections ever seen (the next one's index); G_CLOCK is the latest TCP timestamp so far.
(G_CONNS, G_UDP, G_EVENTS, G_SEG_FREE, G_SEG_USED, G_HOLE_FREE, G_LOG, G_HIST_USED, G_CONN_FREE,
 G_CLOCK) = range(10)
G_WIDTH = 10

# Events the kernels hand to Python (one row each: kind, then up to 7 values). With G_LOG set
# (one connection looked at closely, see sockinspect._packets) also EV_ACK_LOG and EV_NOTE.
EV_WIDTH = 8
EV_STALL, EV_ACK_LOG, EV_RETIRE, EV_NOTE = range(4)
# What an EV_NOTE (packet number, note, value) says of a packet.
# NOTE_DELAYED_ACK's value: the delay; NOTE_CONNECTION (every TCP packet): the index of its connection.
# NOTE_NAGLE_HELD (a small segment that waited for the ACK of the previous one): the ACK's packet number.
NOTE_RETRANSMISSION, NOTE_ZERO_WINDOW, NOTE_WINDOW_FULL, NOTE_DELAYED_ACK, NOTE_CONNECTION, NOTE_NAGLE_HELD = range(6)

# Histograms (see .histograms): a hash table of key (kind, id, value code) -> count; count 0: free.
HIST_KEY, HIST_COUNT = range(2)
HIST_WIDTH = 2
H_DELAY, H_SIZE, H_LATENCY, H_FIRST_BYTE, H_UDP_RTT = range(5)  # ids: sender row, or connection/flow
NO_MIN, NO_MAX = 1 << 62, -(1 << 62)  # the smallest and largest of no value
TIME_CAP = (1 << 62) - 1  # timestamps are clamped to +-TIME_CAP: their differences fit in int64

# Outstanding (unacknowledged) data segments of a sender: a pool of linked entries.
SEG_END, SEG_TS, SEG_PKT, SEG_ONCE, SEG_NEXT = range(5)
SEG_WIDTH = 5
# Holes in a sender's sequence space (unwrapped [lo, hi)): a pool of linked entries.
HOLE_LO, HOLE_HI, HOLE_NEXT = range(3)
HOLE_WIDTH = 3


def clamped(ts: int) -> int:
    """A timestamp as the engine holds it: within +-TIME_CAP."""
    return max(-TIME_CAP, min(TIME_CAP, ts))


@kernel
def event(EV, G, kind):  # noqa: ANN001, ANN201
    """The number of the next row of EV, for an event of ``kind`` (its values go in after it)."""
    e = G[0][G_EVENTS]
    G[0][G_EVENTS] += 1
    EV[e][0] = kind
    return e


@kernel
def note(EV, G, number, what, value):  # noqa: ANN001, ANN201
    """An EV_NOTE of packet ``number``, when G_LOG asks for them."""
    if G[0][G_LOG]:
        e = EV[event(EV, G, EV_NOTE)]
        e[1] = number
        e[2] = what
        e[3] = value


@kernel
def capped_sum(a, b):  # noqa: ANN001, ANN201
    """a + b, kept within +-TIME_CAP: sums of durations stay in int64 when compiled and
    agree with Python (only hostile timestamps, decades apart, reach the cap)."""
    if b > 0 and a > TIME_CAP - b:
        return TIME_CAP
    if b < 0 and a < -TIME_CAP - b:
        return -TIME_CAP
    return max(-TIME_CAP, min(TIME_CAP, a + b))


def new_table(rows: int, width: int, compiled: bool, fill: int = 0):  # noqa: ANN201
    """A table of ``rows`` x ``width`` integers, all ``fill``."""
    if compiled:
        import numpy as np

        return np.full((rows, width), fill, dtype=np.int64)
    return [[fill] * width for _ in range(rows)]


def new_flags(n: int, compiled: bool):  # noqa: ANN201
    """``n`` flags (0 or 1), all 0: one byte each when compiled."""
    if compiled:
        import numpy as np

        return np.zeros(n, dtype=np.uint8)
    return [0] * n


def grow(table, rows: int, width: int, compiled: bool, fill: int = 0):  # noqa: ANN001, ANN201
    """``table`` with ``rows`` more rows of ``fill``."""
    if compiled:
        import numpy as np

        return np.concatenate([table, np.full((rows, width), fill, dtype=np.int64)])
    table.extend([fill] * width for _ in range(rows))
    return table


def link_free(table, start: int, next_column: int) -> None:  # noqa: ANN001
    """Chain rows ``start``.. of a pool into a free list (the last one ends it)."""
    rows = len(table)
    if isinstance(table, list):
        for k in range(start, rows):
            table[k][next_column] = k + 1 if k + 1 < rows else NONE
        return
    import numpy as np

    table[start:, next_column] = np.arange(start + 1, rows + 1)
    table[rows - 1, next_column] = NONE
