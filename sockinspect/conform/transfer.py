"""Part 3, the file transfer: the checks of a submission's server and client. The copy
must be byte-identical, whatever the file holds."""

from __future__ import annotations

import random

from .checks import Check, Phase, Window
from .echo import CLOSE_WAIT_S, client_port, reference_on
from .programs import Program
from .sandbox import Outcome, Sandbox, SandboxError, Server, snapshot


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

    # The student's server, sent each file by the reference client (a fresh server each time).
    phase_s = Phase("server", "server", "client")
    port = 0
    unclosed, unflushed = [], []
    for what, data in CONTENTS:
        srv = sb.start_server(server)
        port = srv.port
        out = _upload(sb, ref_client, srv, data)
        phase_s.windows.append((out.start_ns, out.end_ns, srv.port))
        if not sb.wait_closed(srv, CLOSE_WAIT_S):
            unclosed.append(what)
        before = _copy(srv, server_file)
        sb.stop(srv.proc)
        after = _copy(srv, server_file)
        if _same(before, data) != _same(after, data):
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
    checks.extend(_keeps_serving(sb, server, ref_client, server_file))

    # The student's client, sending to the reference server on the port it connects to.
    phase_c = Phase("client", "client", "client")
    probe = client_port(sb, client, [], port)
    ref_srv = reference_on(sb, ref_server, probe.port)
    cport = ref_srv.port
    name = client_file or (UPLOAD if client.reference else next(iter(probe.opened), None))
    if name is None:  # it opens its file only once connected: trace it again, with a server there
        name = next(iter(sb.probe_client(client, [], sb.folder(client, "probe")).opened), None)
    if name is None:
        sb.stop(ref_srv.proc)
        raise SandboxError(f"cannot tell which file {client.name} sends (it opened none in its folder): "
                           "give --client-file")
    for what, data in CONTENTS:
        seen_before = snapshot(ref_srv.folder)
        out = _send(sb, client, name, data, client.client_args(addr, cport))
        phase_c.windows.append((out.start_ns, out.end_ns, cport))
        sb.wait_closed(ref_srv, CLOSE_WAIT_S)
        copy = _new_file(ref_srv, seen_before, None)
        checks.append(_copy_check(f"client sends: {what}", "client", data, copy, out.failure(), phase_c.windows[-1]))
    sb.stop(ref_srv.proc)

    # Both of the student's programs, as the lab runs them.
    phase_t = Phase("together", "both", "client")
    for what, data in (CONTENTS[0], CONTENTS[-1]):
        srv = sb.start_server(server)
        out = _send(sb, client, name, data, client.client_args(addr, srv.port))
        phase_t.windows.append((out.start_ns, out.end_ns, srv.port))
        sb.wait_closed(srv, CLOSE_WAIT_S)
        sb.stop(srv.proc)
        note = "" if cport == srv.port else f" (the client connects to port {cport}, the server listens on {srv.port})"
        failure = out.failure()
        checks.append(_copy_check(f"together: {what}", "both", data, _copy(srv, server_file),
                                  (failure + note) if failure else None, phase_t.windows[-1]))
    return checks, [phase_s, phase_c, phase_t]


def _send(sb: Sandbox, client: Program, name: str, data: bytes, args: list[str]) -> Outcome:
    """Run ``client`` in a new folder where file ``name`` holds ``data``."""
    folder = sb.folder(client, "client")
    path = folder / name
    path.write_bytes(data)
    sb.give(path)
    return sb.run_client(client, [*args, name] if client.reference else args, folder)


def _copy(srv: Server, name: str | None) -> bytes | None:
    """The file the server wrote: ``name``, else the one file new or changed in its folder."""
    return _new_file(srv, srv.started, name)


def _new_file(srv: Server, before: dict[str, tuple[int, int]], name: str | None) -> bytes | None:
    if name is not None:
        path = srv.folder / name
        return path.read_bytes() if path.is_file() else None
    now = snapshot(srv.folder)
    changed = sorted((now[n][1], n) for n in now if before.get(n) != now[n] and not n.startswith(".partial"))
    return (srv.folder / changed[-1][1]).read_bytes() if changed else None


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


def _keeps_serving(sb: Sandbox, server: Program, ref_client: Program, server_file: str | None) -> list[Check]:
    """Three files one after the other to one server process, then one while another client
    is connected and silent. A client is served when the server closes its connection, or
    the copy is there (a server that never closes its sockets fails a check of its own)."""
    srv = sb.start_server(server)
    served, seen = 0, "it served every client"
    try:
        for k in range(3):
            if not srv.alive():
                seen = f"it had exited before client {k + 1}"
                break
            data = f"file number {k + 1}\n".encode() * (k + 1)
            before = snapshot(srv.folder)
            out = _upload(sb, ref_client, srv, data)
            if not (sb.wait_closed(srv, CLOSE_WAIT_S) or _new_file(srv, before, server_file) == data):
                seen = f"client {k + 1} was not served ({out.failure() or 'its connection stayed open, no copy'})"
                break
            served += 1
    finally:
        sb.stop(srv.proc)
    checks = [Check("server keeps serving a second and a third client", "server", served == 3,
                    "one server process stores three files in a row", seen)]
    srv = sb.start_server(server)
    data = b"sent while another client is connected\n"
    try:
        with sb.held_connection(srv.port):
            out = _upload(sb, ref_client, srv, data)
            done = sb.wait_closed(srv, CLOSE_WAIT_S, still_open=1) or _copy(srv, server_file) == data
    finally:
        sb.stop(srv.proc)
    checks.append(Check("server takes a file while another client is connected", "server", done,
                        "the second client served while the first waits",
                        "served" if done else f"not served while the other waited ({out.failure() or 'no copy'})"))
    return checks


def _upload(sb: Sandbox, ref_client: Program, srv: Server, data: bytes) -> Outcome:
    """The reference client sends ``data`` to ``srv``."""
    folder = sb.folder(ref_client, "client")
    (folder / UPLOAD).write_bytes(data)
    return sb.run_client(ref_client, [*ref_client.client_args(sb.topology.server_addr, srv.port), UPLOAD], folder)
