"""Programs' socket calls from strace (sockinspect._syscalls), beside the packets in the
ladder, and run-and-capture --syscalls recording them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
    mine = of_connection(calls, client, server)
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
    calls = of_connection(parse(NAGLE_TRACE.read_text().splitlines()), cp.connection.client, cp.connection.server)
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
