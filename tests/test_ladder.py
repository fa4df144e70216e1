"""sockinspect ladder: one connection's packets read again (sockinspect._packets) and
drawn as a sequence diagram (sockinspect._ladder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sockinspect import analyze
from sockinspect._decode import SYN
from sockinspect._ladder import MIN_WIDTH, ladder
from sockinspect._packets import connection_packets
from sockinspect.errors import CaptureFormatError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "captures" / "examples"
CORPUS = ROOT / "tests" / "data" / "corpus"
NAGLE_ON = EXAMPLES / "nagle-on.pcap"  # write-write-read with Nagle on: a delayed ACK and a stall per request
BULK = ROOT / "tests" / "data" / "nagle" / "bulk.pcap"  # 2 MB in one direction


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True, timeout=120)


def captures() -> list[Path]:
    return sorted(EXAMPLES.glob("*.pcap")) + sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_a_connection_read_again_alone_gives_the_record_of_the_whole_capture(path):
    """The packets kept are exactly the connection's: analysed alone they give the same record."""
    try:
        tcp = analyze(path).tcp
    except CaptureFormatError:
        pytest.skip("not a capture sockinspect reads")
    for conn in tcp if len(tcp) <= 40 else list(tcp[:20]) + list(tcp[-20:]):
        cp = connection_packets(path, conn.index)
        assert cp.connection == conn
        assert len(cp.number) == conn.packets
        assert cp.number[0] == conn.first_packet and cp.number[-1] == conn.last_packet


def test_sequence_numbers_are_relative_to_each_sides_syn():
    cp = connection_packets(EXAMPLES / "echo.pcap", 0)
    syns = [k for k in range(len(cp.number)) if cp.flags[k] & SYN]
    assert [cp.seq[k] for k in syns] == [0, 0]
    assert cp.ack[syns[1]] == 1  # the SYN/ACK acknowledges the SYN
    first_data = next(k for k in range(len(cp.number)) if cp.length[k])
    assert cp.seq[first_data] == 1


def test_delayed_acks_and_stalls_are_marked_where_the_record_counts_them():
    cp = connection_packets(NAGLE_ON, 0)
    c = cp.connection
    delayed = [n for n, what, _ in cp.notes if what == "delayed_ack"]
    assert len(delayed) == c.c2s.delayed_acks + c.s2c.delayed_acks >= 20
    stalls = list(c.c2s.stall_list) + list(c.s2c.stall_list)
    assert {s.ack_packet for s in stalls} <= set(delayed)
    lines = ladder(cp, width=100)
    at = {n: k for k, n in enumerate(cp.number)}
    for s in stalls:
        # the note's delay is the ACK's time after the earliest segment it newly covered
        ms = (cp.ts_ns[at[s.ack_packet]] - cp.ts_ns[at[s.data_packet]]) / 1e6
        assert 35 <= ms < 60  # Linux's delayed-ACK timer on loopback
        assert sum(f"delayed ACK {ms:.1f} ms" in line for line in lines) >= 1
    assert sum("stall: the sender waited" in line for line in lines) == len(stalls)
    assert any("handshake done: RTT" in line for line in lines)
    assert any("first FIN: the client closes" in line for line in lines)


@pytest.mark.parametrize("width", [MIN_WIDTH, 80, 132, 200])
@pytest.mark.parametrize("path", [NAGLE_ON, BULK, EXAMPLES / "file.pcap", EXAMPLES / "handshake.pcap"],
                         ids=lambda p: getattr(p, "name", p))
def test_no_line_is_longer_than_the_width(path, width):
    for ascii_only in (False, True):
        for every in (False, True):
            lines = ladder(connection_packets(path, 0), width=width, ascii_only=ascii_only, every=every)
            assert max(len(line) for line in lines) <= width
            if ascii_only:
                assert all(line.isascii() for line in lines)


def test_a_bulk_run_is_one_line_unless_all_is_asked():
    cp = connection_packets(BULK, 0)
    short, every = ladder(cp, width=100), ladder(cp, width=100, every=True)
    run = [line for line in short if "segments (" in line]
    assert len(run) == 1 and "from the client" in run[0] and "MB" in run[0]
    assert len(every) - len(short) > 50
    arrows = sum(line.count("▶") + line.count("◀") for line in every)
    assert arrows == len(cp.number)


def test_a_retransmission_is_marked():
    path = CORPUS / "wireshark__tcp-retrans-ooo.pcap"
    if not path.exists():
        path = next(p for p in captures() if sum(c.c2s.retransmissions + c.s2c.retransmissions
                                                  for c in analyze(p).tcp))
    conn = max(analyze(path).tcp, key=lambda c: c.c2s.retransmissions + c.s2c.retransmissions)
    cp = connection_packets(path, conn.index)
    marked = [n for n, what, _ in cp.notes if what == "retransmission"]
    assert len(marked) == conn.c2s.retransmissions + conn.s2c.retransmissions > 0
    lines = ladder(cp, width=120, every=True)
    assert sum("retransmission" in line for line in lines if "▶" in line or "◀" in line) == len(marked)


def test_the_command_draws_and_refuses_bad_arguments_in_one_line(tmp_path):
    done = cli("ladder", str(NAGLE_ON), "--width", "90")
    assert done.returncode == 0, done.stderr
    assert "delayed ACK" in done.stdout and max(len(line) for line in done.stdout.splitlines()) <= 90
    for args, why in (((str(NAGLE_ON), "--connection", "9"), "no TCP connection #9 (it has 1: 0..0)"),
                      ((str(NAGLE_ON), "--width", "30"), "at least 60 columns"),
                      ((str(EXAMPLES / "udp.pcap"),), "has no TCP connections"),
                      ((str(tmp_path / "missing.pcap"),), "no such file"),
                      (("-",), "must be a file")):
        done = cli("ladder", *args)
        assert done.returncode == 2 and why in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_truncated_capture_draws_what_it_holds(tmp_path):
    cut = tmp_path / "cut.pcap"
    data = NAGLE_ON.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])
    done = cli("ladder", str(cut))
    assert done.returncode == 0 and "▶" in done.stdout
    assert done.stderr.startswith(f"warning: {cut}: ") and "cut short" in done.stderr


def test_the_readme_shows_what_the_command_draws():
    done = subprocess.run([sys.executable, "-m", "sockinspect", "ladder", "tests/data/nagle/nagle-on.pcap", "--width",
                           "80"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    head = "".join(done.stdout.splitlines(keepends=True)[:24])
    shown = "$ sockinspect ladder tests/data/nagle/nagle-on.pcap --width 80 | head -24\n" + head + "```"
    assert done.returncode == 0 and shown in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name, held", [("nagle-on.pcap", True), ("nodelay.pcap", False)])
def test_each_segment_nagle_held_is_marked_at_the_ack_it_waited_for(name, held):
    cp = connection_packets(ROOT / "tests" / "data" / "nagle" / name, 0)
    marks = [(n, ack) for n, what, ack in cp.notes if what == "nagle_held"]
    assert len(marks) == cp.connection.c2s.nagle_evidence.held_until_ack
    assert bool(marks) == held
    where = {n: k for k, n in enumerate(cp.number)}
    for n, ack in marks:  # the ACK comes from the server, before the client's held segment
        assert cp.side[where[n]] == 0 and cp.length[where[n]] and cp.side[where[ack]] == 1 and ack < n
    lines = ladder(cp, width=200)  # wide enough for each note on one line
    assert sum("Nagle held the client's next segment until this ACK" in line for line in lines) == len(marks)


def test_flags_are_tcpdumps_and_a_window_scale_beyond_14_counts_as_14():
    lines = ladder(connection_packets(CORPUS / "tcpdump__accecn_handshake.pcap", 0), width=120)
    assert [line.split("[")[1].split("]")[0] for line in lines if "▶" in line or "◀" in line][:4] == [
        "SEW", "S.W", ".W", "P.E"]  # tcpdump -S: SYN with ECE and CWR, and so on
    cp = connection_packets(CORPUS / "zeek__window-scale-range.pcap", 0)
    assert max(cp.window) <= 65535 << 14


@pytest.mark.parametrize("path", [p for p in captures() if p.stat().st_size < 1 << 20], ids=lambda p: p.name)
def test_no_number_is_cut_and_every_arrow_shows_the_same_fields(path):
    try:
        count = len(analyze(path).tcp)
    except CaptureFormatError:
        pytest.skip("not a capture sockinspect reads")
    for index in range(min(count, 3)):
        for width in (80, 100):  # (at 60, 10-digit sequence numbers cannot all fit)
            arrows = [line for line in ladder(connection_packets(path, index), width=width, every=True)
                      if "▶│" in line or "│◀" in line]
            assert not any("…" in line for line in arrows)
            shown = {("win " in line, " len " in line or "len" not in line) for line in arrows}
            assert len({win for win, _ in shown}) <= 1


def test_a_zero_window_is_said_once_until_the_window_opens_again():
    path = CORPUS / "zeek__206_example_b.pcap"
    conn = max(analyze(path).tcp, key=lambda c: c.c2s.zero_windows + c.s2c.zero_windows)
    lines = ladder(connection_packets(path, conn.index), width=140, every=True)
    said = sum("zero window: the receiver's buffer is full" in line for line in lines)
    opened = sum("the window opens again" in line for line in lines)
    assert 0 < said < conn.c2s.zero_windows + conn.s2c.zero_windows
    assert opened in (said, said - 1)  # the last may never open
    summary = " ".join(lines[lines.index("") + 1:])
    assert "retransmissions" in summary and "1 retransmissions" not in summary


def test_times_keep_their_digits_before_their_decimals():
    from sockinspect._ladder import _number

    assert _number(0.0125, 10) == "     0.013" and _number(15010.25, 9, "+") == " +15010.2"
    assert _number(86_400_000.4, 10) == "86400000.4" and _number(123_456_789.4, 10) == " 123456789"
    assert _number(-3.5, 9, "+") == "   -3.500"
    assert _number(1e12, 10) == "         #"  # a clock that jumped decades
