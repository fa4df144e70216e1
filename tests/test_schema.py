"""sockinspect schema: the JSON Schema of every document, kept in step with
docs/json.md and with what the commands print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from sockinspect._cli import main
from sockinspect._documents import DOCUMENTS
from sockinspect._schema import build, documented_keys, for_document, load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "captures" / "examples"
DOCS = (ROOT / "docs" / "json.md").read_text()
FUZZ = sorted((ROOT / "tests" / "data" / "fuzz").glob("*.gz"))


def printed(argv: list[str], capsys) -> list[dict]:
    main(argv)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def validate(doc: dict, name: str) -> None:
    jsonschema.validate(doc, for_document(load(), name), cls=jsonschema.Draft202012Validator)


def test_the_packaged_schema_is_up_to_date():
    got = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_schema.py"), "--check"],
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(load())
    for name in DOCUMENTS:
        jsonschema.Draft202012Validator.check_schema(for_document(load(), name))


@pytest.mark.parametrize("path", [*sorted(EXAMPLES.glob("*.pcap")), *FUZZ], ids=lambda p: p.name)
def test_analyze_prints_capture_documents(path, capsys):
    for doc in printed(["analyze", "--json", str(path)], capsys):
        validate(doc, "capture")


def test_compare_check_and_cleanup_print_their_documents(capsys, tmp_path):
    echo, nagle = str(EXAMPLES / "echo.pcap"), str(EXAMPLES / "nagle-on.pcap")
    validate(printed(["analyze", "--compare", "--json", echo, nagle], capsys)[0], "compare")
    validate(printed(["check", "--json", nagle, "--expect", "state == SF", "--expect", "udp.rtt_ms.max < 1"],
                     capsys)[0], "check")
    validate(printed(["cleanup", "--dry-run", "--json", str(tmp_path)], capsys)[0], "cleanup")


def test_a_document_with_an_undocumented_key_does_not_validate(capsys):
    doc = printed(["analyze", "--json", str(EXAMPLES / "echo.pcap")], capsys)[0]
    doc["tcp"][0]["c2s"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        validate(doc, "capture")


def test_every_key_has_its_meaning():
    def described(node: dict, where: str) -> None:
        for key, child in node.get("properties", {}).items():
            assert child.get("description") or "$ref" in child, f"{where}.{key} has no description"
            described(child, f"{where}.{key}")
        if isinstance(node.get("items"), dict):
            described(node["items"], f"{where}[]")

    for name in DOCUMENTS:
        described(load()["$defs"][name], name)


def test_build_refuses_docs_and_output_that_disagree():
    samples = {"capture": [{"schema_version": 2, "file": "x", "extra": 1}], "compare": [], "check": [], "run": [],
               "cleanup": []}
    docs = ("## Top level\n\n| key | meaning |\n| --- | --- |\n"
            "| `schema_version` | v |\n| `file` | f |\n| `gone` | g |\n")
    with pytest.raises(ValueError) as err:
        build(docs, samples)
    assert "capture: extra: seen but not documented" in str(err.value)
    assert "capture: gone: documented but never seen" in str(err.value)


def test_directions_share_their_documented_keys():
    keys = documented_keys(DOCS)["capture"]
    assert ("tcp", "[]", "c2s", "stall_list", "[]", "gap_ms") in keys
    assert not any("s2c" in path for path in keys)
    assert load()["$defs"]["capture"]["properties"]["tcp"]["items"]["properties"]["s2c"] == \
        load()["$defs"]["capture"]["properties"]["tcp"]["items"]["properties"]["c2s"]


def test_schema_command(capsys):
    main(["schema"])
    assert json.loads(capsys.readouterr().out) == load()
    main(["schema", "capture"])
    capture = json.loads(capsys.readouterr().out)
    assert capture["title"] == "sockinspect capture document" and "tcp" in capture["properties"]


def test_schema_of_an_unknown_document_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["schema", "bogus"])
    assert exit_.value.code == 2 and len(capsys.readouterr().err.splitlines()) == 1


def test_run_and_capture_prints_run_documents(tmp_path, capsys):
    from sockinspect._capture import can_capture

    if (why := can_capture()) is not None:
        pytest.skip(f"live capture impossible here: {why}")
    docs = printed(["run-and-capture", "echo", "-o", str(tmp_path / "echo.pcap"), "--json"], capsys)
    assert docs and docs[0]["scenario"] == "echo"
    for doc in docs:
        validate(doc, "run")
