"""Edge: ``sockinspect conform``, its arguments, output and exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from . import DEFAULT_TIMEOUT_S, LABS, Grade

PROG = "sockinspect conform"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Grade a lab submission by running it, unmodified (python3 FILE, as the lab runs it), on the lab's "
        "hosts: its server on R2 (10.10.10.2), its client on KALI (10.10.10.3), so hard-coded addresses, "
        "ports and file names just work. The student's server is tried with the reference client, the "
        "student's client with the reference server, then both together; every run is captured and the "
        "checks cite transcript lines and packet numbers. Without --submission, the reference programs "
        "are graded (they pass every check). Programs run in their own folders, in namespaces with no "
        "route beyond R2 and KALI, as user nobody when run as root, killed after --timeout. "
        "Exit: 0 every check passed, 1 one failed, 2 the submission could not be run (one line says why)."
    )
    p.add_argument("lab", choices=LABS, metavar="LAB", help=f"one of: {', '.join(LABS)}")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--submission", type=Path, metavar="DIR",
                       help="a folder with the lab's files (echo_tcp_server.py, echo_tcp_client.py; "
                       "tcp_file_transfer_server.py, tcp_file_transfer_client.py; chat_server.py, chat_client.py)")
    which.add_argument("--submissions", type=Path, metavar="DIR",
                       help="a folder of students' folders: one row per student (a grade book with --csv)")
    p.add_argument("--client-file", metavar="NAME",
                   help="file: the name of the file the client sends (default: found by tracing the client)")
    p.add_argument("--server-file", metavar="NAME",
                   help="file: the name of the file the server writes (default: the new file in its folder)")
    p.add_argument("--topology", choices=["netns", "loopback"],
                   help="netns: R2 and KALI in network namespaces joined by a veth pair (needs root; the "
                   "default as root); loopback: both addresses on the loopback of one namespace (rootless)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"seconds a program may run before it is killed (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("-o", "--output", type=Path, metavar="PATH",
                   help="the capture to write (default captures/conform/LAB-NAME.pcap); with --submissions, "
                   "a folder for one capture per student (default captures/conform/LAB)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON document (see docs/json.md)")
    fmt.add_argument("--csv", action="store_true", help="CSV: one row per check, or per student with --submissions")
    p.set_defaults(run=main)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0.5 and 3600 seconds, got {text}")
    return value


def main(args: argparse.Namespace) -> int:
    from .._run import Terminated, cleanup_on_signals
    problem = _bad_arguments(args)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    args.topology = args.topology or ("netns" if _real_root() else "loopback")
    if args.topology == "loopback":
        code = _enter_namespace()
        if code is not None:
            return code
    with cleanup_on_signals():
        try:
            return _batch(args) if args.submissions else _single(args)
        except Terminated as sig:
            with suppress(OSError):
                print(f"{PROG}: {'interrupted' if sig.signo == signal.SIGINT else 'stopped by ' + sig.name}; "
                      "its programs, namespaces and folders are removed", file=sys.stderr)
            return sig.exit_status


def _bad_arguments(args: argparse.Namespace) -> str | None:
    for option in ("client_file", "server_file"):
        name = getattr(args, option)
        if name is not None and (not name or "/" in name or name in (".", "..")):
            return f"--{option.replace('_', '-')} is a file name in the program's folder, not a path: {name!r}"
    if (args.client_file or args.server_file) and args.lab != "file":
        return "--client-file and --server-file are options of the file lab"
    for folder in (args.submission, args.submissions):
        if folder is not None and not folder.is_dir():
            return f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}"
    return None


def _real_root() -> bool:
    from .._topology import in_user_namespace
    return os.geteuid() == 0 and not in_user_namespace()


def _enter_namespace() -> int | None:
    """The loopback topology rootless: go on inside 'unshare -rn' (None: go on here)."""
    from .._cli import USERNS_FLAG, _reexec_in_user_namespace
    from .._run import die_with_parent
    outer = os.environ.get(USERNS_FLAG, "")
    if outer:  # the inner run: end (cleanly) with the outer one
        die_with_parent(signal.SIGTERM, parent=int(outer) if outer.isdigit() else None)
        return None
    if _real_root():
        return None  # a namespace of its own is made with 'ip netns'
    return _reexec_in_user_namespace("conform", needed="the loopback topology needs a network namespace of its own")


def _grade(args: argparse.Namespace, folder: Path | None, capture: Path) -> tuple[dict[str, Any], Grade | None]:
    """The JSON document of one submission, also when it could not be run (its 'error'),
    and its grade (None then)."""
    from .._documents import conform_document, conform_error_document
    from ..errors import SockinspectError
    from . import conform
    name = "reference" if folder is None else str(folder)
    capture.parent.mkdir(parents=True, exist_ok=True)
    try:
        grade = conform(args.lab, folder, capture, args.topology, args.timeout, args.client_file, args.server_file)
    except (SockinspectError, OSError) as exc:  # OSError: one student's, where the others can still be graded
        return conform_error_document(args.lab, name, args.topology, str(exc)), None
    return conform_document(grade), grade


def _single(args: argparse.Namespace) -> int:
    from .._documents import dumps
    from .report import table
    name = args.submission.resolve().name if args.submission else "reference"
    capture = args.output or Path("captures") / "conform" / f"{args.lab}-{name}.pcap"
    doc, grade = _grade(args, args.submission, capture)
    if grade is None:
        print(f"{PROG}: error: {doc['error']}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps(doc))
    elif args.csv:
        print(_checks_csv(doc), end="")
    else:
        print(table(grade))
    return 0 if grade.ok else 1


def _checks_csv(doc: dict[str, Any]) -> str:
    import csv
    import io
    out = io.StringIO()
    writer = csv.DictWriter(out, ["name", "program", "passed", "expected", "seen", "where"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(doc["checks"])
    return out.getvalue()


def _batch(args: argparse.Namespace) -> int:
    from .._documents import conform_batch_document, dumps
    from .report import batch_csv, batch_row, batch_table
    students = sorted(p for p in args.submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        print(f"{PROG}: error: {args.submissions}: no student folders in it", file=sys.stderr)
        return 2
    outdir = args.output or Path("captures") / "conform" / args.lab
    docs, rows = [], []
    for k, folder in enumerate(students, 1):
        if sys.stderr.isatty():
            print(f"{PROG}: {k}/{len(students)} {folder.name}", file=sys.stderr, flush=True)
        doc, _ = _grade(args, folder, outdir / f"{folder.name}.pcap")
        docs.append(doc)
        rows.append(batch_row(folder.name, doc))
    if args.json:
        print(dumps(conform_batch_document(args.lab, docs)))
    elif args.csv:
        print(batch_csv(rows), end="")
    else:
        print(batch_table(rows))
    return 0 if all(doc["passed"] for doc in docs) else 1
