"""The kernels' key tables (sockinspect.analysis.keys) behave as a dict, in both modes."""

from __future__ import annotations

import json
import random
import subprocess
import sys

from sockinspect.analysis import jit, keys

# Small tables with few keys: long probe runs that wrap at the table's end, many removals.
SCRIPT = """
import json, random, sys
from sockinspect.analysis import jit, keys
compiled = sys.argv[1] == "1"
if compiled:
    jit.compile_kernels()
rng = random.Random(7)
seen, capacities = [], set()
for round in range(400):
    K = keys.new_keys(3, compiled, capacity=8)
    pool = [(rng.randrange(3), rng.randrange(-1 << 62, 1 << 62), rng.randrange(40)) for _ in range(6)]
    model = {}
    for step in range(100):
        key = rng.choice(pool)
        if rng.random() < 0.55:
            if keys.full(K):
                K = keys.grown(K, compiled)
            keys.put(K, key, step)
            model[key] = step
        else:
            keys.pop(K, key)
            model.pop(key, None)
        found = [keys.get(K, k) for k in pool]
        if found != [model.get(k, -1) for k in pool] or int(K[0][0]) != len(model):
            print(json.dumps(["differs", round, step]))
            sys.exit(1)
        seen.append(sum(found))
    capacities.add(len(K) - 1)
print(json.dumps([sorted(capacities), sum(seen)]))
"""


def run(compiled: bool) -> list:
    done = subprocess.run([sys.executable, "-c", SCRIPT, "1" if compiled else "0"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_key_table_is_a_dict_under_puts_and_removals():
    capacities, _ = python = run(compiled=False)
    assert capacities == [16, 32]  # some grew twice
    assert run(compiled=True) == python


def test_a_missing_key_is_none_and_growing_keeps_every_entry():
    compiled = jit.compiled()  # in the mode an earlier test may have left the kernels in
    K = keys.new_keys(5, compiled, capacity=4)
    assert keys.get(K, (1, 2, 3, 4, 5)) == -1
    rng = random.Random(1)
    entries = {tuple(rng.randrange(1 << 40) for _ in range(5)): n for n in range(1000)}
    for key, value in entries.items():
        if keys.full(K):
            K = keys.grown(K, compiled)
        keys.put(K, key, value)
    assert all(keys.get(K, key) == value for key, value in entries.items())
    assert K[0][0] == 1000 and len(K) - 1 >= 2 * (1000 + keys.ROOM)


def test_the_compiled_hash_spreads_keys_that_differ_only_in_high_bits():
    """Compiled, a key's hash is keys.mixed_hash (numba's tuple hash needs its runtime).
    Addresses that differ only in their high 64 bits (IPv6 prefixes), or only in a port,
    still fill a table's buckets evenly: the table index is the hash's low bits."""
    mask = 4096 - 1
    spreads = (lambda i: (6, i << 40, 1), lambda i: (0, 7, 40_000 + i, 9, 443), lambda i: (4, 0, i << 16),
               lambda i: (4, 0, i << 32))
    for keys_of in spreads:
        buckets = {keys.mixed_hash(keys_of(i)) & mask for i in range(2048)}
        assert len(buckets) > 2048 * 0.7  # random placement fills about 78%
    assert keys.mixed_hash((1, -5, 1 << 62)) >= 0


def test_the_compiled_hash_is_the_same_number_in_both_modes():
    script = ("import numba, json; from sockinspect.analysis import keys; f = numba.njit(keys.mixed_hash); "
              "print(json.dumps([f((6, -3, 1 << 62)), f((0, 1, 2, 3, 4))]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [keys.mixed_hash((6, -3, 1 << 62)), keys.mixed_hash((0, 1, 2, 3, 4))]
