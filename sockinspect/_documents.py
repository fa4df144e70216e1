"""Every JSON document the CLI prints, built in one place under one ``schema_version``.

| document | printed by |
| --- | --- |
| ``capture`` | ``analyze --json`` (one per file, one per line), ``capture --json`` |
| (lines) | ``analyze --jsonl``: a ``tcp[]`` or ``udp[]`` object per line, then the capture's keys |
| ``compare`` | ``analyze --compare --json`` |
| ``check`` | ``check --json`` |
| ``run`` | ``run-and-capture --json`` (a capture document with the run's keys) |
| ``cleanup`` | ``cleanup --json`` |

Their keys are documented in docs/json.md; ``sockinspect schema`` prints their
JSON Schema (``_schema.py``). Pure: records in, dicts out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from ._model import Capture, Direction, Sizes, Stats, TcpConnection, UdpFlow

if TYPE_CHECKING:  # _check and _run use the builders below
    from ._check import Outcome
    from ._run import Leftover, Run
    from .conform import Grade

DOCUMENTS = ("capture", "compare", "check", "run", "cleanup", "conform", "conform_batch")
SCHEMA_VERSION = 2  # 2: request_latency_ms to the reply's last byte, mss renamed mss_option (docs/json.md)


# -- JSON ---------------------------------------------------------------------


# Times in ms are nanoseconds / 1e6 (or a histogram bucket's value, rounded to its
# digits): as floats they print with at most 6 decimals already (round(n / 1e6, 6) is
# n / 1e6), so they go out as they are (tests/test_cli.py checks every one).
def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _stats(s: Stats | Sizes) -> dict[str, Any]:
    return {"count": s.count, "min": s.min, "median": s.median, "p95": s.p95, "max": s.max}


def _direction(d: Direction) -> dict[str, Any]:
    return {
        "packets": d.packets,
        "payload_bytes": d.payload_bytes,
        "unique_bytes": d.unique_bytes,
        "retransmitted_bytes": d.retransmitted_bytes,
        "segments": d.segments,
        "frame_bytes": d.frame_bytes,
        "sizes": {
            **_stats(d.sizes),
            "mss": d.sizes.mss,
            "sub_mss": d.sizes.sub_mss,
            "histogram": dict(d.sizes.histogram),
        },
        "mss_option": d.mss_option,
        "segments_over_mss": d.segments_over_mss,
        "offload_suspected": d.offload_suspected,
        "wscale": d.wscale,
        "sack_perm": d.sack_perm,
        "timestamps": d.timestamps,
        "retransmissions": d.retransmissions,
        "fins": d.fins,
        "rsts": d.rsts,
        "first_data_ts": _ts(d.first_data_ts_ns),
        "first_data_ts_ns": d.first_data_ts_ns,
        "last_data_ts": _ts(d.last_data_ts_ns),
        "last_data_ts_ns": d.last_data_ts_ns,
        "data_ms": d.data_ms,
        "throughput_bps": _round(d.throughput_bps, 1),
        "goodput_bps": _round(d.goodput_bps, 1),
        "zero_windows": d.zero_windows,
        "zero_window_ms_total": d.zero_window_ms_total,
        "window_full": d.window_full,
        "nagle": d.nagle,
        "nagle_evidence": {
            "small_segments": d.nagle_evidence.small_segments,
            "held_until_ack": d.nagle_evidence.held_until_ack,
            "small_while_small_unacked": d.nagle_evidence.small_while_small_unacked,
        },
        "ack_delay_ms": _stats(d.ack_delay_ms),
        "delayed_acks": d.delayed_acks,
        "stalls": d.stalls,
        "stall_ms_total": d.stall_ms_total,
        "stall_list": [
            {"data_packet": st.data_packet, "ack_packet": st.ack_packet, "next_packet": st.next_packet,
             "ack_delay_ms": st.ack_delay_ms, "gap_ms": st.gap_ms}
            for st in d.stall_list
        ],
    }


def _ts(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def tcp_to_dict(c: TcpConnection) -> dict[str, Any]:
    h = c.handshake
    return {
        "index": c.index,
        "client": {
            "addr": c.client.addr,
            "port": c.client.port,
            "inferred": c.inferred,
            "ephemeral_linux": c.client_port_ephemeral_linux,
            "ephemeral_iana": c.client_port_ephemeral_iana,
        },
        "server": {"addr": c.server.addr, "port": c.server.port},
        "vlan": list(c.vlan),
        "state": c.state,
        "history": c.history,
        "closed_by": c.closed_by,
        "handshake": {
            "complete": h.complete,
            "half_seen": h.half_seen,
            "syn_ts": _ts(h.syn_ts_ns),
            "syn_ts_ns": h.syn_ts_ns,
            "last_syn_ts": _ts(h.last_syn_ts_ns),
            "last_syn_ts_ns": h.last_syn_ts_ns,
            "synack_ts": _ts(h.synack_ts_ns),
            "synack_ts_ns": h.synack_ts_ns,
            "ack_ts": _ts(h.ack_ts_ns),
            "ack_ts_ns": h.ack_ts_ns,
            "syn_count": h.syn_count,
            "syn_retries": h.syn_retries,
            "synack_count": h.synack_count,
            "syn_retry_ms": h.syn_retry_ms,
            "syn_synack_ms": h.syn_synack_ms,
            "synack_ack_ms": h.synack_ack_ms,
            "rtt_ms": h.rtt_ms,
        },
        "c2s": _direction(c.c2s),
        "s2c": _direction(c.s2c),
        "first_ts": _ts(c.first_ts_ns),
        "first_ts_ns": c.first_ts_ns,
        "last_ts": _ts(c.last_ts_ns),
        "last_ts_ns": c.last_ts_ns,
        "duration_ms": c.duration_ms,
        "first_packet": c.first_packet,
        "last_packet": c.last_packet,
        "request_latency_ms": _stats(c.request_latency_ms),
        "response_first_byte_ms": _stats(c.response_first_byte_ms),
    }


def udp_to_dict(f: UdpFlow) -> dict[str, Any]:
    return {
        "index": f.index,
        "a": {"addr": f.a.addr, "port": f.a.port},
        "b": {"addr": f.b.addr, "port": f.b.port},
        "vlan": list(f.vlan),
        "a2b": {"packets": f.a2b.packets, "bytes": f.a2b.bytes, "frame_bytes": f.a2b.frame_bytes},
        "b2a": {"packets": f.b2a.packets, "bytes": f.b2a.bytes, "frame_bytes": f.b2a.frame_bytes},
        "rtt_ms": _stats(f.rtt_ms),
        "first_ts": _ts(f.first_ts_ns),
        "first_ts_ns": f.first_ts_ns,
        "last_ts": _ts(f.last_ts_ns),
        "last_ts_ns": f.last_ts_ns,
        "first_packet": f.first_packet,
        "last_packet": f.last_packet,
    }


def capture_document(cap: Capture, tcp: Iterable[TcpConnection], udp: Iterable[UdpFlow]) -> dict[str, Any]:
    """One capture file: its TCP connections and UDP flows (those given, e.g. selected by port)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "file": cap.file,
        "format": cap.format,
        "linktypes": list(cap.linktypes),
        "packets": cap.packets,
        "first_ts": _ts(cap.first_ts_ns),
        "first_ts_ns": cap.first_ts_ns,
        "last_ts": _ts(cap.last_ts_ns),
        "last_ts_ns": cap.last_ts_ns,
        "warnings": list(cap.warnings),
        "defects": cap.defects,
        "tcp": [tcp_to_dict(c) for c in tcp],
        "udp": [udp_to_dict(f) for f in udp],
    }


def capture_json(cap: Capture, tcp_json: Iterable[str], udp: Iterable[UdpFlow]) -> Iterator[str]:
    """``dumps(capture_document(...))`` in pieces, with the connections given already as
    JSON (``dumps`` of ``tcp_to_dict``): a line of JSON keeps a fraction of a record's
    memory, and the pieces are written without joining them first."""
    head, tail = dumps(capture_document(cap, (), udp)).split(',"tcp":[],', 1)  # quotes in strings are escaped
    yield head + ',"tcp":['
    for k, text in enumerate(tcp_json):
        yield "," + text if k else text
    yield "]," + tail


def line_of(record: str, file: str, body: dict[str, Any]) -> dict[str, Any]:
    """One line of ``analyze --jsonl``: ``record`` (tcp, udp or capture) and ``file``, then ``body``
    (a ``tcp[]`` or ``udp[]`` object, or the capture document's keys but its lists)."""
    return {"schema_version": SCHEMA_VERSION, "record": record, "file": file, **body}


def capture_line(cap: Capture, tcp_connections: int) -> dict[str, Any]:
    """The last line of ``analyze --jsonl`` for a capture: its keys, with counts for the lists."""
    doc = capture_document(cap, (), ())
    del doc["schema_version"], doc["file"], doc["tcp"], doc["udp"]
    return line_of("capture", cap.file, {**doc, "tcp_connections": tcp_connections, "udp_flows": len(cap.udp)})


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


def conform_document(grade: Grade) -> dict[str, Any]:
    """A submission's checks (``conform --json``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "lab": grade.lab,
        "submission": grade.submission,
        "topology": grade.topology,
        "passed": grade.ok,
        "score": {"passed": grade.passed, "total": len(grade.checks)},
        "capture": grade.capture,
        "dropped": grade.dropped,
        "notes": list(grade.notes),
        "error": None,
        "checks": [{"name": c.name, "program": c.program, "passed": c.passed, "expected": c.expected,
                    "seen": c.seen, "where": c.where} for c in grade.checks],
    }


def conform_error_document(lab: str, submission: str, topology: str, error: str) -> dict[str, Any]:
    """The ``conform --json`` document of a submission that could not be run."""
    return {"schema_version": SCHEMA_VERSION, "lab": lab, "submission": submission, "topology": topology,
            "passed": False, "score": {"passed": 0, "total": 0}, "capture": None, "dropped": 0, "notes": [],
            "error": error, "checks": []}


def conform_batch_document(lab: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """``conform --submissions --json``: one conform document per student."""
    return {"schema_version": SCHEMA_VERSION, "lab": lab, "submissions": docs}


def dumps(doc: dict[str, Any]) -> str:
    """One line of compact JSON (JSON Lines when there are several documents). By orjson,
    ten times faster than json (a large capture's report spent a third of its time there);
    by json when the text is not ASCII (json escapes it, so any terminal shows it) or
    orjson refuses a value (an int beyond 64 bits)."""
    try:
        text = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = ""
    return text if text and text.isascii() else json.dumps(doc, separators=(",", ":"))
