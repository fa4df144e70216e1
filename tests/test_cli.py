"""The command line, run in-process: outputs, filters and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from helpers import T0, full_connection, write_pcap

from sockinspect._cli import main

CORPUS = Path(__file__).parent / "data" / "corpus"
GET = str(CORPUS / "zeek__get.trace")
HTTP = str(CORPUS / "dpkt__http.pcap")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_units_and_roles(capsys):
    code, out, err = run(capsys, "analyze", GET, "--wide")
    assert code == 0 and not err
    assert "rtt (ms)" in out and "c2s bytes" in out
    assert "141.142.228.5:59856*" in out and "192.150.187.43:80" in out and " SF " in out


def test_json_has_the_documented_keys(capsys):
    code, out, _ = run(capsys, "analyze", GET, HTTP, "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(docs) == 2
    doc = docs[0]
    assert doc["schema_version"] == 2 and doc["packets"] == 14
    assert doc["warnings"] == [] and doc["defects"] == {}
    conn = doc["tcp"][0]
    assert conn["client"] == {"addr": "141.142.228.5", "port": 59856, "inferred": False,
                              "ephemeral_linux": True, "ephemeral_iana": True}
    assert conn["server"] == {"addr": "192.150.187.43", "port": 80}
    assert conn["state"] == "SF"
    assert conn["handshake"]["rtt_ms"] == 70.034
    assert conn["handshake"]["syn_synack_ms"] == 69.74 and conn["handshake"]["synack_ack_ms"] == 0.294
    assert (conn["c2s"]["packets"], conn["c2s"]["payload_bytes"], conn["c2s"]["segments"]) == (7, 136, 1)
    assert (conn["s2c"]["packets"], conn["s2c"]["payload_bytes"], conn["s2c"]["segments"]) == (7, 5007, 4)
    flow = docs[1]["udp"][0]
    assert set(flow) >= {"a", "b", "a2b", "b2a"}
    assert flow["a2b"] == {"packets": 1, "bytes": 47, "frame_bytes": 89}
    assert docs[1]["tcp"][1]["client"]["inferred"] is True
    assert docs[1]["tcp"][1]["handshake"]["rtt_ms"] is None


def test_docs_mention_every_json_key(capsys):
    _, out, _ = run(capsys, "analyze", HTTP, "--json")
    doc = json.loads(out)
    text = (Path(__file__).parents[1] / "docs" / "json.md").read_text()

    def keys(obj, prefix=""):  # noqa: C901
        if isinstance(obj, dict):
            for k, v in obj.items():
                if prefix.endswith(("defects.", "histogram.")):  # keys are data (kinds, buckets)
                    continue
                yield prefix + k
                yield from keys(v, prefix + k + ".")
        elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
            yield from keys(obj[0], prefix[:-1] + "[].")

    # s2c and b2a have the same keys as c2s and a2b, documented once.
    same = {".s2c": ".c2s", ".b2a": ".a2b"}
    normal = {k.replace(".s2c", same[".s2c"]).replace(".b2a", same[".b2a"]) for k in keys(doc)}
    missing = sorted(k for k in normal if f"`{k}`" not in text)
    assert not missing, f"undocumented JSON keys: {missing}"


def test_csv(capsys):
    code, out, _ = run(capsys, "analyze", HTTP, GET, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4  # header printed once for both files
    assert rows[0]["proto"] == "tcp" and rows[0]["client_port"] == "3372"
    assert rows[2]["proto"] == "udp" and rows[2]["b_port"] == "53"
    assert rows[2]["client_port"] == "" and rows[0]["a_port"] == ""  # UDP: a/b, TCP: client/server


def test_filters(capsys):
    _, out, _ = run(capsys, "analyze", HTTP, "--json", "--port", "53")
    doc = json.loads(out)
    assert doc["tcp"] == [] and len(doc["udp"]) == 1
    _, out, _ = run(capsys, "analyze", HTTP, "--json", "--host", "216.239.59.99")
    doc = json.loads(out)
    assert [c["server"]["addr"] for c in doc["tcp"]] == ["216.239.59.99"] and doc["udp"] == []


def test_connection_detail(capsys):
    code, out, _ = run(capsys, "analyze", GET, "--connection", "0")
    assert code == 0
    assert "SF: established, closed with FIN both ways" in out
    assert "handshake rtt (ms)" in out and "70.034" in out
    code, _, err = run(capsys, "analyze", GET, "--connection", "5")
    assert code == 2 and "no TCP connection #5" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze"],
        ["analyze", GET, "--port", "70000"],
        ["analyze", GET, "--connection", "-1"],
        ["analyze", GET, "--json", "--csv"],
        ["analyze", GET, "--host", "notanip"],
        ["run-and-capture", "handshake", "--connections", "-5"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_unreadable_file_among_good_ones(capsys, tmp_path):
    code, out, err = run(capsys, "analyze", str(tmp_path / "missing.pcap"), GET)
    assert code == 2 and "no such file" in err and "192.150.187.43:80" in out


def test_one_connection_as_json_or_csv_and_within_the_filters(capsys):
    code, out, _ = run(capsys, "analyze", HTTP, "--connection", "0", "--json")
    assert code == 0 and [c["index"] for c in json.loads(out)["tcp"]] == [0] and json.loads(out)["udp"] == []
    code, out, _ = run(capsys, "analyze", HTTP, "--connection", "0", "--csv")
    assert code == 0 and len(list(csv.reader(io.StringIO(out)))) == 2  # header + one row
    code, out, err = run(capsys, "analyze", GET, "--port", "1", "--connection", "0")
    assert code == 2 and not out and "not among those --port/--host select" in err


def test_warnings_reach_stderr_in_every_format(capsys, tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(HTTP).read_bytes()[:3000])
    for extra in (["--csv"], ["--json"], ["--connection", "0"]):
        code, _, err = run(capsys, "analyze", str(cut), *extra)
        assert code == 0 and err.startswith(f"warning: {cut}: file cut short"), extra
    code, out, err = run(capsys, "analyze", str(cut))
    assert code == 0 and err.startswith(f"warning: {cut}: file cut short") and "warning:" not in out


def test_host_filter_takes_any_spelling_of_an_address(capsys, tmp_path):
    path = tmp_path / "v6.pcap"
    write_pcap(path, [(T0 + i, f) for i, f in enumerate(full_connection(client="2001:db8::3", server="2001:db8::2"))])
    code, out, _ = run(capsys, "analyze", str(path), "--host", "2001:DB8:0:0::3", "--json")
    assert code == 0 and len(json.loads(out)["tcp"]) == 1


def test_unwritable_output_is_one_line_exit_2(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "capture", "-o", str(tmp_path / "file" / "c.pcap"), "--port", "1", "--", "true")
    assert code == 2 and err.count("\n") == 1 and err.startswith("sockinspect: ")


def test_capture_of_a_command_that_does_not_exist(capsys, tmp_path):
    code, out, err = run(capsys, "capture", "-o", str(tmp_path / "c.pcap"), "--port", "1", "--", "/no/such/cmd")
    assert code == 2 and not out and "cannot run '/no/such/cmd': no such command" in err
    assert not (tmp_path / "c.pcap").exists()


@pytest.mark.parametrize("argv", [["tests/data/nagle/nagle-on.pcap", "tests/data/nagle/nodelay.pcap", "--compare"],
                                  ["captures/examples/echo.pcap"]])
def test_readme_examples_are_what_the_tool_prints(capsys, monkeypatch, argv):
    root = Path(__file__).parent.parent
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "analyze", *argv)
    assert code == 0 and f"$ sockinspect analyze {' '.join(argv)}\n{out}```" in (root / "README.md").read_text()


@pytest.mark.parametrize(("scenario", "option"), [("echo", "--requests=5"), ("nagle", "--size=1M"),
                                                  ("file", "--connections=3"), ("chat", "--messages=2")])
def test_run_and_capture_refuses_an_option_of_another_scenario(capsys, scenario, option):
    assert main(["run-and-capture", scenario, option]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"{option.split('=')[0]} is an option of the" in err[0] and f"not of {scenario}" in err[0]


def test_times_in_ms_print_with_at_most_six_decimals(capsys):
    """Times in ms go out unrounded: nanoseconds / 1e6 (or a bucket's value rounded to
    its digits) already print with at most 6 decimals (see _documents). Checked over
    every capture of the corpus, and for the ns counts themselves, huge and negative."""
    import random

    rng = random.Random(5)
    for ns in [0, 1, -1, 999_999, 1 << 53, (1 << 62) - 1, *(rng.randrange(-1 << 62, 1 << 62) for _ in range(10_000))]:
        assert round(ns / 1e6, 6) == ns / 1e6, ns

    def floats(doc, key=""):  # noqa: ANN001, ANN202 - (key, value) of every float in a JSON document
        if isinstance(doc, dict):
            for k, v in doc.items():
                yield from floats(v, k)
        elif isinstance(doc, list):
            for v in doc:
                yield from floats(v, key)
        elif isinstance(doc, float):
            yield key, doc

    checked = 0
    for path in sorted(CORPUS.iterdir()):
        code, out, _err = run(capsys, "analyze", "--json", str(path))
        if code:
            continue
        for key, value in floats(json.loads(out)):
            if not (key.endswith("_ts") or key.endswith("_bps")):  # seconds; bits/s, to 0.1
                assert round(value, 6) == value, (path.name, key, value)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("command", ["analyze", "ladder", "plot", "report", "check", "capture", "run-and-capture",
                                     "cleanup", "schema"])
def test_every_command_has_its_help(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: sockinspect {command} ")


def test_the_whole_parser_builds_with_every_command():
    from sockinspect._cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    assert all(parser._actions[1:] for parser in sub.choices.values())  # each has more than --help


def test_an_analysis_loads_no_other_commands_modules():
    """A small capture is answered in about 0.1 s: most of that is imports, so analyze
    must not load the HTML, plot, ladder, lab, rules or namespace machinery."""
    import subprocess
    import sys

    code = ("import sys; from sockinspect._cli import main; main(['analyze', '--json', sys.argv[1]]); "
            "main(['analyze', sys.argv[1]]); print(' '.join(sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, GET], capture_output=True, text=True, check=True)
    loaded = set(done.stderr.split())
    assert "sockinspect.analysis.engine" in loaded
    unwanted = {"sockinspect._html", "sockinspect._plot", "sockinspect._ladder", "sockinspect._lab",
                "sockinspect._check", "sockinspect._run", "sockinspect._scenarios", "sockinspect._capture",
                "sockinspect._packets", "tabulate", "matplotlib", "numba", "numpy", "multiprocessing",
                "hashlib", "importlib.metadata"}
    assert not loaded & unwanted
