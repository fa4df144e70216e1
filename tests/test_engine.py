"""The engine (sockinspect.analysis) gives the same records compiled with numba as run
as Python, on every capture the project holds: ours, the corpus, the fuzzer's finds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from sockinspect._analyze import _analyze
from sockinspect._decode import Decoder, Packet
from sockinspect._read import CaptureReader
from sockinspect.analysis import jit
from sockinspect.analysis.engine import Engine
from sockinspect.errors import CaptureFormatError

ROOT = Path(__file__).resolve().parent.parent
NOT_CAPTURES = {".json", ".md", ".tsv", ".trace", ".py"}
CAPTURES = sorted(p for folder in (ROOT / "tests" / "data", ROOT / "captures") for p in folder.rglob("*")
                  if p.is_file() and p.suffix not in NOT_CAPTURES)


def packets(path: Path) -> list[Packet]:
    decoder = Decoder()
    decoded = (decoder.decode(frame, number) for number, frame in enumerate(CaptureReader(path), 1))
    return [p for p in decoded if type(p) is Packet]


def records(path: Path, compiled: bool, ack_log: list) -> tuple:
    """The engine's records of ``path`` (fed the general decoder's packets), and the whole
    Capture analyze() makes (the compiled engine reads pcap files with its own kernels)."""
    try:
        pkts = packets(path)
    except CaptureFormatError:
        return ()
    engine = Engine(compiled=compiled, ack_log=ack_log)
    engine.feed(pkts)
    return engine.finish(), _analyze(path, CaptureReader(path), None, compiled=compiled)


COMPILED_RUN = """
import pickle, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_engine import records
out = {}
for name in sys.argv[2:]:
    log = []
    out[name] = (records(Path(name), True, log), log)
sys.stdout.buffer.write(pickle.dumps(out))
"""


def test_the_captures_are_many():
    assert len(CAPTURES) > 60


@pytest.mark.skipif(not jit.available(), reason="numba is not installed")
def test_compiled_kernels_give_the_records_python_gives():
    """Compiled in a process of its own: once compiled, a process keeps numba's kernels."""
    done = subprocess.run([sys.executable, "-c", COMPILED_RUN, str(ROOT / "tests"), *map(str, CAPTURES)],
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    compiled = pickle.loads(done.stdout)
    assert not jit.compiled(), "this process must run the kernels as Python"
    differ = []
    for path in CAPTURES:
        log: list = []
        python = (records(path, False, log), log)
        if python != compiled[str(path)]:
            differ.append(path.name)
    assert not differ, f"compiled and Python records differ on {differ}"


MISSED_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numba
from test_engine import records
for name in sys.argv[2:]:
    records(Path(name), True, [])
print(" ".join(sorted({f"{a}" for m, module in list(sys.modules.items()) if m.startswith("sockinspect")
                      for a, d in vars(module).items()
                      if isinstance(d, numba.core.registry.CPUDispatcher) and sum(d.stats.cache_misses.values())})))
"""


@pytest.mark.skipif(not jit.available(), reason="numba is not installed")
def test_the_set_up_compiles_every_kernel_a_run_needs(tmp_path):
    """numba compiles a kernel for its arguments' types: a kernel the warm-up never ran, or
    ran with other types, would compile during a student's first large analysis."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "sockinspect.analysis"], env=env, check=True, capture_output=True,
                   timeout=600)
    done = subprocess.run([sys.executable, "-c", MISSED_RUN, str(ROOT / "tests"), *map(str, CAPTURES)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [], "compiled during the run, not by the set-up"


def test_the_cache_key_covers_every_file_the_compiled_kernels_depend_on():
    """numba bakes in the constants a kernel reads: a change to any of these must
    start a new cache, or large captures would keep the old rules."""
    names = {p.name for p in jit.cache_sources()}
    assert {"tables.py", "_linux.py", "_delays.py", "tcp.py", "acks.py", "fastpath.py"} <= names


@pytest.mark.skipif(not jit.available(), reason="numba is not installed")
def test_an_unwritable_cache_is_one_line_before_any_compiling(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "sockinspect.analysis"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(blocker)})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("sockinspect: cannot write the engine's cache: ")
    assert len(done.stderr.strip().splitlines()) == 1
