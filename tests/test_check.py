"""`sockinspect check` and its rule language."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from sockinspect import analyze
from sockinspect._check import parse_rules
from sockinspect._cli import main
from sockinspect._documents import tcp_to_dict
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
    assert lines[-1] == "sockinspect check: 1 check passed, 2 failed"


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


def test_rules_file_with_a_byte_order_mark(tmp_path, capsys):
    """An editor's UTF-8 BOM was read as part of the first key: "Invalid statement"."""
    rules = tmp_path / "r.toml"
    rules.write_bytes(b"\xef\xbb\xbfexpect = [\"state == SF\"]\n")
    code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code in (0, 1) and "state == SF" in out and not err


def test_many_unknown_keys_are_one_short_line(tmp_path, capsys):
    """50,000 unknown keys (or one of 100,000 characters) made one error line of up to 1 MB."""
    rules = tmp_path / "r.toml"
    rules.write_text("".join(f"k{i} = 1\n" for i in range(50_000)))
    code, _, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 2 and err.count("\n") == 1 and len(err) < 300
    assert "unknown keys ['k0', 'k1', 'k10', 'k100', 'k1000'] and 49995 more; allowed:" in err
    rules.write_text(f"{'k' * 100_000} = 1\n")
    code, _, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 2 and f"unknown keys ['{'k' * 40}'...]; allowed:" in err and len(err) < 300


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


# -- hostile rules: bounded nesting, size and time; one line and exit 2 -----------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("state in " + "[" * 30_000 + "]" * 30_000, "brackets nested deeper than 32 levels (at position 42)"),
        ("state == " + '{"a":' * 20_000, "brackets nested deeper than 32 levels"),
        ("vlan == " + "[" * 33 + "]" * 33, "nested deeper than 32"),
    ],
)
def test_deeply_nested_rule_is_a_bad_rule(capsys, rule, message):
    code, out, err = run(capsys, "check", NAGLE_ON, "--expect", rule)
    assert code == 2 and not out and message in err and err.count("\n") == 1
    assert len(err) < 300  # the rule is quoted by its start, not whole


def test_nesting_up_to_the_bound_is_read():
    deepest = "[" * 32 + "]" * 32
    assert parse_rule(f"vlan == {deepest}").value == json.loads(deepest)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expect = " + "[" * 50_000 + "]" * 50_000, "line 1: brackets nested deeper than 32 levels"),
        ("expect = " + "{a=" * 50_000 + "1" + "}" * 50_000, "line 1: an inline table"),
        ("a" + ".a" * 50_000 + " = 1\n", "line 1: a dotted key"),  # tomllib: 67 s, quadratic
        ('expect = ["state == SF"]\n[' + "a." * 50_000 + "a]\n", "line 2: a table header"),
        ("x = 1\n[[x]]\n" * 10, "line 2: a table header"),
        ("expect = [" + '"state == SF", ' * 100_000 + "]", "larger than 1 MiB"),
    ],
)
def test_hostile_rules_file_exits_2_at_once(tmp_path, capsys, text, message):
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    start = time.perf_counter()
    code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 2 and not out and message in err and err.count("\n") == 1
    assert time.perf_counter() - start < 5


def test_brackets_dots_and_braces_in_strings_and_comments_are_fine(tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text("# a comment with [[[[ {{{ a.b.c.d and ''' \"\"\"\n"
                     "host = \"127.0.0.1\"  # [[ {\n"
                     "expect = [\n"
                     "  \"state in [SF, S1]\",  # { a.b.c\n"
                     "  'c2s.nagle == \"on\"',\n"
                     "  \"\"\"handshake.complete == true\"\"\",\n"
                     "  '''c2s.stalls >= 1''',\n"
                     "]\n" + "# " + "[" * 100 + "\n")
    code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert (code, err) == (0, "") and "4 checks passed, 0 failed" in out


def test_twenty_thousand_rules_take_linear_time(tmp_path, capsys):
    """Before: 12 to 21 s here, quadratic (each rule searched all results to see if it was checked)."""
    rules = tmp_path / "rules.toml"
    kinds = ["state == SF", "c2s.stalls >= 0", "handshake.rtt_ms < 5", "state in [SF, S1]"]
    rules.write_text("expect = [\n" + "".join(f'  "{kinds[i % 4]}",\n' for i in range(20_000)) + "]\n")
    start = time.perf_counter()
    code, out, _ = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 0 and out.endswith("sockinspect check: 20000 checks passed, 0 failed\n")
    assert time.perf_counter() - start < 8


def test_in_with_many_choices_and_lists(capsys):
    many = ", ".join(f"S{i}" for i in range(5000))
    assert parse_rule(f"state in [{many}, SF]").check({"state": "SF"})[0]
    assert parse_rule("vlan in [[], [10]]").check({"vlan": [10]})[0]
    assert not parse_rule("vlan in [SF, S1]").check({"vlan": [10]})[0]


# -- every documented key can be checked ------------------------------------------------------------------

DOCS = Path(__file__).parent.parent / "docs" / "json.md"


def documented_keys():
    """Each key of the tcp[] and udp[] tables of docs/json.md, as a rule names it."""
    keys = []
    for line in DOCS.read_text().splitlines():
        cell = line.split("|")[1] if line.startswith("| `") else ""
        for key in re.findall(r"`((?:tcp|udp)\[\]\.[^`]+)`", cell):
            scope, rest = key.split("[].", 1)
            keys.append(rest if scope == "tcp" else f"udp.{rest}")
    return keys


def test_the_docs_name_keys_under_lists_and_udp():
    keys = documented_keys()
    assert "c2s.stall_list[].gap_ms" in keys and "udp.rtt_ms.max" in keys and len(keys) > 80


@pytest.mark.parametrize("key", documented_keys())
def test_every_documented_key_can_be_checked(key):
    """What docs/json.md lists is a rule's key: a value (== null), or an object (named as one)."""
    try:
        rules = parse_rules([f"{key} == null"])
    except UsageError as exc:
        assert "is an object, not a value" in str(exc)
        return
    assert rules[0].scope == ("udp" if key.startswith("udp.") else "tcp")


@pytest.mark.parametrize(
    ("text", "seen", "passed"),
    [
        ("c2s.stall_list[0].ack_delay_ms > 40", 41.939052, True),
        ("c2s.stall_list[-1].next_packet == 127", 127, True),
        ("c2s.stall_list[5000].gap_ms == null", None, True),  # past the end: not seen
        ("vlan == []", [], True),
        ("vlan[0] == null", None, True),
        ("c2s.sizes.histogram[\"1-63\"] == 25", 25, True),
        ("s2c.sizes.histogram['>65483'] == 0", 0, True),
        ("s2c.sizes.histogram['>1448'] == null", None, True),  # no such bucket with this MSS
    ],
)
def test_list_elements_and_bucket_labels(text, seen, passed):
    doc = tcp_to_dict(analyze(NAGLE_ON).tcp.only())
    got_passed, got_seen = parse_rules([text])[0].check(doc)
    assert got_passed is passed
    assert got_seen == (pytest.approx(seen, abs=0.01) if isinstance(seen, float) else seen)


def test_every_element_with_empty_brackets(capsys):
    code, out, _ = run(capsys, "check", NAGLE_ON, "--expect", "c2s.stall_list[].ack_delay_ms >= 35",
                       "--expect", "c2s.stall_list[].ack_delay_ms < 42", "--expect", "s2c.stall_list[].gap_ms < 1")
    lines = out.splitlines()
    assert code == 1 and lines[0].startswith("PASS") and lines[1].startswith("FAIL")
    assert lines[2].startswith("PASS") and lines[2].endswith("(seen [])")  # no stalls: every one of none passes


def test_udp_replies_and_their_round_trip_times_are_checkable(capsys):
    code, out, _ = run(capsys, "check", HTTP, "--port", "53", "--expect", "udp.rtt_ms.count == 1",
                       "--expect", "udp.b2a.packets >= 1", "--expect", "udp.rtt_ms.max < 1000",
                       "--expect", "udp.vlan == []", "--expect", "udp.rtt_ms.median > 1000")
    assert code == 1 and out.count("PASS  udp #0") == 4 and out.count("FAIL  udp #0") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("state[0] == S", "'state' is not a list"),
        ("c2s.stall_list[0].late == 1", "unknown key 'c2s.stall_list[0].late' at position 1; keys there: ack_delay_ms"),
        ("c2s.stall_list[0] == 1", "'c2s.stall_list[0]' is an object, not a value"),
        ("c2s.stall_list[][] == 1", "one [] per key"),
        ("c2s.sizes.histogram['big'] == 1", "bucket labels such as 1-63"),
        (f"vlan[{'9' * 5000}] == 1", "a list index of 5000 digits (at most 9) (at position 6)"),
        (f"c2s.stall_list[-{'1' * 4301}].gap_ms == 1", "a list index of 4301 digits (at most 9)"),
        ("vlan[1234567890] == 1", "a list index of 10 digits"),
    ],
)
def test_bad_list_keys_say_what_is_wrong(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_rules([text])


def test_huge_list_index_exits_2_with_one_line(tmp_path, capsys):
    """An index of more than 4300 digits ended in a ValueError traceback (int() refuses it)."""
    code, out, err = run(capsys, "check", NAGLE_ON, "--expect", f"vlan[{'9' * 5000}] == 1")
    assert code == 2 and "a list index of 5000 digits" in err and err.count("\n") == 1 and len(err) < 300
    rules = tmp_path / "r.toml"
    rules.write_text(f'expect = ["vlan[{"1" * 4301}] == 1"]\n')
    code, out, err = run(capsys, "check", NAGLE_ON, str(rules))
    assert code == 2 and "a list index of 4301 digits" in err and err.count("\n") == 1
    assert parse_rule("vlan[-999999999] == 1").path == ("vlan", -999999999)


def test_help_shows_the_key_syntax(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "c2s.stall_list[0].ack_delay_ms" in out and "c2s.stall_list[].gap_ms < 250" in out
    assert 'histogram["1-63"]' in out and "at most 1 MiB" in out and "sockinspect schema capture" in out
    assert max(map(len, out.splitlines())) <= 80
