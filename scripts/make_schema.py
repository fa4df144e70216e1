"""Rebuild sockinspect/schema.json from docs/json.md and the documents of real captures.

    .venv/bin/python scripts/make_schema.py          # write it
    .venv/bin/python scripts/make_schema.py --check  # exit 1 if it is out of date

The samples: every capture of tests/data/corpus and captures/examples (capture
documents, one run document per example), two examples side by side (compare),
rules that pass, fail and match nothing (check), clean-up items of every
kind (cleanup), and a graded and an unrunnable submission (conform). See sockinspect/_schema.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sockinspect import analyze  # noqa: E402
from sockinspect._check import parse_rules, run_checks  # noqa: E402
from sockinspect._documents import (  # noqa: E402
    capture_document,
    check_document,
    cleanup_document,
    compare_document,
    conform_batch_document,
    conform_document,
    conform_error_document,
    run_document,
)
from sockinspect._run import Leftover, Run  # noqa: E402
from sockinspect._schema import build  # noqa: E402
from sockinspect.conform import Grade  # noqa: E402
from sockinspect.conform.checks import Check  # noqa: E402

SCHEMA = ROOT / "sockinspect" / "schema.json"
CHECK_RULES = ["state == SF", "handshake.rtt_ms < 0", "c2s.stall_list[0].gap_ms > 0", "udp.rtt_ms.count >= 0"]


def samples() -> dict[str, list[dict[str, Any]]]:
    examples = sorted((ROOT / "captures" / "examples").glob("*.pcap"))
    corpus = sorted(p for p in (ROOT / "tests" / "data" / "corpus").iterdir() if p.suffix not in (".md", ".tsv"))
    caps = {}
    for path in examples + corpus:
        try:
            caps[path] = analyze(path, workers=1)
        except Exception:  # noqa: BLE001 - the corpus holds unreadable files on purpose
            continue
    nagle = caps[ROOT / "captures" / "examples" / "nagle-on.pcap"]
    echo = caps[ROOT / "captures" / "examples" / "echo.pcap"]
    rules = parse_rules(CHECK_RULES)
    return {
        "capture": [capture_document(cap, cap.tcp, cap.udp) for cap in caps.values()],
        "compare": [compare_document([(cap, list(cap.tcp), list(cap.udp)) for cap in (echo, nagle)])],
        "check": [check_document(cap, run_checks(cap, rules, list(cap.tcp), list(cap.udp))) for cap in (echo, nagle)],
        "run": [run_document(path.stem, Run(label=f"the {path.stem} example", capture=path, analysis=caps[path],
                                            problems=["the capture lacks 10 bytes the client sent"]))
                for path in examples],
        "cleanup": [cleanup_document([Leftover("netns", "sockinspect-R2-123-ab12cd", 123, "removed", "its run is gone"),
                                      Leftover("folder", "/tmp/x/.work-1", None, "kept", "no owner record")], False),
                    cleanup_document([], True)],
        "conform": conform_samples(),
        "conform_batch": [conform_batch_document("echo", conform_samples())],
    }


def conform_samples() -> list[dict[str, Any]]:
    """A graded submission (one check passed, one failed), and one that could not be run."""
    grade = Grade("echo", "students/alice", "netns", (
        Check("reply: the lab's request 2", "server", False, "Digits: Count: 0", "Digits:  Count: 0",
              "request 2, packets 13-22"),
        Check("client joins its arguments with single spaces", "client", True, "'a b'", "'a b'", ""),
    ), "captures/conform/echo-alice.pcap", 0, ("the programs ran as root: user nobody may run no Python here",))
    return [conform_document(grade),
            conform_error_document("file", "students/bob", "loopback", "tcp_file_transfer_server.py: no such file")]


def render() -> str:
    return json.dumps(build((ROOT / "docs" / "json.md").read_text(), samples()), indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if schema.json is out of date")
    args = parser.parse_args()
    try:
        text = render()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        if SCHEMA.read_text() != text:
            print(f"{SCHEMA} is out of date: run scripts/make_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
