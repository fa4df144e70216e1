"""`sockinspect check` and its rule language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sockinspect._cli import main
from sockinspect._rules import parse_rule
from sockinspect.errors import UsageError

NAGLE_ON = str(Path(__file__).parent / "data" / "nagle" / "nagle-on.pcap")
HTTP = str(Path(__file__).parent / "data" / "corpus" / "dpkt__http.pcap")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("text", "doc", "passed"),
    [
        ("state == SF", {"state": "SF"}, True),
        ("state != SF", {"state": "SF"}, False),
        ("state in [SF, S1]", {"state": "S1"}, True),
        ("state not in [SF, 'S1']", {"state": "S1"}, False),
        ("handshake.rtt_ms < 5", {"handshake": {"rtt_ms": 0.2}}, True),
        ("handshake.rtt_ms < 5", {"handshake": {"rtt_ms": None}}, False),  # not measured: fails
        ("handshake.rtt_ms == null", {"handshake": {"rtt_ms": None}}, True),
        ("c2s.nagle == \"off\"", {"c2s": {"nagle": "off"}}, True),
        ("client.inferred == false", {"client": {"inferred": False}}, True),
        ("c2s.stalls >= 1", {"c2s": {"stalls": 0}}, False),
    ],
)
def test_rule_language(text, doc, passed):
    assert parse_rule(text).check(doc)[0] is passed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a key"),
        ("state", "expected an operator"),
        ("state ==", "expected a value"),
        ("state ~ SF", "at position 7"),
        ("rtt_ms < fast", "needs a number"),
        ("state in SF", "needs a list"),
    ],
)
def test_bad_rules_say_where(text, message):
    with pytest.raises(UsageError, match=message):
        parse_rule(text)


def test_check_pass_and_fail_lines_and_exit_code(capsys):
    code, out, _ = run(capsys, "check", NAGLE_ON, "--expect", "state == SF", "--expect", "c2s.nagle == off",
                       "--expect", "c2s.stalls == 0")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("PASS  tcp #0 127.0.0.1:") and lines[0].endswith('state == SF  (seen "SF")')
    assert lines[1].startswith("FAIL") and '(seen "on")' in lines[1]
    assert lines[-1] == "sockinspect check: 1 checks passed, 2 failed"


def test_check_all_pass_exits_0(capsys):
    code, out, _ = run(capsys, "check", NAGLE_ON, "--expect", "handshake.complete == true",
                       "--expect", "c2s.nagle == on", "--expect", "client.ephemeral_linux == true")
    assert code == 0 and "0 failed" in out


def test_rules_file_with_selection(tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text('port = 53\nexpect = ["udp.b2a.packets >= 1", "udp.rtt_ms.max < 1000"]\n')
    code, out, _ = run(capsys, "check", HTTP, str(rules))
    assert code == 0 and out.count("PASS  udp #0") == 2


def test_rule_with_nothing_selected_fails(capsys):
    code, out, _ = run(capsys, "check", HTTP, "--port", "9", "--expect", "state == SF")
    assert code == 1 and "no TCP connection selected" in out


def test_json_output(capsys):
    code, out, _ = run(capsys, "check", NAGLE_ON, "--json", "--expect", "c2s.stalls == 0")
    doc = json.loads(out)
    assert code == 1 and doc["passed"] is False
    assert doc["results"][0]["seen"] == 24 and doc["results"][0]["rule"] == "c2s.stalls == 0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--expect", "handshake.rtt < 5"], "unknown key 'handshake.rtt' at position 1"),
        (["--expect", "state ~ SF"], "at position 7"),
        ([], "no rules"),
        (["missing.toml"], "no such rules file"),
    ],
)
def test_bad_rules_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, "check", NAGLE_ON, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and not out


def test_unreadable_capture_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "x.pcap"), "--expect", "state == SF")
    assert code == 2 and "no such file" in err


def test_bad_rules_file(tmp_path, capsys):
    bad = tmp_path / "r.toml"
    bad.write_text("expect = [1, 2]\n")
    assert run(capsys, "check", NAGLE_ON, str(bad))[0] == 2
    bad.write_text("rules = ['state == SF']\n")
    code, _, err = run(capsys, "check", NAGLE_ON, str(bad))
    assert code == 2 and "unknown keys ['rules']" in err


def test_rules_file_that_is_not_text_or_selects_nonsense(tmp_path, capsys):
    rules = tmp_path / "r.toml"
    rules.write_bytes(b"\xff\xfe")
    code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 2 and "not a UTF-8 TOML rules file" in err and err.count("\n") == 1 and not out
    code, _, err = run(capsys, "check", str(rules), NAGLE_ON)  # swapped: the capture read as rules
    assert code == 2 and "capture and rules swapped?" in err
    for line, message in (("port = 70000", "port out of range"), ('host = "nonsense"', "not an IPv4 or IPv6")):
        rules.write_text(f'{line}\nexpect = ["state == SF"]\n')
        code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
        assert code == 2 and message in err and not out


def test_rule_on_an_object_is_a_bad_rule(capsys):
    code, out, err = run(capsys, "check", NAGLE_ON, "--expect", "c2s == 1")
    assert code == 2 and not out and "'c2s' is an object, not a value; keys there:" in err
