"""What conform reports: named checks, each blamed on one program, and the checks
read from the capture of a phase's connections."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .._model import Capture, TcpConnection

Blame = Literal["server", "client", "both"]


@dataclass(frozen=True, slots=True)
class Check:
    """One check: what was expected, what was seen, and where (a transcript line, packets)."""

    name: str
    program: Blame  # whose behaviour it grades
    passed: bool
    expected: str
    seen: str
    where: str = ""
    run: Window | None = None  # the client run it judges: the capture's packets of it join ``where``


Window = tuple[int, int, int]  # a client's run: (start ns, end ns, the server's port)


def with_packets(check: Check, cap: Capture) -> Check:
    """``check`` with the packets of its client run added to where it happened."""
    if check.run is None:
        return check
    conns = connections_in(cap, [check.run])
    packets = _packets(conns)
    return replace(check, where=", ".join(part for part in (check.where, packets) if part)) if packets else check


def connections_in(cap: Capture, windows: list[Window]) -> list[TcpConnection]:
    """The connections to one of ``windows``' ports that began within it."""
    found = []
    for conn in cap.tcp:
        first = conn.first_ts_ns or 0
        if any(start <= first <= end and conn.server.port == port for start, end, port in windows):
            found.append(conn)
    return found


@dataclass
class Phase:
    """The client runs of one pairing (student server + reference client, ...): their
    connections are found in the capture by the time they ran and the server's port."""

    name: str  # "server", "client", "together"
    program: Blame  # who the capture's checks blame
    closer: Literal["client", "either"]  # the side the lab expects to close first
    windows: list[Window] = field(default_factory=list)


def capture_checks(phase: Phase, cap: Capture) -> list[Check]:
    """The teardown and the client's port, from the capture of ``phase``'s connections."""
    conns = connections_in(cap, phase.windows)
    label = phase.name
    checks = []
    none = "no connection in the capture"  # every check then fails: their number stays the same
    bad = [c for c in conns if c.c2s.rsts + c.s2c.rsts or not (c.c2s.fins and c.s2c.fins)]
    checks.append(Check(f"{label}: closed with FIN both ways, no RST", phase.program, bool(conns) and not bad,
                        f"{len(conns) or 'the'} connections each closed by a FIN from both sides",
                        ("; ".join(_teardown(c) for c in bad[:3]) or "all closed cleanly") if conns else none,
                        _packets(bad or conns)))
    if phase.closer == "client":
        early = [c for c in conns if c.closed_by == "server"]
        checks.append(Check(f"{label}: the client ends the connection", phase.program, bool(conns) and not early,
                            "the client's FIN first (the sender ends the transfer)",
                            (f"the server closed first in {len(early)} of {len(conns)}" if early
                             else "the client closed first") if conns else none, _packets(early or conns)))
    if phase.name != "server":
        fixed = [c for c in conns if not c.client_port_ephemeral_linux]
        ports = sorted({c.client.port for c in conns})
        checks.append(Check(f"{label}: the client's port is ephemeral", phase.program, bool(conns) and not fixed,
                            "a port chosen by the client's kernel (32768-60999)",
                            ("ports " + ", ".join(map(str, ports[:5])) + ("..." if len(ports) > 5 else ""))
                            if conns else none, _packets(fixed or conns)))
    return checks


def _teardown(c: TcpConnection) -> str:
    parts = []
    for side, d in (("client", c.c2s), ("server", c.s2c)):
        if d.rsts:
            parts.append(f"RST from the {side}")
        elif not d.fins:
            parts.append(f"no FIN from the {side}")
    return f"port {c.client.port}: " + ", ".join(parts)


def _packets(conns: list[TcpConnection]) -> str:
    spans = [f"{c.first_packet}-{c.last_packet}" for c in conns[:3]]
    return "packets " + ", ".join(spans) + (" ..." if len(conns) > 3 else "") if spans else ""
