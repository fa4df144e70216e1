"""`analyze --csv`: every column is a documented key of the JSON document,
flattened with "_", and every value is the JSON document's."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sockinspect._cli import main
from sockinspect._report import CSV_COLUMNS, CSV_LEFT_OUT, _cell, flatten
from sockinspect._schema import SAME_AS, documented_keys

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "data" / "corpus"
EXAMPLES = sorted((ROOT / "captures" / "examples").glob("*.pcap"))
CAPTURES = [CORPUS / "dpkt__http.pcap", CORPUS / "zeek__get.trace", *EXAMPLES]
DOCS = (ROOT / "docs" / "json.md").read_text()


def _documented_columns() -> dict[str, set[str]]:
    """tcp / udp -> the documented keys of one connection / flow, flattened (s2c spelt like c2s)."""
    keys = documented_keys(DOCS)["capture"]
    out: dict[str, set[str]] = {"tcp": set(), "udp": set()}
    for path in keys:
        if path[:2] in (("tcp", "[]"), ("udp", "[]")) and len(path) > 2:
            out[path[0]].add("_".join(path[2:]))
    return out


def _same(column: str) -> str:
    for other, documented in SAME_AS.items():
        column = column.replace(f"{other}_", f"{documented}_") if column.startswith(f"{other}_") else column
    return column


def test_every_column_is_a_documented_json_key():
    documented = _documented_columns()
    extra = [c for c in CSV_COLUMNS if c not in ("file", "proto")
             and _same(c) not in documented["tcp"] | documented["udp"]]
    assert not extra, f"CSV columns that are no documented JSON key: {extra}"
    assert "`proto`" in DOCS.split("## CSV")[1], "the proto column is documented in docs/json.md"


def test_every_documented_scalar_key_is_a_column():
    """A key added to the JSON document but not to the CSV fails here (or is left out on purpose)."""
    documented = _documented_columns()
    columns = {_same(c) for c in CSV_COLUMNS}
    missing = sorted(k for keys in documented.values() for k in keys
                     if k not in columns and not any(part in k for part in CSV_LEFT_OUT)
                     and not any(other.startswith(k + "_") for other in columns))
    assert not missing, f"documented keys missing from the CSV: {missing}"
    assert len(columns) > 100  # the tables were read


def _run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_values_are_the_json_documents(capsys, path):
    doc = json.loads(_run(capsys, "analyze", str(path), "--json"))
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "analyze", str(path), "--csv"))))
    items = [("tcp", c) for c in doc["tcp"]] + [("udp", f) for f in doc["udp"]]
    assert len(rows) == len(items)
    for row, (proto, item) in zip(rows, items, strict=True):
        assert list(row) == CSV_COLUMNS
        flat = flatten(item)
        assert row["file"] == doc["file"] and row["proto"] == proto
        for column, value in row.items():
            if column in ("file", "proto"):
                continue
            assert value == str(_cell(flat.get(column))), (proto, item["index"], column)
        # every key of the document is there (but the lists and buckets CSV leaves out)
        assert set(flat) <= set(row), set(flat) - set(row)


def test_the_metrics_a_user_asked_for_are_columns():
    for key in ("c2s_nagle", "s2c_delayed_acks", "c2s_stalls", "c2s_stall_ms_total", "c2s_ack_delay_ms_median",
                "request_latency_ms_median", "c2s_unique_bytes", "c2s_retransmitted_bytes", "c2s_goodput_bps",
                "c2s_zero_windows", "c2s_mss_option", "c2s_sizes_mss", "handshake_rtt_ms", "rtt_ms_median"):
        assert key in CSV_COLUMNS


def test_compare_csv_has_one_header_and_every_file(capsys):
    paths = [str(CAPTURES[2 + i]) for i in range(2)]
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "analyze", *paths, "--compare", "--csv"))))
    assert {r["file"] for r in rows} == set(paths) and all(r["proto"] in ("tcp", "udp") for r in rows)


def test_nagle_stalls_in_csv(capsys):
    out = _run(capsys, "analyze", str(ROOT / "tests" / "data" / "nagle" / "nagle-on.pcap"), "--csv")
    row = next(csv.DictReader(io.StringIO(out)))
    assert (row["c2s_nagle"], row["c2s_delayed_acks"], row["c2s_stalls"]) == ("on", "24", "24")
    assert float(row["c2s_stall_ms_total"]) > 1000 and row["s2c_nagle"] == "unknown"
