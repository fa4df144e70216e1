"""Edge: a connection's series drawn with matplotlib (Agg, imported here only): the
time-sequence graph in the Stevens/tcptrace style, ACK delays, window and flight,
throughput. Figures are written as PNG, SVG or PDF, or returned as SVG text."""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import TYPE_CHECKING

from ._linux import DELAYED_ACK_MAX_NS, DELAYED_ACK_MIN_NS, DELAYED_ACK_THRESHOLD_NS
from ._packets import ConnectionPackets
from ._series import Series, series, sliding_rates
from .errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = ("tsg", "ack-delay", "window", "throughput")
FORMATS = ("png", "svg", "pdf")
MAX_DRAWN = 20_000  # points of one kind drawn, at most (a 600k-packet transfer makes a 80 MB SVG)
LABELLED = 12  # delayed ACKs and stalls labelled with their ms, at most (then the legend counts them)
SECONDS_FROM_MS = 10_000  # a longer connection's time axis is in seconds

# Colours: tcptrace's where it has one (data black, ACK green, window yellow, SACK purple, resent red).
DATA, RESENT, ACKED, WINDOW, SACKED = "#222222", "#d62728", "#2ca02c", "#c9a400", "#9467bd"
DELAYED, STALLED, MARK = "#1f77b4", "#ff7f0e", "#7f7f7f"


def output_format(path: str | os.PathLike[str]) -> str:
    """The format a file name asks for, from its extension; UsageError for another."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(f"{os.fspath(path)}: a plot is written as {', '.join('.' + f for f in FORMATS)}, "
                         f"not {'.' + ext if ext else 'a file without an extension'}")
    return ext


def figure(cp: ConnectionPackets, kind: str, sender: int, name: str = "") -> Figure:
    """The plot of ``kind`` for the data ``sender`` sent (0 the client), ``name`` (the
    capture's) in the title."""
    from matplotlib.figure import Figure

    s = series(cp, sender)
    fig = Figure(figsize=(10, 5.6), dpi=110, layout="constrained")
    axes = list(fig.subplots(2, 1, sharex=True)) if kind == "window" else [fig.add_subplot()]
    ax = axes[0]
    c = cp.connection
    who = ("client", "server") if sender == 0 else ("server", "client")
    ends = f"{c.client} → {c.server}" if sender == 0 else f"{c.server} → {c.client}"
    what = {"tsg": "time-sequence graph", "ack-delay": "ACK delays", "window": "window and bytes in flight",
            "throughput": "throughput"}[kind]
    fig.suptitle(f"{what}: data from the {who[0]} ({ends}), ACKs from the {who[1]}", fontsize=12,
                 parse_math=False)
    ax.set_title(f"TCP connection {c.index}" + (f" of {name}" if name else ""), fontsize=9, color=MARK,
                 parse_math=False)  # a file name is text: "$5 and $6" is not mathematics
    scale, unit = (1e3, "s") if s.duration_ms > SECONDS_FROM_MS else (1.0, "ms")
    axes[-1].set_xlabel(f"time since the connection's first packet ({unit})")
    if not s.timed:
        _empty(ax, "no packet of this connection has a timestamp (pcapng simple packet blocks?)")
    elif kind == "window":
        _window(axes, s, scale)
    else:
        {"tsg": _tsg, "ack-delay": _ack_delay, "throughput": _throughput}[kind](ax, s, scale)
    if s.thinned > 1:
        fig.text(0.995, 0.005, f"a long connection: 1 point in {s.thinned} drawn", ha="right", va="bottom",
                 fontsize=7, color=MARK)
    for a in axes:
        a.grid(True, color="#dddddd", linewidth=0.6)
        a.set_axisbelow(True)
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig


def save(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write the figure; OSError when the file cannot be written (drawn in memory first,
    so a full disk is an OSError, whatever the format's writer does with it)."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph the font lacks is drawn as a box
        fig.savefig(out, format=output_format(path))
    with open(path, "wb") as f:
        f.write(out.getbuffer())


def svg(fig: Figure, prefix: str = "plot") -> str:
    """The figure as an SVG element's text, for a web page: its text kept as text, without
    the XML prologue and the RDF metadata, every id (and each reference to one) starting
    with ``prefix``, so that the page's figures, each with its own, never share one."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sockinspect"}), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg"):], count=1, flags=re.S)
    return re.sub(r'(\bid="|url\(#|href="#)', lambda m: f"{m.group(1)}{prefix}-", text)


def _thin(s: Series, items: list) -> list:
    """At most about MAX_DRAWN of ``items`` (every k-th, and the last): a long transfer
    draws in bounded time and file size. ``s.thinned`` keeps the largest k, for the footnote."""
    k = -(-len(items) // MAX_DRAWN)
    if k <= 1:
        return items
    s.thinned = max(s.thinned, k)
    return items[::k] + ([items[-1]] if (len(items) - 1) % k else [])


def _x(ms: float, scale: float) -> float:
    return ms / scale


def _empty(ax, text: str) -> None:  # noqa: ANN001
    if ax.get_yscale() == "linear":
        ax.set_ylim(0, 1000)  # whole units on the axis, not fractions of one
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=MARK, fontsize=11)


def _bytes_axis(ax, label: str) -> None:  # noqa: ANN001
    from matplotlib.ticker import EngFormatter

    ax.yaxis.set_major_formatter(EngFormatter(unit="B", sep=" "))
    ax.set_ylabel(label)


def _tsg(ax, s: Series, scale: float) -> None:  # noqa: ANN001
    from matplotlib.collections import LineCollection

    _bytes_axis(ax, "relative sequence number")
    if not s.segments and not s.resent:
        _empty(ax, "no data segments this way")
    for every, colour, label in ((s.segments, DATA, "data segment"), (s.resent, RESENT, "retransmission")):
        if every:
            spans = _thin(s, every)
            ax.add_collection(LineCollection([[(_x(t, scale), a), (_x(t, scale), b)] for t, a, b in spans],
                                             colors=colour, linewidths=1.6, label=f"{label} ({len(every)})"))
            ax.plot([_x(t, scale) for t, _, b in spans], [b for _, _, b in spans], linestyle="none",
                    marker="_", markersize=5, color=colour)
    if s.acks:
        acks, edges = _thin(s, s.acks), _thin(s, s.window_edge)
        ax.step([_x(t, scale) for t, _ in acks], [a for _, a in acks], where="post", color=ACKED,
                linewidth=1.0, label="ACK")
        ax.step([_x(t, scale) for t, _ in edges], [e for _, e in edges], where="post",
                color=WINDOW, linewidth=1.0, linestyle="--", label="receive window's right edge"
                + (" (above the plot)" if min(e for _, e in s.window_edge) > _top(s) * 1.5 else ""))
    if s.sacks:
        ax.add_collection(LineCollection([[(_x(t, scale), a), (_x(t, scale), b)] for t, a, b in _thin(s, s.sacks)],
                                         colors=SACKED, linewidths=3, alpha=0.7, label=f"SACK block ({len(s.sacks)})"))
    for t, seq, name in s.marks:
        ax.annotate(name, (_x(t, scale), seq), fontsize=7, color=MARK, xytext=(3, 3), textcoords="offset points")
        ax.plot([_x(t, scale)], [seq], marker="o", markersize=3, color=MARK)
    _spans(ax, s, scale)
    ax.autoscale_view()
    top = _top(s)
    edge = max([e for _, e in s.window_edge], default=top)
    ax.set_ylim(bottom=0, top=max(top, edge * 1.02 if edge <= top * 1.5 else top) * 1.08)  # the edge when near


def _spans(ax, s: Series, scale: float) -> None:  # noqa: ANN001
    """Stalls as a strip along the bottom; each delayed ACK a bar from the data to its ACK."""
    _stall_strip(ax, s, scale)
    labelled = _apart([(a + b) / 2 for a, b, _ in s.delayed_acks], s.duration_ms)
    for i, (a, b, ack) in enumerate(s.delayed_acks):
        ax.plot([_x(a, scale), _x(b, scale)], [ack, ack], color=DELAYED, linewidth=2.2, solid_capstyle="butt",
                label=f"delayed ACK ({_summary([t - f for f, t, _ in s.delayed_acks])})" if i == 0 else None)
        if i in labelled:
            ax.annotate(f"{b - a:.1f} ms", (_x((a + b) / 2, scale), ack), fontsize=7, color=DELAYED, ha="center",
                        xytext=(0, 3), textcoords="offset points")


def _apart(xs: list[float], span: float) -> set[int]:
    """Which of these positions get a label: none when more than LABELLED, else each
    at least 1/16 of the span from the last one labelled (labels never overlap)."""
    if len(xs) > LABELLED:
        return set()
    chosen: set[int] = set()
    last = None
    for i in sorted(range(len(xs)), key=xs.__getitem__):
        if last is None or xs[i] - last >= span / 16:
            chosen.add(i)
            last = xs[i]
    return chosen


def _summary(ms: list[float]) -> str:
    """"24, median 43.8 ms": how many, and how long."""
    ordered = sorted(ms)
    return f"{len(ordered)}, median {ordered[len(ordered) // 2]:.1f} ms" if len(ordered) > 1 else f"{ordered[0]:.1f} ms"


def _stall_strip(ax, s: Series, scale: float) -> None:  # noqa: ANN001
    """Each stall (the sender waiting for a delayed ACK) as a bar along the plot's bottom."""
    labelled = _apart([(a + b) / 2 for a, b in s.stalls], s.duration_ms)
    for i, (a, b) in enumerate(s.stalls):
        ax.axvspan(_x(a, scale), _x(b, scale), ymin=0, ymax=0.035, facecolor=STALLED, alpha=0.9,
                   edgecolor="white", linewidth=0.6,
                   label=f"stall: the sender waits ({len(s.stalls)}, {sum(t - f for f, t in s.stalls):.1f} ms lost)"
                   if i == 0 else None)
        if i in labelled:
            ax.annotate(f"{b - a:.1f} ms", (_x((a + b) / 2, scale), 0.035), xycoords=("data", "axes fraction"),
                        fontsize=7, color=STALLED, ha="center", va="bottom", xytext=(0, 1),
                        textcoords="offset points")


def _duration(ms: float) -> str:
    """``ms`` in the unit that reads best: "4.1 s", "1.97 ms", "50 µs"."""
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    return f"{ms:.3g} ms" if ms >= 1 else f"{ms * 1000:.3g} µs"


def _top(s: Series) -> int:
    """The highest sequence number the data or the ACKs reach."""
    return max([b for _, _, b in s.segments + s.resent] + [a for _, a in s.acks] + [1])


def _ack_delay(ax, s: Series, scale: float) -> None:  # noqa: ANN001
    """Each ACK's delay: the delayed-ACK timer's, late ones the rule leaves out, the rest.
    Where the capture is far from the receiver, every delay holds its round trip too, and
    the timer's band is moved up by it."""
    ax.set_ylabel("ACK delay: data segment to the ACK that covers it (ms)")
    ax.set_yscale("log")
    leg = s.leg_ms if s.leg_ms >= 1 else 0.0
    path = f" + the receiver's round trip ({leg:.0f} ms)" if leg else ""
    ax.axhspan(DELAYED_ACK_MIN_NS / 1e6 + leg, DELAYED_ACK_MAX_NS / 1e6 + leg, color=DELAYED, alpha=0.10,
               linewidth=0, label=f"Linux's delayed-ACK timer: 40 to 200 ms{path}")
    threshold = DELAYED_ACK_THRESHOLD_NS / 1e6 + leg
    ax.axhline(threshold, color=DELAYED, linewidth=0.8, linestyle=":",
               label=f"taken for a delayed ACK from {DELAYED_ACK_THRESHOLD_NS / 1e6:.0f} ms{path}")
    if not s.ack_delays:
        _empty(ax, "no ACK of data this way")
        ax.set_ylim(0.01, 1000)
        return
    kinds = (("ACK", ACKED, lambda d, delayed: not delayed and d < threshold),
             ("late ACK, not the timer's: it carries data, covers 2+ full segments or resent data, "
              "or came after 0.5 s", MARK, lambda d, delayed: not delayed and d >= threshold),
             ("delayed ACK", DELAYED, lambda d, delayed: delayed))
    for label, colour, chosen in kinds:
        every = [(t, d) for t, d, delayed in s.ack_delays if chosen(d, delayed)]
        points = _thin(s, every)
        if points:
            ax.plot([_x(t, scale) for t, _ in points], [max(d, 1e-3) for _, d in points], linestyle="none",
                    marker="o", markersize=4, color=colour, label=f"{label} ({len(every)})")
    low = min(d for _, d, _ in s.ack_delays)
    ax.set_ylim(max(min(low / 3, 10), 1e-3), max(max(d for _, d, _ in s.ack_delays) * 2, 300 + leg))
    _stall_strip(ax, s, scale)


def _window(axes, s: Series, scale: float) -> None:  # noqa: ANN001
    """The window announced above, the bytes in flight below (often far smaller)."""
    top, bottom = axes
    _bytes_axis(top, "receive window")
    _bytes_axis(bottom, "bytes in flight")
    if not s.window:
        _empty(top, "no ACK from the receiver")
        return
    window = _thin(s, s.window) + [(s.duration_ms, s.window[-1][1])]  # the last one holds to the end
    top.step([_x(t, scale) for t, _ in window], [w for _, w in window], where="post", color=WINDOW,
             linewidth=1.2, label="receive window the receiver announces")
    if s.zero_windows:
        top.plot([_x(t, scale) for t in s.zero_windows], [0] * len(s.zero_windows), linestyle="none", marker="x",
                 color=RESENT, markersize=6,
                 label=f"zero window: the receiver's buffer is full ({len(s.zero_windows)})")
    top.set_ylim(0, max(w for _, w in window) * 1.1 or 1000)  # a steady window is not hidden by the frame
    if s.in_flight:
        flight = _thin(s, s.in_flight) + [(s.duration_ms, s.in_flight[-1][1])]
        bottom.step([_x(t, scale) for t, _ in flight], [f for _, f in flight], where="post", color=DATA,
                    linewidth=1.0, label="sent, not yet acknowledged")
    else:
        _empty(bottom, "no data segments this way")
    _stall_strip(bottom, s, scale)
    bottom.set_ylim(bottom=0, top=max([f for _, f in s.in_flight] + [1]) * 1.15)


def _throughput(ax, s: Series, scale: float) -> None:  # noqa: ANN001
    from matplotlib.ticker import EngFormatter

    ax.yaxis.set_major_formatter(EngFormatter(unit="bit/s", sep=" "))
    window_ms, rates = sliding_rates(s)
    ax.set_ylabel(f"rate over the last {_duration(window_ms)}")
    if not rates:
        _empty(ax, "no data segments this way")
        return
    xs = [_x(t, scale) for t, _, _ in rates]
    ax.plot(xs, [r for _, r, _ in rates], color=DATA, linewidth=1.2, label="throughput: every payload byte sent")
    ax.plot(xs, [g for _, _, g in rates], color=ACKED, linewidth=1.2, linestyle="--",
            label="goodput: bytes newly acknowledged")
    _stall_strip(ax, s, scale)
    ax.set_ylim(bottom=0)
