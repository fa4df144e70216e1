"""A TCP connection drawn as a ladder (sequence) diagram for a terminal: the client's
lifeline on the left, the server's on the right, one arrow per packet, and in the
margin what the analysis noticed, in words. Pure: packets in, lines out."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._decode import ACK, FIN, PSH, RST, SYN, URG
from ._model import TcpConnection
from ._packets import ConnectionPackets
from ._syscalls import RECEIVES, SENDS, Syscall

MIN_WIDTH = 60
LONG_NS = 999_999 * 10**6  # a connection longer than this has its times in s, not ms (they stay 10 wide)
COLLAPSE_MIN = 8  # unremarkable packets in a row (a bulk run) shown as one line from this many
TIME_WIDTH = 21  # "  12345.678  +12.345 ": ms since the first packet, since the previous one
_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"))

UNICODE = {"line": "│", "dash": "─", "right": "▶", "left": "◀", "more": "…", "gap": "┆", "call": "•"}
ASCII = {"line": "|", "dash": "-", "right": ">", "left": "<", "more": "...", "gap": ":", "call": "*"}


def ladder(cp: ConnectionPackets, width: int = 80, ascii_only: bool = False, every: bool = False,
           calls: Sequence[tuple[int, Syscall]] = ()) -> list[str]:
    """The diagram's lines, none longer than ``width`` (at least MIN_WIDTH). ``every``:
    show every packet (else runs of COLLAPSE_MIN or more unremarkable ones are one line).
    ``calls``: the programs' socket calls, (side, call), set in by the time they returned."""
    if width < MIN_WIDTH:
        raise ValueError(f"the ladder needs a width of at least {MIN_WIDTH} columns")
    ch = ASCII if ascii_only else UNICODE
    band = max(30, (width - TIME_WIDTH) * 3 // 5)
    margin = width - TIME_WIDTH - band - 1
    c = cp.connection
    notes = _notes(cp)
    times = [t for t in cp.ts_ns if t is not None]
    t0 = times[0] if times else None
    scale = 1e6 if not times or max(times) - t0 < LONG_NS else 1e9  # ms, or s for a long connection
    lines = _header(c, width, band, ch, "ms" if scale == 1e6 else "s")
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
            gap = "" if previous is None else f"+{(ts - previous) / scale:.3f}"
            clock = f"{(ts - t0) / scale:>10.3f} {gap:>9}".ljust(TIME_WIDTH)
            previous = ts
        if item.call is not None:
            lines.append(_fit(clock + _call_row(item.call.text(), item.side, band, ch), width))
            continue
        k = item.k
        words = notes.get(cp.number[k], [])
        wrapped = [w for note in words for w in textwrap.wrap(note, max(margin - 1, 8))] if margin > 8 else []
        arrow = _arrow(_label(cp, k, band - 7), cp.side[k], band, ch)
        lines.append(_fit(clock + arrow + (" " + wrapped[0] if wrapped else ""), width))
        for more in wrapped[1:]:
            lines.append(_fit(" " * TIME_WIDTH + ch["line"] + " " * (band - 2) + ch["line"] + " " + more, width))
        if margin <= 8:  # no room beside the arrow: the notes go under it
            for note in words:
                for w in textwrap.wrap(note, band - 4):
                    lines.append(_fit(" " * TIME_WIDTH + ch["line"] + " " + w.ljust(band - 3) + ch["line"], width))
    lines += [""] + [_fit(s, width) for s in _summary(c, width)]
    return lines


def _header(c: TcpConnection, width: int, band: int, ch: dict[str, str], unit: str) -> list[str]:
    client, server = f"client {c.client}", f"server {c.server}"
    head = " " * TIME_WIDTH + client.ljust(band - len(server)) + server if len(client) + len(server) < band else ""
    lines = textwrap.wrap(f"TCP connection {c.index}: {c.client} -> {c.server}, {c.packets} packets, state "
                          f"{c.state}" + (" (client inferred)" if c.inferred else ""), width)
    if not head:
        lines += [_fit(" " * TIME_WIDTH + client, width), _fit(" " * TIME_WIDTH + server.rjust(band), width)]
    else:
        lines.append(_fit(head, width))
    lines.append(_fit(f"{unit:>10} {'+gap':>9}".ljust(TIME_WIDTH) + ch["line"] + " " * (band - 2) + ch["line"], width))
    return lines


def _label(cp: ConnectionPackets, k: int, room: int) -> str:
    """Flags, then seq (a range when data), ack, window and length, as many as fit ``room``."""
    flags = cp.flags[k]
    letters = "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) + ("." if flags & ACK else "")
    n = cp.length[k]
    parts = [f"[{letters or 'none'}]"]
    if n or flags & (SYN | FIN | RST) or not flags & ACK:
        parts.append(f"seq {cp.seq[k]}" + (f":{cp.seq[k] + n}" if n else ""))
    if flags & ACK:
        parts.append(f"ack {cp.ack[k]}")
    optional = [f"win {cp.window[k]}"] + ([f"len {n}"] if n else [])
    while optional and len(" ".join(parts + optional)) > room:
        optional.pop()
    return " ".join(parts + optional)


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
    for number, kind, value in cp.notes:
        if kind == "retransmission":
            say(number, "retransmission")
        elif kind == "zero_window":
            say(number, "zero window: the receiver's buffer is full")
        elif kind == "delayed_ack":
            say(number, f"delayed ACK {value / 1e6:.1f} ms")
    for direction in (c.c2s, c.s2c):
        for st in direction.stall_list:
            say(st.next_packet, f"stall: the sender waited {st.gap_ms:.1f} ms for that ACK")
    fins = [k for k in range(len(cp.number)) if cp.flags[k] & (FIN | RST)]
    if fins:
        first = fins[0]
        who = "client" if cp.side[first] == 0 else "server"
        say(cp.number[first], f"{'reset' if cp.flags[first] & RST else 'first FIN'}: the {who} closes")
    return out


def _summary(c: TcpConnection, width: int) -> list[str]:
    h = c.handshake
    facts = []
    if h.rtt_ms is not None:
        facts.append(f"handshake RTT {h.rtt_ms:.3f} ms")
    if c.closed_by:
        facts.append(f"closed by the {c.closed_by}")
    for name, d in (("client", c.c2s), ("server", c.s2c)):
        bits = []
        if d.retransmissions:
            bits.append(f"{d.retransmissions} retransmissions")
        if d.delayed_acks:
            bits.append(f"{d.delayed_acks} of its segments got a delayed ACK")
        if d.stalls:
            bits.append(f"{d.stalls} stalls, {d.stall_ms_total:.1f} ms lost")
        bits.append(f"Nagle {d.nagle}")
        facts.append(f"{name} sent {d.payload_bytes} B: " + ", ".join(bits))
    return textwrap.wrap("; ".join(facts), width)
