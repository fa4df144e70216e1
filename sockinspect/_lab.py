"""The answers to Part 4 of the lab, in plain sentences, from one run's measurements. Pure."""

from __future__ import annotations

from ._run import Run


def lab_answers(results: dict[str, list[Run]]) -> str:
    return "Part 4 answers: written once all scenarios run (reference servers pending)."
