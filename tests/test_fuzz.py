"""The structure-aware fuzzer (tests/fuzzing.py) for a bounded time, and every input
it or the issue ever found, with the same limits: 10 s, 500 MB, no exception but
CaptureFormatError. ``make fuzz`` runs the fuzzer for longer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzing import MAX_INPUT, check_input, make_case, peak_rss_mb, split_pcap, split_pcapng

HERE = Path(__file__).resolve().parent
REGRESSIONS = sorted(p for p in (HERE / "data" / "fuzz").iterdir() if p.name != "README.md")
SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))


def test_the_fuzzer_finds_nothing(tmp_path):
    """A fresh process, so that its peak memory is the fuzzed analyses' own."""
    seed = int(os.environ.get("FUZZ_SEED", "0"))
    got = subprocess.run(
        [sys.executable, str(HERE / "fuzzing.py"), "--seconds", str(SECONDS), "--seed", str(seed),
         "--save", str(tmp_path)], capture_output=True, text=True, timeout=SECONDS + 120,
    )
    assert got.returncode == 0, got.stdout[-4000:] + got.stderr[-2000:]
    assert " 0 failures" in got.stdout


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_every_input_ever_found_stays_fixed(path):
    check_input(path)
    assert peak_rss_mb() < 2000  # the pytest process as a whole; the fuzzer run above checks 500 MB


def test_cases_are_reproducible_and_small():
    seeds = [(HERE / "data" / "corpus" / "zeek__get.trace").read_bytes()]
    for i in range(30):
        case = make_case(7, i, seeds)
        assert case == make_case(7, i, seeds)
        assert len(case) <= MAX_INPUT


def test_mutations_reach_inside_the_structure():
    """The fuzzer parses what it mutates: most cases of a pcap or pcapng seed still parse as one."""
    seeds = [(HERE / "data" / "corpus" / name).read_bytes()
             for name in ("zeek__get.trace", "zeek__pcapng-multi-interface.pcapng")]
    parsed = 0
    for i in range(60):
        case = make_case(3, i, seeds)
        if (split_pcap(case) or split_pcapng(case)) is not None:
            parsed += 1
    assert parsed > 30


def test_a_failing_input_is_reported_and_saved(tmp_path, monkeypatch):
    """The harness itself: an analysis that raises is a failure, with the input kept."""
    import fuzzing

    def broken(_path):  # noqa: ANN001
        raise ValueError("boom")

    monkeypatch.setattr(fuzzing, "check_input", broken)
    lines: list[str] = []
    assert fuzzing.fuzz(0.5, 1, tmp_path, report=lines.append) > 0
    assert "ValueError: boom" in lines[0]
    assert list(tmp_path.glob("crash-seed1-case0.pcap"))
