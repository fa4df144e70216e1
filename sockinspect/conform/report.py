"""A grade for people (a table of checks and a score) and for tools (JSON, CSV rows)."""

from __future__ import annotations

import csv
import io
from typing import Any

from . import Grade

SEEN_WIDTH = 160  # characters of expected / seen shown for a failed check


def table(grade: Grade) -> str:
    """Every check in one line, then what each failed one expected and saw."""
    from tabulate import tabulate
    rows = [("PASS" if c.passed else "FAIL", c.program, c.name, c.where) for c in grade.checks]
    body = tabulate(rows, headers=["result", "program", "check", "where"], tablefmt="simple", disable_numparse=True)
    lines = [f"conform {grade.lab}: {grade.submission} on {grade.topology}", "", body]
    for c in grade.checks:
        if not c.passed:
            lines += ["", f"FAIL {c.name} ({c.program}{', ' + c.where if c.where else ''})",
                      f"  expected: {_cell(c.expected)}", f"  seen:     {_cell(c.seen)}"]
    failed = [p for p in ("server", "client", "both") if any(c.program == p and not c.passed for c in grade.checks)]
    blame = f"; failing: {', '.join(failed)}" if failed else ""
    lines += ["", f"score: {grade.passed}/{len(grade.checks)} checks passed{blame}",
              f"capture: {grade.capture} (open it in Wireshark; 'where' gives packet numbers)"]
    lines += [f"note: {note}" for note in grade.notes]
    if grade.dropped:
        lines.append(f"warning: the kernel dropped {grade.dropped} packets of the capture: its checks may be wrong")
    return "\n".join(lines)


def _cell(text: str, width: int = SEEN_WIDTH) -> str:
    """One line, at most ``width`` characters (newlines shown as \\n)."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[:width - 3] + "..."


BATCH_COLUMNS = ["student", "passed", "total", "score", "server_failures", "client_failures", "both_failures",
                 "failed", "error"]


def batch_row(student: str, doc: dict[str, Any]) -> dict[str, Any]:
    checks = doc["checks"]
    failed = [c for c in checks if not c["passed"]]
    total = doc["score"]["total"]
    return {"student": student, "passed": doc["score"]["passed"], "total": total,
            "score": round(100 * doc["score"]["passed"] / total, 1) if total else 0.0,
            **{f"{who}_failures": sum(c["program"] == who for c in failed) for who in ("server", "client", "both")},
            "failed": "; ".join(c["name"] for c in failed), "error": doc["error"] or ""}


def batch_table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate
    shown = [{**r, "failed": _cell(r["failed"], 60), "error": _cell(r["error"], 60)} for r in rows]
    return tabulate(shown, headers="keys", tablefmt="simple", disable_numparse=True)


def batch_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, BATCH_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
