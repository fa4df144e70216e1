"""Every JSON document the CLI prints, built in one place under one ``schema_version``.

| document | printed by |
| --- | --- |
| ``capture`` | ``analyze --json`` (one per file, one per line), ``capture --json`` |
| ``compare`` | ``analyze --compare --json`` |
| ``check`` | ``check --json`` |
| ``run`` | ``run-and-capture --json`` (a capture document with the run's keys) |
| ``cleanup`` | ``cleanup --json`` |

Their keys are documented in docs/json.md; ``sockinspect schema`` prints their
JSON Schema (``_schema.py``). Pure: records in, dicts out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._check import Outcome
from ._model import Capture, TcpConnection, UdpFlow
from ._report import SCHEMA_VERSION, to_dict
from ._run import Leftover, Run

DOCUMENTS = ("capture", "compare", "check", "run", "cleanup")


def capture_document(cap: Capture, tcp: Iterable[TcpConnection], udp: Iterable[UdpFlow]) -> dict[str, Any]:
    """One capture file: its TCP connections and UDP flows (those given, e.g. selected by port)."""
    return to_dict(cap, tcp, udp)


def compare_document(captures: list[tuple[Capture, list[TcpConnection], list[UdpFlow]]]) -> dict[str, Any]:
    """Capture documents side by side, in the order given."""
    docs = [capture_document(cap, tcp, udp) for cap, tcp, udp in captures]
    return {"schema_version": SCHEMA_VERSION, "compare": docs}


def check_document(cap: Capture, outcome: Outcome) -> dict[str, Any]:
    """Each rule's result on each connection or flow it was applied to."""
    return {
        "schema_version": SCHEMA_VERSION,
        "file": cap.file,
        "passed": outcome.failed == 0,
        "results": [{"rule": r.rule.text, "subject": r.subject, "passed": r.passed, "seen": r.seen}
                    for r in outcome.results],
        "unchecked": [rule.text for rule in outcome.unchecked],
    }


def run_document(scenario: str, run: Run) -> dict[str, Any]:
    """A scenario's run: the capture document of what it captured, and how the run went."""
    cap = run.analysis
    return {**capture_document(cap, cap.tcp, cap.udp), "scenario": scenario, "run": run.label,
            "problems": list(run.problems)}


def cleanup_document(items: Iterable[Leftover], dry_run: bool) -> dict[str, Any]:
    """What ``cleanup`` found, and what it did with each."""
    return {
        "schema_version": SCHEMA_VERSION,
        "dry_run": dry_run,
        "items": [{"kind": i.kind, "name": i.name, "owner_pid": i.owner_pid, "action": i.action, "reason": i.reason}
                  for i in items],
    }


def dumps(doc: dict[str, Any]) -> str:
    """One line of compact JSON (JSON Lines when there are several documents)."""
    return json.dumps(doc, separators=(",", ":"))
