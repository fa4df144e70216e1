"""The lab's scenarios for ``sockinspect run-and-capture``: which programs run,
with what input, and what must hold afterwards. Each returns its captured runs."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._run import Run, Runner, ScenarioError

_PROGRAMS = "sockinspect.reference_servers."  # the repository's reference_servers/, as installed
ECHO_SERVER, ECHO_CLIENT = _PROGRAMS + "echo_tcp_server", _PROGRAMS + "echo_tcp_client"
FILE_SERVER, FILE_CLIENT = _PROGRAMS + "tcp_file_transfer_server", _PROGRAMS + "tcp_file_transfer_client"
CHAT_SERVER, CHAT_CLIENT = _PROGRAMS + "chat_server", _PROGRAMS + "chat_client"
UDP_SERVER, UDP_CLIENT = _PROGRAMS + "udp_echo_server", _PROGRAMS + "udp_echo_client"
NAGLE_CLIENT = _PROGRAMS + "nagle_client"  # write-write-read requests to the echo server

# Part 2 of LAB_SPEC: the client's arguments and its exact transcript.
LAB_ECHO = [
    (["sfdsd", "Ted", "is", "cool23432"], "Sent:      sfdsd Ted is cool23432\nReceived: Secret code not found.\n"),
    (["Ted", "is", "SECRET", "cool"], "Sent:      Ted is SECRET cool\nReceived: Digits: Count: 0\n"),
    (["123Ted", "32is", "343SECRET", "cool"],
     "Sent:      123Ted 32is 343SECRET cool\nReceived: Digits: 12332343 Count: 8\n"),
]
LAB_CHAT = ("Hi, my name is R2", "Hi R2, my name is KALI. Nice to meet you.")


@dataclass(frozen=True)
class Options:
    connections: int = 20  # handshake: short connections
    requests: int = 25  # nagle: write-write-read requests per run
    messages: int = 10  # udp-vs-tcp: messages each way
    size: int = 4 << 20  # file: bytes of random data
    file: Path | None = None  # file: send this file instead
    trace: bool = True  # lab: trace the echo programs' system calls (strace when installed)


def echo(r: Runner, opts: Options) -> list[Run]:
    """Part 2: the three lab requests, each on its own connection; transcripts checked.
    With ``opts.trace`` and strace installed, the server's and first client's socket
    system calls are recorded too (Part 4 c, d)."""
    run = r.new_run("secret-code echo, the lab's three requests", "echo.pcap")
    trace = opts.trace and shutil.which("strace") is not None
    server_trace = r.workdir / "strace-server.txt" if trace else None
    client_trace = r.workdir / "strace-client.txt" if trace else None
    with r.server(ECHO_SERVER, [], run, trace=server_trace) as (port, _), r.capture(run, [port]):
        for i, (words, expected) in enumerate(LAB_ECHO):
            out = r.client(ECHO_CLIENT, ["--host", r.topology.server_addr, "--port", str(port), *words], run,
                           trace=client_trace if i == 0 else None).stdout
            if out != expected:
                raise ScenarioError(f"echo client transcript differs from the lab's:\n{out!r}\nexpected:\n{expected!r}")
    run.facts["transcripts"] = [expected for _, expected in LAB_ECHO]
    if trace:
        run.facts["syscalls"] = {"server": _syscalls(server_trace), "client": _syscalls(client_trace)}
    return [r.finish(run)]


def _syscalls(path: Path | None) -> list[str]:
    """strace lines of the socket calls, without PIDs, for the lab report."""
    if path is None or not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        call = line.split(maxsplit=1)[-1].strip()
        stamp, _, rest = call.partition(" ")
        if stamp.replace(".", "", 1).isdigit():  # traced with times (run-and-capture --syscalls): as without
            call = re.sub(r"<[^<>]*>", "", rest).strip()
        if call.startswith(("socket(", "bind(", "listen(", "connect(", "accept")) and "AF_UNIX" not in call:
            calls.append(" ".join(call.split()))
    return calls


def handshake(r: Runner, opts: Options) -> list[Run]:
    """Part 4 a, b: N short connections, each from a new client process (a new ephemeral port)."""
    run = r.new_run(f"{opts.connections} short connections", "handshake.pcap")
    with r.server(ECHO_SERVER, [], run) as (port, _), r.capture(run, [port]):
        for i in range(opts.connections):
            r.say(f"handshake: connection {i + 1}/{opts.connections}")
            r.client(ECHO_CLIENT, ["--host", r.topology.server_addr, "--port", str(port), f"hello{i}"], run)
    return [r.finish(run)]


def file_transfer(r: Runner, opts: Options) -> list[Run]:
    """Part 3: send a file, check the copy byte for byte (sha256)."""
    src = opts.file
    if src is None:
        src = r.workdir / "random.bin"
        with open(src, "wb") as f:
            left = opts.size
            while left > 0:
                f.write(os.urandom(min(left, 1 << 20)))
                left -= 1 << 20
    if not Path(src).is_file():
        raise ScenarioError(f"{src}: no such file to send")
    received = r.workdir / "received"
    shutil.rmtree(received, ignore_errors=True)
    received.mkdir()
    size = Path(src).stat().st_size
    run = r.new_run(f"file transfer of {size} bytes", "file.pcap")
    r.say(f"file: sending {size} bytes")
    with r.server(FILE_SERVER, ["--dir", str(received)], run) as (port, _), r.capture(run, [port]):
        r.client(FILE_CLIENT, ["--host", r.topology.server_addr, "--port", str(port), str(Path(src).resolve())], run)
    copies = [p for p in received.iterdir() if p.is_file()]
    if len(copies) != 1:
        raise ScenarioError(f"the file server wrote {len(copies)} files, expected 1")
    if _sha256(copies[0]) != _sha256(Path(src)):
        raise ScenarioError(f"{copies[0]} differs from {src}")
    run.facts.update(file=str(src), size=size, sha256=_sha256(Path(src)), verified=True)
    return [r.finish(run)]


def nagle(r: Runner, opts: Options) -> list[Run]:
    """Part 4 f, g: write-write-read requests to the secret-code echo server (each
    ``SECRET <n>``, then its newline, in two writes), with Nagle on, then with TCP_NODELAY."""
    runs = []
    for label, name, extra in (("Nagle on", "nagle-on.pcap", []),
                               ("TCP_NODELAY", "nagle-nodelay.pcap", ["--nodelay"])):
        r.say(f"nagle: {opts.requests} write-write-read requests, {label}")
        run = r.new_run(f"write-write-read, {label}", name)
        with r.server(ECHO_SERVER, [], run) as (port, _), r.capture(run, [port]):
            r.client(NAGLE_CLIENT, ["--host", r.topology.server_addr, "--port", str(port),
                                    "--count", str(opts.requests), *extra], run)
        run.facts["nodelay"] = bool(extra)
        runs.append(r.finish(run))
    return runs


def udp_vs_tcp(r: Runner, opts: Options) -> list[Run]:
    """Part 4 e: the same small messages over UDP, and over a new TCP connection each."""
    runs = []
    for label, name, extra in (("UDP", "udp.pcap", []), ("TCP, a new connection per message", "tcp.pcap", ["--tcp"])):
        r.say(f"udp-vs-tcp: {opts.messages} messages over {label}")
        run = r.new_run(label, name)
        with r.server(UDP_SERVER, extra, run) as (port, _), r.capture(run, [port]):
            r.client(UDP_CLIENT, ["--host", r.topology.server_addr, "--port", str(port),
                                  "--count", str(opts.messages), *extra], run)
        run.facts["transport"] = "tcp" if extra else "udp"
        runs.append(r.finish(run))
    return runs


def chat(r: Runner, opts: Options) -> list[Run]:
    """Part 1: R2 says its line, KALI answers, KALI ends the chat (EOF)."""
    run = r.new_run("named chat, the lab's two lines", "chat.pcap")
    r2_line, kali_line = LAB_CHAT
    with r.server(CHAT_SERVER, ["--name", "R2"], run) as (port, server), r.capture(run, [port]):
        client = r.spawn(
            r.topology.client_cmd([sys.executable, "-m", CHAT_CLIENT, "--name", "KALI",
                                   "--host", r.topology.server_addr, "--port", str(port)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            r.wait_for_log("joined")
            _say(server, r2_line)
            _expect_line(client, "KALI", f"R2: {r2_line}")
            _say(client, kali_line)
            _expect_line(server, "R2", f"KALI: {kali_line}")
            client.stdin.close()  # Ctrl-D on KALI ends the chat
            client.wait(10)
        finally:
            if client.poll() is None:
                client.kill()
    run.facts["lines"] = [f"R2: {r2_line}", f"KALI: {kali_line}"]
    return [r.finish(run)]


def _say(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _expect_line(proc: subprocess.Popen, who: str, want: str, timeout: float = 10.0) -> None:
    """Read ``proc``'s output until a line equal to ``want``; ScenarioError after ``timeout``."""
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            if line.rstrip("\n") == want:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise ScenarioError(f"{who}'s terminal never showed {want!r}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


SCENARIOS: dict[str, Callable[[Runner, Options], list[Run]]] = {
    "chat": chat,
    "echo": echo,
    "file": file_transfer,
    "handshake": handshake,
    "nagle": nagle,
    "udp-vs-tcp": udp_vs_tcp,
}
