"""Edge: the ``sockinspect`` command line. Thin: parse, call the library, print.

Exit codes: 0 ok, 1 a check failed or findings, 2 bad usage or unreadable input.
Errors are one line on stderr; progress goes to stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from ._analyze import analyze, gc_paused
from ._documents import (
    DOCUMENTS,
    capture_document,
    capture_json,
    capture_line,
    check_document,
    cleanup_document,
    compare_document,
    dumps,
    line_of,
    run_document,
    tcp_to_dict,
    udp_to_dict,
)
from ._model import Capture, Selection, TcpConnection, UdpFlow
from ._read import INFLATION_ALLOWANCE, MAX_INFLATION, capture_paths, is_fifo
from .analysis import jit
from .errors import SockinspectError, UsageError

if TYPE_CHECKING:
    from ._packets import ConnectionPackets
    from ._run import Leftover, Run
    from ._scenarios import Options

# Each command imports the modules it needs when it runs, and its options' choices and
# limits when its arguments are added (see build_parser): an analysis does not wait for
# the HTML, plotting, lab and namespace machinery to load.


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


CHECK_KEYS_HELP = """\
keys (every one: sockinspect schema capture; or docs/json.md in the sources):
  a dotted path:             handshake.rtt_ms, c2s.sizes.max, udp.rtt_ms.max
  a list element, from 0:    c2s.stall_list[0].ack_delay_ms, vlan[-1] (the last;
                             past the end: null)
  every element of a list:   'c2s.stall_list[].gap_ms < 250' passes when each
                             stall's does, and when there is none
  a key that is not a name:  'c2s.sizes.histogram["1-63"] == 0' (buckets follow
                             the MSS, e.g. ">1448"; one it lacks is null)
values: a number, true/false/null, a bare word (SF, off) or a quoted string;
for in / not in a list [SF, S1]. A comparison with null (not measured) fails,
except == null.
limits: a rule nests at most 32 brackets; a rules file is at most 1 MiB, with
no tables, dotted keys or inline tables.
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line. ``only``: the one command whose arguments to add (the others are
    there by name and help alone, which --help lists); None: every command's. Adding a
    command's arguments imports the modules its choices and limits come from."""
    parser = _Parser(
        prog="sockinspect",
        description="Make TCP behaviour visible and testable: analyze captures, check them in CI, "
        "and run the socket lab's programs under capture.",
    )
    parser.add_argument("--version", action="version", version=f"sockinspect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (summary, add_arguments) in COMMANDS.items():
        command = sub.add_parser(name, help=summary)
        if only in (None, name):
            add_arguments(command)
    return parser


def _analyze_arguments(an: argparse.ArgumentParser) -> None:
    an.description = (
        "Read pcap/pcapng files (gzip too) and report each TCP connection "
        "(client and server ports, handshake times, bytes and segments per direction, "
        "Zeek-style state) and each UDP flow."
    )
    an.add_argument("files", nargs="+", metavar="FILE",
                    help="capture file (pcap, pcapng, optionally gzip), a directory of them, or - for standard input")
    fmt = an.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="one JSON document per file, one per line (keys: sockinspect schema capture)")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per connection and flow")
    fmt.add_argument("--jsonl", action="store_true",
                     help="one JSON line per TCP connection as soon as it is over (memory stays bounded on "
                     "any file), then one per UDP flow, then one for the capture (docs/json.md)")
    an.add_argument("--port", type=_port, action="append", help="only connections/flows with this port (repeatable)")
    an.add_argument("--host", type=_host, action="append",
                    help="only connections/flows with this address (repeatable)")
    an.add_argument("--connection", type=_index, metavar="N",
                    help="TCP connection N (the # column) alone: in detail, or its JSON/CSV")
    an.add_argument("--compare", action="store_true",
                    help="set two or more captures side by side: sizes, Nagle, ACK delays, stalls, latency")
    an.add_argument("--wide", action="store_true",
                    help="tables as wide as they come, full paths (default: fit the terminal, or $COLUMNS)")
    an.add_argument("--workers", type=_count, default=0, metavar="N",
                    help="processes per file: 1, or 2 (the engine in a process of its own, this one making the "
                    "records; not for standard input); default 0: automatic, 2 for a file of 16 MiB or more "
                    "on two cores or more")
    an.add_argument("--max-inflation", type=_count, default=MAX_INFLATION, metavar="RATIO",
                    help=f"stop a gzip capture that inflates more than RATIO times its size, past its first "
                    f"{INFLATION_ALLOWANCE >> 20} MiB: a decompression bomb (default {MAX_INFLATION}; 0: no limit)")
    an.set_defaults(run=_cmd_analyze)


def _ladder_arguments(ld: argparse.ArgumentParser) -> None:
    from ._ladder import COLLAPSE_MIN, MAX_WIDTH, MIN_WIDTH
    from ._syscalls import STRACE_ARGS
    ld.description = (
        "Draw TCP connection N of a capture as a sequence diagram: the client on the left, the "
        "server on the right, an arrow per packet (flags, relative seq and ack, window, length, time since "
        "the first packet and since the previous one), and in the margin what the analysis found: the "
        "handshake RTT, delayed ACKs, stalls, retransmissions, zero windows, who closed first."
    )
    _one_connection(ld)
    ld.add_argument("--width", type=_whole(MIN_WIDTH, "a width", "the ladder needs at least {minimum} columns, "
                                           "got {value}"),
                    help=f"columns (default: the terminal's, else 80; at most {MAX_WIDTH})")
    ld.add_argument("--ascii", action="store_true", help="ASCII arrows only (for terminals without Unicode)")
    ld.add_argument("--syscalls", type=Path, action="append", metavar="TRACE",
                    help="set the programs' socket calls beside the packets, from an strace log "
                    f"(strace {' '.join(STRACE_ARGS[:-2])} -o TRACE PROGRAM; or the one run-and-capture "
                    "--syscalls saves); repeatable, one per program")
    ld.add_argument("--all", action="store_true",
                    help=f"every packet (default: runs of {COLLAPSE_MIN} or more unremarkable packets, as in a "
                    "bulk transfer, are one line)")
    ld.set_defaults(run=_cmd_ladder)


def _plot_arguments(pl: argparse.ArgumentParser) -> None:
    from ._plot import FORMATS, KINDS
    pl.description = (
        "Plot one direction of TCP connection N of a capture. tsg: a time-sequence graph in the "
        "Stevens/tcptrace style (data segments as bars of sequence space against time, the ACK line, the "
        "receive window's right edge, SACK blocks, retransmissions in red, delayed ACKs and stalls marked); "
        "ack-delay: each ACK's delay, against Linux's delayed-ACK timer; window: the window announced and the "
        "bytes in flight; throughput: sliding throughput and goodput."
    )
    _one_connection(pl)
    pl.add_argument("-o", "--output", required=True, type=_plot_file, metavar="PLOT",
                    help=f"the file to write: {', '.join('.' + f for f in FORMATS)} (the format follows the name)")
    pl.add_argument("--kind", choices=KINDS, default="tsg", help="what to plot (default tsg)")
    pl.add_argument("--direction", choices=("c2s", "s2c"),
                    help="whose data: c2s the client's, s2c the server's (default: the direction with more data)")
    pl.set_defaults(run=_cmd_plot)


def _report_arguments(rp: argparse.ArgumentParser) -> None:
    from ._html import DETAILS
    rp.description = (
        "Write one self-contained HTML page (inline CSS and SVG, no script, nothing fetched: it "
        "opens anywhere and can be mailed): each capture's summary and tables and, for the connections drawn "
        "in detail, their stalls, ladder diagram, time-sequence graph and ACK-delay plot; with two or more "
        "captures, a side-by-side table as analyze --compare prints."
    )
    rp.add_argument("files", nargs="+", metavar="FILE",
                    help="capture file (pcap, pcapng, optionally gzip) or a directory of them")
    rp.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the page to write")
    rp.add_argument("--connection", type=_index, action="append", metavar="N",
                    help="draw TCP connection N of each capture in detail (repeatable; default: the ones "
                    "that lost most time to stalls or retransmitted most, see --details)")
    rp.add_argument("--details", type=_count, default=DETAILS, metavar="K",
                    help=f"without --connection, draw at most K connections per capture (default {DETAILS}; 0: tables "
                    "only)")
    rp.set_defaults(run=_cmd_report)


def _check_arguments(ck: argparse.ArgumentParser) -> None:
    ck.formatter_class = argparse.RawDescriptionHelpFormatter
    ck.description = (
        "Apply rules over the keys of the JSON document to every selected TCP\n"
        "connection (or UDP flow, for rules starting with 'udp.'). A rule is KEY OP\n"
        "VALUE, e.g. 'handshake.rtt_ms < 5', 'state == SF', 'c2s.nagle == off',\n"
        "'state in [SF, S1]'. Exit 0 when all pass, 1 when any fails, 2 for a bad rule\n"
        "or an unreadable capture."
    )
    ck.epilog = CHECK_KEYS_HELP
    ck.add_argument("capture", metavar="CAPTURE", help="capture file")
    ck.add_argument("rules_file", nargs="?", metavar="RULES.toml",
                    help="TOML file: expect = [\"rule\", ...], optional port = N, host = \"addr\"")
    ck.add_argument("--expect", action="append", default=[], metavar="RULE", help="a rule (repeatable)")
    ck.add_argument("--port", type=_port, action="append", help="only connections/flows with this port")
    ck.add_argument("--host", type=_host, action="append", help="only connections/flows with this address")
    ck.add_argument("--json", action="store_true", help="results as one JSON document")
    ck.set_defaults(run=_cmd_check)


def _capture_arguments(cp: argparse.ArgumentParser) -> None:
    cp.description = (
        "Capture (in Python, no tcpdump needed) the traffic to or from the given ports "
        "while COMMAND runs, write it as a nanosecond pcap, then print its analysis. Needs root, "
        "or an unprivileged user + network namespace (unshare -rn). Exit: COMMAND's failure is 1, "
        "kernel drops are 1, no capture possible is 2."
    )
    cp.add_argument("-o", "--output", required=True, metavar="FILE", help="pcap file to write")
    cp.add_argument("--port", type=_port, action="append", required=True, help="port to capture (repeatable)")
    cp.add_argument("--interface", default="lo", help="interface (default: lo)")
    cp.add_argument("--json", action="store_true", help="print the analysis as JSON")
    cp.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="the command to run")
    cp.set_defaults(run=_cmd_capture)


def _run_and_capture_arguments(rc: argparse.ArgumentParser) -> None:
    from ._scenarios import SCENARIOS
    rc.description = (
        "Start the reference server and client of a scenario, capture their traffic, save it "
        "under captures/ and print the analysis. Scenarios: " + ", ".join([*SCENARIOS, "lab"]) + " (lab: all "
        "of them, then the answers to Part 4 a-g of the lab, from this run's measurements). Stopped by "
        "a signal (Ctrl-C, SIGTERM, SIGHUP, ...), it removes what it made (programs, network namespaces, "
        "work folder) and exits 128 + the signal's number; what a SIGKILL leaves, the next run or "
        "'sockinspect cleanup' removes."
    )
    rc.add_argument("scenario", choices=[*SCENARIOS, "lab"], metavar="SCENARIO",
                    help=f"one of: {', '.join([*SCENARIOS, 'lab'])}")
    rc.add_argument("--topology", choices=["loopback", "netns"], default="loopback",
                    help="loopback (default), or R2 (10.10.10.2) and KALI (10.10.10.3) in network namespaces")
    rc.add_argument("--ipv6", action="store_true", help="loopback over IPv6 (::1)")
    rc.add_argument("-o", "--output", metavar="PATH",
                    help="directory for the captures (default captures/SCENARIO), or a .pcap file "
                    "for a scenario that makes one capture")
    rc.add_argument("--connections", type=_positive, help="handshake: connections (default 20)")
    rc.add_argument("--requests", type=_positive, help="nagle: requests per run (default 25)")
    rc.add_argument("--messages", type=_positive, help="udp-vs-tcp: messages (default 10)")
    rc.add_argument("--size", type=_size, help="file: bytes of random data (default 4M; K/M/G)")
    rc.add_argument("--file", type=Path, help="file: send this file instead of random data")
    rc.add_argument("--syscalls", action="store_true",
                    help="also record the programs' socket calls with strace, into CAPTURE.strace beside each "
                    "capture: `sockinspect ladder CAPTURE --syscalls CAPTURE.strace` sets them beside the packets "
                    "(strace slows the programs: that run's timings are not the programs' own)")
    rc.add_argument("--json", action="store_true", help="print the analyses as JSON, one document per capture")
    rc.add_argument("--html", metavar="FILE.html",
                    help="lab only: also write the Part 4 answers as a web page, with their pictures (an echo "
                    "connection's ladder; the write-write-read plots with Nagle on and with TCP_NODELAY)")
    rc.set_defaults(run=_cmd_run_and_capture)


def _conform_arguments(p: argparse.ArgumentParser) -> None:
    from .conform.cli import add_arguments
    add_arguments(p)


def _cleanup_arguments(cl: argparse.ArgumentParser) -> None:
    cl.description = (
        "run-and-capture removes what it made when it ends, also when stopped by a signal. "
        "Killed outright (SIGKILL, a power cut), it cannot: its network namespaces "
        "(sockinspect-R2-PID-..., sockinspect-KALI-PID-...) and its .work-* folder stay. This removes "
        "them once the run's process is gone. Only what a run of this user recorded (in "
        "$SOCKINSPECT_STATE_DIR; by default /run/sockinspect for root, else $XDG_RUNTIME_DIR/sockinspect) "
        "or marked as its own is touched: never another user's, never a run still going. "
        "Exit 0 when nothing removable is left, 1 when something could not be removed."
    )
    cl.add_argument("dirs", nargs="*", metavar="DIR",
                    help="also look for .work-* folders in DIR and its subfolders (default: captures, if it exists)")
    cl.add_argument("-n", "--dry-run", action="store_true", help="say what would be removed; remove nothing")
    cl.add_argument("--json", action="store_true", help="one JSON document: what was found, what was done, why")
    cl.set_defaults(run=_cmd_cleanup)


def _schema_arguments(sc: argparse.ArgumentParser) -> None:
    sc.description = (
        "Print the JSON Schema (draft 2020-12) of the JSON documents: every key, "
        "its type and its meaning. Without DOCUMENT, all of them (under $defs)."
    )
    sc.add_argument("document", nargs="?", choices=DOCUMENTS, metavar="DOCUMENT",
                    help=f"only this one: {', '.join(DOCUMENTS)} (analyze --json prints capture documents)")
    sc.set_defaults(run=_cmd_schema)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {value}")
    return value


def _host(text: str) -> str:
    """An address, also in the form the tables print IPv6 ones: ``[::1]``."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))  # the form the report uses (IPv6 compressed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 or IPv6 address: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    factor = units.get(text[-1:].upper(), 1)
    number = text[:-1] if factor > 1 else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 4096, 512K, 50M)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {text!r}")
    return value


def _whole(minimum: int, what: str = "a whole number", below: str = "must be at least {minimum}, got {value}"):  # noqa: ANN202
    """An argparse type: an integer of at least ``minimum``, with messages that say so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(below.format(minimum=minimum, value=value))
        return value

    return parse


_count = _whole(0)  # 0 or more
_positive = _whole(1)
_index = _whole(0, "a connection number", "connection numbers start at 0, got {value}")


def _select(cap: Capture, ports: list[int] | None, hosts: list[str] | None
            ) -> tuple[Selection[TcpConnection], Selection[UdpFlow]]:
    return (Selection(c for c in cap.tcp if _wanted(c, ports, hosts)),
            Selection(f for f in cap.udp if _wanted(f, ports, hosts)))


def _selected(conn: TcpConnection, args: argparse.Namespace) -> bool:
    """Whether --port, --host and --connection select this connection."""
    return _wanted(conn, args.port, args.host) and args.connection in (None, conn.index)


def _wanted(item: TcpConnection | UdpFlow, ports: list[int] | None, hosts: list[str] | None) -> bool:
    """Whether --port and --host select this connection or flow."""
    ends = (item.client, item.server) if isinstance(item, TcpConnection) else (item.a, item.b)
    return ((not ports or any(e.port in ports for e in ends))
            and (not hosts or any(e.addr in hosts for e in ends)))


def _progress_printer(path: str):  # noqa: ANN202
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if not total:  # a pipe or FIFO: its size is unknown
            stage = f"{done / 1e6:.1f} MB read"
        elif done >= total:
            stage = "read; putting the connections together"
        else:
            stage = f"{100 * done // total}%"
        print(f"\r\033[Kreading {path}: {stage}", end="", file=sys.stderr, flush=True)

    return show


def _hint_compile(path: str) -> None:
    """On a terminal: say so when a large capture will run as Python for want of a compiled engine."""
    try:
        large = os.path.getsize(path) >= jit.COMPILE_MIN_BYTES
    except OSError:
        return
    if large and jit.available() and not jit.cache_ready():
        print("sockinspect: the engine is not compiled yet, so this large capture is analyzed slowly, "
              "as Python; `python -m sockinspect.analysis` compiles it once (about 30 s)", file=sys.stderr)


def _analyze_file(path: str, workers: int = 0, max_inflation: int = MAX_INFLATION,
                  on_connection: Callable[[Any], None] | None = None,
                  render: Callable[[TcpConnection], Any] | None = None) -> Capture | None:
    """``analyze`` with progress on a terminal; None (after a one-line error) when unreadable.
    Warnings about a partly readable file go to stderr, whatever the output format."""
    if is_fifo(path):
        print(f"sockinspect: {path} is a FIFO: waiting for a program to write a capture into it "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    progress = _progress_printer(path)
    if progress:
        _hint_compile(path)
    try:
        cap = analyze(path, progress=progress, workers=workers or None, max_inflation=max_inflation,
                      on_connection=on_connection, render=render)
    except SockinspectError as exc:
        print(f"sockinspect: {exc}", file=sys.stderr)
        return None
    finally:
        if progress:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    _print_warnings(cap)
    return cap


def _print_warnings(cap: Capture) -> None:
    for warning in cap.warnings:
        print(f"warning: {cap.file}: {warning}", file=sys.stderr)


def _cmd_analyze(args: argparse.Namespace) -> int:
    try:
        args.files = capture_paths(args.files)
    except SockinspectError as exc:
        print(f"sockinspect: {exc}", file=sys.stderr)
        return 2
    if args.compare:
        return _cmd_compare(args)
    with gc_paused():
        return _report_files(args)


def _report_files(args: argparse.Namespace) -> int:
    status = 0
    first_csv = True
    for path in args.files:
        if args.jsonl or args.json:
            status = max(status, (_stream_file if args.jsonl else _json_file)(path, args))
            continue
        from ._report import connection_detail, csv_text, text_report, to_csv_rows
        cap = _analyze_file(path, workers=args.workers, max_inflation=args.max_inflation)
        if cap is None:
            status = 2
            continue
        tcp, udp = _select(cap, args.port, args.host)
        if args.connection is not None:
            problem = _missing_connection(len(cap.tcp), any(c.index == args.connection for c in tcp),
                                          args.connection)
            if problem:
                print(f"sockinspect: {path}: {problem}", file=sys.stderr)
                status = 2
                continue
            tcp, udp = Selection(c for c in tcp if c.index == args.connection), Selection()
        if args.csv:
            print(csv_text(to_csv_rows(cap, tcp, udp), header=first_csv), end="")
            first_csv = False
        elif args.connection is not None:
            print(f"{path}\n{connection_detail(tcp.only(), _width(args))}")
        else:
            print(text_report(cap, list(tcp), list(udp), _width(args)))
    return status


def _stream_file(path: str, args: argparse.Namespace) -> int:
    """``analyze --jsonl`` of one file: each connection printed as soon as it is over."""
    seen, found = [0], [False]

    def render(conn: TcpConnection) -> str | None:  # in either process (see analyze)
        return dumps(line_of("tcp", path, tcp_to_dict(conn))) if _selected(conn, args) else None

    def out(line: str | None) -> None:
        seen[0] += 1
        if line is not None:
            found[0] = True
            print(line)

    cap = _analyze_file(path, workers=args.workers, max_inflation=args.max_inflation, on_connection=out,
                        render=render)
    if cap is None:
        return 2
    if args.connection is None:
        for flow in cap.udp:
            if _wanted(flow, args.port, args.host):
                print(dumps(line_of("udp", path, udp_to_dict(flow))))
    print(dumps(capture_line(cap, seen[0])))
    return _report_missing(path, seen[0], found[0], args.connection)


def _json_file(path: str, args: argparse.Namespace) -> int:
    """``analyze --json`` of one file: each connection turned into JSON as soon as it is
    over and spooled (see _spool), the document printed at the end."""
    from ._spool import Spool

    seen = [0]

    def render(conn: TcpConnection) -> tuple[int, str] | None:  # in either process (see analyze)
        return (conn.index, dumps(tcp_to_dict(conn))) if _selected(conn, args) else None

    with Spool() as parts:
        def out(part: tuple[int, str] | None) -> None:
            seen[0] += 1
            if part is not None:
                parts.add(*part)

        cap = _analyze_file(path, workers=args.workers, max_inflation=args.max_inflation, on_connection=out,
                            render=render)
        if cap is None:
            return 2
        if _report_missing(path, seen[0], bool(parts), args.connection):
            return 2
        udp = [f for f in cap.udp if _wanted(f, args.port, args.host)] if args.connection is None else []
        for piece in capture_json(cap, parts.texts(), udp):
            sys.stdout.write(piece)
    sys.stdout.write("\n")
    return 0


def _report_missing(path: str, count: int, found: bool, index: int | None) -> int:
    """2 (after saying why) when ``--connection index`` selected nothing, else 0."""
    problem = None if index is None else _missing_connection(count, found, index)
    if problem:
        print(f"sockinspect: {path}: {problem}", file=sys.stderr)
        return 2
    return 0


def _missing_connection(count: int, selected: bool, index: int) -> str | None:
    """Why ``--connection index`` shows nothing (``count``: the capture's connections;
    ``selected``: whether --port/--host select it), or None when it is there."""
    if not count:
        return f"no TCP connection #{index}: the capture has no TCP connections"
    if index >= count:
        return f"no TCP connection #{index} (it has {count}: 0..{count - 1})"
    if not selected:
        return f"TCP connection #{index} is not among those --port/--host select"
    return None


def _cmd_compare(args: argparse.Namespace) -> int:
    from ._report import compare_table, csv_text, to_csv_rows
    if len(args.files) < 2:
        print("sockinspect analyze: error: --compare needs two or more capture files", file=sys.stderr)
        return 2
    for option, given in (("--connection", args.connection is not None), ("--jsonl", args.jsonl)):
        if given:
            print(f"sockinspect analyze: error: --compare and {option} do not go together", file=sys.stderr)
            return 2
    caps = []
    for path in args.files:
        cap = _analyze_file(path, workers=args.workers, max_inflation=args.max_inflation)
        if cap is None:
            return 2
        tcp, udp = _select(cap, args.port, args.host)
        caps.append((cap, list(tcp), list(udp)))
    if args.json:
        print(dumps(compare_document(caps)))
    elif args.csv:
        rows = [row for cap, tcp, udp in caps for row in to_csv_rows(cap, tcp, udp)]
        print(csv_text(rows), end="")
    else:
        print(compare_table(caps, _width(args)))
    return 0


def _one_connection(parser: argparse.ArgumentParser) -> None:
    """The arguments of a command about one connection of one capture."""
    parser.add_argument("file", metavar="FILE", help="capture file (pcap, pcapng, optionally gzip)")
    parser.add_argument("--connection", type=_index, default=0, metavar="N",
                        help="the connection (the # column of analyze; default 0)")


def _width(args: argparse.Namespace) -> int | None:
    """The columns tables are fitted to: the terminal's (``$COLUMNS`` first, 80 when not a
    terminal), or None (no limit) with ``--wide``."""
    return None if getattr(args, "wide", False) else shutil.get_terminal_size().columns


def _connection_packets(args: argparse.Namespace) -> ConnectionPackets | None:
    """Connection ``args.connection``'s packets, with progress and warnings on stderr;
    None when they cannot be had (said in one line)."""
    if is_fifo(args.file) or args.file == "-":
        print(f"sockinspect {args.command}: error: the capture is read twice, so it must be a file, not a pipe",
              file=sys.stderr)
        return None
    read = _read_connections(args.file, lambda _tcp: [args.connection], f"connection {args.connection}'s packets")
    return None if read is None else read[1][0]


def _read_connections(path: str, choose: Callable[[Sequence[TcpConnection]], list[int]], what: str
                      ) -> tuple[Capture, list[ConnectionPackets]] | None:
    """``connections_packets`` with progress (``what``: of the second reading) and the
    capture's warnings on stderr; None when it cannot be read (said in one line)."""
    from ._packets import connections_packets
    progress = _progress_printer(path)
    again = _progress_printer(f"{path} again, for {what}")
    try:
        read = connections_packets(path, choose, progress=progress, again=again)
    except (ValueError, SockinspectError) as exc:
        problem = f"{path}: {exc}" if isinstance(exc, ValueError) else str(exc)
    else:
        problem = None
    if progress:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    if problem:
        print(f"sockinspect: {problem}", file=sys.stderr)
        return None
    _print_warnings(read[0])
    return read


def _plot_file(text: str) -> str:
    from ._plot import output_format
    try:
        output_format(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cmd_plot(args: argparse.Namespace) -> int:
    from ._plot import figure, save
    from ._series import sender_with_more_data
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("sockinspect plot: error: plots need matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    packets = _connection_packets(args)
    if packets is None:
        return 2
    sender = {"c2s": 0, "s2c": 1}[args.direction] if args.direction else sender_with_more_data(packets)
    untimed = sum(ts is None for ts in packets.ts_ns)
    if untimed:
        print(f"warning: {args.file}: {untimed} of connection {args.connection}'s {len(packets.ts_ns)} packets have no "
              "timestamp: the plot leaves them out", file=sys.stderr)
    fig = figure(packets, args.kind, sender, os.path.basename(args.file))
    try:
        save(fig, args.output)
    except OSError as exc:
        print(f"sockinspect: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{args.output}: {args.kind} of connection {args.connection}, "
          f"{'client to server' if sender == 0 else 'server to client'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ._html import CaptureSection, chosen, report_page
    from ._report import plural
    try:
        files = capture_paths(args.files)
    except SockinspectError as exc:
        print(f"sockinspect: {exc}", file=sys.stderr)
        return 2
    piped = [f for f in files if f == "-" or is_fifo(f)]
    if piped:
        print(f"sockinspect report: error: {piped[0]}: a capture is read twice, so it must be a file, not a pipe",
              file=sys.stderr)
        return 2
    sections = []
    failed = 0
    def choose(tcp: Sequence[TcpConnection]) -> list[int]:
        return args.connection if args.connection else chosen(tcp, args.details)

    for path in files:
        read = _read_connections(path, choose, "the connections drawn")
        if read is None:  # said; the page is made of the others
            failed += 1
            continue
        cap, details = read
        sections.append(CaptureSection(cap, list(cap.tcp), list(cap.udp), details))
    if not sections:
        return 2
    try:
        Path(args.output).write_text(report_page(sections), encoding="utf-8")
    except OSError as exc:
        print(f"sockinspect: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    drawn = sum(len(s.details) for s in sections)
    skipped = f" ({failed} left out: see above)" if failed else ""
    print(f"{args.output}: {plural(len(sections), 'capture')}, {plural(drawn, 'connection')} drawn in detail"
          + skipped)
    return 2 if failed else 0


def _cmd_ladder(args: argparse.Namespace) -> int:
    from ._ladder import MAX_WIDTH, MIN_WIDTH, UNICODE_CHARS, ladder
    from ._syscalls import STRACE_ARGS, of_connection
    from ._syscalls import read as read_syscalls
    packets = _connection_packets(args)
    if packets is None:
        return 2
    conn = packets.connection
    calls = []
    for trace in dict.fromkeys(os.path.realpath(t) for t in args.syscalls or ()):  # each once
        try:
            mine = of_connection(read_syscalls(trace, (conn.client, conn.server)), conn)
        except OSError as exc:
            print(f"sockinspect: {trace}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        if not mine:
            print(f"warning: {trace}: no socket call of this connection (an strace log of these programs, "
                  f"taken with {' '.join(STRACE_ARGS[2:5])}, has them)", file=sys.stderr)
        calls += mine
    width = min(args.width or shutil.get_terminal_size((80, 24)).columns, MAX_WIDTH)
    plain = args.ascii or not _can_print(UNICODE_CHARS)
    for line in ladder(packets, width=max(width, MIN_WIDTH), ascii_only=plain, every=args.all, calls=calls):
        print(line)
    return 0


def _can_print(text: str) -> bool:
    """Whether standard output's encoding has these characters."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _cmd_check(args: argparse.Namespace) -> int:
    from ._check import load_rules_file, parse_rules, run_checks
    try:
        texts = list(args.expect)
        ports, hosts = list(args.port or []), list(args.host or [])
        if args.rules_file:
            file_rules, selection = load_rules_file(args.rules_file)
            texts = file_rules + texts
            for key, parse, chosen in (("port", _port, ports), ("host", _host, hosts)):
                if key in selection:
                    try:
                        chosen.append(parse(str(selection[key])))
                    except argparse.ArgumentTypeError as exc:
                        raise UsageError(f"{args.rules_file}: {key}: {exc}") from None
        if not texts:
            raise UsageError("no rules: give a RULES.toml file or --expect 'KEY OP VALUE'")
        rules = parse_rules(texts)
    except SockinspectError as exc:
        print(f"sockinspect check: error: {exc}", file=sys.stderr)
        return 2
    cap = _analyze_file(args.capture)
    if cap is None:
        return 2
    tcp, udp = _select(cap, ports, hosts)
    outcome = run_checks(cap, rules, list(tcp), list(udp))
    results, failed = outcome.results, outcome.failed
    if args.json:
        print(dumps(check_document(cap, outcome)))
    else:
        for r in results:
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.subject}  {r.rule.text}  (seen {json.dumps(r.seen)})")
        for rule in outcome.unchecked:
            print(f"FAIL  {rule.text}  (no {'UDP flow' if rule.scope == 'udp' else 'TCP connection'} selected)")
        passed = len(results) + len(outcome.unchecked) - failed
        print(f"sockinspect check: {passed} check{'' if passed == 1 else 's'} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_capture(args: argparse.Namespace) -> int:
    from ._capture import LiveCapture
    from ._report import text_report
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("sockinspect capture: error: give the command to run after --", file=sys.stderr)
        return 2
    if shutil.which(cmd[0]) is None:
        print(f"sockinspect capture: error: cannot run {cmd[0]!r}: no such command", file=sys.stderr)
        return 2
    try:
        with LiveCapture(args.output, ports=args.port, interface=args.interface) as live:
            try:
                code = subprocess.call(cmd)
            except OSError as exc:
                print(f"sockinspect capture: error: cannot run {cmd[0]!r}: {exc.strerror}", file=sys.stderr)
                code = 127
        cap = analyze(args.output)
    except SockinspectError as exc:
        print(f"sockinspect capture: error: {exc}", file=sys.stderr)
        return 2
    stats = live.stats
    _print_warnings(cap)
    if args.json:
        print(dumps(capture_document(cap, cap.tcp, cap.udp)))
    else:
        print(text_report(cap, list(cap.tcp), list(cap.udp), _width(args)))
    print(f"sockinspect capture: {stats.packets} packets written to {args.output}, "
          f"{stats.dropped} dropped by the kernel", file=sys.stderr)
    if stats.dropped:
        print("sockinspect capture: the capture is incomplete", file=sys.stderr)
    return 1 if code or stats.dropped else 0


USERNS_FLAG = "SOCKINSPECT_IN_USERNS"


def _reexec_in_user_namespace(command: str = "run-and-capture", needed: str | None = None) -> int | None:
    """Without the privilege to capture, run this same command again inside an
    unprivileged user + network namespace (unshare -rn), where we may. None when
    capture already works here; otherwise the exit code (2 when nothing works).
    ``needed``: a reason to go in even where capture works (None: capture is the reason).
    The inner run gets SIGTERM should this one end, and any signal this one gets:
    it cleans up and ends with 128 + the signal's number."""
    from ._capture import can_capture
    from ._run import Terminated, cleanup_on_signals, spawn
    reason = needed or can_capture()
    if reason is None:
        return None
    if os.environ.get(USERNS_FLAG) or shutil.which("unshare") is None:
        print(f"sockinspect {command}: error: {reason}; run as root, or where unprivileged user "
              "namespaces are allowed ('unshare -rn' must work)", file=sys.stderr)
        return 2
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True, check=False)
    if probe.returncode:
        why = probe.stderr.strip().splitlines()[-1:] or ["unshare failed"]
        print(f"sockinspect {command}: error: {reason}, and no user namespace either ({why[0]}); "
              "run as root", file=sys.stderr)
        return 2
    argv = ["unshare", "-rn", "--", sys.executable, "-m", "sockinspect", *sys.argv[1:]]
    with cleanup_on_signals():
        # The same process group: the inner run is this command, carried on; Ctrl-C reaches both.
        inner = spawn(argv, die_signal=signal.SIGTERM, own_group=False,
                      env={**os.environ, USERNS_FLAG: str(os.getpid())})
        try:
            return inner.wait()
        except Terminated as sig:
            os.kill(inner.pid, sig.signo)  # not reaped yet: the pid is still the inner run's
            try:
                return inner.wait(30)
            except subprocess.TimeoutExpired:
                inner.kill()
                inner.wait()
                return sig.exit_status


# run-and-capture options -> the scenario they belong to
SCENARIO_OPTIONS = {"connections": "handshake", "requests": "nagle", "messages": "udp-vs-tcp", "size": "file",
                    "file": "file"}


def _cmd_run_and_capture(args: argparse.Namespace) -> int:
    from ._run import Terminated, cleanup_on_signals, die_with_parent
    from ._scenarios import SCENARIOS, Options
    given = {key: getattr(args, key) for key in SCENARIO_OPTIONS if getattr(args, key) is not None}
    for key in given:
        if args.scenario not in (SCENARIO_OPTIONS[key], "lab"):
            print(f"sockinspect run-and-capture: error: --{key} is an option of the {SCENARIO_OPTIONS[key]} "
                  f"scenario (and lab), not of {args.scenario}", file=sys.stderr)
            return 2
    if args.html and args.scenario != "lab":
        print("sockinspect run-and-capture: error: --html is an option of lab, the run that answers Part 4",
              file=sys.stderr)
        return 2
    if args.html and not Path(args.html).resolve().parent.is_dir():
        print(f"sockinspect run-and-capture: error: {args.html}: no such folder to write it in", file=sys.stderr)
        return 2
    if args.topology == "loopback":
        outer = os.environ.get(USERNS_FLAG, "")
        if outer:  # the inner run: end (cleanly) with the outer one
            die_with_parent(signal.SIGTERM, parent=int(outer) if outer.isdigit() else None)
            subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, check=False)
        code = _reexec_in_user_namespace()
        if code is not None:
            return code
    names = list(SCENARIOS) if args.scenario == "lab" else [args.scenario]
    opts = Options(**given)
    if args.file and not args.file.is_file():
        print(f"sockinspect run-and-capture: error: {args.file}: no such file", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path("captures") / args.scenario
    single = out.suffix in (".pcap", ".pcapng")
    if single and args.scenario not in ("chat", "echo", "file", "handshake"):
        print(f"sockinspect run-and-capture: error: {args.scenario} makes several captures: "
              "give a directory to -o", file=sys.stderr)
        return 2
    if args.syscalls and shutil.which("strace") is None:
        print("sockinspect run-and-capture: error: --syscalls needs strace, which is not installed", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() or args.scenario in ("lab", "file")
    with cleanup_on_signals():
        try:
            results = _run_scenarios(args, names, opts, out, single, progress)
        except SockinspectError as exc:
            print(f"sockinspect run-and-capture: error: {exc}", file=sys.stderr)
            return 2
        except Terminated as sig:
            how = "interrupted" if sig.signo == signal.SIGINT else f"stopped by {sig.name}"
            made = "programs, network namespaces and work folder" if args.topology == "netns" else \
                "programs and work folder"
            kept = "" if single else f"; what was captured so far is in {out}"
            with suppress(OSError):  # SIGHUP: the terminal may be gone
                print(f"sockinspect run-and-capture: {how}; its {made} are removed{kept}", file=sys.stderr)
            return sig.exit_status
    return _print_runs(args, results)


def _run_scenarios(args: argparse.Namespace, names: list[str], opts: Options, out: Path, single: bool,
                   progress: bool) -> dict[str, list[Run]]:
    """Run the scenarios; whatever happens, nothing they made is left but the captures."""
    from ._run import STAGE_PREFIX, Lease, Runner, clean_leftovers, make_topology
    from ._scenarios import SCENARIOS
    results: dict[str, list[Run]] = {}
    outdir = out.parent if single else out
    outdir.mkdir(parents=True, exist_ok=True)
    _tell_removed(clean_leftovers([outdir]))
    with Lease(f"run-and-capture {args.scenario}") as lease:
        # A single file is captured in a folder of its own beside it, then renamed: nothing
        # else in the user's folder is written or removed.
        stage = lease.make_folder(outdir, STAGE_PREFIX) if single else out
        with make_topology(args.topology, args.ipv6, claim=lease.claim_netns) as topology, \
                Runner(topology, stage, progress=progress, lease=lease, syscalls=args.syscalls) as runner:
            for name in names:
                runner.say(f"running {name} on {topology.name}")
                runs = SCENARIOS[name](runner, opts)
                if single:
                    runs[0].capture.replace(out)
                    runs[0].capture = out
                    if runs[0].syscalls is not None:
                        runs[0].syscalls = runs[0].syscalls.replace(out.with_suffix(".strace"))
                    runs[0].analysis = replace(runs[0].analysis, file=str(out))
                results[name] = runs
    return results


def _tell_removed(items: list[Leftover]) -> None:
    """One line on stderr when an earlier, killed run's leftovers were removed."""
    removed = [item for item in items if item.action == "removed"]
    if removed:
        netns = sum(item.kind == "netns" for item in removed)
        pids = ", ".join(sorted({str(item.owner_pid) for item in removed}))
        folders = len(removed) - netns
        print(f"sockinspect run-and-capture: removed what killed runs (pid {pids}) left behind: "
              f"{netns} network namespace{'s' * (netns != 1)}, {folders} work folder{'s' * (folders != 1)}",
              file=sys.stderr)


def _cmd_schema(args: argparse.Namespace) -> int:
    from ._schema import for_document
    from ._schema import load as load_schema
    schema = load_schema()
    print(json.dumps(for_document(schema, args.document) if args.document else schema, indent=2))
    return 0


def _cmd_cleanup(args: argparse.Namespace) -> int:
    from ._run import clean_leftovers
    dirs = [Path(d) for d in args.dirs] or ([Path("captures")] if Path("captures").is_dir() else [])
    for d in dirs:
        if not d.is_dir():
            what = "not a folder" if d.exists() else "no such folder"
            print(f"sockinspect cleanup: error: {d}: {what}", file=sys.stderr)
            return 2
    try:
        items = clean_leftovers(dirs, dry_run=args.dry_run)
    except SockinspectError as exc:
        print(f"sockinspect cleanup: error: {exc}", file=sys.stderr)
        return 2
    failed = sum(item.action == "failed" for item in items)
    if args.json:
        print(dumps(cleanup_document(items, args.dry_run)))
    else:
        for i in items:
            print(f"{i.action:<12}  {i.kind:<6}  {i.name}  ({i.reason})")
        if not items:
            print("sockinspect cleanup: nothing left behind")
    return 1 if failed else 0


def _print_runs(args: argparse.Namespace, results: dict[str, list[Run]]) -> int:
    from ._lab import lab_answers
    from ._report import compare_table, text_report
    status = 0
    for name, runs in results.items():
        for run in runs:
            cap = run.analysis
            _print_warnings(cap)
            if args.json:
                print(dumps(run_document(name, run)))
            else:
                calls = f" (socket calls: {run.syscalls})" if run.syscalls else ""
                print(f"== {name}: {run.label} -> {run.capture}{calls}")
                print(text_report(cap, list(cap.tcp), list(cap.udp), _width(args)))
                print()
            for problem in run.problems:
                print(f"sockinspect run-and-capture: CAPTURE INCOMPLETE: {problem}", file=sys.stderr)
                status = 1
        if len(runs) > 1 and not args.json:
            print(f"== {name}: side by side")
            print(compare_table([(run.analysis, list(run.analysis.tcp), list(run.analysis.udp)) for run in runs],
                                _width(args)))
            print()
    if args.scenario == "lab" and not args.json:
        print(lab_answers(results))
    if args.html:
        status = max(status, _write_lab_page(args.html, results))
    return status


def _write_lab_page(path: str, results: dict[str, list[Run]]) -> int:
    """The lab's answers as a web page, with the pictures of this run's captures."""
    from ._html import lab_page
    from ._lab import TITLE as LAB_TITLE
    from ._lab import lab_parts, nagle_runs
    from ._packets import connection_packets
    def drawn(run: Run | None) -> tuple[str, ConnectionPackets] | None:
        if run is None or not run.analysis.tcp:
            return None
        return run.capture.name, connection_packets(run.capture, 0)

    echo = drawn(results["echo"][0]) if results.get("echo") else None
    on, off = nagle_runs(results)
    try:
        Path(path).write_text(lab_page(lab_parts(results), LAB_TITLE, echo, drawn(on), drawn(off)),
                              encoding="utf-8")
    except OSError as exc:
        print(f"sockinspect run-and-capture: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"the answers, with their pictures: {path}", file=sys.stderr)
    return 0


# name -> (its line in --help, the function that adds its arguments), in --help's order
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "analyze": ("report the TCP connections and UDP flows of capture files",
                _analyze_arguments),
    "ladder": ("draw one TCP connection as a ladder diagram, with delayed ACKs, stalls and retransmissions marked",
               _ladder_arguments),
    "plot": ("plot one TCP connection: time-sequence graph, ACK delays, window, throughput (PNG, SVG, PDF)",
             _plot_arguments),
    "report": ("write an HTML report of captures: tables, and per connection its ladder, plots and stalls",
               _report_arguments),
    "check": ("check rules against every selected connection (exit 1 when one fails)",
              _check_arguments),
    "capture": ("capture loopback traffic on some ports while a command runs",
                _capture_arguments),
    "run-and-capture": ("run a lab scenario, capture it, save the pcap and print its analysis",
                        _run_and_capture_arguments),
    "conform": ("grade a lab submission by running it on the lab's hosts: a table of checks, blamed on "
                "the server or the client", _conform_arguments),
    "cleanup": ("remove the network namespaces and work folders that killed runs left behind",
                _cleanup_arguments),
    "schema": ("print the JSON Schema of the documents --json prints",
               _schema_arguments),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if not word.startswith("-")), "")  # the options before it take no value
    args = build_parser(command).parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("sockinspect: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # an output path that cannot be written, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"sockinspect: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
