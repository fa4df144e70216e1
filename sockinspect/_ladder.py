"""A TCP connection drawn as a ladder (sequence) diagram for a terminal: the client's
lifeline on the left, the server's on the right, one arrow per packet, and in the
margin what the analysis noticed, in words. Pure: packets in, lines out."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._decode import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from ._model import TcpConnection
from ._packets import ConnectionPackets
from ._report import plural
from ._syscalls import RECEIVES, SENDS, Syscall

MIN_WIDTH = 60
MAX_WIDTH = 1000  # a wider one is drawn this wide
COLLAPSE_MIN = 8  # unremarkable packets in a row (a bulk run) shown as one line from this many
TIME_WIDTH = 21  # "  12345.678  +12.345 ": ms since the first packet, since the previous one
# tcpdump's letters, in its order (the bits' order): [S.] SYN/ACK, [FP.] FIN/PSH/ACK, [SEW] ECN setup
_FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))
MIN_MARGIN = 16  # columns kept for the notes when the arrows need more room

UNICODE = {"line": "│", "dash": "─", "right": "▶", "left": "◀", "more": "…", "gap": "┆", "call": "•"}
ASCII = {"line": "|", "dash": "-", "right": ">", "left": "<", "more": "...", "gap": ":", "call": "*"}
UNICODE_CHARS = "".join(UNICODE.values())


def ladder(cp: ConnectionPackets, width: int = 80, ascii_only: bool = False, every: bool = False,
           calls: Sequence[tuple[int, Syscall]] = ()) -> list[str]:
    """The diagram's lines, none longer than ``width`` (at least MIN_WIDTH). ``every``:
    show every packet (else runs of COLLAPSE_MIN or more unremarkable ones are one line).
    ``calls``: the programs' socket calls, (side, call), set in by the time they returned."""
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"the ladder is {MIN_WIDTH} to {MAX_WIDTH} columns wide, not {width}")
    ch = ASCII if ascii_only else UNICODE
    band, fields = _layout(cp, width)
    margin = width - TIME_WIDTH - band - 1
    c = cp.connection
    notes = _notes(cp)
    times = [t for t in cp.ts_ns if t is not None]
    t0 = times[0] if times else None
    lines = _header(c, width, band, ch)
    previous = None
    for item in _items(_events(cp, calls), cp, notes, every):
        if isinstance(item, _Run):
            text = item.text(ch["more"])
            if len(text) <= band - 2:
                lines.append(" " * TIME_WIDTH + ch["gap"] + text.center(band - 2) + ch["gap"])
            else:  # on into the margin, over as many lines as it takes
                lines += [" " * TIME_WIDTH + ch["gap"] + " " + part
                          for part in textwrap.wrap(text, width - TIME_WIDTH - 2)]
            previous = item.last_ts if item.last_ts is not None else previous
            continue
        ts = item.ts
        clock = " " * TIME_WIDTH
        if ts is not None and t0 is not None:
            gap = "" if previous is None else _number((ts - previous) / 1e6, 9, "+")
            clock = f"{_number((ts - t0) / 1e6, 10)} {gap:>9}".ljust(TIME_WIDTH)
            previous = ts
        if item.call is not None:
            lines.append(_fit(clock + _call_row(item.call.text(), item.side, band, ch), width))
            continue
        k = item.k
        words = notes.get(cp.number[k], [])
        wrapped = [w for note in words for w in _wrap(note, max(margin - 1, 8))] if margin > 8 else []
        arrow = _arrow(_label(cp, k, fields), cp.side[k], band, ch)
        lines.append(_fit(clock + arrow + (" " + wrapped[0] if wrapped else ""), width))
        for more in wrapped[1:]:
            lines.append(_fit(" " * TIME_WIDTH + ch["line"] + " " * (band - 2) + ch["line"] + " " + more, width))
        if margin <= 8:  # no room beside the arrow: the notes go under it
            for note in words:
                for w in _wrap(note, band - 4):
                    lines.append(_fit(" " * TIME_WIDTH + ch["line"] + " " + w.ljust(band - 3) + ch["line"], width))
    lines += [""] + [_fit(s, width) for s in _summary(c, width)]
    return lines


def _header(c: TcpConnection, width: int, band: int, ch: dict[str, str]) -> list[str]:
    client, server = f"client {c.client}", f"server {c.server}"
    head = " " * TIME_WIDTH + client.ljust(band - len(server)) + server if len(client) + len(server) < band else ""
    lines = textwrap.wrap(f"TCP connection {c.index}: {c.client} -> {c.server}, {c.packets} packets, state "
                          f"{c.state}" + (" (client inferred)" if c.inferred else ""), width)
    if not head:
        lines += [_fit(" " * TIME_WIDTH + client, width), _fit(" " * TIME_WIDTH + server.rjust(band), width)]
    else:
        lines.append(_fit(head, width))
    lines.append(_fit(f"{'ms':>10} {'+gap':>9}".ljust(TIME_WIDTH) + ch["line"] + " " * (band - 2) + ch["line"], width))
    return lines


def _label(cp: ConnectionPackets, k: int, fields: int) -> str:
    """Flags, seq (a range when data), ack; then window and length (``fields``: 2 both, 1
    the window only... 0 neither), as tcpdump has them."""
    flags = cp.flags[k]
    letters = "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit)
    n = cp.length[k]
    parts = [f"[{letters or 'none'}]"]
    if n or flags & (SYN | FIN | RST) or not flags & ACK:
        parts.append(f"seq {cp.seq[k]}" + (f":{cp.seq[k] + n}" if n else ""))
    if flags & ACK:
        parts.append(f"ack {cp.ack[k]}")
    if fields >= 1:
        parts.append(f"win {cp.window[k]}")
    if fields >= 2 and n:
        parts.append(f"len {n}")
    return " ".join(parts)


def _layout(cp: ConnectionPackets, width: int) -> tuple[int, int]:
    """(band, fields): the arrows' width, and which of window and length every arrow
    shows (the same on every row: one missing would read as zero). Digits are never cut:
    the band grows into the margin for the labels it must hold."""
    band = max(30, (width - TIME_WIDTH) * 3 // 5)
    widest = band
    for fields in (2, 1, 0):
        need = max((len(_label(cp, k, fields)) + 7 for k in range(len(cp.number))), default=0)
        if need <= band:
            return band, fields
        widest = need
    room = width - TIME_WIDTH - 1  # all of it, the notes going under the arrows, if need be
    return min(widest, room - MIN_MARGIN if widest <= room - MIN_MARGIN else room), 0


def _arrow(label: str, side: int, band: int, ch: dict[str, str]) -> str:
    """``│── label ──▶│`` (client to server, side 0) or ``│◀── label ──│``, ``band`` wide."""
    inner = band - 2
    room = inner - 5
    if len(label) > room:
        label = label[: max(room - len(ch["more"]), 0)] + ch["more"]
    body = f"{ch['dash'] * 2} {label} ".ljust(inner - 1, ch["dash"])
    return ch["line"] + (body + ch["right"] if side == 0 else ch["left"] + body) + ch["line"]


def _call_row(text: str, side: int, band: int, ch: dict[str, str]) -> str:
    """A program's call, beside the lifeline of the side that made it."""
    inner = band - 2
    if len(text) > inner - 3:
        text = text[: inner - 3 - len(ch["more"])] + ch["more"]
    body = f" {ch['call']} {text}".ljust(inner) if side == 0 else f"{text} {ch['call']} ".rjust(inner)
    return ch["line"] + body + ch["line"]


def _number(value: float, width: int, sign: str = "") -> str:
    """``value`` with 3 decimals in ``width`` columns, fewer when it is too large (a long
    gap, a capture whose clock jumped); "#" when even its integer part is wider."""
    for decimals in (3, 1, 0):
        text = f"{value:{sign}.{decimals}f}"
        if len(text) <= width:
            return text.rjust(width)
    return "#".rjust(width)


def _fit(line: str, width: int) -> str:
    return line.rstrip()[:width]


@dataclass(frozen=True)
class _Event:
    """A packet (its position ``k``) or a program's call, at time ``ts``."""

    ts: int | None
    k: int = -1
    side: int = 0
    call: Syscall | None = None


def _events(cp: ConnectionPackets, calls: Sequence[tuple[int, Syscall]]) -> list[_Event]:
    """Packets in capture order, calls by the time they returned, merged by time."""
    packets = [_Event(cp.ts_ns[k], k, cp.side[k]) for k in range(len(cp.number))]
    made = sorted((_Event(call.end_ns, side=side, call=call) for side, call in calls), key=lambda e: e.ts)
    if not made:
        return packets
    out, j = [], 0
    for e in packets:
        while j < len(made) and e.ts is not None and made[j].ts <= e.ts:
            out.append(made[j])
            j += 1
        out.append(e)
    return out + made[j:]


class _Run:
    """Unremarkable packets (and sends and receives) in a row, shown as one line."""

    def __init__(self, cp: ConnectionPackets, events: list[_Event]) -> None:
        self.segments = [0, 0]
        self.bytes = [0, 0]
        self.acks = self.calls = 0
        for e in events:
            if e.call is not None:
                self.calls += 1
            elif cp.length[e.k]:
                self.segments[e.side] += 1
                self.bytes[e.side] += cp.length[e.k]
            else:
                self.acks += 1
        times = [e.ts for e in events if e.ts is not None]
        self.span_ns = max(times) - min(times) if times else None
        self.last_ts = times[-1] if times else None

    def text(self, more: str) -> str:
        parts = [f"{self.segments[side]} segments ({_size(self.bytes[side])}) from the {who}"
                 for side, who in ((0, "client"), (1, "server")) if self.segments[side]]
        if self.acks:
            parts.append(f"{self.acks} ACKs")
        if self.calls:
            parts.append(f"{self.calls} calls")
        if self.span_ns is not None:
            parts.append(f"{self.span_ns / 1e6:.3f} ms")
        return f"{more} {', '.join(parts)} {more}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _items(events: list[_Event], cp: ConnectionPackets, notes: dict[int, list[str]],
           every: bool) -> Iterator[_Event | _Run]:
    """The events to draw, with long unremarkable runs of data one way (a bulk transfer:
    all but the run's first and last events) as a _Run. Request and reply stay apart."""
    def plain(e: _Event) -> bool:
        if e.call is not None:
            return e.call.error is None and e.call.name in SENDS | RECEIVES and bool(e.call.result)
        return not notes.get(cp.number[e.k]) and not cp.flags[e.k] & (SYN | FIN | RST)

    n = len(events)
    k = 0
    while k < n:
        end, way = k, None
        while not every and end < n and plain(events[end]):
            e = events[end]
            if e.call is None and cp.length[e.k]:
                if way is not None and e.side != way:
                    break  # data the other way: a reply
                way = e.side
            end += 1
        if end - k >= COLLAPSE_MIN:
            yield events[k]
            yield _Run(cp, events[k + 1: end - 1])
            yield events[end - 1]
            k = end
        else:
            yield from events[k: max(end, k + 1)]
            k = max(end, k + 1)


def _notes(cp: ConnectionPackets) -> dict[int, list[str]]:
    """What to say beside each packet (by packet number), in words a student reads."""
    c = cp.connection
    out: dict[int, list[str]] = {}

    def say(number: int, text: str) -> None:
        out.setdefault(number, []).append(text)

    h = c.handshake
    if h.complete and h.rtt_ms is not None:
        done = next((cp.number[k] for k in range(len(cp.number))
                     if cp.side[k] == 0 and cp.ts_ns[k] == h.ack_ts_ns and not cp.flags[k] & SYN), None)
        if done is not None:
            say(done, f"handshake done: RTT {h.rtt_ms:.3f} ms")
    zero_windows = {number for number, kind, _ in cp.notes if kind == "zero_window"}
    zero = [False, False]  # a side's window is at zero: one note for the series, one when it opens
    for k in range(len(cp.number)):
        side, number = cp.side[k], cp.number[k]
        if number in zero_windows:
            if not zero[side]:
                say(number, "zero window: the receiver's buffer is full")
            zero[side] = True
        elif zero[side] and cp.window[k] and not cp.flags[k] & (SYN | RST):
            say(number, "the window opens again")
            zero[side] = False
    side_of = dict(zip(cp.number, cp.side, strict=True))
    for number, kind, value in cp.notes:
        if kind == "nagle_held" and value in side_of:
            who = "client" if side_of[number] == 0 else "server"
            say(value, f"Nagle held the {who}'s next segment until this ACK")
        elif kind == "retransmission":
            say(number, "retransmission")
        elif kind == "window_full":
            say(number, "window full: the sender filled the receiver's window")
        elif kind == "delayed_ack":
            say(number, f"delayed ACK {value / 1e6:.1f} ms")
    for direction in (c.c2s, c.s2c):
        for st in direction.stall_list:
            say(st.next_packet, f"stall: the sender waited {st.gap_ms:.1f} ms for that ACK")
    syns = [None, None]  # each side's last SYN time
    closed = False
    for k in range(len(cp.number)):
        side, flags, number = cp.side[k], cp.flags[k], cp.number[k]
        who = "client" if side == 0 else "server"
        if flags & SYN:
            if syns[side] is not None and cp.ts_ns[k] is not None:
                say(number, f"SYN again, {(cp.ts_ns[k] - syns[side]) / 1e6:.1f} ms later (no answer came)")
            syns[side] = cp.ts_ns[k]
        if flags & RST:
            refused = side == 1 and h.synack_ts_ns is None and h.syn_ts_ns is not None
            say(number, "refused: the server resets the SYN" if refused else f"reset by the {who}")
            closed = True
        elif flags & FIN and not closed:
            say(number, f"first FIN: the {who} closes")
            closed = True
    return out


def _summary(c: TcpConnection, width: int) -> list[str]:
    h = c.handshake
    facts = []
    if h.rtt_ms is not None:
        facts.append(f"handshake RTT {h.rtt_ms:.3f} ms")
    if h.syn_retries:
        facts.append(f"{plural(h.syn_retries, 'SYN')} sent again")
    if c.closed_by:
        facts.append(f"closed by the {c.closed_by}")
    for name, d in (("client", c.c2s), ("server", c.s2c)):
        if not d.payload_bytes:
            facts.append(f"the {name} sent no data")
            continue
        bits = [plural(d.retransmissions, "retransmission") if d.retransmissions else "",
                f"{plural(d.delayed_acks, 'delayed ACK')} of its data" if d.delayed_acks else "",
                f"{plural(d.stalls, 'stall')}, {d.stall_ms_total:.1f} ms lost" if d.stalls else "",
                f"a zero window announced {plural(d.zero_windows, 'time')}" if d.zero_windows else "",
                f"Nagle {d.nagle}"]
        facts.append(f"the {name} sent {d.payload_bytes:,} B: " + ", ".join(b for b in bits if b))
    return _wrap("; ".join(facts), width)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of ``width``, a number never apart from its unit ("41.9 ms")."""
    kept = re.sub(r"(\d) (?=\S)", "\\1\u00a0", text)
    return [line.replace("\u00a0", " ") for line in textwrap.wrap(kept, width)]
