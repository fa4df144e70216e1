"""Part 2, the secret-code echo: the checks of a submission's server and client."""

from __future__ import annotations

from .._scenarios import LAB_ECHO
from .checks import Check, Phase, Window
from .programs import Program
from .sandbox import Outcome, Sandbox, SandboxError, Server

LONG = "SECRET " + "a" * 1500 + " 42 " + "b" * 1500 + " 7"  # longer than any recv(1024)
CLOSE_WAIT_S = 3.0  # how long a server may take to close a connection after the client's end
SERVER_CASES = [  # (what it tries, words, the reply LAB_SPEC gives)
    *[(f"the lab's request {i + 1}", words, transcript.splitlines()[1].removeprefix("Received: "))
      for i, (words, transcript) in enumerate(LAB_ECHO)],
    ("no digits, no code", ["hello", "world"], "Secret code not found."),
    ("only digits", ["123", "456"], "Secret code not found."),
    ("non-ASCII text", ["Grüße", "SECRET", "für", "café", "42"], "Digits: 42 Count: 2"),
    ("longer than one recv buffer", LONG.split(" "), "Digits: 427 Count: 3"),
]
CLIENT_CASES = [(what, words, f"Sent:      {' '.join(words)}\nReceived: {reply}\n")
                for what, words, reply in SERVER_CASES]


def run(sb: Sandbox, student: tuple[Program, Program], ref: tuple[Program, Program]) -> tuple[list[Check], list[Phase]]:
    server, client = student
    ref_server, ref_client = ref
    checks: list[Check] = []
    addr = sb.topology.server_addr

    cport = client_port(sb, client, SERVER_CASES[0][1])  # first: the server's port is the one it uses

    # The student's server, asked by the reference client.
    phase_s = Phase("server", "server", "either")
    srv = sb.start_server(server, prefer=cport)
    port = srv.port
    restarts, unclosed = [], []
    for i, (what, words, reply) in enumerate(SERVER_CASES):
        if not srv.alive():
            restarts.append(i)
            srv = sb.start_server(server, prefer=cport)
        out = sb.run_client(ref_client, [*ref_client.client_args(addr, srv.port), *words])
        phase_s.windows.append((out.start_ns, out.end_ns, srv.port))
        # Once a server has kept one connection open, the next get a short wait only.
        if not sb.wait_closed(srv, 0.3 if unclosed else CLOSE_WAIT_S) and srv.alive():
            unclosed.append(i + 1)
        seen = _received(out)
        checks.append(Check(f"reply: {what}", "server", seen == reply, reply, seen, f"request {i + 1}",
                            phase_s.windows[-1]))
    checks.append(Check("server closes each connection once the client has closed its side", "server",
                        not unclosed, f"its FIN within {CLOSE_WAIT_S:g} s of the client's",
                        f"still open after request {', '.join(map(str, unclosed))}" if unclosed
                        else "closed every time"))
    checks.append(_keeps_serving(restarts, srv.alive()))
    sb.stop(srv.proc)
    checks.append(_two_at_once(sb, server, ref_client, cport))

    # The student's client, against the reference server on the port it connects to.
    phase_c = Phase("client", "client", "either")
    ref_srv = reference_on(sb, ref_server, port if cport is None else cport)
    cport = ref_srv.port
    for i, (what, words, transcript) in enumerate(CLIENT_CASES):
        out = sb.run_client(client, [*client.client_args(addr, cport), *words])
        phase_c.windows.append((out.start_ns, out.end_ns, cport))
        checks.append(_transcript(f"transcript: {what}", "client", out, transcript, i + 1, phase_c.windows[-1]))
        if i == 0:
            checks.extend(_sent_line(out, words))
    sb.stop(ref_srv.proc)

    # Both of the student's programs, as the lab runs them.
    phase_t = Phase("together", "both", "either")
    srv = sb.start_server(server, prefer=cport)
    for i, (words, transcript) in enumerate(LAB_ECHO):
        if not srv.alive():
            srv = sb.start_server(server, prefer=cport)
        out = sb.run_client(client, [*client.client_args(addr, srv.port), *words])
        phase_t.windows.append((out.start_ns, out.end_ns, srv.port))
        checks.append(_transcript(f"together: the lab's transcript {i + 1}", "both", out, transcript, i + 1,
                                  phase_t.windows[-1], note="" if cport == srv.port else
                                  f" (the client connects to port {cport}, the server listens on {srv.port})"))
    sb.stop(srv.proc)
    return checks, [phase_s, phase_c, phase_t]


def client_port(sb: Sandbox, client: Program, args: list[str]) -> int | None:
    """Where ``client`` connects, from a traced run (None: not seen); a reference client
    goes where it is told (0: the reference server's choice)."""
    if client.reference:
        return 0
    return sb.probe_client(client, args, sb.folder(client, "probe")).port


def reference_on(sb: Sandbox, ref_server: Program, port: int, interactive: bool = False) -> Server:
    """The reference server, listening where the student's client connects."""
    try:
        return sb.start_server(ref_server, port, interactive=interactive)
    except SandboxError as exc:
        raise SandboxError(f"the reference server cannot listen on port {port}, where the client connects: {exc}") \
            from None


def _received(out: Outcome) -> str:
    failure = out.failure()
    if failure:
        return f"no reply: {failure}"
    for line in out.stdout.splitlines():
        if line.startswith("Received: "):
            return line.removeprefix("Received: ")
    return f"no 'Received:' line in {out.stdout[:200]!r}"


def _transcript(name: str, program: str, out: Outcome, want: str, request: int, run: Window,
                note: str = "") -> Check:
    failure = out.failure()
    seen = out.stdout if not failure else f"{failure}; printed {out.stdout[:200]!r}"
    where = f"run {request}"
    if not failure and out.stdout != want:
        lines, wanted = out.stdout.splitlines(), want.splitlines()
        first = next((k for k in range(max(len(lines), len(wanted)))
                      if k >= len(lines) or k >= len(wanted) or lines[k] != wanted[k]), 0)
        where += f", transcript line {first + 1}"
    return Check(name, program, not failure and out.stdout == want, want, seen + note, where, run)  # type: ignore[arg-type]


def _sent_line(out: Outcome, words: list[str]) -> list[Check]:
    """The two defects of a client's first line, each checked on its own."""
    first = out.stdout.splitlines()[0] if out.stdout else ""
    label, _, rest = first.partition(":")
    spaces = len(rest) - len(rest.lstrip(" "))
    joined = " ".join(words)
    return [
        Check("client prints 'Sent:' and six spaces", "client", label == "Sent" and spaces == 6,
              "Sent:      (six spaces)", repr(first[:40]), "transcript line 1"),
        Check("client joins its arguments with single spaces", "client", rest.lstrip(" ") == joined,
              repr(joined), repr(rest.lstrip(" ")[:80]), "transcript line 1"),
    ]


def _keeps_serving(restarts: list[int], alive: bool) -> Check:
    seen = "it served every client" if not restarts and alive else \
        f"it had exited before request {restarts[0] + 1}" if restarts else "it exited after the last request"
    return Check("server keeps serving a second and a third client", "server", not restarts and alive,
                 f"one server process answers all {len(SERVER_CASES)} requests", seen)


def _two_at_once(sb: Sandbox, server: Program, ref_client: Program, prefer: int | None) -> Check:
    """A client that connected and says nothing must not keep the server from another."""
    srv = sb.start_server(server, prefer=prefer)
    words, transcript = LAB_ECHO[0]
    want = transcript.splitlines()[1].removeprefix("Received: ")
    try:
        with sb.held_connection(srv.port):
            out = sb.run_client(ref_client, [*ref_client.client_args(sb.topology.server_addr, srv.port), *words])
        seen = _received(out)  # any reply: its text has checks of its own
    except OSError as exc:  # the first client could not even connect
        seen = f"no reply: cannot connect ({exc.strerror or exc})"
    finally:
        sb.stop(srv.proc)
    return Check("server answers a client while another is connected", "server", not seen.startswith("no "),
                 f"a reply ({want})", seen)
