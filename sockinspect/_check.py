"""Apply rules (see _rules.py) to every selected connection of a capture. Pure."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._model import Capture, Direction, Endpoint, Handshake, Stats, TcpConnection, UdpDirection, UdpFlow
from ._report import tcp_to_dict, udp_to_dict
from ._rules import Rule, parse_rule, validate
from .errors import UsageError

RULES_KEYS = {"expect", "port", "host"}


@dataclass(frozen=True, slots=True)
class Result:
    rule: Rule
    subject: str  # "tcp #0 a:1 -> b:2"
    passed: bool
    seen: Any


def load_rules_file(path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """Read ``expect = [...]`` (and optional ``port``, ``host``) from a TOML file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such rules file") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 TOML rules file (capture and rules swapped?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - RULES_KEYS
    if unknown:
        raise UsageError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(RULES_KEYS)}")
    expect = data.get("expect", [])
    if isinstance(expect, str):
        expect = [expect]
    if not isinstance(expect, list) or not all(isinstance(r, str) for r in expect):
        raise UsageError(f"{path}: 'expect' must be a list of rule strings")
    return expect, {k: data[k] for k in ("port", "host") if k in data}


def parse_rules(texts: list[str]) -> list[Rule]:
    """Parse and validate every rule against the document layout before any data is read."""
    rules = [parse_rule(t) for t in texts]
    for rule in rules:
        validate(rule, SAMPLE_TCP if rule.scope == "tcp" else SAMPLE_UDP)
    return rules


def run_checks(cap: Capture, rules: list[Rule], tcp: list[TcpConnection], udp: list[UdpFlow]) -> list[Result]:
    results = []
    tcp_docs = [(f"tcp #{c.index} {c.client} -> {c.server}", tcp_to_dict(c)) for c in tcp]
    udp_docs = [(f"udp #{f.index} {f.a} <-> {f.b}", udp_to_dict(f)) for f in udp]
    for rule in rules:
        for subject, doc in tcp_docs if rule.scope == "tcp" else udp_docs:
            passed, seen = rule.check(doc)
            results.append(Result(rule, subject, passed, seen))
    return results


def _sample_tcp() -> dict[str, Any]:
    nobody = Endpoint("", 0)
    return tcp_to_dict(TcpConnection(
        index=0, client=nobody, server=nobody, inferred=False, vlan=(), handshake=Handshake(),
        c2s=Direction(), s2c=Direction(), state="OTH", closed_by=None, first_ts_ns=None, last_ts_ns=None,
        first_packet=0, last_packet=0, client_port_ephemeral_linux=False, client_port_ephemeral_iana=False,
    ))


def _sample_udp() -> dict[str, Any]:
    nobody = Endpoint("", 0)
    return udp_to_dict(UdpFlow(0, nobody, nobody, (), UdpDirection(), UdpDirection(), Stats(), None, None, 0, 0))


SAMPLE_TCP = _sample_tcp()
SAMPLE_UDP = _sample_udp()
