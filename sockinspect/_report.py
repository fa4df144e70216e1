"""Render analysis records for people and spreadsheets: tables fitted to a width, and CSV
rows. The JSON documents are built in ``_documents``. Pure: returns strings."""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from ._delays import held_decimals_ms
from ._documents import tcp_to_dict, udp_to_dict
from ._metrics import CONN_STATES, stats_from_values
from ._model import Capture, Direction, Stats, TcpConnection, UdpFlow

# -- CSV ----------------------------------------------------------------------
# One row per TCP connection and UDP flow. Each column is a key of the capture
# document (docs/json.md) flattened with "_" (``c2s.stalls`` -> ``c2s_stalls``,
# ``handshake.rtt_ms`` -> ``handshake_rtt_ms``), and each value is taken from
# tcp_to_dict / udp_to_dict, so CSV and JSON cannot disagree. TCP and UDP rows
# share the header: a TCP row leaves the UDP-only columns (``a_*``, ``b_*``,
# ``a2b_*``, ``b2a_*``, ``rtt_ms_*``) empty, a UDP row the TCP-only ones. Left
# out: ``stall_list`` (summarized by ``stalls`` and ``stall_ms_total``) and
# ``sizes.histogram`` (its bucket labels depend on the MSS). Documented in the
# "CSV" section of docs/json.md.

_STATS = ("count", "min", "median", "p95", "max")
_DIRECTION_COLUMNS = (
    "packets", "payload_bytes", "unique_bytes", "retransmitted_bytes", "segments", "frame_bytes",
    *(f"sizes_{k}" for k in (*_STATS, "mss", "sub_mss")),
    "mss_option", "segments_over_mss", "offload_suspected", "wscale", "sack_perm", "timestamps",
    "retransmissions", "fins", "rsts", "first_data_ts", "first_data_ts_ns", "last_data_ts", "last_data_ts_ns",
    "data_ms", "throughput_bps", "goodput_bps", "zero_windows", "zero_window_ms_total", "window_full",
    "nagle", "nagle_evidence_small_segments", "nagle_evidence_held_until_ack",
    "nagle_evidence_small_while_small_unacked", *(f"ack_delay_ms_{k}" for k in _STATS),
    "delayed_acks", "stalls", "stall_ms_total",
)
_SHARED_COLUMNS = ("first_ts", "first_ts_ns", "last_ts", "last_ts_ns", "first_packet", "last_packet")
TCP_COLUMNS = (
    "index", "client_addr", "client_port", "client_inferred", "client_ephemeral_linux", "client_ephemeral_iana",
    "server_addr", "server_port", "vlan", "state", "history", "closed_by",
    *(f"handshake_{k}" for k in (
        "complete", "half_seen", "syn_ts", "syn_ts_ns", "last_syn_ts", "last_syn_ts_ns", "synack_ts",
        "synack_ts_ns", "ack_ts", "ack_ts_ns", "syn_count", "syn_retries", "synack_count", "syn_retry_ms",
        "syn_synack_ms", "synack_ack_ms", "rtt_ms")),
    *(f"{d}_{k}" for d in ("c2s", "s2c") for k in _DIRECTION_COLUMNS),
    *_SHARED_COLUMNS, "duration_ms",
    *(f"{m}_{k}" for m in ("request_latency_ms", "response_first_byte_ms") for k in _STATS),
)
UDP_COLUMNS = (
    "index", "a_addr", "a_port", "b_addr", "b_port", "vlan",
    *(f"{d}_{k}" for d in ("a2b", "b2a") for k in ("packets", "bytes", "frame_bytes")),
    *(f"rtt_ms_{k}" for k in _STATS), *_SHARED_COLUMNS,
)
# Not columns: lists of objects and keys that are data (see above).
CSV_LEFT_OUT = ("stall_list", "histogram")
CSV_COLUMNS = ["file", "proto", *TCP_COLUMNS, *(c for c in UDP_COLUMNS if c not in TCP_COLUMNS)]


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"c2s": {"stalls": 1}}`` -> ``{"c2s_stalls": 1}``, without the keys CSV leaves out."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key in CSV_LEFT_OUT:
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}_"))
        else:
            flat[prefix + key] = value
    return flat


def _cell(value: Any) -> Any:
    """A JSON value as a CSV cell: null empty, booleans as JSON spells them, a list of VLAN ids space-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return value


def to_csv_rows(cap: Capture, tcp: Iterable[TcpConnection], udp: Iterable[UdpFlow]) -> list[list]:
    """One row per connection and flow, in CSV_COLUMNS order, the values of the capture document."""
    rows: list[list] = []
    for proto, docs in (("tcp", map(tcp_to_dict, tcp)), ("udp", map(udp_to_dict, udp))):
        for doc in docs:
            flat = {"file": cap.file, "proto": proto, **flatten(doc)}
            rows.append([_cell(flat.get(column)) for column in CSV_COLUMNS])
    return rows


def csv_text(rows: list[list], header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


# -- tables for people --------------------------------------------------------
# Every text function takes ``width``: the terminal's columns (None: no limit,
# what ``analyze --wide`` asks for). A table wider than that is split: its
# columns after the first (or first two) go into tables stacked below, each
# repeating those first columns; headers are two lines ("rtt" over "(ms)"), and
# prose is wrapped. Only a single cell wider than the width still overflows.

_GAP = "  "


def grid(headers: list[str], rows: list[list[Any]], align: str, width: int | None = None, keep: int = 1,
         units: tuple[int, ...] = ()) -> str:
    """A table like tabulate's "simple": ``align`` is one ``l`` or ``r`` per column; a header
    may span lines (``"rtt\n(ms)"``, one line when ``width`` is None). Wider than ``width``,
    the columns after the first ``keep`` are split over stacked tables, each repeating those;
    ``units`` are the sizes of the runs of columns that stay together (c2s pkts and bytes...)
    unless one alone is too wide."""
    if width is None:
        headers = [h.replace("\n", " ") for h in headers]
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(line) for line in h.split("\n")] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    fixed = list(range(min(keep, len(headers))))
    runs, start = [], len(fixed)
    for size in (*units, len(headers)):
        runs.append(list(range(start, min(start + size, len(headers)))))
        start += size
    if width is not None:  # a run too wide alone is split into its columns
        runs = [part for run in runs for part in ([run] if _span(widths, fixed + run) <= width else [[i] for i in run])]
    groups: list[list[int]] = []
    for run in filter(None, runs):
        if groups and (width is None or _span(widths, fixed + groups[-1] + run) <= width):
            groups[-1] += run
        else:
            groups.append(run)
    return "\n\n".join(_render(headers, cells, align, widths, fixed + g) for g in groups or [[]])


def _span(widths: list[int], columns: list[int]) -> int:
    return sum(widths[i] for i in columns) + len(_GAP) * (len(columns) - 1)


def _render(headers: list[str], cells: list[list[str]], align: str, widths: list[int], columns: list[int]) -> str:
    def line(values: list[str]) -> str:
        return _GAP.join(v.rjust(widths[i]) if align[i] == "r" else v.ljust(widths[i])
                         for i, v in zip(columns, values, strict=True)).rstrip()

    split = [headers[i].split("\n") for i in columns]
    height = max(len(h) for h in split)
    head = [line([([""] * (height - len(h)) + h)[n] for h in split]) for n in range(height)]
    return "\n".join([*head, line(["-" * widths[i] for i in columns]), *(line([r[i] for i in columns]) for r in cells)])


def wrap(text: str, width: int | None, indent: str = "") -> str:
    """Prose to the width, continuation lines indented; paths and numbers are never broken."""
    if width is None:
        return text
    return textwrap.fill(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _q(value: float | None, of: Stats | None = None) -> str:
    """A quantile from a bounded sketch (ms): only the digits the sketch holds; all of
    them when it is ``of``'s exact min or max (it was clamped there), or when fewer would
    read outside them."""
    if value is None:
        return "-"
    text = _num(value, max(held_decimals_ms(value), 0))
    if of is not None and (value in (of.min, of.max) or not of.min <= float(text) <= of.max):
        return _num(value)  # its digits, as min and max are shown
    return text


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 packet", "2 packets" (``many``: a plural that is not word + s)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def _client(c: TcpConnection) -> str:
    mark = "*" if c.client_port_ephemeral_linux or c.client_port_ephemeral_iana else ""
    return f"{c.client}{mark}" + (" (inferred)" if c.inferred else "")


def summary_line(cap: Capture, n_tcp: int, n_udp: int, width: int | None = None) -> str:
    return wrap(
        f"{cap.file}: {cap.format}, {'/'.join(cap.linktypes) or 'no interfaces'}, "
        f"{plural(cap.packets, 'packet')}, {_start(cap.first_ts_ns)}, {_num(cap.duration_ms)} ms; "
        f"{plural(n_tcp, 'TCP connection')}, {plural(n_udp, 'UDP flow')}", width, "  ")


def _start(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "no timestamps"
    try:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a clock no calendar covers: say the number
        return f"t={ts_ns / 1e9:.9f} s"


def tcp_table(conns: Iterable[TcpConnection], width: int | None = None) -> str:
    conns = list(conns)
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
        "#", "client", "server", "state", "rtt\n(ms)", "syn→synack\n(ms)", "synack→ack\n(ms)",
        "c2s\npkts", "c2s\nbytes", "s2c\npkts", "s2c\nbytes", "duration\n(ms)",
    ]
    return grid(headers, rows, "rlll" + "r" * 8, width, units=(3, 3, 4)) + "\n" + state_legend(conns, width)


def state_legend(conns: Iterable[TcpConnection], width: int | None = None) -> str:
    """One line: what the states in the table mean, and the * mark."""
    order = list(CONN_STATES)
    states = sorted({c.state for c in conns} & set(order), key=order.index)
    meaning = "; ".join(f"{s} = {CONN_STATES[s]}" for s in states)
    return wrap(f"state: {meaning} (Zeek's conn_state). * client port in an ephemeral range.", width, "  ")


def udp_table(flows: Iterable[UdpFlow], width: int | None = None) -> str:
    rows = [
        [
            f.index, str(f.a), str(f.b), f.a2b.packets, f.a2b.bytes, f.b2a.packets, f.b2a.bytes,
            f.rtt_ms.count, _q(f.rtt_ms.median, f.rtt_ms),
        ]
        for f in flows
    ]
    headers = ["#", "a", "b", "a→b\npkts", "a→b\nbytes", "b→a\npkts", "b→a\nbytes", "round\ntrips",
               "rtt median\n(ms)"]
    legend = "a sent the first datagram; a round trip is an a→b datagram answered by the next b→a one."
    return grid(headers, rows, "rll" + "r" * 6, width, units=(2, 4)) + "\n" + wrap(legend, width, "  ")


TIMING_LEGEND = (
    "nagle: on, off (TCP_NODELAY) or unknown; held: small segments that waited for the previous one's ACK "
    "(on), unacked: sent while one was unacknowledged (off). stalls: delayed ACKs the sender waited for. "
    "resent: retransmitted payload bytes."
)


def timing_table(conns: Iterable[TcpConnection], width: int | None = None) -> str:
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
                f"{_q(a.median, a)}/{_q(a.p95, a)}/{_num(a.max)}", d.delayed_acks, d.stalls,
                _num(d.stall_ms_total, 1), d.retransmitted_bytes, _mbit(d.goodput_bps),
            ])
    headers = [
        "#", "dir", "segments", "size (B)\nmin/med/p95/max", "sub-MSS", "nagle\n(held/unacked)",
        "ack delay (ms)\nmed/p95/max", "delayed\nACKs", "stalls", "time lost\n(ms)", "resent\n(B)",
        "goodput\n(Mbit/s)",
    ]
    if not rows:
        return ""
    table = grid(headers, rows, "rl" + "r" * 10, width, keep=2, units=(3, 1, 1, 3))
    return table + "\n" + wrap(TIMING_LEGEND, width, "  ")


def stall_table(d: Direction, width: int | None = None) -> str:
    rows = [[s.data_packet, s.ack_packet, s.next_packet, _num(s.ack_delay_ms), _num(s.gap_ms)]
            for s in d.stall_list]
    headers = ["data pkt", "delayed ACK pkt", "next data pkt", "ACK delay (ms)", "gap (ms)"]
    return grid(headers, rows, "rrrrr", width, keep=0)


def offload_notes(conns: Iterable[TcpConnection], width: int | None = None) -> list[str]:
    """One line per direction whose segments exceed the MSS: segmentation offload."""
    notes = []
    for c in conns:
        for name in ("c2s", "s2c"):
            d: Direction = getattr(c, name)
            if d.offload_suspected:
                notes.append(wrap(
                    f"note: #{c.index} {name}: {d.segments_over_mss} segments larger than the MSS "
                    f"({d.sizes.mss} B), up to {d.sizes.max} B: the capture host used segmentation "
                    "offload (TSO/GSO/GRO), so sizes are what the kernel handled, not the packets on the wire",
                    width, "  "))
    return notes


def defects_line(cap: Capture, width: int | None = None) -> str | None:
    if not cap.defects:
        return None
    parts = ", ".join(f"{kind} {count}" for kind, count in cap.defects.items())
    return wrap(f"not analyzed: {parts} packets", width, "  ")


def _yes(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def connection_detail(c: TcpConnection, width: int | None = None) -> str:
    """Every measured fact about one connection, in words: a table of the connection,
    then one of its two directions side by side."""
    h = c.handshake
    rows: list[list[Any]] = [
        ["connection", c.index],
        ["client (sent the SYN)", _client(c)],
        ["client port in an ephemeral range", _ranges(c)],
        ["server", str(c.server)],
        ["VLAN ids", ",".join(map(str, c.vlan)) or "-"],
        ["state (Zeek)", f"{c.state}: {CONN_STATES.get(c.state, '')}"],
        ["history (Zeek)", c.history or "-"],
        ["closed by (first FIN or RST)", c.closed_by or "-"],
        ["packets (frame numbers)", f"{c.first_packet} .. {c.last_packet}"],
        ["duration (ms)", _num(c.duration_ms)],
        ["SYNs sent", h.syn_count],
        ["time lost to SYN retries (ms)", _num(h.syn_retry_ms)],
        ["SYN → SYN/ACK (ms)", _num(h.syn_synack_ms)],
        ["SYN/ACK → ACK (ms)", _num(h.synack_ack_ms)],
        ["handshake rtt (ms)", _num(h.rtt_ms) + (" (half-seen: no SYN/ACK captured)" if h.half_seen else "")],
    ]
    from tabulate import tabulate  # here: importing it reads package metadata, ~20 ms

    table = tabulate(rows, tablefmt="plain", disable_numparse=True)
    out = f"{table}\n\n{_direction_table(c, width)}"
    notes = offload_notes([c], width)
    if notes:
        out += "\n\n" + "\n".join(notes)
    for name in ("c2s", "s2c"):
        d: Direction = getattr(c, name)
        if d.stall_list:
            shown = "" if len(d.stall_list) == d.stalls else f" (first {len(d.stall_list)} of {d.stalls})"
            out += f"\n\n{name} stalls: the sender waited for a delayed ACK{shown}\n{stall_table(d, width)}"
    lat, first = c.request_latency_ms, c.response_first_byte_ms
    if lat.count:
        out += "\n\n" + wrap(
            f"request latency (a request's first byte -> its reply's last byte): {plural(lat.count, 'request')}, "
            f"median {_q(lat.median, lat)} ms, p95 {_q(lat.p95, lat)} ms, max {_num(lat.max)} ms", width, "  ")
        out += "\n" + wrap(
            f"response first byte (a request's first byte -> its reply's first byte): "
            f"median {_q(first.median, first)} ms, p95 {_q(first.p95, first)} ms, max {_num(first.max)} ms",
            width, "  ")
    return out


def _direction_table(c: TcpConnection, width: int | None) -> str:
    """The two directions side by side, a row per fact, named in words (JSON key in docs/json.md)."""

    def row(label: str, get: Any, show: Any = str) -> list[str]:
        return [label, *(("-" if (v := get(d)) is None else show(v)) for d in (c.c2s, c.s2c))]

    rows = [
        row("packets", lambda d: d.packets),
        row("segments with payload", lambda d: d.segments),
        row("payload bytes (resent counted again)", lambda d: d.payload_bytes),
        row("  new (unique) payload bytes", lambda d: d.unique_bytes),
        row("  retransmitted payload bytes", lambda d: d.retransmitted_bytes),
        row("retransmitted segments", lambda d: d.retransmissions),
        row("frame bytes (link header included)", lambda d: d.frame_bytes),
        row("MSS option of its SYN (B)", lambda d: d.mss_option),
        row("full-sized payload (B): the peer's MSS", lambda d: d.sizes.mss),
        row("window scale of its SYN", lambda d: d.wscale),
        row("SACK permitted in its SYN", lambda d: d.sack_perm, _yes),
        row("timestamps in its SYN", lambda d: d.timestamps, _yes),
        row("FINs sent", lambda d: d.fins),
        row("RSTs sent", lambda d: d.rsts),
        *(row(f"payload size {label} (B)", lambda d, k=label: getattr(d.sizes, k), _size)
          for label in ("min", "median", "p95", "max")),
        row("sub-MSS segments (smaller than full-sized)", lambda d: d.sizes.sub_mss),
        row("segments over the full size", lambda d: d.segments_over_mss),
        row("segmentation offload suspected", lambda d: d.offload_suspected, _yes),
        row("Nagle's algorithm", lambda d: d.nagle),
        row("  small segments (first sends)", lambda d: d.nagle_evidence.small_segments),
        row("  held until the ACK (Nagle on)", lambda d: d.nagle_evidence.held_until_ack),
        row("  sent while one was unacked (off)", lambda d: d.nagle_evidence.small_while_small_unacked),
        row("ACKs timed", lambda d: d.ack_delay_ms.count),
        *(row(f"ACK delay {label} (ms)", lambda d, k=label: getattr(d.ack_delay_ms, k),
              _q if label in ("median", "p95") else _fmt) for label in ("min", "median", "p95", "max")),
        row("delayed ACKs (by the receiver)", lambda d: d.delayed_acks),
        row("stalls (sender waited for one)", lambda d: d.stalls),
        row("time lost in stalls (ms)", lambda d: d.stall_ms_total, _num),
        row("zero-window segments sent", lambda d: d.zero_windows),
        row("time at zero window (ms)", lambda d: d.zero_window_ms_total, _num),
        row("segments that filled the window", lambda d: d.window_full),
        row("data transfer (ms)", lambda d: d.data_ms, _num),
        row("throughput (Mbit/s)", lambda d: d.throughput_bps, _mbit),
        row("goodput (Mbit/s)", lambda d: d.goodput_bps, _mbit),
    ]
    return grid(["", "c2s", "s2c"], rows, "lrr", width)


def _size(value: float) -> str:
    """Bytes: whole, or the half of an even count's median."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _mbit(bps: float | None) -> str:
    return _num(None if bps is None else bps / 1e6)


def _fmt(value: float | int | None) -> str:
    return _num(value) if isinstance(value, float) else "-" if value is None else str(value)


def short_names(paths: list[str]) -> list[str]:
    """Capture paths as column headers: their base names when those differ, else the paths
    without the directories they all share."""
    bases = [PurePath(p).name for p in paths]
    if len(set(bases)) == len(bases) and all(bases):
        return bases
    parts = [PurePath(p).parts for p in paths]
    common = 0
    while all(len(q) > common + 1 and q[common] == parts[0][common] for q in parts):
        common += 1
    return [str(PurePath(*q[common:])) for q in parts]


def compare_table(caps: list[tuple[Capture, list[TcpConnection], list[UdpFlow]]], width: int | None = None) -> str:
    """Captures side by side, one column each: their TCP connections, summed (the sending
    direction that carried the most segments, usually the client's), and their UDP flows."""
    labels = [
        "TCP connections", "data direction", "segments", "size median (B)", "sub-MSS segments", "nagle",
        "nagle evidence held/unacked", "ack delay median (ms)", "ack delay max (ms)", "delayed ACKs",
        "stalls", "time lost (ms)", "request latency median (ms)", "request latency p95 (ms)",
    ]
    columns = [_compare_column(conns) for _cap, conns, _udp in caps]
    if any(udp for _cap, _tcp, udp in caps):
        labels += ["UDP flows", "datagrams a→b/b→a", "round trips", "round trip median (ms)", "round trip max (ms)"]
        for column, (_cap, _tcp, udp) in zip(columns, caps, strict=True):
            column += _compare_udp(udp)
    rows = [[label, *(col[i] for col in columns)] for i, label in enumerate(labels)]
    files = [cap.file for cap, _, _ in caps]
    headers = ["", *(files if width is None else short_names(files))]
    table = grid(headers, rows, "l" + "r" * len(caps), width)
    if any(len(conns) > 1 for _cap, conns, _udp in caps):
        table += "\n" + wrap("with several connections: a median is the median of the connections' medians, a p95 "
                             "or max the largest of theirs.", width, "  ")
    return table


def _compare_udp(flows: list[UdpFlow]) -> list[str]:
    if not flows:
        return ["0"] + ["-"] * 4
    rtt = [f.rtt_ms for f in flows if f.rtt_ms.count]
    return [
        str(len(flows)), f"{sum(f.a2b.packets for f in flows)}/{sum(f.b2a.packets for f in flows)}",
        str(sum(s.count for s in rtt)), _q(stats_from_values([s.median for s in rtt]).median),
        _num(max((s.max for s in rtt), default=None)),
    ]


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


def text_report(cap: Capture, tcp: list[TcpConnection], udp: list[UdpFlow], width: int | None = None) -> str:
    """The capture's summary line, its tables, notes and defects; ``width`` as for ``grid``."""
    parts = [summary_line(cap, len(tcp), len(udp), width)]
    if tcp:
        parts.append("\nTCP connections\n" + tcp_table(tcp, width))
        timing = timing_table(tcp, width)
        if timing:
            parts.append("\nSegment sizes, Nagle and delayed ACKs (per sending direction)\n" + timing)
    if udp:
        parts.append("\nUDP flows\n" + udp_table(udp, width))
    notes = offload_notes(tcp, width)
    if notes:
        parts.append("\n" + "\n".join(notes))
    extra = defects_line(cap, width)
    if extra:
        parts.append("\n" + extra)
    return "\n".join(parts)
