"""Part 2, the secret-code echo: the lab's transcript byte for byte, the framing
(newline, end of stream, silence), and every robustness case of issue 4. After each
bad client the server must still answer a good one."""

from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sockinspect.reference_servers.echo_tcp_client import request
from sockinspect.reference_servers.echo_tcp_server import EchoHandler, EchoServer, Message, answer

HOST = "127.0.0.1"
LAB = [  # LAB_SPEC Part 2, exactly
    (["sfdsd", "Ted", "is", "cool23432"], "Sent:      sfdsd Ted is cool23432\nReceived: Secret code not found.\n"),
    (["Ted", "is", "SECRET", "cool"], "Sent:      Ted is SECRET cool\nReceived: Digits: Count: 0\n"),
    (["123Ted", "32is", "343SECRET", "cool"],
     "Sent:      123Ted 32is 343SECRET cool\nReceived: Digits: 12332343 Count: 8\n"),
]


def assert_serves(port: int) -> None:
    """A good client is still answered."""
    assert request(HOST, port, "still SECRET 42", timeout=5) == "Digits: 42 Count: 2"


def raw(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=5)


def readline(sock: socket.socket) -> bytes:
    with sock.makefile("rb") as f:
        return f.readline()


@pytest.fixture
def port(serve) -> int:
    return serve(EchoServer((HOST, 0)))


def quick_server(serve, **limits) -> int:  # noqa: ANN003
    handler = type("Limited", (EchoHandler,), limits)
    return serve(EchoServer((HOST, 0), handler))


@pytest.mark.parametrize("form", ["script", "module"])
def test_lab_transcript_byte_for_byte(spawn, client, form):
    server = spawn("echo_tcp_server", form=form)
    for words, expected in LAB:
        done = client("echo_tcp_client", "--port", str(server.port), *words, form=form)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")
    status, log = server.stop()
    assert status == 0 and "Traceback" not in log


def test_answer_rules():
    assert answer("no code here 123") == "Secret code not found."
    assert answer("secret 12 Secret") == "Secret code not found."  # case-sensitive
    assert answer("SECRET") == "Digits: Count: 0"
    assert answer("a1b2SECRETc3") == "Digits: 123 Count: 3"
    assert answer("") == "Secret code not found."


def test_non_ascii_text_and_ascii_only_digits(port):
    # Arabic-Indic three and full-width four are not ASCII digits: they do not count.
    assert request(HOST, port, "Grüße SECRET ñ ٣ ４ 42 €") == "Digits: 42 Count: 2"
    assert request(HOST, port, "日本語のSECRETテキスト7") == "Digits: 7 Count: 1"


def test_one_megabyte_message_arrives_whole(port):
    digits = "0123456789" * (1 << 17)  # 1.25 MB, hundreds of recv() calls
    assert request(HOST, port, f"SECRET {digits}") == f"Digits: {digits} Count: {len(digits)}"


def test_long_unterminated_message_survives_a_pause(serve):
    port = quick_server(serve, quiet=0.2)
    with raw(port) as s:
        s.sendall(b"SECRET " + b"1" * 5000)  # longer than quiet_limit: silence does not end it
        time.sleep(0.5)  # the pause being tested (a slow network), not a synchronisation
        s.sendall(b"2" * 10 + b"\n")
        assert readline(s) == f"Digits: {'1' * 5000}{'2' * 10} Count: 5010\n".encode()


def test_bytes_that_are_not_utf8_get_an_error_reply(port):
    with raw(port) as s:
        s.sendall(b"SECRET \xff\xfe 12\n")
        assert readline(s) == b"Error: message is not valid UTF-8 (byte 7).\n"
    assert_serves(port)


def test_client_command_line_bytes_that_are_not_utf8(spawn, client):
    server = spawn("echo_tcp_server")
    done = client("echo_tcp_client", "--port", str(server.port), "SECRET", "\udcff1")  # argv byte 0xff
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert done.stdout == "Sent:      SECRET \ufffd1\nReceived: Error: message is not valid UTF-8 (byte 7).\n"


def test_minimal_lab_client_unterminated_and_waiting(port):
    with raw(port) as s:
        s.sendall(b"42 SECRET")  # no newline, no shutdown: the lab's first attempt
        start = time.monotonic()
        assert s.recv(1024) == b"Digits: 42 Count: 2\n"  # one recv, as the lab client does
        assert time.monotonic() - start < 3
    assert_serves(port)


def test_end_of_stream_ends_a_message_at_once(serve):
    port = quick_server(serve, quiet=30)  # silence cannot be what ends it here
    with raw(port) as s:
        s.sendall(b"SECRET 7 no newline")
        s.shutdown(socket.SHUT_WR)
        assert readline(s) == b"Digits: 7 Count: 1\n"


def test_several_messages_on_one_connection_like_nc(port):
    with raw(port) as s, s.makefile("rb") as replies:
        s.sendall(b"SECRET 1\r\nno code\nSECRET 2")  # CRLF as telnet sends; the last one unterminated
        s.shutdown(socket.SHUT_WR)
        assert replies.read() == b"Digits: 1 Count: 1\nSecret code not found.\nDigits: 2 Count: 1\n"


def test_silent_client_blocks_nobody_and_is_dropped(serve):
    port = quick_server(serve, timeout=0.5)
    with raw(port) as silent:
        assert_serves(port)  # while the silent one is connected
        start = time.monotonic()
        assert silent.recv(10) == b""  # then the server disconnects it
        assert time.monotonic() - start < 5
    assert_serves(port)


def test_message_size_limit(serve):
    port = quick_server(serve, max_message=1000)
    with raw(port) as s, s.makefile("rb") as replies:
        s.sendall(b"SECRET " + b"9" * 3_000_000 + b"\nSECRET 5\n")  # read and dropped, not a reset
        assert replies.readline() == b"Error: message longer than 1000 bytes.\n"
        assert replies.readline() == b""  # then the server closes
    assert request(HOST, port, "x" * 1001) == "Error: message longer than 1000 bytes."
    assert request(HOST, port, "SECRET" + "1" * 994) == f"Digits: {'1' * 994} Count: 994"  # exactly 1000 is fine
    with raw(port) as s:
        s.sendall(b"SECRET" + b"2" * 994 + b"\r\n")  # the CR of a CRLF does not count
        s.shutdown(socket.SHUT_WR)
        assert readline(s) == f"Digits: {'2' * 994} Count: 994\n".encode()
    with raw(port) as s:
        s.sendall(b"SECRET" + b"2" * 995)  # unterminated, at the end of the stream: over by one
        s.shutdown(socket.SHUT_WR)
        assert readline(s) == b"Error: message longer than 1000 bytes.\n"
    assert_serves(port)  # later clients are served


def test_crlf_at_the_limit_after_secret_in_a_later_receive(serve):
    """The \r of a CRLF was dropped only while SECRET was not found yet: a message at the
    limit holding SECRET early, its \r in a later receive, was taken as over the limit."""
    message = Message(1000)
    message.add(b"SECRET" + b"2" * 994)
    message.add(b"\r")
    message.end(newline=True)
    assert (message.length, b"".join(message.reply())) == (1000, f"Digits: {'2' * 994} Count: 994\n".encode())
    port = quick_server(serve, max_message=5000, quiet=0.2)
    with raw(port) as s:
        s.sendall(b"SECRET" + b"3" * 4994)  # longer than quiet_limit: the pause does not end it
        time.sleep(0.3)  # so the CRLF most likely arrives in a receive of its own
        s.sendall(b"\r\n")
        assert readline(s) == f"Digits: {'3' * 4994} Count: 4994\n".encode()


def test_over_long_message_from_a_client_that_never_stops(serve):
    port = quick_server(serve, max_message=1000, linger=0.3)
    with raw(port) as s:
        s.sendall(b"x" * 2000)  # over the limit, and it keeps the connection open
        assert readline(s) == b"Error: message longer than 1000 bytes.\n"
        start = time.monotonic()
        with pytest.raises(OSError):
            while True:  # the server drops this for `linger` seconds, then closes
                s.sendall(b"y" * 65536)
                time.sleep(0.01)
        assert time.monotonic() - start < 8
    assert_serves(port)


def _memory_mib(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in f)
                if k in ("VmRSS", "VmHWM")}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc/PID/status")
def test_memory_per_connection_is_bounded_and_given_back(spawn):
    server = spawn("echo_tcp_server")
    pid = server.proc.pid
    assert request(HOST, server.port, "SECRET 1") == "Digits: 1 Count: 1"
    idle = _memory_mib(pid)
    size = 15 << 20  # all digits, the worst case: the digits are what a reply needs
    with raw(server.port) as s, s.makefile("rb") as replies:
        s.sendall(b"SECRET " + b"7" * size + b"\nSECRET 2\n")
        assert replies.readline() == f"Digits: {'7' * size} Count: {size}\n".encode()
        assert replies.readline() == b"Digits: 2 Count: 1\n"
        after = _memory_mib(pid)  # the connection is still open
    peak = after["VmHWM"] - idle["VmHWM"]
    kept = after["VmRSS"] - idle["VmRSS"]
    # Wide bands: the digits (15 MiB) once, not copies of the whole message; none of it kept.
    assert peak < 15 + 12, f"peak {peak:.0f} MiB over idle for a 15 MiB message"
    assert kept < 6, f"{kept:.0f} MiB still held after a 15 MiB message"
    assert_serves(server.port)


def test_utf8_errors_and_secret_across_receives(serve):
    port = quick_server(serve)
    with raw(port) as s, s.makefile("rb") as replies:
        s.sendall(b"SECRET " + "é".encode() * 100_000 + b"\xff 3\n")  # many recv()s before the bad byte
        assert replies.readline() == b"Error: message is not valid UTF-8 (byte 200007).\n"
        s.sendall(b"SECRET 4 \xc3\n")  # ends inside a character
        assert replies.readline() == b"Error: message is not valid UTF-8 (byte 9).\n"
        s.sendall("€ SECRET 5 ٣\n".encode())  # the connection goes on after a UTF-8 error
        assert replies.readline() == b"Digits: 5 Count: 1\n"
        s.sendall(b"a" * 5000 + b"SEC")  # longer than quiet_limit: the pause does not end it
        time.sleep(0.3)  # so SECRET most likely arrives in two receives
        s.sendall(b"RET 6\n")
        assert replies.readline() == b"Digits: 6 Count: 1\n"


def test_fifty_concurrent_clients(port):
    def one(i: int) -> str:
        return request(HOST, port, f"client {i} SECRET", timeout=20)

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(one, range(50)))
    assert replies == [f"Digits: {i} Count: {len(str(i))}" for i in range(50)]


def test_fifty_concurrent_lab_clients_as_processes(spawn, client):
    server = spawn("echo_tcp_server")
    with ThreadPoolExecutor(50) as pool:
        done = list(pool.map(lambda i: client("echo_tcp_client", "--port", str(server.port), f"{i}SECRET",
                                              timeout=60), range(50)))
    for i, d in enumerate(done):
        assert (d.returncode, d.stdout) == (0, f"Sent:      {i}SECRET\nReceived: Digits: {i} Count: {len(str(i))}\n")


def test_client_that_resets_mid_message(port):
    s = raw(port)
    s.sendall(b"SECRET partial")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST instead of FIN
    assert_serves(port)


def test_client_that_leaves_before_the_reply(port):
    with raw(port) as s:
        s.sendall(b"SECRET 1")
    assert_serves(port)


def test_client_errors_are_one_line(client, unused_port):
    done = client("echo_tcp_client", "--port", str(unused_port), "hi")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"echo_tcp_client: 127.0.0.1 port {unused_port}: Connection refused\n"


def test_nodelay_hook(port):
    assert request(HOST, port, "SECRET 3", nodelay=True) == "Digits: 3 Count: 1"
