"""Part 3, the file transfer: the checks of a submission's server and client. The copy
must be byte-identical, whatever the file holds."""

from __future__ import annotations

import random

from .checks import Check, Phase, Window
from .echo import CLOSE_WAIT_S, reference_on
from .programs import Program
from .sandbox import Outcome, Sandbox, SandboxError, Server, read_regular, snapshot


def _boundaries() -> bytes:
    """Whitespace on both sides of the 1024-, 2048- and 3072-byte marks, where a recv(1024)
    ends and the next begins."""
    out = bytearray()
    for k in (1, 2, 3):
        out += b"x" * (k * 1024 - 3 - len(out)) + b" \n\t" + b"\n  "
    return bytes(out) + b"tail \n"


CONTENTS = [  # (what it tries, the file's bytes)
    ("text with blank lines", b"first line\n\n\nafter two blank lines\n\n   indented\nlast line\n"),
    ("whitespace at the 1024-byte boundaries", _boundaries()),
    ("a trailing newline", b"no blank line, but a newline at the end\n"),
    ("an empty file", b""),
    ("binary data", bytes(range(256)) * 16 + random.Random(3).randbytes(60_000)),
    ("1 MB", random.Random(1).randbytes(1_000_000)),
]
UPLOAD = "upload.bin"  # the file the reference client sends


def run(sb: Sandbox, student: tuple[Program, Program], ref: tuple[Program, Program],
        client_file: str | None = None, server_file: str | None = None) -> tuple[list[Check], list[Phase]]:
    server, client = student
    ref_server, ref_client = ref
    addr = sb.topology.server_addr
    checks: list[Check] = []
    cport, name = _probe(sb, client, client_file)

    # The student's server, sent each file by the reference client (a fresh server each time).
    phase_s = Phase("server", "server", "client")
    port = 0
    unclosed, unflushed = [], []
    for what, data in CONTENTS:
        srv = sb.start_server(server, prefer=cport)
        port = srv.port
        out = _upload(sb, ref_client, srv, data)
        phase_s.windows.append((out.start_ns, out.end_ns, srv.port))
        if not sb.wait_closed(srv, CLOSE_WAIT_S):
            unclosed.append(what)
        before = _copy(srv, server_file, data)
        sb.stop(srv.proc)
        after = _copy(srv, server_file, data)
        if not _same(before, data) and _same(after, data):
            unflushed.append(what)
        checks.append(_copy_check(f"copy identical: {what}", "server", data, after, out.failure(),
                                  phase_s.windows[-1]))
    checks.append(Check("server closes the connection when the file has arrived", "server", not unclosed,
                        f"its FIN within {CLOSE_WAIT_S:g} s of the client's end",
                        "still open after: " + ", ".join(unclosed) if unclosed else "closed every time"))
    checks.append(Check("server closes its copy when the file has arrived", "server", not unflushed,
                        "the whole copy on disk while the server still runs",
                        "complete only once the server stopped: " + ", ".join(unflushed) if unflushed
                        else "complete every time"))
    checks.extend(_keeps_serving(sb, server, ref_client, server_file, cport))

    # The student's client, sending to the reference server on the port it connects to.
    phase_c = Phase("client", "client", "client")
    ref_srv = reference_on(sb, ref_server, port if cport is None else cport)
    for what, data in CONTENTS:
        seen_before = snapshot(ref_srv.folder)
        out = _send(sb, client, name, data, client.client_args(addr, ref_srv.port))
        phase_c.windows.append((out.start_ns, out.end_ns, ref_srv.port))
        sb.wait_closed(ref_srv, CLOSE_WAIT_S)
        copy = _new_file(ref_srv, seen_before, None, data)
        checks.append(_copy_check(f"client sends: {what}", "client", data, copy, out.failure(), phase_c.windows[-1]))
    sb.stop(ref_srv.proc)

    # Both of the student's programs, as the lab runs them.
    phase_t = Phase("together", "both", "client")
    for what, data in (CONTENTS[0], CONTENTS[-1]):
        srv = sb.start_server(server, prefer=cport)
        out = _send(sb, client, name, data, client.client_args(addr, srv.port))
        phase_t.windows.append((out.start_ns, out.end_ns, srv.port))
        sb.wait_closed(srv, CLOSE_WAIT_S)
        sb.stop(srv.proc)
        note = f" (the client connects to port {cport}, the server listens on {srv.port})" \
            if cport not in (None, 0, srv.port) else ""
        failure = out.failure()
        checks.append(_copy_check(f"together: {what}", "both", data, _copy(srv, server_file, data),
                                  (failure + note) if failure else None, phase_t.windows[-1]))
    return checks, [phase_s, phase_c, phase_t]


def _probe(sb: Sandbox, client: Program, client_file: str | None) -> tuple[int | None, str]:
    """Where the student's client connects (None: not seen) and the file it sends, from
    traced runs; a client that reads its file before it connects is given the file it
    looked for, and traced again."""
    if client.reference:
        return 0, UPLOAD
    name, port, files = client_file, None, {}
    for _ in range(3):
        probe = sb.probe_client(client, [], sb.folder(client, "probe", files))
        if probe.problem:
            break
        port = port or probe.port
        name = name or next(iter(probe.opened), None)
        if port is not None or name is None or name in files:
            break
        files = {name: b"a file to send\n"}
    if name is None:
        raise SandboxError(f"cannot tell which file {client.name} sends (it opened none in its folder): "
                           "give --client-file")
    return port, name


def _send(sb: Sandbox, client: Program, name: str, data: bytes, args: list[str]) -> Outcome:
    """Run ``client`` in a new folder where file ``name`` holds ``data``."""
    folder = sb.folder(client, "client", {name: data})
    return sb.run_client(client, [*args, name] if client.reference else args, folder)


def _copy(srv: Server, name: str | None, data: bytes) -> bytes | None:
    """The file the server wrote: ``name``, else the new or changed file of its folder."""
    return _new_file(srv, srv.started, name, data)


def _new_file(srv: Server, before: dict[str, tuple[int, int]], name: str | None, data: bytes) -> bytes | None:
    """``name`` in the server's folder; without a name, of the files new or changed since
    ``before``, one that holds ``data`` (a server may write a log beside the copy), else
    the last written. Never more than ``data`` and 1 MiB of it is read."""
    limit = len(data) + (1 << 20)
    if name is not None:
        return read_regular(srv.folder / name, limit)
    now = snapshot(srv.folder)
    changed = sorted((now[n][1], n) for n in now if before.get(n) != now[n] and not n.startswith(".partial"))
    copies = [read_regular(srv.folder / n, limit) for _, n in changed]
    return data if data in copies else (copies[-1] if copies else None)


def _same(copy: bytes | None, data: bytes) -> bool:
    return copy == data or (copy is None and not data)  # nothing stored for nothing sent is a copy


def _copy_check(name: str, program: str, data: bytes, copy: bytes | None, failure: str | None,
                run: Window) -> Check:
    want = f"{len(data)} bytes, identical"
    if copy is None:
        seen = "no file written" + (f" ({failure})" if failure else "")
    elif copy == data:
        seen = f"{len(copy)} bytes, identical" + (f" ({failure})" if failure else "")
    else:
        seen = f"{len(copy)} bytes, {_first_difference(copy, data)}" + (f"; {failure}" if failure else "")
    return Check(name, program, _same(copy, data) and failure is None, want, seen, "", run)  # type: ignore[arg-type]


def _first_difference(copy: bytes, data: bytes) -> str:
    k = next((i for i, (a, b) in enumerate(zip(copy, data, strict=False)) if a != b), min(len(copy), len(data)))
    return f"differs from byte {k} ({data[k:k + 8]!r} sent, {copy[k:k + 8]!r} written)"


def _keeps_serving(sb: Sandbox, server: Program, ref_client: Program, server_file: str | None,
                   prefer: int | None) -> list[Check]:
    """Three files one after the other to one server process, each copied whole; then one
    while another client is connected and silent."""
    srv = sb.start_server(server, prefer=prefer)
    served, seen = 0, "it stored each of them"
    try:
        for k in range(3):
            if not srv.alive():
                seen = f"it had exited before client {k + 1}"
                break
            data = f"file number {k + 1}\n".encode() * (k + 1)
            before = snapshot(srv.folder)
            out = _upload(sb, ref_client, srv, data)
            sb.wait_closed(srv, CLOSE_WAIT_S)
            if _new_file(srv, before, server_file, data) != data:
                seen = f"client {k + 1}'s file was not stored whole" + (f" ({out.failure()})" if out.failure() else "")
                break
            served += 1
    finally:
        sb.stop(srv.proc)
    checks = [Check("server keeps serving a second and a third client", "server", served == 3,
                    "one server process stores three files in a row", seen)]
    srv = sb.start_server(server, prefer=prefer)
    data = b"sent while another client is connected\n"
    try:
        with sb.held_connection(srv.port):
            out = _upload(sb, ref_client, srv, data)
            sb.wait_closed(srv, CLOSE_WAIT_S, still_open=1)
            done = _copy(srv, server_file, data) == data
        why = out.failure() or "no copy"
    except OSError as exc:  # the first client could not even connect
        done, why = False, f"cannot connect: {exc.strerror or exc}"
    finally:
        sb.stop(srv.proc)
    checks.append(Check("server takes a file while another client is connected", "server", done,
                        "the second client's file stored while the first waits",
                        "stored" if done else f"not stored while the other waited ({why})"))
    return checks


def _upload(sb: Sandbox, ref_client: Program, srv: Server, data: bytes) -> Outcome:
    """The reference client sends ``data`` to ``srv``."""
    folder = sb.folder(ref_client, "client", {UPLOAD: data})
    return sb.run_client(ref_client, [*ref_client.client_args(sb.topology.server_addr, srv.port), UPLOAD], folder)
