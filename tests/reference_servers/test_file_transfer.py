"""Part 3, the file transfer: the copy is the file, byte for byte, whatever it holds;
nothing partial is ever left; names never escape --dir; plain ``nc -N`` works."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sockinspect.reference_servers.tcp_file_transfer_client import TransferFailed, send_file
from sockinspect.reference_servers.tcp_file_transfer_server import FileHandler, FileTransferServer, numbered, safe_name

HOST = "127.0.0.1"
MAGIC = b"SOCKINSPECT-FILE/1 "


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files(folder: Path) -> list[str]:
    """Every name in the folder, hidden ones (temporary files) included."""
    return sorted(p.name for p in folder.iterdir())


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    """Poll a condition another thread or process will make true (no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def raw_transfer(port: int, data: bytes, shutdown: bool = True) -> bytes:
    """Send bytes as they are (what ``nc -N`` does); the server's reply."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        with s.makefile("rb") as f:
            return f.read()


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def port(serve, out) -> int:
    return serve(FileTransferServer((HOST, 0), out))


def assert_serves(port: int, out: Path) -> None:
    """A good transfer still works (and its file is the only new one)."""
    probe = out.parent / "probe.txt"
    probe.write_bytes(b"probe\n")
    before = set(files(out))
    send_file(HOST, port, probe)
    assert set(files(out)) - before == {"probe.txt"} and (out / "probe.txt").read_bytes() == b"probe\n"
    (out / "probe.txt").unlink()


CONTENTS = {
    "empty.txt": b"",
    "text.txt": b"  leading spaces\n\n\nblank lines above\ttab \n   trailing   \n\n\n",
    "crlf.txt": b"windows\r\nline ends\r\n\r\n",
    "binary.bin": bytes(range(256)) * 4096 + b"\x00\r\n\x00",
    "one-byte": b"\n",
    "spaces in name.txt": b"x",
    "ünïcødé.txt": "ünïcødé\n".encode(),
}


@pytest.mark.parametrize("name", CONTENTS)
def test_copy_is_byte_for_byte_cli(spawn, client, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    server = spawn("tcp_file_transfer_server", "--dir", str(out))
    src = tmp_path / name
    src.write_bytes(CONTENTS[name])
    done = client("tcp_file_transfer_client", str(src), "--port", str(server.port))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # silent on success, as in the lab
    assert files(out) == [name] and (out / name).read_bytes() == CONTENTS[name]
    assert server.wait_for_log(f"saved {len(CONTENTS[name])} bytes as {name}")


def test_hundred_megabytes(spawn, client, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    server = spawn("tcp_file_transfer_server", "--dir", str(out))
    src = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(100):
            f.write(i.to_bytes(4, "big") + block[4:])  # every MiB different
    start = time.monotonic()
    done = client("tcp_file_transfer_client", str(src), "--port", str(server.port), timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert time.monotonic() - start < 20
    assert files(out) == ["big.bin"] and sha(out / "big.bin") == sha(src)


def test_the_server_confirms_with_a_checksum(port, out):
    data = b"hello\n"
    reply = raw_transfer(port, MAGIC + b"6 a.txt\n" + data)
    assert reply == f"OK {hashlib.sha256(data).hexdigest()}\n".encode()  # then it closes: read() ended


def test_transfer_cut_off_midway_leaves_nothing(port, out):
    reply = raw_transfer(port, MAGIC + b"1000 half.bin\n" + b"x" * 10)
    assert reply == b"ERROR connection ended after 10 of 1000 bytes\n"
    assert files(out) == []
    assert_serves(port, out)


def test_transfer_reset_midway_leaves_nothing(port, out):
    s = socket.create_connection((HOST, port), timeout=5)
    s.sendall(MAGIC + b"1000000 reset.bin\n" + b"x" * 100_000)
    wait_until(lambda: files(out), "the transfer's temporary file appears")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    wait_until(lambda: not files(out), "the reset transfer's temporary file is removed")
    assert_serves(port, out)


def test_silent_client_is_abandoned(serve, out):
    port = serve(FileTransferServer((HOST, 0), out, type("Quick", (FileHandler,), {"timeout": 0.3})))
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(MAGIC + b"100 slow.bin\n" + b"x")
        with s.makefile("rb") as f:
            assert f.readline() == b"ERROR nothing received for 0.3 s; transfer abandoned\n"
    assert files(out) == []
    assert_serves(port, out)


def test_server_stopped_midway_leaves_nothing(spawn, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    server = spawn("tcp_file_transfer_server", "--dir", str(out))
    with socket.create_connection((HOST, server.port), timeout=5) as s:
        s.sendall(MAGIC + b"10000000 stopped.bin\n" + b"x" * 100_000)
        wait_until(lambda: files(out), "the transfer's temporary file appears")
        status, log = server.stop()
    assert status == 0 and "Traceback" not in log
    assert files(out) == []


@pytest.mark.parametrize(("sent", "stored"), [
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("a\\b\\c.txt", "c.txt"),
    ("sub/dir/", "dir"),
    ("  padded.txt  ", "padded.txt"),
    ("..hidden", "..hidden"),
])
def test_names_never_escape_the_folder(port, out, tmp_path, sent, stored):
    src = tmp_path / "x"
    src.write_bytes(b"data")
    send_file(HOST, port, src, name=sent)
    assert files(out) == [stored] and (out / stored).read_bytes() == b"data"
    assert not (tmp_path.parent / "etc").exists()


@pytest.mark.parametrize("bad", ["..", ".", "/", "", "a\x00b", "tab\there", "del\x7f", "x" * 256])
def test_unusable_names_are_refused(port, out, tmp_path, bad):
    src = tmp_path / "x"
    src.write_bytes(b"data")
    with pytest.raises(TransferFailed, match="the server refused the file"):
        send_file(HOST, port, src, name=bad)
    assert files(out) == []
    assert_serves(port, out)


@pytest.mark.parametrize(("header", "error"), [
    (b"-1 a.txt\n", b"ERROR malformed size '-1' in the header line\n"),
    (b"+5 a.txt\n", b"ERROR malformed size '+5' in the header line\n"),
    (b"1e3 a.txt\n", b"ERROR malformed size '1e3' in the header line\n"),
    (b"5 \xff.txt\n", b"ERROR header line is not UTF-8\n"),
    (b"5 " + b"n" * 5000, b"ERROR header line missing or too long\n"),
])
def test_malformed_headers_are_refused(port, out, header, error):
    assert raw_transfer(port, MAGIC + header + b"hello") == error
    assert files(out) == []
    assert_serves(port, out)


def test_refusal_reaches_a_client_still_sending(port, out, tmp_path):
    src = tmp_path / "big"
    src.write_bytes(b"\0" * (32 << 20))  # more than the socket buffers hold
    with pytest.raises(TransferFailed, match="unusable file name"):
        send_file(HOST, port, src, name="..")
    assert_serves(port, out)


def test_local_names_with_control_characters_are_cleaned(port, out, tmp_path):
    src = tmp_path / "line\nbreak\x01.txt"
    src.write_bytes(b"data")
    send_file(HOST, port, src)
    assert files(out) == ["line_break_.txt"]
    with pytest.raises(TransferFailed, match="line break"):
        send_file(HOST, port, src, name="a\nb")


def test_plain_nc_stream_is_the_file(port, out):
    data = b"raw bytes from nc -N\n\n  with blanks  \n" * 1000
    reply = raw_transfer(port, data)
    assert reply == f"OK {hashlib.sha256(data).hexdigest()}\n".encode()
    (saved,) = out.iterdir()
    assert saved.name.startswith("received-") and saved.name.endswith(".bin") and saved.read_bytes() == data
    assert_serves(port, out)


def test_plain_stream_shorter_than_the_header_magic(port, out):
    assert raw_transfer(port, b"hi").startswith(b"OK ")
    assert [p.read_bytes() for p in out.iterdir()] == [b"hi"]


def test_connection_that_sends_nothing_stores_nothing(port, out):
    assert raw_transfer(port, b"") == b"ERROR nothing received\n"
    assert files(out) == []
    assert_serves(port, out)


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc (netcat) is not installed")
def test_real_nc(port, out, tmp_path):
    help_text = subprocess.run(["nc", "-h"], capture_output=True, text=True, timeout=5)
    if "-N" not in help_text.stdout + help_text.stderr:
        pytest.skip("this nc has no -N (shutdown after EOF on stdin)")
    src = tmp_path / "notes.txt"
    src.write_bytes(b"sent with nc\n" * 100)
    with open(src, "rb") as f:
        done = subprocess.run(["nc", "-N", HOST, str(port)], stdin=f, capture_output=True, timeout=10)
    assert done.stdout == f"OK {sha(src)}\n".encode()
    (saved,) = out.iterdir()
    assert sha(saved) == sha(src)


def test_concurrent_transfers_do_not_mix(port, out, tmp_path):
    sources = []
    for i in range(12):
        src = tmp_path / f"f{i}.bin"
        src.write_bytes(os.urandom(200_000 + i * 5000))
        sources.append(src)
    same = [tmp_path / "same" / str(i) for i in range(4)]  # four files all called same.txt
    for i, path in enumerate(same):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(100_000 + i))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: send_file(HOST, port, p, timeout=20), sources))
        list(pool.map(lambda p: send_file(HOST, port, p, name="same.txt", timeout=20), same))
    for src in sources:
        assert sha(out / src.name) == sha(src)
    stored = ["same.txt", "same-1.txt", "same-2.txt", "same-3.txt"]
    assert sorted(sha(out / n) for n in stored) == sorted(sha(p) for p in same)
    assert len(files(out)) == len(sources) + len(same)  # no temporary file left


def test_existing_files_are_never_overwritten(port, out, tmp_path):
    src = tmp_path / "a.tar.gz"
    for content in (b"1", b"2", b"3"):
        src.write_bytes(content)
        send_file(HOST, port, src)
    assert [(out / n).read_bytes() for n in ("a.tar.gz", "a-1.tar.gz", "a-2.tar.gz")] == [b"1", b"2", b"3"]


def test_name_helpers():
    assert safe_name("../../etc/passwd") == "passwd"
    assert numbered("a.tar.gz", 2) == "a-2.tar.gz" and numbered(".rc", 1) == ".rc-1" and numbered("x", 0) == "x"


def test_client_errors_are_one_line(client, tmp_path, unused_port, spawn):
    missing = client("tcp_file_transfer_client", str(tmp_path / "missing"))
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == f"tcp_file_transfer_client: {tmp_path / 'missing'}: no such file\n"
    src = tmp_path / "x"
    src.write_bytes(b"x")
    refused = client("tcp_file_transfer_client", str(src), "--port", str(unused_port))
    assert refused.returncode == 1
    assert refused.stderr == f"tcp_file_transfer_client: 127.0.0.1 port {unused_port}: Connection refused\n"
    echo = spawn("echo_tcp_server")  # not a file server: its reply is no checksum
    wrong = client("tcp_file_transfer_client", str(src), "--port", str(echo.port))
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1
    assert wrong.stderr.startswith("tcp_file_transfer_client: the server refused the file: ")


def test_server_needs_a_folder(client, tmp_path):
    done = client("tcp_file_transfer_server", "--dir", str(tmp_path / "nope"), "--port", "0")
    assert done.returncode == 2 and done.stderr.splitlines()[-1].endswith("not a folder")
