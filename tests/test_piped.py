"""The engine in a process of its own (sockinspect._analyze._analyze_piped, the default
for a large pcap file on two cores or more): the same records, in the same order, as
in one process; its failures surface here, and it never outlives the analysis."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from pathlib import Path

import pytest

from sockinspect import _analyze
from sockinspect._documents import capture_document
from sockinspect._read import CaptureReader
from sockinspect.analysis import jit
from sockinspect.errors import CaptureFormatError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from capture import generate  # noqa: E402 - the benchmark's own generator

pytestmark = pytest.mark.skipif(not (jit.available() and jit.cache_ready()),
                                reason="the compiled engine's cache is not built (python -m sockinspect.analysis)")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """3,000 connections over 60,000 packets (IPv4 and IPv6), retiring as the capture goes."""
    path = tmp_path_factory.mktemp("piped") / "bench.pcap"
    generate(path, 60_000, 3_000)
    return path


def piped(path: Path, on_connection=None):  # noqa: ANN001, ANN201
    return _analyze._analyze_piped(path, CaptureReader(path), None, on_connection)


def test_the_records_are_those_of_one_process(capture):
    one = _analyze._analyze(capture, CaptureReader(capture), None, compiled=False)
    two = piped(capture)
    assert len(two.tcp) == 3_000
    assert capture_document(two, two.tcp, two.udp) == capture_document(one, one.tcp, one.udp)


ALONE = """
import json, sys
from sockinspect import _analyze
from sockinspect._read import CaptureReader
from sockinspect.analysis import engine
engine.RETIRE_BATCH = int(sys.argv[2])
got = []
_analyze._analyze(sys.argv[1], CaptureReader(sys.argv[1]), None, compiled=True,
                  on_connection=lambda conn: got.append(conn.index))
print(json.dumps(got))
"""


def streamed_alone(path: Path, retire_batch: int = 4096) -> list[int]:
    """The indexes of the connections in the order one process streams them, compiled (in
    a process of its own: this one keeps the kernels as Python)."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-c", ALONE, str(path), str(retire_batch)], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def test_streamed_connections_come_in_the_order_they_retire(capture):
    streamed = []
    piped(capture, on_connection=streamed.append)
    assert [c.index for c in streamed] == streamed_alone(capture)
    assert sorted(c.index for c in streamed) == list(range(3_000))


def test_at_the_end_each_process_renders_half_in_the_order_of_one(capture, monkeypatch):
    from sockinspect.analysis import engine

    monkeypatch.setattr(engine, "RETIRE_BATCH", 50)  # many batches at the end (the forked process has it too)
    got: list[tuple[int, int, str | None]] = []
    _analyze.analyze(capture, workers=2, on_connection=got.append,
                     render=lambda conn: (conn.index, os.getpid(), os.environ.get("OPENBLAS_NUM_THREADS")))
    assert [index for index, _pid, _blas in got] == streamed_alone(capture, retire_batch=50)
    assert len({pid for _index, pid, _blas in got}) == 2  # this process and the engine's
    # The engine's process asks numpy for no BLAS threads (unless told otherwise)
    assert {blas for _index, pid, blas in got if pid != os.getpid()} == {os.environ.get("OPENBLAS_NUM_THREADS", "1")}


def test_progress_reaches_the_end(capture):
    seen = []
    _analyze._analyze_piped(capture, CaptureReader(capture), lambda pos, size: seen.append((pos, size)), None)
    assert seen and seen[-1][0] == seen[-1][1] == capture.stat().st_size


@pytest.mark.parametrize("damage", ["cut", "corrupt"])
def test_a_damaged_file_gives_what_one_process_gives(capture, tmp_path, damage):
    """Read in blocks into one buffer: a file cut in a record, or with an impossible
    record length past the first block, stops there with the same warning."""
    data = bytearray(capture.read_bytes())
    at = len(data) * 2 // 3
    if damage == "cut":
        data = data[:at]
    else:  # the captured length of the record found at ``at``, made impossible
        pos = 24
        while pos < at:
            pos += 16 + int.from_bytes(data[pos + 8: pos + 12], "little")
        data[pos + 8: pos + 12] = (1 << 30).to_bytes(4, "little")
    path = tmp_path / f"{damage}.pcap"
    path.write_bytes(bytes(data))
    one = _analyze._analyze(path, CaptureReader(path), None, compiled=False)
    two = piped(path)
    assert len(two.warnings) == 1 and ("cut short" if damage == "cut" else "corrupt record") in two.warnings[0]
    assert capture_document(two, two.tcp, two.udp) == capture_document(one, one.tcp, one.udp)


def test_an_error_in_the_engine_process_is_raised_here(capture, monkeypatch):
    def broken(*args, **kw):  # noqa: ANN002, ANN003, ANN202 - forked: the engine's process runs this
        raise CaptureFormatError("broken on purpose")

    monkeypatch.setattr(_analyze, "_analyze", broken)
    with pytest.raises(CaptureFormatError, match="broken on purpose"):
        piped(capture)
    assert not multiprocessing.active_children()


class _TwoArguments(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


@pytest.mark.parametrize("error", [ValueError("no good"), _TwoArguments(1, 2)], ids=["plain", "unpicklable"])
def test_an_error_in_render_comes_back_as_itself_or_as_what_it_was(capture, monkeypatch, error):
    from sockinspect.analysis import engine

    monkeypatch.setattr(engine, "RETIRE_BATCH", 50)  # batches at the end that the engine's process renders

    def render(conn):  # noqa: ANN001, ANN202
        if os.getpid() != here:
            raise error
        return conn.index

    here = os.getpid()
    with pytest.raises(Exception) as raised:  # noqa: PT011 - which one is the point
        _analyze.analyze(capture, workers=2, on_connection=lambda item: None, render=render)
    if isinstance(error, ValueError):
        assert type(raised.value) is ValueError and str(raised.value) == "no good"
    else:
        assert type(raised.value) is RuntimeError and "_TwoArguments: 1 and 2" in str(raised.value)
    assert any("in the engine's process" in note for note in raised.value.__notes__)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_capture_file_is_closed_when_analyze_returns(capture, workers):
    """In a process of its own: with one worker the kernels run compiled there, for good."""
    import subprocess

    script = ("import os, sys\n"
              "from sockinspect import analyze\n"
              "analyze(sys.argv[1], workers=int(sys.argv[2]))\n"
              "print(sum(os.path.realpath(f'/proc/self/fd/{fd}') == os.path.realpath(sys.argv[1])\n"
              "          for fd in os.listdir('/proc/self/fd')))\n")
    done = subprocess.run([sys.executable, "-c", script, str(capture), str(workers)], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip() == "0"


def test_an_engine_process_that_dies_is_one_clear_error(capture, monkeypatch):
    monkeypatch.setattr(_analyze, "_analyze", lambda *a, **kw: os._exit(9))
    with pytest.raises(CaptureFormatError, match="exit code 9"):
        piped(capture)


def test_a_failing_consumer_stops_the_engine_process(capture):
    def fail(conn):  # noqa: ANN001, ANN202
        raise RuntimeError("consumer gave up")

    with pytest.raises(RuntimeError, match="consumer gave up"):
        piped(capture, on_connection=fail)
    assert not multiprocessing.active_children()
    assert not [t for t in threading.enumerate() if t.name == "sockinspect-pump"]  # the reading thread too


def test_a_large_file_is_piped_by_default_and_workers_1_keeps_one_process(capture, monkeypatch):
    piped_calls, in_process = [], []
    real_piped, real_analyze = _analyze._analyze_piped, _analyze._analyze

    def as_python(*args, **kw):  # noqa: ANN002, ANN003, ANN202 - never compile in this process
        in_process.append(os.getpid())
        return real_analyze(*args, **{**kw, "compiled": False})

    monkeypatch.setattr(_analyze, "_analyze_piped", lambda *a: piped_calls.append(1) or real_piped(*a))
    monkeypatch.setattr(_analyze, "_analyze", as_python)
    monkeypatch.setattr(_analyze, "PIPED_MIN_BYTES", 1)
    monkeypatch.setattr(_analyze.os, "cpu_count", lambda: 2)
    default = _analyze.analyze(capture)
    assert piped_calls == [1] and not in_process  # the engine ran in the forked process
    alone = _analyze.analyze(capture, workers=1)
    assert piped_calls == [1] and in_process == [os.getpid()]
    assert capture_document(default, default.tcp, default.udp) == capture_document(alone, alone.tcp, alone.udp)
    assert not jit.compiled()


def test_the_engine_process_ends_with_this_one_even_on_sigkill(capture):
    """A SIGKILL leaves no cleanup to run: the kernel's parent-death signal ends the engine."""
    import signal
    import subprocess
    import time

    script = (
        "import sys, time, multiprocessing\n"
        "from sockinspect import _analyze\n"
        "from sockinspect._read import CaptureReader\n"
        "from sockinspect.analysis import engine\n"
        "engine.RETIRE_BATCH = 100  # batches of 100: more than a pipe holds is still to send\n"
        "def slow(conn):\n"
        "    print(multiprocessing.active_children()[0].pid, flush=True); time.sleep(60)\n"
        "_analyze._analyze_piped(sys.argv[1], CaptureReader(sys.argv[1]), None, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(capture)], stdout=subprocess.PIPE, text=True)
    engine = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{engine}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the engine process {engine} outlived its parent")
