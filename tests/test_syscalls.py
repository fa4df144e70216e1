"""Programs' socket calls from strace (sockinspect._syscalls), beside the packets in the
ladder, and run-and-capture --syscalls recording them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sockinspect._capture import can_capture
from sockinspect._ladder import ladder
from sockinspect._model import Endpoint
from sockinspect._packets import connection_packets
from sockinspect._syscalls import of_connection, parse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "syscalls"
# run-and-capture nagle --requests 4 --syscalls: write-write-read with Nagle on, its strace log cut to TCP lines
NAGLE_PCAP, NAGLE_TRACE = DATA / "nagle-on.pcap", DATA / "nagle-on.strace"

# Two threads of one process (strace -f -ttt -T -yy), as strace writes them: unfinished and
# resumed calls, connect before the socket has a local port, errors, a file read, a signal.
THREADS = """\
7932  1796182611.198810 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 5<TCP:[374198]> <0.000039>
7985  1796182611.193322 accept4(3<TCP:[127.0.0.1:43967]>,  <unfinished ...>
7932  1796182611.202768 connect(5<TCP:[374198]>, {sa_family=AF_INET, sin_port=htons(43967), \
sin_addr=inet_addr("127.0.0.1")}, 16) = 0 <0.000173>
7985  1796182611.206701 <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(34292), \
sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 4<TCP:[127.0.0.1:43967->127.0.0.1:34292]> <0.013257>
7932  1796182611.210489 sendto(5<TCP:[127.0.0.1:34292->127.0.0.1:43967]>, "hello", 5, 0, NULL, 0 <unfinished ...>
7932  1796182611.214457 <... sendto resumed>) = 5 <0.000206>
7985  1796182611.214677 recvfrom(4<TCP:[127.0.0.1:43967->127.0.0.1:34292]>, "hello", 1024, 0, NULL, NULL) = 5 \
<0.000044>
7985  1796182611.214700 read(7</etc/hosts>, "127.0.0.1 localhost\\n", 4096) = 20 <0.000010>
7985  1796182611.214800 recvfrom(4<TCP:[127.0.0.1:43967->127.0.0.1:34292]>, 0x7f, 1024, 0, NULL, NULL) = -1 \
EAGAIN (Resource temporarily unavailable) <0.000009>
7985  1796182611.214900 --- SIGINT {si_signo=SIGINT, si_code=SI_USER, si_pid=1} ---
7932  1796182611.215723 shutdown(5<TCP:[127.0.0.1:34292->127.0.0.1:43967]>, SHUT_WR) = 0 <0.000015>
7932  1796182611.238542 close(5<TCP:[127.0.0.1:34292->127.0.0.1:43967]>) = 0 <0.000033>
7932  1796182611.240000 sendto(6<TCPv6:[[::1]:40000->[::1]:5000]>, "x", 1, 0, NULL, 0) = 1 <0.000020>
7932  1796182611.253138 +++ exited with 0 +++
"""


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_the_calls_of_each_socket_with_their_ends_results_and_times():
    calls = parse(THREADS.splitlines())
    client, server = Endpoint("127.0.0.1", 34292), Endpoint("127.0.0.1", 43967)
    conn = SimpleNamespace(client=client, server=server, first_ts_ns=1796182611_200000000,
                           last_ts_ns=1796182611_230000000)
    mine = of_connection(calls, conn)
    assert [(side, c.name, c.result, c.error) for side, c in mine] == [
        (0, "connect", 0, None),  # named by the client's next call on that socket
        (1, "accept4", 4, None),
        (0, "sendto", 5, None),
        (1, "recvfrom", 5, None),
        (1, "recvfrom", -1, "EAGAIN"),
        (0, "shutdown", 0, None),
        (0, "close", 0, None),
    ]
    accept = mine[1][1]
    assert accept.start_ns == 1796182611193322000 and accept.end_ns == 1796182611193322000 + 13_257_000
    assert accept.fd == 4 and accept.text() == "accept() = 4, blocked 13.3 ms"
    assert mine[2][1].text() == "send(5 B) = 5" and mine[3][1].text() == "recv() = 5 B"
    assert mine[4][1].text() == "recv() = -1 EAGAIN" and mine[5][1].text() == "shutdown(SHUT_WR) = 0"
    v6 = [c for c in calls if c.local == Endpoint("::1", 40000)]
    assert [c.remote for c in v6] == [Endpoint("::1", 5000)]
    assert all(c.name != "read" for c in calls)  # not a socket


def test_the_ladder_shows_the_second_write_return_while_its_segment_waits_for_the_ack():
    cp = connection_packets(NAGLE_PCAP, 0)
    calls = of_connection(parse(NAGLE_TRACE.read_text().splitlines()), cp.connection)
    assert {side for side, _ in calls} == {0, 1}
    lines = ladder(cp, width=110, every=True, calls=calls)
    rows = [line for line in lines if "•" in line]
    assert len(rows) == len(calls)
    assert all(line.index("•") < 30 for line in rows if "send(90 B)" in line)  # the client's, on its side
    # Each held 90-byte write returned before the delayed ACK its segment then waited for.
    held, returned = 0, False
    for line in lines:
        if "send(90 B) = 90" in line:
            returned = True
        elif "delayed ACK" in line:
            held += returned
        elif "len 90" in line:
            returned = False
    assert held == cp.connection.c2s.delayed_acks >= 2


def test_a_trace_without_this_connection_warns_and_a_missing_one_fails(tmp_path):
    other = tmp_path / "other.strace"
    other.write_text(THREADS)
    done = cli("ladder", str(NAGLE_PCAP), "--syscalls", str(other))
    assert done.returncode == 0 and "no socket call of this connection" in done.stderr and "▶" in done.stdout
    done = cli("ladder", str(NAGLE_PCAP), "--syscalls", str(tmp_path / "none.strace"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "none.strace" in done.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.skipif(can_capture() is not None, reason=f"live capture impossible here: {can_capture()}")
def test_run_and_capture_records_the_calls_the_ladder_sets_beside_the_packets(tmp_path):
    done = cli("run-and-capture", "echo", "--syscalls", "-o", str(tmp_path / "echo.pcap"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trace = tmp_path / "echo.strace"
    assert f"(socket calls: {trace})" in done.stdout and trace.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo.pcap", "echo.strace"]
    drawn = cli("ladder", str(tmp_path / "echo.pcap"), "--syscalls", str(trace), "--width", "100")
    assert drawn.returncode == 0, drawn.stderr
    for call in ("connect(", "accept() = ", "send(", "recv() = ", "close() = 0"):
        assert call in drawn.stdout, call


def test_hostile_and_odd_lines_are_skipped_or_read_right():
    sock = "4<TCP:[127.0.0.1:43967->127.0.0.1:34292]>"
    lines = [
        f'7 1796182611.214677 recvfrom({sock}, "f(2) = 4 ERANGE\\n", 1024, 0, NULL, NULL) = 16 <0.000044>',
        '[pid 8] 1796182611.214800 sendto(5<TCP:[[::ffff:127.0.0.1]:5000->[::ffff:127.0.0.1]:6000]>, "x", 1, 0, '
        'NULL, 0) = 1 <0.000010>',
        '1 1796183575.5 sendto(3<TCP:[999.1.1.1:1->1.1.1.1:2]>, "", 0) = 0 <0.1>',
        '1 1796183575.5 accept4(3<TCP:[1.1.1.1:1]>, NULL) = ?<TCP:[1.1.1.1:1->2.2.2.2:2]>',
        "1 1796183575.5 sendto(" + "9" * 5000 + "<TCP:[1.1.1.1:1->2.2.2.2:2]>, \"\", 0) = 0 <0.1>",
        '1 1796183575.5 sendto(3<TCP:[1.1.1.1:1->2.2.2.2:2]>, "", 0) = 0 <' + "9" * 5000 + '.1>',
        "garbage", "", "\x00\xff" * 100,
    ]
    calls = parse(lines)
    assert [(c.name, c.result, c.error) for c in calls] == [("recvfrom", 16, None), ("sendto", 1, None)]
    assert calls[1].pid == 8 and calls[1].local == Endpoint("127.0.0.1", 5000)  # as the capture names it


def test_a_socket_is_told_from_the_next_on_its_fd_and_from_the_same_ends_later():
    refused = [  # connect refused, the fd closed, then a new socket on fd 3 that connects
        '1 1796182611.100000 connect(3<TCP:[398300]>, {sa_family=AF_INET, sin_port=htons(9), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused) <0.000100>',
        "1 1796182611.100200 close(3<TCP:[398300]>) = 0 <0.000010>",
        '1 1796182611.200000 connect(3<TCP:[398303]>, {sa_family=AF_INET, sin_port=htons(7), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0 <0.000100>',
        '1 1796182611.200300 sendto(3<TCP:[127.0.0.1:5000->127.0.0.1:7]>, "a", 1, 0, NULL, 0) = 1 <0.000010>',
        "1 1796182611.200400 close(3<TCP:[127.0.0.1:5000->127.0.0.1:7]>) = 0 <0.000010>",
        '1 1796182612.000000 connect(3<TCP:[398309]>, {sa_family=AF_INET, sin_port=htons(7), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0 <0.000100>',  # the same ends, a second later
        '1 1796182612.000300 sendto(3<TCP:[127.0.0.1:5000->127.0.0.1:7]>, "b", 1, 0, NULL, 0) = 1 <0.000010>',
    ]
    calls = parse(refused)
    assert [c.name for c in calls] == ["connect", "sendto", "close", "connect", "sendto"]
    first = SimpleNamespace(client=Endpoint("127.0.0.1", 5000), server=Endpoint("127.0.0.1", 7),
                            first_ts_ns=1796182611_200050000, last_ts_ns=1796182611_200500000)
    assert [c.start_ns for _, c in of_connection(calls, first)] == [1796182611_200000000, 1796182611_200300000,
                                                                    1796182611_200400000]


def test_the_command_takes_bounded_input_and_any_terminal(tmp_path):
    done = cli("ladder", str(NAGLE_PCAP), "--syscalls", "/dev/zero")
    assert done.returncode == 2 and "not a regular file" in done.stderr and len(done.stderr.splitlines()) == 1
    long = tmp_path / "long.strace"
    long.write_text("1 1796182611.1 sendto(" + "x" * 300_000 + "\n" + NAGLE_TRACE.read_text())
    twice = cli("ladder", str(NAGLE_PCAP), "--syscalls", str(long), "--syscalls", str(long), "--all")
    once = cli("ladder", str(NAGLE_PCAP), "--syscalls", str(NAGLE_TRACE), "--all")
    assert twice.returncode == 0 and twice.stdout == once.stdout and "•" in once.stdout
    wide = cli("ladder", str(NAGLE_PCAP), "--width", "99999999999999999999")
    assert wide.returncode == 0 and max(len(line) for line in wide.stdout.splitlines()) <= 1000
    plain = subprocess.run([sys.executable, "-m", "sockinspect", "ladder", str(NAGLE_PCAP)], capture_output=True,
                           timeout=120, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert plain.returncode == 0 and plain.stdout.isascii() and b"|" in plain.stdout
