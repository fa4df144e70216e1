"""Part 1, the named chat: lines go both ways with the sender's ``NAME: `` prefix, also
with plain ``nc`` on the other side, and the end of input ends the chat cleanly."""

from __future__ import annotations

import socket
import time
from contextlib import suppress

from .._scenarios import LAB_CHAT
from .checks import Blame, Check, Phase, Window
from .echo import client_port, reference_on
from .programs import Program
from .sandbox import Sandbox, Server, Session

R2_LINE, KALI_LINE = LAB_CHAT
NC_LINE = "a line typed into plain nc"
NAMES: dict[Blame, tuple[str, str]] = {  # whose behaviour -> (R2's line reaching KALI, KALI's reaching R2)
    "server": ("server sends its lines as 'R2: text'", "server shows the client's lines"),
    "client": ("client shows the server's lines", "client sends its lines as 'KALI: text'"),
    "both": ("together: R2's line reaches KALI", "together: KALI's line reaches R2"),
}


def run(sb: Sandbox, student: tuple[Program, Program], ref: tuple[Program, Program]) -> tuple[list[Check], list[Phase]]:
    server, client = student
    ref_server, ref_client = ref
    addr = sb.topology.server_addr
    checks: list[Check] = []
    cport = client_port(sb, client, [])

    # The student's server: with the reference client, then with plain nc.
    phase_s = Phase("server", "server", "either")
    srv = sb.start_server(server, prefer=cport, interactive=True)
    cli = sb.start_client(ref_client, ref_client.client_args(addr, srv.port))
    checks += _exchange(sb, srv, cli, "server")
    cli.end_input()
    checks.append(_ended(cli, sb.timeout, "server", "server ends the chat when the client's input ends",
                         "the reference client exits: the server closed its side"))
    phase_s.windows.append(_window(cli, srv.port))
    sb.stop(srv.proc)
    srv = sb.start_server(server, prefer=cport, interactive=True)
    try:
        with sb.held_connection(srv.port) as nc:
            checks += _with_nc(sb, srv.session, nc, "server", "R2")  # type: ignore[arg-type]
    except OSError as exc:
        checks += _no_nc("server", f"nc cannot connect: {exc.strerror or exc}")
    sb.stop(srv.proc)

    # The student's client: with the reference server, then with a plain nc listening.
    phase_c = Phase("client", "client", "either")
    ref_srv = reference_on(sb, ref_server, srv.port if cport is None else cport, interactive=True)
    port = ref_srv.port
    cli = sb.start_client(client, client.client_args(addr, port))
    checks += _exchange(sb, ref_srv, cli, "client")
    cli.end_input()
    checks.append(_ended(cli, sb.timeout, "client", "client ends the chat when its input ends",
                         "it exits, and the reference server sees its end"))
    phase_c.windows.append(_window(cli, port))
    sb.stop(ref_srv.proc)
    with sb.listen(port) as listener:
        listener.settimeout(sb.timeout)
        cli = sb.start_client(client, client.client_args(addr, port))
        try:
            nc, _ = listener.accept()
        except OSError:
            checks += _no_nc("client", f"it never connected to nc; its terminal: {cli.shown()}")
        else:
            with nc:
                checks += _with_nc(sb, cli, nc, "client", "KALI")
            checks.append(_ended(cli, sb.timeout, "client", "client ends when the server ends the chat",
                                 "it exits once nc has closed"))
        cli.close()

    # Both of the student's programs.
    phase_t = Phase("together", "both", "either")
    srv = sb.start_server(server, prefer=cport, interactive=True)
    cli = sb.start_client(client, client.client_args(addr, srv.port))
    checks += _exchange(sb, srv, cli, "both")
    cli.end_input()
    cli.exited(sb.timeout)
    phase_t.windows.append(_window(cli, srv.port))
    cli.close()
    sb.stop(srv.proc)
    return checks, [phase_s, phase_c, phase_t]


def _exchange(sb: Sandbox, srv: Server, cli: Session, blame: Blame) -> list[Check]:
    """R2 types its lab line, then KALI its own: each must show on the other side, named."""
    term = srv.session
    assert term is not None
    sb.wait_connected(srv)
    to_kali, to_r2 = NAMES[blame]
    term.say(R2_LINE)
    want = f"R2: {R2_LINE}"
    ok = cli.expect(want, sb.timeout)
    checks = [Check(to_kali, blame, ok, want, "shown" if ok else f"KALI's terminal: {cli.shown()}",
                    "KALI's terminal")]
    cli.say(KALI_LINE)
    want = f"KALI: {KALI_LINE}"
    ok = term.expect(want, sb.timeout)
    checks.append(Check(to_r2, blame, ok, want, "shown" if ok else f"R2's terminal: {term.shown()}",
                        "R2's terminal"))
    return checks


def _nc_names(blame: Blame, name: str) -> tuple[str, str]:
    other = "client" if blame == "server" else "server"
    return (f"{blame} shows the lines of a plain nc {other}",
            f"a plain nc {other} gets the {blame}'s lines as '{name}: text'")


def _with_nc(sb: Sandbox, term: Session, nc: socket.socket, blame: Blame, name: str) -> list[Check]:
    """A plain nc on the other side: it sends lines as typed, and shows what it receives."""
    shows, gets = _nc_names(blame, name)
    nc.sendall(NC_LINE.encode() + b"\n")
    ok = term.expect(NC_LINE, sb.timeout)
    checks = [Check(shows, blame, ok, NC_LINE, "shown" if ok else f"its terminal: {term.shown()}")]
    term.say("hello nc")
    want = f"{name}: hello nc"
    got = _line(nc, sb.timeout)
    checks.append(Check(gets, blame, got == want, want, repr(got) if got is not None else "nothing"))
    with suppress(OSError):
        nc.shutdown(socket.SHUT_WR)  # Ctrl-D in nc
    return checks


def _no_nc(blame: Blame, why: str) -> list[Check]:
    shows, gets = _nc_names(blame, "R2" if blame == "server" else "KALI")
    return [Check(shows, blame, False, NC_LINE, why), Check(gets, blame, False, "a line", why)]


def _line(sock: socket.socket, timeout: float) -> str | None:
    """The first line ``sock`` receives, without its newline (None: none in time)."""
    sock.settimeout(timeout)
    data = b""
    with suppress(OSError):
        while b"\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r") if data else None


def _ended(cli: Session, timeout: float, blame: Blame, name: str, expected: str) -> Check:
    done = cli.exited(timeout)
    cli.close()
    return Check(name, blame, done, expected, "it did" if done else f"still running after {timeout:g} s")


def _window(cli: Session, port: int) -> Window:
    return (cli.start_ns, time.time_ns(), port)
