"""Inputs that are not one regular capture file: standard input, FIFOs, directories,
and gzip captures that expand to gigabytes (streamed, with progress, stoppable)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import T0, sigint_by_default

from sockinspect import analyze

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "captures" / "examples" / "echo.pcap"
CLI = [sys.executable, "-m", "sockinspect"]


def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=timeout)


def assert_ctrl_c_stops(args: list[str], started) -> None:  # noqa: ANN001
    """Run the CLI, wait until ``started(proc)``, press Ctrl-C: exit 130 with one line."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=sigint_by_default)
    try:
        assert started(proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.decode().strip() == "sockinspect: interrupted"


def without_file(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "file"}


@pytest.mark.parametrize("compress", [False, True])
def test_standard_input_plain_or_gzip(compress):
    data = ECHO.read_bytes()
    got = run_cli("analyze", "--json", "-", stdin=gzip.compress(data) if compress else data)
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    want = json.loads(run_cli("analyze", "--json", str(ECHO)).stdout)
    assert doc["file"] == "-" and doc["format"] == "pcap-ns" + ("+gzip" if compress else "")
    assert without_file(doc) | {"format": "pcap-ns"} == without_file(want)


def test_empty_standard_input_is_one_line_and_exit_2():
    got = run_cli("analyze", "-", stdin=b"")
    assert got.returncode == 2
    assert got.stderr.decode().splitlines() == ["sockinspect: -: empty input (0 bytes), not a capture"]


def test_a_fifo_says_it_waits_then_reads_what_is_written(tmp_path):
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*CLI, "analyze", "--json", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()
        assert "is a FIFO: waiting for a program to write a capture into it" in line
        with open(fifo, "wb") as f:
            f.write(ECHO.read_bytes())
        out, _err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert len(json.loads(out)["tcp"]) == 3


def test_a_fifo_nobody_writes_to_can_be_interrupted(tmp_path):
    fifo = tmp_path / "never.fifo"
    os.mkfifo(fifo)
    assert_ctrl_c_stops(["analyze", str(fifo)], lambda proc: "waiting" in proc.stderr.readline().decode())


def test_a_directory_means_the_capture_files_in_it(tmp_path):
    (tmp_path / "b.pcap.gz").write_bytes(gzip.compress(ECHO.read_bytes()))
    (tmp_path / "a-no-extension").write_bytes(ECHO.read_bytes())
    (tmp_path / "notes.txt").write_text("not a capture\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.pcap").write_bytes(ECHO.read_bytes())  # subfolders are not searched
    got = run_cli("analyze", "--json", str(tmp_path))
    assert got.returncode == 0, got.stderr
    files = [json.loads(line)["file"] for line in got.stdout.splitlines()]
    assert files == [str(tmp_path / "a-no-extension"), str(tmp_path / "b.pcap.gz")]


def test_a_directory_without_captures_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    got = run_cli("analyze", str(tmp_path))
    assert got.returncode == 2
    assert got.stderr.decode().splitlines() == [
        f"sockinspect: {tmp_path}: a directory with no pcap, pcapng or gzip files in it"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_workers_option_gives_the_same_report(workers):
    one = json.loads(run_cli("analyze", "--json", "--workers", "0", str(ECHO)).stdout)
    assert json.loads(run_cli("analyze", "--json", "--workers", workers, str(ECHO)).stdout) == one


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_workers_value_is_one_line_and_exit_2(bad):
    got = run_cli("analyze", "--workers", bad, str(ECHO))
    assert got.returncode == 2 and len(got.stderr.splitlines()) == 1


def test_hosts_as_the_tables_print_them(tmp_path):
    got = run_cli("analyze", "--json", "--host", "[::1]", "--host", "127.0.0.1", str(ECHO))
    assert got.returncode == 0, got.stderr


# -- gzip bombs: a few MB that expand to gigabytes ----------------------------

def _record(payload: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 1, 0x50, 0x10, 1000, 0, 0)
    frame = bytes(12) + b"\x08\x00" + ip + tcp + bytes(payload)
    return struct.pack("<IIII", T0 // 10**9, 0, len(frame), len(frame)) + frame


def gzip_bomb(path: Path, members: int, records_per_member: int = 1000, payload: int = 60_000) -> Path:
    """A gzip pcap of ``members`` identical gzip members (a reader must take them all),
    each holding ``records_per_member`` frames of ``payload`` bytes: 60 MB per member
    by default."""
    body = _record(payload) * records_per_member
    member = gzip.compress(body, compresslevel=9)
    header = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262_144, 1)
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(members):
            f.write(member)
    return path


def test_a_gzip_bomb_streams_in_constant_memory(tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.pcap.gz", members=8)  # 480 MB inside, under 1 MB outside
    assert bomb.stat().st_size < 2 << 20
    # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, from before exec)
    script = ("import re, sys; from sockinspect import analyze; cap = analyze(sys.argv[1], max_inflation=0);"
              "print(cap.packets, re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read())[1])")
    got = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    packets, maxrss_kb = map(int, got.stdout.split())
    assert packets == 8_000
    assert maxrss_kb < 150 * 1024  # 480 MB were read through a buffer of a few MiB


def test_gzip_progress_follows_the_compressed_bytes(tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.pcap.gz", members=4, records_per_member=50_000, payload=0)
    calls: list[tuple[int, int]] = []
    cap = analyze(bomb, progress=lambda done, total: calls.append((done, total)), max_inflation=0)
    assert cap.packets == 200_000
    assert len(calls) > 1 and calls[-1] == (bomb.stat().st_size,) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_a_gzip_bomb_can_be_stopped_with_ctrl_c(tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.pcap.gz", members=1024)  # 61 GB inside: minutes to read
    assert_ctrl_c_stops(["analyze", "--max-inflation", "0", str(bomb)], lambda _proc: time.sleep(2) or True)



def test_a_gzip_bomb_is_stopped_past_its_inflation_limit(tmp_path):
    """Tiny records, a thousand times compressed: read up to the limit, then one warning."""
    bomb = gzip_bomb(tmp_path / "bomb.pcap.gz", members=8, records_per_member=1_000_000, payload=0)
    assert bomb.stat().st_size < 2 << 20  # 8 x 54 MB inside
    got = run_cli("analyze", "--json", str(bomb), timeout=120)
    assert got.returncode == 0
    doc = json.loads(got.stdout)
    assert 0 < doc["packets"] < 1_000_000  # 16 MiB + 32 x what was read: about 300,000 records
    assert len(got.stderr.decode().splitlines()) == 1
    assert "inflates more than 32 times its size (a decompression bomb?)" in got.stderr.decode()
    assert doc["warnings"] and "--max-inflation 0" in doc["warnings"][0]


def test_max_inflation_0_reads_a_highly_compressed_capture_whole(tmp_path):
    bomb = gzip_bomb(tmp_path / "zeros.pcap.gz", members=1, records_per_member=400_000, payload=0)
    assert analyze(bomb, max_inflation=0).packets == 400_000
    assert analyze(bomb).packets < 400_000


def test_standard_input_from_a_regular_file_is_read_by_one_process(tmp_path):
    """multiprocessing closes standard input in its processes: this one reads it."""
    with open(ECHO, "rb") as f:
        got = subprocess.run([*CLI, "analyze", "--json", "--workers", "2", "-"], stdin=f, capture_output=True,
                             timeout=60)
    assert got.returncode == 0, got.stderr
    assert len(json.loads(got.stdout)["tcp"]) == 3


def test_closed_standard_input_is_one_line_and_exit_2():
    got = subprocess.run([*CLI, "analyze", "-"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                         preexec_fn=lambda: os.close(0))
    assert got.returncode == 2
    assert got.stderr.decode().splitlines() == ["sockinspect: -: standard input is closed"]


def test_standard_input_twice_is_one_line_and_exit_2():
    got = run_cli("analyze", "-", "-", stdin=ECHO.read_bytes())
    assert got.returncode == 2 and "give - only once" in got.stderr.decode()
    assert len(got.stderr.splitlines()) == 1


def test_a_symlink_loop_in_a_directory_is_skipped(tmp_path):
    (tmp_path / "a.pcap").write_bytes(ECHO.read_bytes())
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    got = run_cli("analyze", "--json", str(tmp_path))
    assert got.returncode == 0, got.stderr
    assert [json.loads(line)["file"] for line in got.stdout.splitlines()] == [str(tmp_path / "a.pcap")]
