"""The lab's reference programs, end to end on loopback with OS-chosen ports.
Every robustness case checks that the server still serves a good client after."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reference_servers.chat_server import ChatServer
from reference_servers.echo_tcp_client import request
from reference_servers.echo_tcp_server import EchoHandler, EchoServer, answer
from reference_servers.tcp_file_transfer_client import send_file
from reference_servers.tcp_file_transfer_server import FileTransferServer
from reference_servers.udp_echo_server import TCPEchoServer, UDPEchoServer

ROOT = Path(__file__).parents[1]
HOST = "127.0.0.1"
LAB_ECHO = [
    (["sfdsd", "Ted", "is", "cool23432"], "Sent:      sfdsd Ted is cool23432\nReceived: Secret code not found.\n"),
    (["Ted", "is", "SECRET", "cool"], "Sent:      Ted is SECRET cool\nReceived: Digits: Count: 0\n"),
    (["123Ted", "32is", "343SECRET", "cool"],
     "Sent:      123Ted 32is 343SECRET cool\nReceived: Digits: 12332343 Count: 8\n"),
]


def running(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


@pytest.fixture
def echo_port():
    server = EchoServer((HOST, 0))
    yield running(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def spawn():
    """Start a reference program as a subprocess; stop it (SIGTERM) afterwards."""
    procs = []

    def start(module: str, *args: str, stdin=None):
        proc = subprocess.Popen([sys.executable, "-m", f"reference_servers.{module}", *args],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)


def ready_port(proc) -> int:
    line = proc.stdout.readline()
    assert line.startswith(f"listening on {HOST} "), line
    return int(line.split()[-1])


def assert_still_serves(port: int) -> None:
    assert request(HOST, port, "still here SECRET 1") == "Digits: 1 Count: 1"


# -- secret-code echo ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["script", "module"])
def test_lab_transcripts_byte_for_byte(spawn, form):
    server = spawn("echo_tcp_server", "--port", "0")
    port = ready_port(server)
    for words, expected in LAB_ECHO:
        cmd = ([sys.executable, str(ROOT / "reference_servers" / "echo_tcp_client.py")] if form == "script"
               else [sys.executable, "-m", "reference_servers.echo_tcp_client"])
        done = subprocess.run([*cmd, "--port", str(port), *words], capture_output=True, text=True, cwd="/")
        assert done.returncode == 0 and done.stdout == expected and done.stderr == ""


def test_answer_rules():
    assert answer("no code here 123") == "Secret code not found."
    assert answer("secret 12") == "Secret code not found."  # case-sensitive
    assert answer("SECRET") == "Digits: Count: 0"
    assert answer("a1b2SECRETc3") == "Digits: 123 Count: 3"
    assert answer("héllo SECRET ٣ ４ 5") == "Digits: 5 Count: 1"  # ASCII digits only


def test_one_megabyte_message_arrives_whole(echo_port):
    message = "SECRET " + "7" * (1 << 20)
    assert request(HOST, echo_port, message) == f"Digits: {'7' * (1 << 20)} Count: {1 << 20}"


def test_non_ascii_text(echo_port):
    assert request(HOST, echo_port, "Grüße SECRET ñ 42 €") == "Digits: 42 Count: 2"


def test_bytes_that_are_not_utf8_get_an_error_reply(echo_port):
    with socket.create_connection((HOST, echo_port), timeout=5) as s:
        s.sendall(b"SECRET \xff\xfe 12\n")
        assert s.recv(1000) == b"Error: message is not valid UTF-8 (byte 7).\n"
    assert_still_serves(echo_port)


def test_minimal_lab_client_unterminated_and_waiting(echo_port):
    with socket.create_connection((HOST, echo_port), timeout=5) as s:
        s.sendall(b"42 SECRET")  # no newline, no shutdown: like the lab's first attempt
        start = time.monotonic()
        assert s.recv(1000) == b"Digits: 42 Count: 2\n"
        assert time.monotonic() - start < 3
    assert_still_serves(echo_port)


def test_silent_client_blocks_nobody(echo_port):
    with socket.create_connection((HOST, echo_port), timeout=5):
        assert_still_serves(echo_port)


def test_idle_client_is_dropped():
    class Quick(EchoHandler):
        timeout = 0.3

    server = EchoServer((HOST, 0), Quick)
    port = running(server)
    try:
        with socket.create_connection((HOST, port), timeout=5) as s:
            assert s.recv(10) == b""  # closed by the server
        assert_still_serves(port)
    finally:
        server.shutdown()
        server.server_close()


def test_message_size_limit():
    class Small(EchoHandler):
        max_message = 1000

    server = EchoServer((HOST, 0), Small)
    port = running(server)
    try:
        assert request(HOST, port, "x" * 5000) == "Error: message longer than 1000 bytes."
        assert_still_serves(port)
    finally:
        server.shutdown()
        server.server_close()


def test_fifty_concurrent_clients(echo_port):
    def one(i: int) -> bool:
        return request(HOST, echo_port, f"client {i} SECRET") == f"Digits: {i} Count: {len(str(i))}"

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(50)))


def test_client_that_disconnects_mid_message(echo_port):
    s = socket.create_connection((HOST, echo_port))
    s.sendall(b"SECRET partial")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    assert_still_serves(echo_port)


def test_sigterm_stops_cleanly_and_bad_arguments(spawn):
    server = spawn("echo_tcp_server", "--port", "0")
    ready_port(server)
    server.send_signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert "Traceback" not in server.stderr.read()
    bad = subprocess.run([sys.executable, "-m", "reference_servers.echo_tcp_server", "--port", "x"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr


def test_client_without_server_fails_in_one_line(echo_port):
    with socket.socket() as s:
        s.bind((HOST, 0))
        free = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "reference_servers.echo_tcp_client", "--port", str(free), "hi"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "refused" in done.stderr


# -- file transfer -------------------------------------------------------------------


@pytest.fixture
def file_server(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    server = FileTransferServer((HOST, 0), out)
    port = running(server)
    yield port, out
    server.shutdown()
    server.server_close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.txt", b""),
        ("text.txt", b"  leading spaces\n\n\nblank lines above\ttab\n   trailing   \n\n"),
        ("binary.bin", bytes(range(256)) * 4096 + b"\x00\r\n\x00"),
    ],
)
def test_transfer_is_byte_for_byte(file_server, tmp_path, name, content):
    port, out = file_server
    src = tmp_path / name
    src.write_bytes(content)
    assert send_file(HOST, port, src) == hashlib.sha256(content).hexdigest()
    assert (out / name).read_bytes() == content
    assert [p.name for p in out.iterdir()] == [name]  # no temporary file left


def test_hundred_megabytes(file_server, tmp_path):
    port, out = file_server
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    done = subprocess.run([sys.executable, "-m", "reference_servers.tcp_file_transfer_client", str(src),
                           "--port", str(port)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""  # silent on success, as in the lab
    assert sha(out / "big.bin") == sha(src)


def test_cut_off_transfer_leaves_nothing(file_server):
    port, out = file_server
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"SOCKINSPECT-FILE/1 1000 half.bin\n" + b"x" * 10)
        s.shutdown(socket.SHUT_WR)
        assert s.makefile("rb").readline().startswith(b"ERROR connection ended after 10 of 1000 bytes")
    assert list(out.iterdir()) == []
    assert_file_server_serves(port, out)


@pytest.mark.parametrize(("sent", "stored"), [("../../etc/passwd", "passwd"), ("/etc/shadow", "shadow"),
                                              ("a\\b\\c.txt", "c.txt")])
def test_names_never_escape_the_folder(file_server, tmp_path, sent, stored):
    port, out = file_server
    src = tmp_path / "x"
    src.write_bytes(b"data")
    send_file(HOST, port, src, name=sent)
    assert [p.name for p in out.iterdir()] == [stored]
    assert not (tmp_path.parent / "etc").exists()


@pytest.mark.parametrize("bad", ["..", "a\x00b", "/"])
def test_unusable_names_are_refused(file_server, tmp_path, bad):
    port, out = file_server
    src = tmp_path / "x"
    src.write_bytes(b"data")
    with pytest.raises(ValueError, match="server refused the file"):
        send_file(HOST, port, src, name=bad)
    assert list(out.iterdir()) == []
    assert_file_server_serves(port, out)


def test_plain_nc_stream_is_saved_whole(file_server):
    port, out = file_server
    data = b"raw bytes from nc -N\n" * 1000
    with socket.create_connection((HOST, port)) as s:  # what `nc -N HOST PORT < file` does
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.recv(100)
    (saved,) = out.iterdir()
    assert saved.name.startswith("received-") and saved.read_bytes() == data


def test_concurrent_transfers_do_not_mix(file_server, tmp_path):
    port, out = file_server
    sources = []
    for i in range(8):
        src = tmp_path / f"f{i}.bin"
        src.write_bytes(os.urandom(300_000 + i))
        sources.append(src)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: send_file(HOST, port, p), sources))
    for src in sources:
        assert sha(out / src.name) == sha(src)


def test_same_name_twice_keeps_both(file_server, tmp_path):
    port, out = file_server
    src = tmp_path / "a.txt"
    src.write_bytes(b"1")
    send_file(HOST, port, src)
    src.write_bytes(b"2")
    send_file(HOST, port, src)
    assert (out / "a.txt").read_bytes() == b"1" and (out / "a-1.txt").read_bytes() == b"2"


def test_client_errors_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "reference_servers.tcp_file_transfer_client",
                           str(tmp_path / "missing")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no such file" in done.stderr


def assert_file_server_serves(port: int, out: Path) -> None:
    probe = out.parent / "probe.txt"
    probe.write_bytes(b"ok")
    send_file(HOST, port, probe)
    assert (out / "probe.txt").read_bytes() == b"ok"


# -- named chat --------------------------------------------------------------------


def test_chat_with_nc_like_peers(spawn):
    server = spawn("chat_server", "--name", "R2", "--port", "0", stdin=subprocess.PIPE)
    port = ready_port(server)
    a = socket.create_connection((HOST, port), timeout=5)  # behaves as plain nc: raw lines
    b = socket.create_connection((HOST, port), timeout=5)
    time.sleep(0.2)  # both joined
    server.stdin.write("Hi, my name is R2\n")
    server.stdin.flush()
    assert a.makefile("rb").readline() == b"R2: Hi, my name is R2\n"
    b_lines = b.makefile("rb")
    assert b_lines.readline() == b"R2: Hi, my name is R2\n"
    a.sendall(b"KALI: Hi R2, my name is KALI. Nice to meet you.\n")
    assert b_lines.readline() == b"KALI: Hi R2, my name is KALI. Nice to meet you.\n"  # relayed to others
    assert server.stdout.readline() == "R2: Hi, my name is R2\n"
    assert server.stdout.readline() == "KALI: Hi R2, my name is KALI. Nice to meet you.\n"
    a.close()  # one client leaving does not end the chat for the others
    server.stdin.write("still here\n")
    server.stdin.flush()
    assert b_lines.readline() == b"R2: still here\n"
    server.stdin.close()  # Ctrl-D on R2 ends the chat for everyone
    assert b_lines.readline() == b""
    assert server.wait(5) == 0 and "Traceback" not in server.stderr.read()
    b.close()


def test_chat_client_against_server(spawn):
    server = spawn("chat_server", "--name", "R2", "--port", "0", stdin=subprocess.PIPE)
    port = ready_port(server)
    client = spawn("chat_client", "--name", "KALI", "--port", str(port), stdin=subprocess.PIPE)
    time.sleep(0.3)
    client.stdin.write("Hi R2, my name is KALI. Nice to meet you.\n")
    client.stdin.flush()
    assert client.stdout.readline() == "KALI: Hi R2, my name is KALI. Nice to meet you.\n"
    assert server.stdout.readline() == "KALI: Hi R2, my name is KALI. Nice to meet you.\n"
    client.stdin.close()  # Ctrl-D on KALI: the client ends cleanly
    assert client.wait(5) == 0 and "Traceback" not in client.stderr.read()
    server.send_signal(signal.SIGINT)  # Ctrl-C on R2
    assert server.wait(5) == 0 and "Traceback" not in server.stderr.read()


def test_chat_server_class_broadcast_excludes_sender():
    server = ChatServer((HOST, 0), "R2")
    port = running(server)
    try:
        a = socket.create_connection((HOST, port), timeout=2)
        b = socket.create_connection((HOST, port), timeout=2)
        time.sleep(0.2)
        a.sendall(b"A: one\n")
        assert b.makefile("rb").readline() == b"A: one\n"
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recv(10)  # the sender does not get its own line back
    finally:
        server.end()
        server.shutdown()
        server.server_close()


# -- UDP / TCP echo ------------------------------------------------------------------


def test_udp_and_tcp_round_trips(spawn):
    for extra in ([], ["--tcp"]):
        server = spawn("udp_echo_server", "--port", "0", *extra)
        port = ready_port(server)
        done = subprocess.run([sys.executable, "-m", "reference_servers.udp_echo_client", "--port", str(port),
                               "--count", "5", *extra], capture_output=True, text=True, cwd=ROOT, timeout=30)
        lines = done.stdout.splitlines()
        assert done.returncode == 0 and len(lines) == 6
        assert all(line.startswith(f"seq={i} rtt=") for i, line in enumerate(lines[:5], 1))
        assert lines[5].startswith(("tcp" if extra else "udp") + ": 5 sent, 5 received, 0 lost; rtt min/median/max ")


def test_udp_client_reports_losses_instead_of_hanging():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))  # bound but never answering: every datagram is lost
        port = s.getsockname()[1]
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "reference_servers.udp_echo_client", "--port", str(port),
                               "--count", "3", "--timeout", "0.2"], capture_output=True, text=True, cwd=ROOT)
    assert time.monotonic() - start < 10
    assert done.returncode == 1 and "3 sent, 0 received, 3 lost" in done.stdout


def test_echo_server_classes_in_process():
    for cls, kind in ((UDPEchoServer, socket.SOCK_DGRAM), (TCPEchoServer, socket.SOCK_STREAM)):
        server = cls((HOST, 0))
        port = running(server)
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.settimeout(2)
                s.connect((HOST, port))
                s.sendall(b"ping")
                assert s.recv(10) == b"ping"
        finally:
            server.shutdown()
            server.server_close()
