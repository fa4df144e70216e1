"""What every reference program shares: both ways to run it, the readiness line,
one-line errors with exit status 2 for bad arguments, and a clean stop."""

from __future__ import annotations

import signal
import socket

import pytest

HOST = "127.0.0.1"
SERVERS = ["echo_tcp_server", "tcp_file_transfer_server", "chat_server", "udp_echo_server"]
CLIENTS = ["echo_tcp_client", "tcp_file_transfer_client", "chat_client", "udp_echo_client", "nagle_client"]
REQUIRED = {"echo_tcp_client": ["word"], "tcp_file_transfer_client": ["file"]}


@pytest.mark.parametrize("form", ["script", "module"])
@pytest.mark.parametrize("program", SERVERS + CLIENTS)
def test_runs_as_script_and_as_module(client, program, form):
    done = client(program, "--help", form=form)
    assert done.returncode == 0 and "--host" in done.stdout and "--port" in done.stdout and done.stderr == ""


@pytest.mark.parametrize("port", ["x", "70000", "-1"])
@pytest.mark.parametrize("program", SERVERS + CLIENTS)
def test_bad_port_is_a_one_line_error(client, program, port):
    done = client(program, "--port", port, *REQUIRED.get(program, []))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    *usage, error = done.stderr.splitlines()
    assert usage[0].startswith("usage: ") and error.endswith(("invalid int value: 'x'", f"not {port}"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("program", SERVERS)
def test_servers_stop_cleanly(spawn, program, sig, tmp_path):
    args = ["--dir", str(tmp_path)] if program == "tcp_file_transfer_server" else []
    server = spawn(program, *args, stdin=program == "chat_server")  # readiness line checked by spawn
    assert server.wait_for_log(f"listening on 127.0.0.1 port {server.port}")
    status, log = server.stop(sig)
    assert status == 0 and "Traceback" not in log and log.rstrip().endswith("stopping")


@pytest.mark.parametrize("program", SERVERS)
def test_port_in_use_is_a_one_line_error(client, program, tmp_path):
    kind = socket.SOCK_DGRAM if program == "udp_echo_server" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((HOST, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        args = ["--dir", str(tmp_path)] if program == "tcp_file_transfer_server" else []
        done = client(program, "--port", str(port), *args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"{program}: cannot listen on 127.0.0.1 port {port}: Address already in use\n"


def test_ctrl_c_in_a_waiting_client_is_quiet(spawn):
    with socket.create_server((HOST, 0)) as listener:  # accepts, reads, never answers
        waiting = spawn("echo_tcp_client", "--port", str(listener.getsockname()[1]), "hello", server=False)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(100) == b"hello\n"  # the client now waits for the reply
            status, log = waiting.stop(signal.SIGINT)
    assert status == 130 and log == ""
