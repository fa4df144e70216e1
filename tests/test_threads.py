"""The compiled engine on two cores (sockinspect.analysis.threads): connections shared
out by their endpoints between two engines in two threads give the records of one
engine, with the indexes of their first packets in the file, also where many
connections share their endpoints (port reuse) and cross the chunks' ends."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SERVER, T0, tcp, write_pcap

from sockinspect._analyze import _analyze
from sockinspect._documents import capture_document
from sockinspect._read import CaptureReader
from sockinspect.analysis import jit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from capture import generate  # noqa: E402 - the benchmark's own generator

pytestmark = pytest.mark.skipif(not (jit.available() and jit.cache_ready()),
                                reason="the compiled engine's cache is not built (python -m sockinspect.analysis)")

THREADED = """
import pickle, sys
from sockinspect import _analyze
from sockinspect._read import CaptureReader
from sockinspect.analysis import engine, threads
engine.CHUNK_PACKETS = int(sys.argv[2])
shares = []
real = threads.ThreadedEngine
class Counted(real):
    def finish(self):
        done = super().finish()
        shares.append(self.shares)
        return done
threads.ThreadedEngine = Counted
streamed = []
cap = _analyze._analyze(sys.argv[1], CaptureReader(sys.argv[1]), None, compiled=True, threads=True)
_analyze._analyze(sys.argv[1], CaptureReader(sys.argv[1]), None, compiled=True, threads=True,
                  on_connection=lambda conn: streamed.append(conn.index))
sys.stdout.buffer.write(pickle.dumps((cap, shares[0], streamed)))
"""


def threaded(path: Path, chunk: int = 1 << 16) -> tuple:
    """(the Capture, connections per engine, indexes as streamed) from the two threads, in
    a process of its own (this one keeps the kernels as Python)."""
    done = subprocess.run([sys.executable, "-c", THREADED, str(path), str(chunk)], capture_output=True,
                          timeout=300, check=True)
    return pickle.loads(done.stdout)


def python(path: Path):  # noqa: ANN201
    return _analyze(path, CaptureReader(path), None, compiled=False)


def test_two_engines_give_the_records_of_one(tmp_path):
    path = tmp_path / "bench.pcap"
    generate(path, 30_000, 1_500)
    cap, shares, streamed = threaded(path, chunk=4096)
    one = python(path)
    assert capture_document(cap, cap.tcp, cap.udp) == capture_document(one, one.tcp, one.udp)
    assert sum(shares) == 1_500 and min(shares) > 500  # both engines had their half, about
    assert sorted(streamed) == list(range(1_500))


def test_port_reuse_across_chunks_keeps_the_order_of_first_packets(tmp_path):
    """Short connections to one server, each client port reused every 7 connections,
    interleaved with connections from other hosts: each engine numbers its own, the file
    decides the order, and chunks end inside connections."""
    frames, t = [], T0
    for k in range(400):
        for client, port in (("10.0.0.1", 40_000 + k % 7), (f"10.0.{k % 5}.9", 50_000 + k)):
            isn = 1000 * k
            for src, dst, sport, dport, flags, seq, ack in (
                    (client, SERVER, port, 80, "S", isn, 0), (SERVER, client, 80, port, "SA", 5, isn + 1),
                    (client, SERVER, port, 80, "A", isn + 1, 6), (client, SERVER, port, 80, "FA", isn + 1, 6),
                    (SERVER, client, 80, port, "FA", 6, isn + 2), (client, SERVER, port, 80, "A", isn + 2, 7)):
                frames.append((t, tcp(src, dst, sport, dport, flags, seq, ack)))
                t += 1_000_000
    path = write_pcap(tmp_path / "reuse.pcap", frames)
    cap, shares, streamed = threaded(path, chunk=97)
    one = python(path)
    assert len(one.tcp) == 800 and min(shares) > 0
    assert capture_document(cap, cap.tcp, cap.udp) == capture_document(one, one.tcp, one.udp)
    assert sorted(streamed) == list(range(800))
