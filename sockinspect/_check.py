"""Apply rules (see _rules.py) to every selected connection of a capture. Pure."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._delays import Stall
from ._documents import tcp_to_dict, udp_to_dict
from ._model import Capture, Direction, Endpoint, Handshake, Stats, TcpConnection, UdpDirection, UdpFlow
from ._rules import MAX_NESTING, Rule, parse_rule, validate
from .errors import UsageError

RULES_KEYS = {"expect", "port", "host"}
MAX_RULES_FILE_BYTES = 1 << 20  # 1 MiB: some 50,000 rules


@dataclass(frozen=True, slots=True)
class Result:
    rule: Rule
    subject: str  # "tcp #0 a:1 -> b:2"
    passed: bool
    seen: Any


@dataclass(frozen=True, slots=True)
class Outcome:
    results: tuple[Result, ...]
    unchecked: tuple[Rule, ...]  # rules with no connection (or flow) selected: each counts as failed

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results) + len(self.unchecked)


def load_rules_file(path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """Read ``expect = [...]`` (and optional ``port``, ``host``) from a TOML file.

    Bounded before tomllib sees it, so a hostile file ends in a second with one
    line: at most MAX_RULES_FILE_BYTES, and the shape toml_shape_problem allows."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RULES_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such rules file") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_RULES_FILE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_RULES_FILE_BYTES >> 20} MiB; not a rules file")
    try:
        text = raw.decode("utf-8-sig")  # as an editor may write it, with a byte order mark
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 TOML rules file (capture and rules swapped?)") from None
    problem = toml_shape_problem(text)
    if problem:
        raise UsageError(f"{path}: {problem}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # not reached within the bounds above; kept so no input ends in a traceback
        raise UsageError(f"{path}: nested too deeply") from None
    unknown = set(data) - RULES_KEYS
    if unknown:
        raise UsageError(f"{path}: unknown keys {_few(sorted(unknown))}; allowed: {sorted(RULES_KEYS)}")
    expect = data.get("expect", [])
    if isinstance(expect, str):
        expect = [expect]
    if not isinstance(expect, list) or not all(isinstance(r, str) for r in expect):
        raise UsageError(f"{path}: 'expect' must be a list of rule strings")
    return expect, {k: data[k] for k in ("port", "host") if k in data}


# One pass over a rules file, token by token: strings and comments whole (so what
# they hold is not counted), the characters that make structure one by one, and an
# opening quote without its end alone (the pass stops there; tomllib reports it).
_TOML_TOKEN = re.compile(r"""
    (?P<string> "{3}(?:[^"\\]|\\.|"(?!""))*"{3,5} | '{3}(?:[^']|'(?!''))*'{3,5}
              | "(?:[^"\\\n]|\\.)*" | '[^'\n]*' | \#[^\n]* )
  | (?P<unterminated> "{3} | '{3} | ["'] )
  | (?P<open> \[+ ) | (?P<close> \]+ ) | (?P<other> [\n={}.] )
""", re.S | re.X)
_ONLY = 'a rules file has only expect = ["rule", ...], port = N and host = "addr"'


def toml_shape_problem(text: str) -> str | None:
    """What makes ``text`` no rules file before tomllib reads it, or None. tomllib
    recurses once per nesting level (50,000 levels end in RecursionError), and its
    tables and dotted keys cost it more than linear time (a key of 50,000 dotted
    parts took 67 s, 70,000 small tables 7 s); a rules file needs none of them, so
    they are refused here: brackets deeper than MAX_NESTING, table headers, dotted
    keys, inline tables. One linear pass."""
    depth = 0
    assigned = False  # an '=' at the top level since the last newline
    for m in _TOML_TOKEN.finditer(text):
        kind, token = m.lastgroup, m.group()
        if kind == "string":
            continue
        if kind == "unterminated":
            return None
        if kind == "open":
            if depth == 0 and not assigned:
                return f"{_line(text, m)}: a table header; {_ONLY}"
            depth += len(token)
            if depth > MAX_NESTING:
                return f"{_line(text, m)}: brackets nested deeper than {MAX_NESTING} levels"
        elif kind == "close":
            depth = max(depth - len(token), 0)
        elif token == "\n":
            assigned = assigned and depth > 0
        elif token == "=":
            assigned = assigned or depth == 0
        elif token in "{}":
            return f"{_line(text, m)}: an inline table; {_ONLY}"
        elif depth == 0 and not assigned:
            return f"{_line(text, m)}: a dotted key; {_ONLY}"
    return None


def _few(keys: list[str], shown: int = 5, limit: int = 40) -> str:
    """The first few of ``keys``, each cut to ``limit`` characters: an error stays one short line."""
    out = ", ".join(repr(k) if len(k) <= limit else f"{k[:limit]!r}..." for k in keys[:shown])
    return f"[{out}]" + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _line(text: str, m: re.Match[str]) -> str:
    return f"line {text.count(chr(10), 0, m.start()) + 1}"


def parse_rules(texts: list[str]) -> list[Rule]:
    """Parse and validate every rule against the document layout before any data is read."""
    rules = [parse_rule(t) for t in texts]
    for rule in rules:
        validate(rule, SAMPLE_TCP if rule.scope == "tcp" else SAMPLE_UDP)
    return rules


def run_checks(cap: Capture, rules: list[Rule], tcp: list[TcpConnection], udp: list[UdpFlow]) -> Outcome:
    """Every rule against every selected connection (``tcp.`` rules) or flow (``udp.``)."""
    results = []
    tcp_docs = [(f"tcp #{c.index} {c.client} -> {c.server}", tcp_to_dict(c)) for c in tcp]
    udp_docs = [(f"udp #{f.index} {f.a} <-> {f.b}", udp_to_dict(f)) for f in udp]
    for rule in rules:
        for subject, doc in tcp_docs if rule.scope == "tcp" else udp_docs:
            passed, seen = rule.check(doc)
            results.append(Result(rule, subject, passed, seen))
    unchecked = tuple(rule for rule in rules if not (tcp_docs if rule.scope == "tcp" else udp_docs))
    return Outcome(tuple(results), unchecked)


# The sample documents have one element in each list, so that rules can name
# what a list element holds (c2s.stall_list[0].gap_ms) with no data at hand.
_STALL = Stall(0, 0, 0, 0, 0, 0)


def _sample_tcp() -> dict[str, Any]:
    nobody = Endpoint("", 0)
    return tcp_to_dict(TcpConnection(
        index=0, client=nobody, server=nobody, inferred=False, vlan=(0,), handshake=Handshake(),
        c2s=Direction(stall_list=(_STALL,)), s2c=Direction(stall_list=(_STALL,)), state="OTH", closed_by=None,
        first_ts_ns=None, last_ts_ns=None, first_packet=0, last_packet=0,
        client_port_ephemeral_linux=False, client_port_ephemeral_iana=False,
    ))


def _sample_udp() -> dict[str, Any]:
    nobody = Endpoint("", 0)
    return udp_to_dict(UdpFlow(0, nobody, nobody, (0,), UdpDirection(), UdpDirection(), Stats(), None, None, 0, 0))


SAMPLE_TCP = _sample_tcp()
SAMPLE_UDP = _sample_udp()
