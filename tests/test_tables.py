"""The text report for people: fitted to the terminal (COLUMNS), split rather than
wrapped by the terminal, in words a student can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockinspect import analyze
from sockinspect._cli import main
from sockinspect._report import compare_table, grid, short_names
from sockinspect.errors import CaptureFormatError

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "captures" / "examples"
NAGLE = ROOT / "tests" / "data" / "nagle"
CORPUS = ROOT / "tests" / "data" / "corpus"


def _out(capsys, monkeypatch, columns: int, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["analyze", *argv]) == 0
    return capsys.readouterr().out


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


OUTPUTS = [
    *([str(p)] for p in sorted(EXAMPLES.glob("*.pcap"))),
    [str(CORPUS / "dpkt__http.pcap")],
    [str(EXAMPLES / "echo.pcap"), "--connection", "0"],
    [str(NAGLE / "nagle-on.pcap"), "--connection", "0"],
    [str(NAGLE / "nagle-on.pcap"), str(NAGLE / "nodelay.pcap"), "--compare"],
    [str(EXAMPLES / "udp.pcap"), str(EXAMPLES / "tcp.pcap"), "--compare"],
]


@pytest.mark.parametrize("argv", OUTPUTS, ids=lambda a: " ".join(Path(x).name for x in a))
@pytest.mark.parametrize("columns", [80, 200])
def test_no_line_is_wider_than_the_terminal(capsys, monkeypatch, argv, columns):
    out = _out(capsys, monkeypatch, columns, *argv)
    assert _widest(out) <= columns, next(line for line in out.splitlines() if len(line) > columns)


def test_at_200_columns_a_table_is_one_table_and_at_80_it_is_split(capsys, monkeypatch):
    wide = _out(capsys, monkeypatch, 200, str(EXAMPLES / "echo.pcap"))
    narrow = _out(capsys, monkeypatch, 80, str(EXAMPLES / "echo.pcap"))
    # one dash line per table: TCP connections and timing, each split in two at 80 columns
    assert sum(line.startswith("-  ") or line.startswith("---") for line in wide.splitlines()) == 2
    assert sum(line.startswith("-  ") or line.startswith("---") for line in narrow.splitlines()) == 4
    for text in (wide, narrow):  # every value is still there, each split table repeats the # column
        assert "127.0.0.1:47262*" in text and "1.676" in text and "unknown (0/0)" in text


def test_wide_turns_the_fitting_off(capsys, monkeypatch):
    out = _out(capsys, monkeypatch, 80, str(EXAMPLES / "echo.pcap"), "--wide")
    assert _widest(out) > 150 and "rtt (ms)" in out and "syn→synack (ms)" in out
    out = _out(capsys, monkeypatch, 80, str(NAGLE / "nagle-on.pcap"), str(NAGLE / "nodelay.pcap"), "--compare",
               "--wide")
    assert "tests/data/nagle/nagle-on.pcap" in out


def test_grid_splits_repeating_the_first_columns_and_keeps_units_together():
    headers = ["#", "a", "b", "c", "d"]
    rows = [[0, "x" * 10, "y" * 10, "z" * 10, "w" * 10]]
    text = grid(headers, rows, "rllll", width=30, keep=1, units=(2, 2))
    tables = text.split("\n\n")
    assert len(tables) == 2 and all(t.splitlines()[-1].startswith("0  ") for t in tables)
    assert "x" * 10 in tables[0] and "y" * 10 in tables[0] and "z" * 10 in tables[1]
    assert _widest(text) <= 30
    assert "\n\n" not in grid(headers, rows, "rllll", width=None)


def test_compare_headers_are_short_names():
    assert short_names(["tests/data/nagle/nagle-on.pcap", "tests/data/nagle/nodelay.pcap"]) == [
        "nagle-on.pcap", "nodelay.pcap"]
    assert short_names(["runs/a/x.pcap", "runs/b/x.pcap"]) == ["a/x.pcap", "b/x.pcap"]
    assert short_names(["x.pcap", "x.pcap"]) == ["x.pcap", "x.pcap"]


def test_compare_shows_udp_flows():
    """udp-vs-tcp's side by side: the UDP run's round trips, not '-' on every row."""
    caps = [analyze(EXAMPLES / "udp.pcap"), analyze(EXAMPLES / "tcp.pcap")]
    text = compare_table([(c, list(c.tcp), list(c.udp)) for c in caps], 80)
    rows = {line[:27].strip(): line[27:].split() for line in text.splitlines()[2:]}
    assert rows["UDP flows"] == ["1", "0"] and rows["TCP connections"] == ["0", "10"]
    assert rows["datagrams a→b/b→a"] == ["10/10", "-"]
    assert rows["round trips"] == ["10", "-"] and rows["round trip median (ms)"][0] == "0.021"
    assert rows["request latency median (ms)"] == ["-", "0.118"]


def test_words_a_student_can_read(capsys, monkeypatch):
    out = " ".join(_out(capsys, monkeypatch, 80, str(CORPUS / "zeek__get.trace")).split())  # unwrapped
    assert "1 TCP connection," in out and "0 UDP flows" in out
    assert "state: SF = established, closed with FIN both ways" in out
    assert "held: small segments that waited" in out and "resent: retransmitted payload bytes" in out
    detail = _out(capsys, monkeypatch, 80, str(EXAMPLES / "echo.pcap"), "--connection", "0")
    assert "True" not in detail and "payload_bytes" not in detail and "_" not in detail.split("\n", 1)[1]
    assert "SACK permitted in its SYN" in detail and " yes " in detail
    assert "MSS option of its SYN (B)" in detail and "full-sized payload (B)" in detail
    assert "1 request," in " ".join(detail.split()) and "1 requests" not in detail


def _all_stats(conn):
    for d in (conn.c2s, conn.s2c):
        yield d.ack_delay_ms
    yield conn.request_latency_ms
    yield conn.response_first_byte_ms


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "data" / "corpus").glob("*.pcap")), ids=lambda p: p.name)
def test_a_median_or_p95_never_rounds_past_the_min_or_max(path):
    try:
        tcp = analyze(path).tcp
    except CaptureFormatError:
        pytest.skip("not a capture sockinspect reads")
    for conn in tcp:
        for st in _all_stats(conn):
            if st.count:
                assert st.min <= st.median <= st.max and st.min <= st.p95 <= st.max, st
