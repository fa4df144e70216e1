"""``sockinspect conform``: grade a lab submission by running it, unmodified, on the
lab's own hosts, and reading the capture of what it did.

The student's server is tried with the reference client, the student's client with
the reference server (so each defect is blamed on the right program), then the two
together. See :func:`conform`; the checks are in :mod:`.echo`, :mod:`.transfer` and :mod:`.chat`,
the running in :mod:`.sandbox`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checks import Check, capture_checks, with_packets
from .programs import LAB_FILES, SubmissionError, reference, submission
from .sandbox import SandboxError

LABS = tuple(LAB_FILES)
DEFAULT_TIMEOUT_S = 10.0
BLAME_ORDER = ("server", "client", "both")


@dataclass(frozen=True)
class Grade:
    """A submission's result: its checks, and the capture they were read from."""

    lab: str
    submission: str  # its folder, or "reference"
    topology: str
    checks: tuple[Check, ...]
    capture: str
    dropped: int  # packets the kernel dropped from the capture (its checks may then be wrong)
    notes: tuple[str, ...] = ()  # how the programs ran, when not as they should (e.g. not as nobody)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.passed == len(self.checks)


def conform(lab: str, folder: Path | None, capture: Path, topology: str = "netns",
            timeout: float = DEFAULT_TIMEOUT_S, client_file: str | None = None,
            server_file: str | None = None) -> Grade:
    """Run ``lab``'s checks on the submission in ``folder`` (None: the reference programs),
    capturing into ``capture``. Raises SubmissionError or SandboxError when the submission
    cannot be run at all, TopologyError when the hosts cannot be made here."""
    from .. import _analyze
    from .._run import Lease, make_topology
    from . import chat, echo, transfer
    from .sandbox import Sandbox
    if lab not in LAB_FILES:
        raise SubmissionError(f"no lab {lab!r}: one of {', '.join(LABS)}")
    ref = reference(lab)
    student = ref if folder is None else submission(lab, folder)
    with Lease(f"conform {lab}") as lease, \
            make_topology("netns" if topology == "netns" else "lab-loopback", claim=lease.claim_netns) as hosts, \
            Sandbox(hosts, capture, lease, timeout) as sb:
        if lab == "echo":
            checks, phases = echo.run(sb, student, ref)
        elif lab == "chat":
            checks, phases = chat.run(sb, student, ref)
        else:
            checks, phases = transfer.run(sb, student, ref, client_file, server_file)
    cap = _analyze.analyze(capture)
    for phase in phases:
        checks.extend(capture_checks(phase, cap))
    checks = [with_packets(c, cap) for c in checks]
    checks.sort(key=lambda c: BLAME_ORDER.index(c.program))  # stable: each program's checks in the order run
    return Grade(lab, "reference" if folder is None else str(folder), topology, tuple(checks), str(capture),
                 sb.dropped, tuple(sb.notes))


__all__ = ["LABS", "Check", "Grade", "SandboxError", "SubmissionError", "conform"]
