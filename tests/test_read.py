"""Reading capture files: formats, timestamps, and bad input that must never crash."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
from helpers import T0, full_connection, write_pcap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockinspect import CaptureFormatError, analyze
from sockinspect._cli import main

CORPUS = Path(__file__).parent / "data" / "corpus"


def _records(n: int = 8) -> list[tuple[int, bytes]]:
    return [(T0 + i * 1_234_567, f) for i, f in enumerate(full_connection()[:n])]


@pytest.mark.parametrize("nano", [True, False])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcap_variants_give_the_same_answer(tmp_path, nano, endian):
    cap = analyze(write_pcap(tmp_path / "x.pcap", _records(), nano=nano, endian=endian))
    assert cap.format == ("pcap-ns" if nano else "pcap")
    assert cap.packets == 8
    assert cap.first_ts_ns == T0
    expected_last = T0 + 7 * 1_234_567
    assert cap.last_ts_ns == (expected_last if nano else expected_last // 1000 * 1000)
    assert cap.tcp.only().state == "SF"


def test_nanosecond_timestamps_are_exact():
    cap = analyze(CORPUS / "tcpdump__tcp-handshake-nano.pcap")
    conn = cap.tcp.only()
    assert conn.handshake.syn_ts_ns % 1000 != 0  # real nanosecond digits survive


def test_gzip_is_detected_by_content(tmp_path):
    plain = write_pcap(tmp_path / "x.pcap", _records())
    packed = tmp_path / "capture.bin"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    cap = analyze(packed)
    assert cap.format == "pcap-ns+gzip" and cap.tcp.only().state == "SF"


def test_damaged_gzip_reads_what_it_can(tmp_path):
    data = gzip.compress(write_pcap(tmp_path / "x.pcap", _records()).read_bytes())
    bad = tmp_path / "bad.pcap.gz"
    bad.write_bytes(data[: len(data) // 2] + b"\x00" * 20)
    cap = analyze(bad)
    assert 0 < cap.packets < 8
    assert any("gzip stream is damaged" in w for w in cap.warnings)


def test_pcapng_multi_interface_resolution():
    cap = analyze(CORPUS / "zeek__pcapng-multi-interface.pcapng")
    assert cap.format == "pcapng" and cap.packets == 6


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _pcapng(packets_ts: int = 1_700_000_000_000_000, idb_options: bytes = b"") -> bytes:
    """A little-endian pcapng file: section, one Ethernet interface, full_connection() in EPBs."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0) + idb_options)
    epbs = b"".join(
        _block(6, struct.pack("<IIIII", 0, (packets_ts + i) >> 32, (packets_ts + i) & 0xFFFFFFFF, len(f), len(f))
               + f + b"\0" * (-len(f) % 4))
        for i, f in enumerate(full_connection())
    )
    return shb + idb + epbs


@pytest.mark.parametrize("btype, body", [(6, b""), (2, b"\0" * 8), (3, b""), (1, b"")],
                         ids=["enhanced", "obsolete", "simple", "interface"])
def test_pcapng_block_shorter_than_its_fields_is_skipped_with_a_warning(tmp_path, btype, body):
    path = tmp_path / "short.pcapng"
    path.write_bytes(_pcapng() + _block(btype, body))
    cap = analyze(path)
    assert cap.packets == 8 and cap.tcp.only().state == "SF"
    assert cap.warnings == (f"block of type {btype} at byte offset 772 is too short ({12 + len(body)} bytes); skipped",)


def test_timestamps_beyond_the_calendar_are_shown_as_numbers(tmp_path, capsys):
    seconds = struct.pack("<HHB3x", 9, 1, 0) + struct.pack("<HH", 0, 0)  # if_tsresol: whole seconds
    path = tmp_path / "far.pcapng"
    path.write_bytes(_pcapng(packets_ts=1 << 40, idb_options=seconds))
    assert main(["analyze", str(path)]) == 0
    assert "t=1099511627776.000000000 s" in capsys.readouterr().out


def test_truncated_file_keeps_the_packets_before(tmp_path):
    path = write_pcap(tmp_path / "x.pcap", _records())
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    cap = analyze(path)
    assert cap.packets == 7
    assert len(cap.warnings) == 1 and "cut short" in cap.warnings[0] and "byte offset" in cap.warnings[0]


def test_corrupt_record_length_stops_with_a_warning(tmp_path):
    path = write_pcap(tmp_path / "x.pcap", _records())
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(_records()[0][1])
    struct.pack_into("<I", data, second + 8, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    cap = analyze(path)
    assert cap.packets == 1
    assert f"byte offset {second}" in cap.warnings[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello, this is a text file\n", "not a pcap or pcapng file (it starts with the text"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header cut short"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
)
def test_unreadable_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "f.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError, match="^" + str(path).replace(".", r"\.")) as err:
        analyze(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureFormatError, match="no such file"):
        analyze(tmp_path / "missing.pcap")
    with pytest.raises(CaptureFormatError, match="is a directory"):
        analyze(tmp_path)


def test_cli_exits_2_with_one_line_for_unreadable_input(tmp_path, capsys):
    path = tmp_path / "text.pcap"
    path.write_text("not a capture")
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sockinspect: ")


SEEDS = [CORPUS / n for n in ("zeek__get.trace", "zeek__pcapng-multi-interface.pcapng",
                              "tcpdump__mptcp-v1.pcap", "zeek__vlan-pcp-dei.pcapng")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(min_value=0, max_value=10_000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)), max_size=8),
)
def test_fuzzed_files_never_crash(tmp_path, seed, cut, flips):
    data = bytearray(seed.read_bytes())
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = tmp_path / "fuzz.bin"
    path.write_bytes(bytes(data[: max(len(data) - cut, 0)]))
    try:
        cap = analyze(path)
    except CaptureFormatError as exc:
        assert "\n" not in str(exc)
        return
    assert cap.packets >= 0
    for conn in cap.tcp:
        assert conn.c2s.packets + conn.s2c.packets > 0


def test_corpus_copy_matches_shared_when_present():
    shared = Path(__file__).parents[2] / "shared" / "pcaps" / "corpus"
    if not shared.is_dir():
        pytest.skip("../shared/pcaps is not here; the tests use the copy in tests/data")
    for src in shared.iterdir():
        assert (CORPUS / src.name).read_bytes() == src.read_bytes(), src.name
    assert shutil.which("python3")


def test_progress_ends_with_the_whole_file_read(tmp_path):
    """The last progress call says reading is done, so the CLI can say what comes next."""
    path = write_pcap(tmp_path / "x.pcap", _records())
    calls: list[tuple[int, int]] = []
    analyze(path, progress=lambda done, total: calls.append((done, total)))
    size = path.stat().st_size
    assert calls and calls[-1] == (size, size)
