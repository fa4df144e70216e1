"""The JSON Schema of every document sockinspect prints (``sockinspect schema``).

The schema ships with the package (``schema.json``), so the installed tool
documents itself. It is built by :func:`build` from two sources, each the
authority on one thing:

- docs/json.md's key tables say which keys each document has and what they
  mean (the descriptions);
- the documents of real captures (``scripts/make_schema.py`` analyzes the
  corpus) say what type each key's values take.

:func:`build` refuses a documented key never seen, a key seen but not
documented, and a key only ever seen as ``null``, so the docs, the schema and
the output cannot drift apart; ``tests/test_schema.py`` rebuilds it and
validates real documents against it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import Any

from ._documents import DOCUMENTS

# docs/json.md headings (a part of their text) -> the document their tables describe
SECTIONS = {"Top level": "capture", "`tcp[]`": "capture", "`udp[]`": "capture", "`--compare`": "compare",
            "`check --json`": "check", "`run-and-capture --json`": "run", "`cleanup --json`": "cleanup",
            "`conform --json`": "conform", "`conform --submissions": "conform_batch"}
# Documents whose list holds documents of another kind: document -> (its list's key, their kind)
NESTED = {"compare": ("compare", "capture"), "conform_batch": ("submissions", "conform")}
# Directions share their keys: docs/json.md documents them once, under c2s / a2b.
SAME_AS = {"s2c": "c2s", "b2a": "a2b"}
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}
Path = tuple[str, ...]


def load() -> dict[str, Any]:
    """The packaged schema: one definition per document under ``$defs``."""
    return json.loads(resources.files("sockinspect").joinpath("schema.json").read_text())


def for_document(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A standalone schema for one document (``capture``, ``compare``, ...), with the
    definitions it refers to."""
    node = schema["$defs"][name]
    refs = {ref.rsplit("/", 1)[1] for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(node))}
    out = {"$schema": schema["$schema"], "title": f"sockinspect {name} document", **node}
    if refs:
        out["$defs"] = {ref: schema["$defs"][ref] for ref in sorted(refs)}
    return out


def documented_keys(markdown: str) -> dict[str, dict[Path, str]]:
    """document -> {key path -> meaning}, from the key tables of docs/json.md.
    ``tcp[].c2s.sizes.mss`` is the path ``("tcp", "[]", "c2s", "sizes", "mss")``."""
    keys: dict[str, dict[Path, str]] = {name: {} for name in DOCUMENTS}
    document = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            document = next((doc for mark, doc in SECTIONS.items() if mark in line), None)
        elif document and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for key in re.findall(r"`([^`]+)`", cells[0]):
                keys[document][_path(key)] = cells[-1]
    return keys


def _path(key: str) -> Path:
    parts: list[str] = []
    for part in key.split("."):
        name, lists = part.split("[", 1) if "[" in part else (part, "")
        parts.append(SAME_AS.get(name, name))
        parts.extend("[]" for _ in range(lists.count("]")))
    return tuple(parts)


def _walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _walk(child, (*path, SAME_AS.get(key, key)))
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child, (*path, "[]"))


def build(markdown: str, samples: Mapping[str, Iterable[dict[str, Any]]]) -> dict[str, Any]:
    """The schema of every document, from docs/json.md and sample documents of each.
    ValueError (listing every problem) when the two disagree."""
    docs = documented_keys(markdown)
    defs, problems = {}, []
    for name in DOCUMENTS:
        documented = docs[name]
        if name == "run":  # a capture document with the run's keys
            documented = {**docs["capture"], **documented}
        seen: dict[Path, set[str]] = defaultdict(set)
        keys_of: dict[Path, Counter[str]] = defaultdict(Counter)  # how many objects at a path had each key
        for doc in samples.get(name, ()):
            for path, value in _walk(doc):
                seen[path].add(_JSON_TYPES[type(value)])
                if isinstance(value, dict):
                    keys_of[path].update({SAME_AS.get(k, k) for k in value} | {""})  # "": the objects
        if name in NESTED:  # its list's elements are documents of their own
            key = NESTED[name][0]
            seen = {p: t for p, t in seen.items() if p[:2] != (key, "[]") or len(p) == 2}
        defs[name] = _node((), documented, seen, keys_of, problems, name)
    if problems:
        raise ValueError("docs/json.md and the documents disagree:\n  " + "\n  ".join(problems))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "sockinspect JSON documents",
            "description": "The documents sockinspect prints with --json; see sockinspect._documents.",
            "$defs": defs}


def _node(path: Path, documented: dict[Path, str], seen: dict[Path, set[str]], keys_of: dict[Path, Counter[str]],
          problems: list[str], doc: str) -> dict[str, Any]:
    where = f"{doc}: {_key(path) or '(top level)'}"
    if doc in NESTED and path == (NESTED[doc][0], "[]"):
        return {"$ref": f"#/$defs/{NESTED[doc][1]}"}
    types = seen.get(path)
    if not types:
        problems.append(f"{where}: documented but never seen in the samples")
        return {}
    if types == {"null"}:
        problems.append(f"{where}: only ever null in the samples (add a capture where it is measured)")
    if {"integer", "number"} <= types:
        types = types - {"integer"}
    node: dict[str, Any] = {"type": _one_or_list(types)}
    if path in documented:
        node["description"] = documented[path]
    if "object" in types:
        children = {p[-1] for p in documented if len(p) == len(path) + 1 and p[:-1] == path}
        if children or not path:
            counts = keys_of[path]
            for key in sorted(set(counts) - children - {""}):
                problems.append(f"{doc}: {_key((*path, key))}: seen but not documented")
            props = {k: _node((*path, k), documented, seen, keys_of, problems, doc) for k in children}
            props.update({alias: props[k] for alias, k in SAME_AS.items() if k in props})
            node["properties"] = dict(sorted(props.items()))
            node["required"] = sorted(k for k in props if counts[SAME_AS.get(k, k)] == counts[""])
            node["additionalProperties"] = False
        else:  # keys that are data (defect kinds, size buckets): one schema for every value
            values = {ty for p, tys in seen.items() if len(p) == len(path) + 1 and p[:-1] == path for ty in tys}
            node["additionalProperties"] = {"type": _one_or_list(values)} if values else {}
    if "array" in types and (*path, "[]") in seen:
        node["items"] = _node((*path, "[]"), documented, seen, keys_of, problems, doc)
    return node


def _one_or_list(types: set[str]) -> str | list[str]:
    return next(iter(types)) if len(types) == 1 else sorted(types)


def _key(path: Path) -> str:
    return ".".join(path).replace(".[]", "[]")
