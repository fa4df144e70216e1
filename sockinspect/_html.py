"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing
fetched) with each capture's tables and, per connection drawn in detail, its ladder,
its time-sequence and ACK-delay plots and its stalls. Pure: records in, text out."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import __version__
from ._ladder import ladder
from ._model import Capture, TcpConnection, UdpFlow
from ._packets import ConnectionPackets
from ._plot import figure, svg
from ._report import compare_table, stall_table, text_report
from ._series import sender_with_more_data

LADDER_WIDTH = 110
LADDER_OPEN = 80  # a longer ladder starts folded (one click opens it)
TABLE_WIDTH = 130  # columns of the text tables, as wide as the page

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.6em; }
pre { font: 12.5px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: #f7f7f7; padding: .6em .8em;
      overflow-x: auto; border-radius: 4px; }
.ladder .c2s { color: #1a4f8b; } .ladder .s2c { color: #7a3e00; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; } figcaption { color: #666; font-size: .9em; }
.answer { margin: 1em 0 1.4em; } code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; }
@media (min-width: 110em) { body { max-width: 110em; }
  .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; } }
nav li { margin: .1em 0; } .muted { color: #777; } .warning { color: #a40000; font-weight: 600; }
"""


DETAILS = 10  # connections drawn in detail per capture, by default


def chosen(conns: Sequence[TcpConnection], limit: int = DETAILS) -> list[int]:
    """The connections worth drawing, at most ``limit``, in index order: those that lost
    the most time to stalls, then retransmitted most, then delayed most ACKs, then the first."""
    def worth(c: TcpConnection) -> tuple:
        return (-(c.c2s.stall_ms_total + c.s2c.stall_ms_total), -(c.c2s.retransmissions + c.s2c.retransmissions),
                -(c.c2s.delayed_acks + c.s2c.delayed_acks), c.index)

    return sorted(c.index for c in sorted(conns, key=worth)[:limit])


@dataclass
class CaptureSection:
    """One capture: its records, and the connections drawn in detail (their packets)."""

    capture: Capture
    tcp: list[TcpConnection]
    udp: list[UdpFlow]
    details: list[ConnectionPackets] = field(default_factory=list)


def report_page(sections: Sequence[CaptureSection], title: str = "sockinspect report") -> str:
    """The whole page: a table of contents, the captures side by side when there are
    several, then each capture and its connections."""
    body = [f"<h1>{_e(title)}</h1>", f'<p class="muted">made by sockinspect {_e(__version__)}</p>',
            _contents(sections)]
    if len(sections) > 1:
        body.append('<h2 id="compare">The captures side by side</h2>')
        body.append(_pre(compare_table([(s.capture, s.tcp, s.udp) for s in sections], TABLE_WIDTH)))
    for i, s in enumerate(sections):
        body.append(capture_html(s, f"capture-{i}"))
    return page(title, body)


def page(title: str, body: Sequence[str]) -> str:
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_e(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _contents(sections: Sequence[CaptureSection]) -> str:
    items = []
    for i, s in enumerate(sections):
        sub = "".join(f'<li><a href="#capture-{i}-tcp-{cp.connection.index}">{_e(_conn_title(cp.connection))}</a>'
                      for cp in s.details)
        items.append(f'<li><a href="#capture-{i}">{_e(s.capture.file)}</a>' + (f"<ul>{sub}</ul>" if sub else ""))
    extra = '<li><a href="#compare">the captures side by side</a>' if len(sections) > 1 else ""
    return f"<nav><ul>{extra}{''.join(items)}</ul></nav>"


def capture_html(s: CaptureSection, anchor: str) -> str:
    out = [f'<section id="{anchor}">', f"<h2>{_e(s.capture.file)}</h2>"]
    out += [f'<p class="warning">warning: {_e(w)}</p>' for w in s.capture.warnings]
    out.append(_pre(text_report(s.capture, s.tcp, s.udp, TABLE_WIDTH)))
    if s.details and len(s.details) < len(s.tcp):
        out.append(f'<p class="muted">{len(s.details)} of the {len(s.tcp)} TCP connections are drawn below; '
                   f"the others are in the tables (sockinspect report --connection N draws one).</p>")
    for cp in s.details:
        out.append(connection_html(cp, f"{anchor}-tcp-{cp.connection.index}", s.capture.file))
    out.append("</section>")
    return "\n".join(out)


def connection_html(cp: ConnectionPackets, anchor: str, name: str) -> str:
    """A connection: its stalls, its ladder, its time-sequence and ACK-delay plots."""
    c = cp.connection
    out = [f'<section id="{anchor}">', f"<h3>{_e(_conn_title(c))}</h3>"]
    for who, d in (("client", c.c2s), ("server", c.s2c)):
        if d.stall_list:
            out.append(f"<p>Stalls of the {who}'s data ({d.stalls}, {d.stall_ms_total:.1f} ms lost): the sender "
                       "waited for a delayed ACK before sending more.</p>")
            out.append(_pre(stall_table(d, TABLE_WIDTH)))
    out.append(ladder_html(cp))
    sender = sender_with_more_data(cp)
    way = "client to server" if sender == 0 else "server to client"
    for kind, caption in (("tsg", f"Time-sequence graph, {way}"), ("ack-delay", f"ACK delays, {way}")):
        out.append(figure_html(cp, kind, sender, name, caption, f"{anchor}-{kind}"))
    out.append("</section>")
    return "\n".join(out)


def ladder_html(cp: ConnectionPackets) -> str:
    """The ladder as text, each arrow coloured by its direction (folded when long)."""
    lines = ladder(cp, width=LADDER_WIDTH)
    rows = []
    for line in lines:
        cls = "c2s" if "▶" in line else "s2c" if "◀" in line else ""
        rows.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line))
    text = f'<pre class="ladder">{chr(10).join(rows)}</pre>'
    if len(lines) > LADDER_OPEN:
        return f"<details><summary>Ladder diagram ({len(lines)} lines)</summary>{text}</details>"
    return f"<h4>Ladder diagram</h4>{text}"


def figure_html(cp: ConnectionPackets, kind: str, sender: int, name: str, caption: str, anchor: str) -> str:
    drawn = svg(figure(cp, kind, sender, name), anchor)
    return f'<figure id="{anchor}">{drawn}<figcaption>{_e(caption)}</figcaption></figure>'


def _conn_title(c: TcpConnection) -> str:
    return f"TCP connection {c.index}: {c.client} → {c.server}, {c.state}"


def _code(text: str) -> str:
    """`calls` in an answer's text as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _pre(text: str) -> str:
    return f"<pre>{_e(text)}</pre>"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


Drawn = tuple[str, ConnectionPackets]  # a capture's name and one of its connections


def lab_page(parts: Sequence[tuple[str, str]], title: str, echo: Drawn | None = None,
             nagle_on: Drawn | None = None, nodelay: Drawn | None = None) -> str:
    """The lab's Part 4 answers with their pictures: b) an echo connection's ladder; f) and
    g) the write-write-read time-sequence graphs and ACK delays, with Nagle on and with
    TCP_NODELAY side by side."""
    body = [f"<h1>{_e(title)}</h1>"]
    for letter, text in parts:
        body.append(f'<section class="answer" id="part-4{letter}"><h2>{letter})</h2><p>{_code(_e(text))}</p>')
        if letter == "b" and echo is not None:
            name, cp = echo
            body.append(f"<p>The first echo connection ({_e(name)}):</p>" + ladder_html(cp))
        if letter in "fg" and nagle_on is not None and nodelay is not None:
            kind = "tsg" if letter == "f" else "ack-delay"
            what = "Time-sequence graph" if letter == "f" else "ACK delays"
            cells = [figure_html(cp, kind, 0, name, f"{what}, {how} ({name})", f"part-4{letter}-{i}")
                     for i, (how, (name, cp)) in enumerate((("Nagle on", nagle_on), ("TCP_NODELAY", nodelay)))]
            body.append(f'<div class="pair">{"".join(cells)}</div>')
        body.append("</section>")
    return page(title, body)
