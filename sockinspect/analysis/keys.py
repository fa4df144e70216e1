"""Key tables for the kernels: tuples of integers -> a row number (of a connection, a
flow, an address), in an integer table like the others. (A numba typed dict costs
about a second of compiling in every process that makes one, and more per lookup.)

Open addressing with linear probing, at most half full. Removing an entry shifts the
entries after it back, so a probe never has to step over a removed one. Row 0 holds
the count of entries; rows 1..capacity are the buckets: (value + 1, 0 when free;
the key's hash; the key's integers).
"""

from __future__ import annotations

from .jit import kernel
from .tables import new_table

K_VALUE, K_HASH, K_KEY = range(3)
FIRST_CAPACITY = 64  # a power of two, as every capacity
ROOM = 4  # entries a kernel may add before it checks for room again


def new_keys(width: int, compiled: bool, capacity: int = FIRST_CAPACITY):  # noqa: ANN201
    """An empty key table for keys of ``width`` integers."""
    return new_table(capacity + 1, K_KEY + width, compiled)


MIX = 0x2545F4914F6CDD1D  # odd: a multiplier that spreads the low bits upwards
MASK62 = (1 << 62) - 1


def key_hash(key):  # noqa: ANN001, ANN201
    """A key's hash, when the kernels run as Python: the tuple's own."""
    return hash(key)


def mixed_hash(key):  # noqa: ANN001, ANN201
    """A key's hash, compiled (where the tuple hash needs numba's runtime): its integers
    mixed by multiplication, the high bits folded back into the low ones after each and
    once more at the end (a table's index is the hash's low bits). In 62 bits: the low
    bits of a product do not depend on overflow, so Python and numba agree."""
    h = 0
    for x in key:
        h = ((h ^ x) * MIX) & MASK62
        h ^= h >> 29
    h = (h * MIX) & MASK62
    return h ^ (h >> 32)


kernel(key_hash, compiled_from=mixed_hash)


@kernel
def full(K):  # noqa: ANN001, ANN201
    """Whether K must grow before ROOM more entries go in."""
    return 2 * (K[0][0] + ROOM) > len(K) - 1


@kernel
def bucket(K, key, h):  # noqa: ANN001, ANN201
    """The row holding ``key`` (hash ``h``), else the free row where it would go."""
    mask = len(K) - 2
    j = 1 + (h & mask)
    while K[j][K_VALUE] != 0:
        row = K[j]
        if row[K_HASH] == h:
            same = True
            for k in range(len(key)):
                if row[K_KEY + k] != key[k]:
                    same = False
                    break
            if same:
                return j
        j = 1 + (j & mask)
    return j


@kernel
def get(K, key):  # noqa: ANN001, ANN201
    """The value under ``key``; NONE (-1) when there is none."""
    return K[bucket(K, key, key_hash(key))][K_VALUE] - 1


@kernel
def put(K, key, value):  # noqa: ANN001, ANN201
    """Set ``key`` to ``value`` (non-negative). The caller made room (see :func:`full`)."""
    h = key_hash(key)
    row = K[bucket(K, key, h)]
    if row[K_VALUE] == 0:
        row[K_HASH] = h
        for k in range(len(key)):
            row[K_KEY + k] = key[k]
        K[0][0] += 1
    row[K_VALUE] = value + 1


@kernel
def pop(K, key):  # noqa: ANN001, ANN201
    """Remove ``key`` if present; the entries probing past it move back into the gap."""
    mask = len(K) - 2
    gap = bucket(K, key, key_hash(key))
    if K[gap][K_VALUE] == 0:
        return
    K[0][0] -= 1
    j = gap
    while True:
        j = 1 + (j & mask)
        if K[j][K_VALUE] == 0:
            break
        home = 1 + (K[j][K_HASH] & mask)
        # The entry at j stays unless the gap lies on its probe path (home .. j, cyclically).
        if (gap < j and gap < home <= j) or (gap > j and (home <= j or home > gap)):
            continue
        for k in range(len(K[j])):
            K[gap][k] = K[j][k]
        gap = j
    K[gap][K_VALUE] = 0


@kernel
def move_all(old, new):  # noqa: ANN001, ANN201
    """Put every entry of ``old`` in ``new`` (empty, of the same width)."""
    mask = len(new) - 2
    for i in range(1, len(old)):
        if old[i][K_VALUE] != 0:
            j = 1 + (old[i][K_HASH] & mask)
            while new[j][K_VALUE] != 0:
                j = 1 + (j & mask)
            for k in range(len(old[i])):
                new[j][k] = old[i][k]
    new[0][0] = old[0][0]


def grown(K, compiled: bool):  # noqa: ANN001, ANN201
    """K with twice the capacity, the same entries."""
    new = new_table(2 * (len(K) - 1) + 1, len(K[0]), compiled)
    move_all(K, new)
    return new
