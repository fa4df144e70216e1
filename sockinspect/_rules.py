"""The rule language of ``sockinspect check``: facts about connections, written
over the documented JSON keys (docs/json.md).

A rule is ``KEY OP VALUE``:

- ``KEY``: a dotted path into one ``tcp[]`` element of the JSON document, e.g.
  ``handshake.rtt_ms``, ``state``, ``c2s.nagle``, ``client.port``; prefix it with
  ``udp.`` to check UDP flows instead (``udp.b2a.packets``).
- ``OP``: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, or ``in`` / ``not in``
  with a list.
- ``VALUE``: a number, ``true``/``false``/``null``, a bare word (``SF``, ``off``)
  or a quoted string, or for ``in`` a list ``[SF, S1]``.

A comparison with a ``null`` (not measured) value fails, except ``== null``.

Limits: a rule whose brackets or braces nest deeper than ``MAX_NESTING`` levels
is a bad rule (the language needs two; the JSON reader would otherwise recurse
once per level, into a RecursionError).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

MAX_NESTING = 32  # brackets and braces, in a rule and in a rules file
OPS = ("==", "!=", "<=", ">=", "<", ">", "not in", "in")
_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|<=|>=|<|>|not\s+in\b|in\b)|(?P<key>[A-Za-z_][\w.\[\]]*))")
_WORD = re.compile(r"[A-Za-z_][\w.:-]*\Z")


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    scope: str  # "tcp" or "udp"
    path: tuple[str, ...]
    op: str
    value: Any

    def check(self, doc: dict[str, Any]) -> tuple[bool, Any]:
        """(passed, the value seen) for one connection's or flow's JSON object."""
        seen = lookup(doc, self.path, self.text)
        want = self.value
        if self.op == "==":
            return seen == want, seen
        if self.op == "!=":
            return seen != want, seen
        if self.op in ("in", "not in"):
            try:
                found = seen in want
            except TypeError:  # a list seen (vlan), the choices a frozenset
                found = False
            return found == (self.op == "in"), seen
        if seen is None or isinstance(seen, (bool, str, dict, list)):
            return False, seen
        ok = {"<": seen < want, "<=": seen <= want, ">": seen > want, ">=": seen >= want}[self.op]
        return ok, seen


def parse_rule(text: str) -> Rule:
    """Parse ``KEY OP VALUE``; UsageError naming the rule and the position otherwise."""
    deep = _too_deep(text)
    if deep is not None:
        raise UsageError(_where(text, deep, f"brackets nested deeper than {MAX_NESTING} levels"))
    m = _TOKEN.match(text)
    if not m or not m.group("key"):
        raise UsageError(_where(text, len(text) - len(text.lstrip()), "expected a key such as handshake.rtt_ms"))
    key = m.group("key")
    pos = m.end()
    m2 = _TOKEN.match(text, pos)
    if not m2 or not m2.group("op"):
        raise UsageError(_where(text, pos + len(text[pos:]) - len(text[pos:].lstrip()),
                                f"expected an operator ({', '.join(OPS)})"))
    op = " ".join(m2.group("op").split())
    rest = text[m2.end():].strip()
    if not rest:
        raise UsageError(_where(text, len(text), "expected a value after the operator"))
    value = _value(rest, text, op)
    scope, path = ("udp", tuple(key.split(".")[1:])) if key.startswith("udp.") else ("tcp", tuple(key.split(".")))
    if not path or "" in path:
        raise UsageError(_where(text, 0, f"bad key {key!r}"))
    if op in ("<", "<=", ">", ">=") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise UsageError(_where(text, m2.end(), f"{op} needs a number, got {rest!r}"))
    return Rule(text.strip(), scope, path, op, value)


def _value(raw: str, text: str, op: str) -> Any:
    pos = text.rindex(raw)
    if op in ("in", "not in"):
        if not (raw.startswith("[") and raw.endswith("]")):
            raise UsageError(_where(text, pos, f"'{op}' needs a list such as [SF, S1]"))
        try:
            choices = json.loads(raw)  # a JSON list: ["SF", "S1"], [[], [10]]
        except ValueError:
            items = [item.strip() for item in raw[1:-1].split(",") if item.strip()]
            choices = [_scalar(item, text, pos) for item in items]
        except RecursionError:  # not reached below MAX_NESTING; kept so no input ends in a traceback
            raise UsageError(_where(text, pos, "the value nests too deeply")) from None
        try:  # membership in constant time: many choices times many connections stays linear
            return frozenset(choices)
        except TypeError:  # lists among them (vlan in [[], [10]])
            return tuple(choices)
    return _scalar(raw, text, pos)


def _too_deep(text: str) -> int | None:
    """Index of the first bracket or brace nested deeper than MAX_NESTING, else None.
    Strings are not skipped: no value worth comparing has 32 brackets in a row, and
    counting them all keeps this one linear pass with no way around it."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None
    depth = 0
    for m in _BRACKET.finditer(text):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        elif depth:
            depth -= 1
    return None


_BRACKET = re.compile(r"[\[\]{}]")


def _scalar(raw: str, text: str, pos: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        pass
    except RecursionError:  # not reached below MAX_NESTING; kept so no input ends in a traceback
        raise UsageError(_where(text, pos, "the value nests too deeply")) from None
    if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) >= 2:
        return raw[1:-1]
    if _WORD.match(raw):
        return raw
    raise UsageError(_where(text, pos, f"cannot read the value {raw!r}"))


def _where(text: str, pos: int, what: str) -> str:
    return f"rule {_shown(text)}: {what} (at position {pos + 1})"


def _shown(text: str, limit: int = 80) -> str:
    """The rule as quoted in a message: whole when short, else its start (errors stay one short line)."""
    text = text.strip()
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def lookup(doc: dict[str, Any], path: tuple[str, ...], text: str = "") -> Any:
    """Follow ``path`` into ``doc``; UsageError for a key the document does not have."""
    node: Any = doc
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not an object)"
            where = ".".join(path[: i + 1])
            col = text.find(where) + 1 if where in text else 1
            raise UsageError(f"rule {_shown(text)}: unknown key {where!r} at position {col}; keys there: {known}")
        node = node[part]
    return node


def validate(rule: Rule, sample: dict[str, Any]) -> None:
    """Check a rule's key against a sample document (so a typo fails with no data too)."""
    value = lookup(sample, rule.path, rule.text)
    if isinstance(value, dict):
        key = ".".join(rule.path)
        raise UsageError(f"rule {_shown(rule.text)}: {key!r} is an object, not a value; "
                         f"keys there: {', '.join(sorted(value))}")
