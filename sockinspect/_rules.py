"""The rule language of ``sockinspect check``: facts about connections, written
over the documented JSON keys (docs/json.md).

A rule is ``KEY OP VALUE``:

- ``KEY``: a dotted path into one ``tcp[]`` element of the JSON document, e.g.
  ``handshake.rtt_ms``, ``state``, ``c2s.nagle``, ``client.port``; prefix it with
  ``udp.`` to check UDP flows instead (``udp.b2a.packets``, ``udp.rtt_ms.max``).
  Every key of docs/json.md can be named:

  - a list element by its index, from 0 (``-1`` is the last):
    ``c2s.stall_list[0].ack_delay_ms``, ``vlan[0]``; past the end it is ``null``;
  - every element at once with ``[]``, as docs/json.md writes the keys:
    ``c2s.stall_list[].gap_ms < 250`` passes when each stall's does (and so when
    there is none); one ``[]`` per key;
  - a key that is not a name, in brackets and quotes: the size histogram's
    buckets, ``c2s.sizes.histogram[">1448"] == 0`` (labels follow the MSS; a
    bucket the connection does not have is ``null``).
- ``OP``: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, or ``in`` / ``not in``
  with a list.
- ``VALUE``: a number, ``true``/``false``/``null``, a bare word (``SF``, ``off``)
  or a quoted string, or for ``in`` a list ``[SF, S1]``.

A comparison with a ``null`` (not measured) value fails, except ``== null``.

Limits: a rule whose brackets or braces nest deeper than ``MAX_NESTING`` levels
is a bad rule (the language needs two; the JSON reader would otherwise recurse
once per level, into a RecursionError), and so is a list index of more than
``MAX_INDEX_DIGITS`` digits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

MAX_NESTING = 32  # brackets and braces, in a rule and in a rules file
MAX_INDEX_DIGITS = 9  # a list index: no list has a billion elements; int() refuses over 4300 digits
OPS = ("==", "!=", "<=", ">=", "<", ">", "not in", "in")
_NAME = r"[A-Za-z_]\w*"
_INDEX = r"""\[(?:-?\d+|"[^"\]]*"|'[^'\]]*')?\]"""
_TOKEN = re.compile(rf"\s*(?:(?P<op>==|!=|<=|>=|<|>|not\s+in\b|in\b)|(?P<key>{_NAME}(?:\.{_NAME}|{_INDEX})*))")
_PART = re.compile(r"""\.?(?P<name>[A-Za-z_]\w*)|\[(?P<index>-?\d+)\]|\[\]|\["(?P<dq>[^"]*)"\]|\['(?P<sq>[^']*)'\]""")
EVERY = None  # a path element: every element of a list (``key[]``)
# Objects whose keys depend on the data: a rule may name any key of this form.
_OPEN_KEYS = {"histogram": re.compile(r"1-63|64-511|512\+|512-\d+|=\d+|>\d+")}
_WORD = re.compile(r"[A-Za-z_][\w.:-]*\Z")


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    scope: str  # "tcp" or "udp"
    path: tuple[str | int | None, ...]  # names, list indexes, EVERY
    op: str
    value: Any

    def check(self, doc: dict[str, Any]) -> tuple[bool, Any]:
        """(passed, the value seen) for one connection's or flow's JSON object;
        with ``[]`` in the key, the values seen and whether each passed."""
        seen = lookup(doc, self.path, self.text)
        if EVERY in self.path:
            return all(self._holds(value) for value in seen), seen
        return self._holds(seen), seen

    def _holds(self, seen: Any) -> bool:
        want = self.value
        if self.op == "==":
            return seen == want
        if self.op == "!=":
            return seen != want
        if self.op in ("in", "not in"):
            try:
                found = seen in want
            except TypeError:  # a list seen (vlan), the choices a frozenset
                found = False
            return found == (self.op == "in")
        if seen is None or isinstance(seen, (bool, str, dict, list)):
            return False
        return {"<": seen < want, "<=": seen <= want, ">": seen > want, ">=": seen >= want}[self.op]


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
    after = text[m2.end():]
    rest = after.strip()
    if not rest:
        raise UsageError(_where(text, len(text), "expected a value after the operator"))
    value = _value(rest, text, m2.end() + len(after) - len(after.lstrip()), op)
    for part in _PART.finditer(key):
        digits = len(part.group("index") or "") - (part.group("index") or "").startswith("-")
        if digits > MAX_INDEX_DIGITS:
            raise UsageError(_where(text, m.start("key") + part.start("index"),
                                    f"a list index of {digits} digits (at most {MAX_INDEX_DIGITS})"))
    path = _path(key)
    scope = "tcp"
    if path[0] == "udp" and len(path) > 1:
        scope, path = "udp", path[1:]
    if not isinstance(path[0], str):
        raise UsageError(_where(text, m.start("key"), f"bad key {key!r}: it starts with a name"))
    if path.count(EVERY) > 1:
        raise UsageError(_where(text, m.start("key"), f"bad key {key!r}: one [] per key"))
    if op in ("<", "<=", ">", ">=") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise UsageError(_where(text, m2.end(), f"{op} needs a number, got {rest!r}"))
    return Rule(text.strip(), scope, path, op, value)


def _path(key: str) -> tuple[str | int | None, ...]:
    """``c2s.stall_list[0].gap_ms`` -> ("c2s", "stall_list", 0, "gap_ms"); ``[]`` is EVERY."""
    path: list[str | int | None] = []
    for m in _PART.finditer(key):
        name, index, dq, sq = m.group("name", "index", "dq", "sq")
        path.append(int(index) if index is not None else name if name is not None
                    else dq if dq is not None else sq if sq is not None else EVERY)
    return tuple(path)


def key_text(path: tuple[str | int | None, ...]) -> str:
    """The key as written in a rule (names dotted, indexes and labels in brackets)."""
    out = ""
    for part in path:
        if part is EVERY:
            out += "[]"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(_NAME, part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _value(raw: str, text: str, pos: int, op: str) -> Any:
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


def lookup(doc: dict[str, Any], path: tuple[str | int | None, ...], text: str = "",
           sample: bool = False) -> Any:
    """Follow ``path`` into ``doc``. In a real document a list index past the end, or a
    bucket the histogram lacks, is None (not seen). In the ``sample`` document, whose
    lists hold one element, any index names that element, and a key the document does
    not have is a UsageError."""
    node: Any = doc
    for i, part in enumerate(path):
        if part is EVERY or isinstance(part, int):
            if not isinstance(node, list):
                raise _bad_key(text, path, i, "is not a list, so it has no [...]")
            if part is EVERY:
                return [lookup(item, path[i + 1:], text, sample) for item in node[:1 if sample else None]]
            if sample:
                node = node[0]
            elif -len(node) <= part < len(node):
                node = node[part]
            else:
                return None
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        parent = path[i - 1] if i else None
        label = _OPEN_KEYS.get(parent) if isinstance(parent, str) and isinstance(node, dict) else None
        if label is not None and label.fullmatch(part) and i == len(path) - 1:
            return 0 if sample else None
        if not sample and isinstance(node, dict) and label is not None:
            return None
        if label is not None:
            known = "bucket labels such as 1-63, 64-511, 512-1447, =1448, >1448, 512+"
        else:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not an object)"
        raise _bad_key(text, path, i, known, unknown=True)
    return node


def _bad_key(text: str, path: tuple[str | int | None, ...], i: int, what: str, unknown: bool = False) -> UsageError:
    where = key_text(path[: i + 1])
    col = text.find(where) + 1 if where in text else 1
    if unknown:
        return UsageError(f"rule {_shown(text)}: unknown key {where!r} at position {col}; keys there: {what}")
    return UsageError(f"rule {_shown(text)}: {key_text(path[:i])!r} {what} (at position {col})")


def validate(rule: Rule, sample: dict[str, Any]) -> None:
    """Check a rule's key against a sample document (so a typo fails with no data too)."""
    value = lookup(sample, rule.path, rule.text, sample=True)
    if EVERY in rule.path and value:
        value = value[0]
    if isinstance(value, dict):
        raise UsageError(f"rule {_shown(rule.text)}: {key_text(rule.path)!r} is an object, not a value; "
                         f"keys there: {', '.join(sorted(value))}")
