"""Render analysis records for people and spreadsheets: tables (tabulate) and CSV
rows. The JSON documents are built in ``_documents``. Pure: returns strings."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

from tabulate import tabulate

from ._delays import held_decimals_ms
from ._documents import _round
from ._metrics import CONN_STATES, stats_from_values
from ._model import Capture, Direction, TcpConnection, UdpFlow

# -- CSV ----------------------------------------------------------------------

CSV_COLUMNS = [
    "file", "proto", "index", "client_addr", "client_port", "server_addr", "server_port",
    "state", "rtt_ms", "syn_synack_ms", "synack_ack_ms", "c2s_packets", "c2s_payload_bytes",
    "c2s_segments", "s2c_packets", "s2c_payload_bytes", "s2c_segments", "duration_ms",
]


def to_csv_rows(cap: Capture, tcp: Iterable[TcpConnection], udp: Iterable[UdpFlow]) -> list[list]:
    """One row per connection and flow; for UDP, client = a, server = b, c2s = a2b."""
    rows: list[list] = []
    for c in tcp:
        h = c.handshake
        rows.append([
            cap.file, "tcp", c.index, c.client.addr, c.client.port, c.server.addr, c.server.port,
            c.state, _round(h.rtt_ms), _round(h.syn_synack_ms), _round(h.synack_ack_ms),
            c.c2s.packets, c.c2s.payload_bytes, c.c2s.segments,
            c.s2c.packets, c.s2c.payload_bytes, c.s2c.segments, _round(c.duration_ms),
        ])
    for f in udp:
        rows.append([
            cap.file, "udp", f.index, f.a.addr, f.a.port, f.b.addr, f.b.port,
            "", _round(f.rtt_ms.median), "", "", f.a2b.packets, f.a2b.bytes, f.a2b.packets,
            f.b2a.packets, f.b2a.bytes, f.b2a.packets, _round(f.duration_ms),
        ])
    return rows


def csv_text(rows: list[list], header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue()


# -- tables for people --------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _q(value: float | None) -> str:
    """A quantile from a bounded sketch (ms): only the digits the sketch holds."""
    return "-" if value is None else _num(value, max(held_decimals_ms(value), 0))


def _client(c: TcpConnection) -> str:
    mark = "*" if c.client_port_ephemeral_linux or c.client_port_ephemeral_iana else ""
    return f"{c.client}{mark}" + (" (inferred)" if c.inferred else "")


def summary_line(cap: Capture, n_tcp: int, n_udp: int) -> str:
    return (
        f"{cap.file}: {cap.format}, {'/'.join(cap.linktypes) or 'no interfaces'}, "
        f"{cap.packets} packets, {_start(cap.first_ts_ns)}, {_num(cap.duration_ms)} ms; "
        f"{n_tcp} TCP connections, {n_udp} UDP flows"
    )


def _start(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "no timestamps"
    try:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a clock no calendar covers: say the number
        return f"t={ts_ns / 1e9:.9f} s"


def tcp_table(conns: Iterable[TcpConnection]) -> str:
    rows = [
        [
            c.index, _client(c), str(c.server), c.state,
            _num(c.handshake.rtt_ms), _num(c.handshake.syn_synack_ms), _num(c.handshake.synack_ack_ms),
            c.c2s.packets, c.c2s.payload_bytes, c.s2c.packets, c.s2c.payload_bytes,
            _num(c.duration_ms),
        ]
        for c in conns
    ]
    headers = [
        "#", "client", "server", "state", "rtt (ms)", "syn→synack (ms)", "synack→ack (ms)",
        "c2s pkts", "c2s bytes", "s2c pkts", "s2c bytes", "duration (ms)",
    ]
    return tabulate(rows, headers, disable_numparse=True, colalign=_right(headers, 4))


def udp_table(flows: Iterable[UdpFlow]) -> str:
    rows = [
        [
            f.index, str(f.a), str(f.b), f.a2b.packets, f.a2b.bytes, f.b2a.packets, f.b2a.bytes,
            f.rtt_ms.count, _q(f.rtt_ms.median),
        ]
        for f in flows
    ]
    headers = ["#", "a", "b", "a→b pkts", "a→b bytes", "b→a pkts", "b→a bytes", "replies", "rtt median (ms)"]
    return tabulate(rows, headers, disable_numparse=True, colalign=_right(headers, 3))


def timing_table(conns: Iterable[TcpConnection]) -> str:
    """Per direction that carried data: sizes, Nagle verdict, ACK delays, stalls."""
    rows = []
    for c in conns:
        for name in ("c2s", "s2c"):
            d: Direction = getattr(c, name)
            if not d.segments:
                continue
            z, e, a = d.sizes, d.nagle_evidence, d.ack_delay_ms
            rows.append([
                c.index, name, d.segments, f"{z.min}/{_num(z.median, 0)}/{z.p95}/{z.max}", z.sub_mss,
                f"{d.nagle} ({e.held_until_ack}/{e.small_while_small_unacked})",
                f"{_q(a.median)}/{_q(a.p95)}/{_num(a.max)}", d.delayed_acks, d.stalls,
                _num(d.stall_ms_total, 1), d.retransmitted_bytes, _mbit(d.goodput_bps),
            ])
    headers = [
        "#", "dir", "segments", "size min/med/p95/max (B)", "sub-MSS", "nagle (held/unacked)",
        "ack delay med/p95/max (ms)", "delayed ACKs", "stalls", "time lost (ms)", "resent (B)",
        "goodput (Mbit/s)",
    ]
    return tabulate(rows, headers, disable_numparse=True, colalign=_right(headers, 2)) if rows else ""


def stall_table(d: Direction) -> str:
    rows = [[s.data_packet, s.ack_packet, s.next_packet, _num(s.ack_delay_ms), _num(s.gap_ms)]
            for s in d.stall_list]
    headers = ["data pkt", "delayed ACK pkt", "next data pkt", "ACK delay (ms)", "gap (ms)"]
    return tabulate(rows, headers, disable_numparse=True, colalign=["right"] * 5)


def _right(headers: list[str], first_numeric: int) -> list[str]:
    return ["right"] + ["left"] * (first_numeric - 1) + ["right"] * (len(headers) - first_numeric)


def offload_notes(conns: Iterable[TcpConnection]) -> list[str]:
    """One line per direction whose segments exceed the MSS: segmentation offload."""
    notes = []
    for c in conns:
        for name in ("c2s", "s2c"):
            d: Direction = getattr(c, name)
            if d.offload_suspected:
                notes.append(
                    f"note: #{c.index} {name}: {d.segments_over_mss} segments larger than the MSS "
                    f"({d.sizes.mss} B), up to {d.sizes.max} B: the capture host used segmentation "
                    "offload (TSO/GSO/GRO), so sizes are what the kernel handled, not the packets on the wire")
    return notes


def defects_line(cap: Capture) -> str | None:
    if not cap.defects:
        return None
    parts = ", ".join(f"{kind} {count}" for kind, count in cap.defects.items())
    return f"not analyzed: {parts} packets"


def connection_detail(c: TcpConnection) -> str:
    """Every measured fact about one connection, as a two-column table."""
    h = c.handshake
    rows: list[tuple[str, Any]] = [
        ("connection", c.index),
        ("client", _client(c)),
        ("client port ephemeral", _ranges(c)),
        ("server", str(c.server)),
        ("vlan", ",".join(map(str, c.vlan)) or "-"),
        ("state", f"{c.state} ({CONN_STATES.get(c.state, '')})"),
        ("history (Zeek)", c.history or "-"),
        ("closed by", c.closed_by or "-"),
        ("packets", f"{c.first_packet} .. {c.last_packet}"),
        ("duration (ms)", _num(c.duration_ms)),
        ("SYN sent (count)", h.syn_count),
        ("first SYN → last SYN (ms)", _num(h.syn_retry_ms)),
        ("SYN → SYN/ACK (ms)", _num(h.syn_synack_ms)),
        ("SYN/ACK → ACK (ms)", _num(h.synack_ack_ms)),
        ("handshake rtt (ms)", _num(h.rtt_ms) + (" (half-seen: no SYN/ACK captured)" if h.half_seen else "")),
    ]
    table = tabulate(rows, tablefmt="plain", disable_numparse=True)
    per_dir = [
        [name, getattr(c.c2s, name), getattr(c.s2c, name)]
        for name in (f.name for f in fields(Direction))
        if not is_dataclass(getattr(c.c2s, name))
        and name not in ("stall_list", "stall_ns_total", "first_data_ts_ns", "last_data_ts_ns",
                         "zero_window_ns_total")
    ]
    for label in ("min", "median", "p95", "max"):
        per_dir.append([f"payload size {label} (B)", getattr(c.c2s.sizes, label), getattr(c.s2c.sizes, label)])
    per_dir.append(["sub-MSS segments", c.c2s.sizes.sub_mss, c.s2c.sizes.sub_mss])
    per_dir.append(["full-sized segment: the peer's MSS (B)", c.c2s.sizes.mss, c.s2c.sizes.mss])
    per_dir.append(["segments over that MSS", c.c2s.segments_over_mss, c.s2c.segments_over_mss])
    for label in ("held_until_ack", "small_while_small_unacked"):
        per_dir.append([f"nagle evidence: {label}", getattr(c.c2s.nagle_evidence, label),
                        getattr(c.s2c.nagle_evidence, label)])
    for label in ("count", "min", "median", "p95", "max"):
        unit = "" if label == "count" else " (ms)"
        show = _q if label in ("median", "p95") else _fmt
        per_dir.append([f"ack delay {label}{unit}", show(getattr(c.c2s.ack_delay_ms, label)),
                        show(getattr(c.s2c.ack_delay_ms, label))])
    per_dir.append(["time lost in stalls (ms)", _num(c.c2s.stall_ms_total), _num(c.s2c.stall_ms_total)])
    per_dir.append(["time at zero window (ms)", _num(c.c2s.zero_window_ms_total), _num(c.s2c.zero_window_ms_total)])
    per_dir.append(["data transfer (ms)", _num(c.c2s.data_ms), _num(c.s2c.data_ms)])
    for label, attr in (("throughput (Mbit/s)", "throughput_bps"), ("goodput (Mbit/s)", "goodput_bps")):
        per_dir.append([label, _mbit(getattr(c.c2s, attr)), _mbit(getattr(c.s2c, attr))])
    dirs = tabulate(
        [[k, "-" if a is None else a, "-" if b is None else b] for k, a, b in per_dir],
        ["", "c2s", "s2c"], disable_numparse=True, colalign=("left", "right", "right"),
    )
    out = f"{table}\n\n{dirs}"
    notes = offload_notes([c])
    if notes:
        out += "\n\n" + "\n".join(notes)
    for name in ("c2s", "s2c"):
        d: Direction = getattr(c, name)
        if d.stall_list:
            shown = "" if len(d.stall_list) == d.stalls else f" (first {len(d.stall_list)} of {d.stalls})"
            out += f"\n\n{name} stalls: the sender waited for a delayed ACK{shown}\n{stall_table(d)}"
    lat, first = c.request_latency_ms, c.response_first_byte_ms
    if lat.count:
        out += (f"\n\nrequest latency (a request's first byte -> its reply's last byte): {lat.count} requests, "
                f"median {_q(lat.median)} ms, p95 {_q(lat.p95)} ms, max {_num(lat.max)} ms"
                f"\nresponse first byte (a request's first byte -> its reply's first byte): "
                f"median {_q(first.median)} ms, p95 {_q(first.p95)} ms, max {_num(first.max)} ms")
    return out


def _mbit(bps: float | None) -> str:
    return _num(None if bps is None else bps / 1e6)


def _fmt(value: float | int | None) -> str:
    return _num(value) if isinstance(value, float) else "-" if value is None else str(value)


def compare_table(caps: list[tuple[Capture, list[TcpConnection]]]) -> str:
    """Captures side by side, one column each, summed over their TCP connections
    (the sending direction that carried the most segments, usually the client's)."""
    labels = [
        "connections", "data direction", "segments", "size median (B)", "sub-MSS segments", "nagle",
        "nagle evidence held/unacked", "ack delay median (ms)", "ack delay max (ms)", "delayed ACKs",
        "stalls", "time lost (ms)", "request latency median (ms)", "request latency p95 (ms)",
    ]
    columns = [_compare_column(conns) for _cap, conns in caps]
    rows = [[label, *(col[i] for col in columns)] for i, label in enumerate(labels)]
    headers = ["", *(cap.file for cap, _ in caps)]
    return tabulate(rows, headers, disable_numparse=True, colalign=["left"] + ["right"] * len(caps))


def _compare_column(conns: list[TcpConnection]) -> list[str]:
    if not conns:
        return ["0"] + ["-"] * 13
    dirs = {"c2s": [c.c2s for c in conns], "s2c": [c.s2c for c in conns]}
    name = max(dirs, key=lambda k: (sum(d.segments for d in dirs[k]), k == "c2s"))
    ds = dirs[name]
    verdicts = sorted({d.nagle for d in ds if d.segments})
    medians = [d.ack_delay_ms.median for d in ds if d.ack_delay_ms.median is not None]
    maxes = [d.ack_delay_ms.max for d in ds if d.ack_delay_ms.max is not None]
    sizes = [d.sizes.median for d in ds if d.sizes.median is not None]
    lat = [c.request_latency_ms for c in conns if c.request_latency_ms.count]
    return [
        str(len(conns)), name, str(sum(d.segments for d in ds)),
        _num(stats_from_values(sizes).median, 0), str(sum(d.sizes.sub_mss for d in ds)), "/".join(verdicts) or "-",
        f"{sum(d.nagle_evidence.held_until_ack for d in ds)}/"
        f"{sum(d.nagle_evidence.small_while_small_unacked for d in ds)}",
        _q(stats_from_values(medians).median), _num(max(maxes) if maxes else None),
        str(sum(d.delayed_acks for d in ds)),
        str(sum(d.stalls for d in ds)), _num(sum(d.stall_ms_total for d in ds), 1),
        _q(stats_from_values([s.median for s in lat]).median), _q(max((s.p95 for s in lat), default=None)),
    ]


def _ranges(c: TcpConnection) -> str:
    ranges = [n for n, ok in (("Linux 32768-60999", c.client_port_ephemeral_linux),
                              ("IANA 49152-65535", c.client_port_ephemeral_iana)) if ok]
    return ", ".join(ranges) or "no"


def text_report(cap: Capture, tcp: list[TcpConnection], udp: list[UdpFlow]) -> str:
    parts = [summary_line(cap, len(tcp), len(udp))]
    if tcp:
        parts.append("\nTCP connections (* = client port in an ephemeral range)\n" + tcp_table(tcp))
        timing = timing_table(tcp)
        if timing:
            parts.append("\nSegment sizes, Nagle and delayed ACKs (per sending direction)\n" + timing)
    if udp:
        parts.append("\nUDP flows\n" + udp_table(udp))
    notes = offload_notes(tcp)
    if notes:
        parts.append("\n" + "\n".join(notes))
    extra = defects_line(cap)
    if extra:
        parts.append("\n" + extra)
    return "\n".join(parts)

