"""Part 1, the named chat: the lab's two lines, nc-like peers on either side, several
clients, and the chat ending cleanly (EOF, Ctrl-C, SIGTERM) for everyone involved."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from sockinspect.reference_servers.chat_server import ChatServer, Printer

from .conftest import ROOT, WAIT_S, command

HOST = "127.0.0.1"
R2_LINE, KALI_LINE = "Hi, my name is R2", "Hi R2, my name is KALI. Nice to meet you."


class Peer:
    """A raw TCP peer that behaves as plain ``nc`` does: bytes in, bytes out, line by line."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.lines = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        return self.lines.readline()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def connect(port: int) -> Peer:
        made.append(Peer(port))
        return made[-1]

    yield connect
    for peer in made:
        peer.close()


def test_lab_chat_with_nc_peers(spawn, peers):
    server = spawn("chat_server", "--name", "R2", stdin=True)
    kali, other = peers(server.port), peers(server.port)
    server.wait_for_log("joined")
    server.wait_for_log("joined")
    server.say(R2_LINE)
    assert server.readline() == f"R2: {R2_LINE}\n"
    assert kali.readline() == other.readline() == f"R2: {R2_LINE}\n".encode()
    kali.send(f"KALI: {KALI_LINE}\n".encode())  # the lab's mawk | nc sends the prefix itself
    assert server.readline() == f"KALI: {KALI_LINE}\n"
    assert other.readline() == f"KALI: {KALI_LINE}\n".encode()
    server.say("next")
    assert kali.readline() == other.readline() == b"R2: next\n"  # the sender did not get its own line back
    kali.sock.shutdown(socket.SHUT_WR)  # EOF from one client ends the chat for that client
    assert kali.readline() == b""
    server.wait_for_log("left")
    server.say("still here")
    assert other.readline() == b"R2: still here\n"  # the others go on
    server.proc.stdin.close()  # Ctrl-D on R2 ends the chat for everyone
    assert other.readline() == b""
    status, log = server.finish()
    assert status == 0 and "Traceback" not in log


@pytest.mark.parametrize("form", ["script", "module"])
def test_lab_chat_client_and_server(spawn, form):
    server = spawn("chat_server", "--name", "R2", stdin=True, form=form)
    kali = spawn("chat_client", "--name", "KALI", "--port", str(server.port), stdin=True, form=form)
    server.wait_for_log("joined")
    server.say(R2_LINE)  # both terminals show R2's line
    assert server.readline() == kali.readline() == f"R2: {R2_LINE}\n"
    kali.say(KALI_LINE)  # both terminals show KALI's line
    assert kali.readline() == server.readline() == f"KALI: {KALI_LINE}\n"
    kali.proc.stdin.close()  # Ctrl-D on KALI ends the chat
    status, log = kali.finish()
    assert status == 0 and log == ""
    server.wait_for_log("left")
    status, log = server.stop(signal.SIGINT)
    assert status == 0 and "Traceback" not in log


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "eof"])
def test_server_ending_ends_the_client(spawn, how):
    server = spawn("chat_server", stdin=True)
    kali = spawn("chat_client", "--port", str(server.port), stdin=True)
    server.wait_for_log("joined")
    if how == "eof":
        server.proc.stdin.close()
        status, log = server.finish()
    else:
        status, log = server.stop(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    assert status == 0 and "Traceback" not in log
    assert ("end of input" if how == "eof" else "stopping") in log
    assert kali.readline() == ""  # the client saw the end of the chat...
    assert kali.finish() == (0, "")  # ...and ended without a word on stderr


def test_client_ctrl_c(spawn):
    with socket.create_server((HOST, 0)) as listener:
        kali = spawn("chat_client", "--port", str(listener.getsockname()[1]), stdin=True)
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"R2: hello\n")
            assert kali.readline() == "R2: hello\n"  # the client is in its loop
            status, log = kali.stop(signal.SIGINT)
            assert status == 0 and log == ""
            conn.settimeout(10)
            assert conn.recv(100) == b""  # the server side sees the chat end


def test_client_against_a_plain_nc_listener(spawn):
    with socket.create_server((HOST, 0)) as listener:  # as `nc -l 5000` on R2
        kali = spawn("chat_client", "--name", "KALI", "--port", str(listener.getsockname()[1]), stdin=True)
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall("R2: Grüße\n".encode())
            assert kali.readline() == "R2: Grüße\n"
            kali.say(KALI_LINE)
            assert lines.readline() == f"KALI: {KALI_LINE}\n".encode()
        assert kali.finish() == (0, "")  # the listener went away: the chat is over


def test_every_line_goes_to_all_others(serve, peers):
    server = ChatServer((HOST, 0), "R2")
    port = serve(server)
    group = [peers(port) for _ in range(4)]
    assert server.wait_for_clients(4, timeout=10)
    for i, sender in enumerate(group):
        sender.send(f"P{i}: line {i}\n".encode())
        for j, receiver in enumerate(group):
            if j != i:
                assert receiver.readline() == f"P{i}: line {i}\n".encode()
    server.say("to all")
    assert [p.readline() for p in group] == [b"R2: to all\n"] * 4  # nobody had a line too many


def test_bytes_are_passed_on_as_they_came(spawn, peers):
    server = spawn("chat_server", stdin=True)
    a, b = peers(server.port), peers(server.port)
    server.wait_for_log("joined")
    server.wait_for_log("joined")
    a.send(b"A: caf\xe9 latin-1\r\n")
    assert b.readline() == b"A: caf\xe9 latin-1\r\n"
    assert server.readline() == "A: caf\ufffd latin-1\n"  # shown with a replacement character
    a.send(b"no newline at the end")
    a.sock.shutdown(socket.SHUT_WR)
    assert b.readline() == b"no newline at the end\n"
    server.say("ok")
    assert b.readline() == b"R2: ok\n"


def test_long_lines_are_passed_on_in_pieces(serve, peers):
    server = ChatServer((HOST, 0))
    server.max_line = 10
    port = serve(server)
    a, b = peers(port), peers(port)
    assert server.wait_for_clients(2, timeout=10)
    a.send(b"0123456789abcdefghij!\n")
    assert [b.readline() for _ in range(3)] == [b"0123456789\n", b"abcdefghij\n", b"!\n"]


def test_a_client_that_stops_reading_is_dropped(serve, peers):
    server = ChatServer((HOST, 0))
    server.send_timeout = 0.3
    server.show = lambda line: None  # 16 MiB of x on this side's stdout would reach the terminal
    port = serve(server)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(10)
    stalled.connect((HOST, port))  # and never reads
    talker = peers(port)
    assert server.wait_for_clients(2, timeout=10)
    line = b"x" * 65535 + b"\n"
    flood = threading.Thread(target=lambda: talker.send(line * 256), daemon=True)  # 16 MiB for the stalled one
    flood.start()
    try:
        assert server.wait_for_clients(1, timeout=10), "the stalled client was not dropped"
        flood.join(10)
        assert not flood.is_alive()
        fresh = peers(port)
        assert server.wait_for_clients(2, timeout=10)
        server.say("after")
        while (got := fresh.readline()) == line:  # the end of the flood may still be on its way
            pass
        assert got == b"R2: after\n"  # the chat goes on
    finally:
        stalled.close()


def full_pipe() -> tuple[int, int]:
    """A pipe already full, as the one to a paused terminal: every write to it blocks."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    with pytest.raises(BlockingIOError):
        while True:
            os.write(w, b"." * 4096)
    os.set_blocking(w, True)  # the writer inherits a blocking end, as a terminal's
    return r, w


class LinePeer:
    """A raw peer that reads lines with a timeout of its own (a timeout never loses data)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT_S)
        self.buf = b""

    def readline(self, timeout: float = WAIT_S) -> bytes | None:
        """The next line, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"


@pytest.mark.parametrize("blocked", ["stdout", "stdout and stderr"])
def test_relaying_never_waits_on_the_servers_terminal(blocked):
    err_r, err_w = full_pipe() if "stderr" in blocked else (None, subprocess.DEVNULL)
    proc = subprocess.Popen([*command("chat_server"), "--port", "0"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err_w)
    peers: list[LinePeer] = []
    try:
        if err_r is not None:
            os.close(err_w)
        assert select.select([proc.stdout], [], [], WAIT_S)[0], "no readiness line"
        port = int(proc.stdout.readline().split()[-1])  # and stdout is never read again
        a, b = LinePeer(port), LinePeer(port)
        peers += [a, b]
        sync = b"A: sync\n"
        for _ in range(50):  # until B gets one of A's lines: then both have joined
            a.sock.sendall(sync)
            if b.readline(timeout=0.2) == sync:
                break
        else:
            raise AssertionError("A's lines never reached B")
        line, count = b"A: " + b"y" * 996 + b"\n", 4096  # 4 MiB: many times what the pipe holds
        flood = threading.Thread(target=a.sock.sendall, args=(line * count,), daemon=True)
        flood.start()
        got = 0
        while got < count:
            received = b.readline()
            assert received is not None, f"relaying stopped after {got} of {count} lines"
            got += received == line
        flood.join(WAIT_S)
        b.sock.sendall(b"B: still here\n")
        assert a.readline() == b"B: still here\n"  # both ways
        a.sock.sendall(b"A: me too\n")
        while (received := b.readline()) == sync:
            pass
        assert received == b"A: me too\n"
        proc.terminate()  # and it still stops cleanly
        assert proc.wait(WAIT_S) == 0
    finally:
        for peer in peers:
            peer.sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)
        proc.stdin.close()
        proc.stdout.close()
        if err_r is not None:
            os.close(err_r)


def test_printer_drops_past_its_budget_and_says_so(caplog):
    r, w = full_pipe()
    stream = os.fdopen(w, "w")
    printer = Printer()
    printer.budget = 100
    start = time.monotonic()
    for i in range(50):
        printer.put(stream, f"line {i:02}")  # 8 bytes each: one is taken, 12 wait, the rest dropped
    assert time.monotonic() - start < 5  # put never waited on the full pipe
    os.read(r, 1 << 20)  # the terminal reads again: the waiting lines are written
    printer.close()
    shown = b""
    while select.select([r], [], [], 0.5)[0] and (chunk := os.read(r, 1 << 20)):
        shown += chunk
        if b"line" in shown and shown.count(b"\n") >= 12:
            break
    lines = [x for x in shown.split(b"\n") if x.startswith(b"line")]
    assert lines == [f"line {i:02}".encode() for i in range(len(lines))] and 10 <= len(lines) <= 14
    assert any("not shown" in rec.message for rec in caplog.records)
    stream.close()
    os.close(r)
