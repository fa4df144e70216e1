"""Part 4 e: UDP echo against a new TCP connection per message; round trips timed,
losses reported instead of hangs."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from sockinspect.reference_servers.udp_echo_client import summary, tcp_round_trips, udp_round_trips
from sockinspect.reference_servers.udp_echo_server import TCPEchoServer, UDPEchoServer

HOST = "127.0.0.1"
SEQ_LINE = re.compile(r"seq=(\d+) rtt=(\d+\.\d{3}) ms\n")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_round_trips_cli(spawn, client, transport):
    extra = ["--tcp"] if transport == "tcp" else []
    server = spawn("udp_echo_server", *extra)
    done = client("udp_echo_client", "--port", str(server.port), "--count", "5", *extra)
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines(keepends=True)
    assert len(lines) == 6
    rtts = []
    for seq, line in enumerate(lines[:5], 1):
        match = SEQ_LINE.fullmatch(line)
        assert match and int(match[1]) == seq, line
        rtts.append(match[2])
    assert re.fullmatch(rf"{transport}: 5 sent, 5 received, 0 lost; rtt min/median/max "
                        r"(\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3}) ms\n", lines[5])
    low, mid, high = lines[5].rsplit(" ", 2)[1].split("/")
    assert low == min(rtts, key=float) and high == max(rtts, key=float)
    status, log = server.stop()
    assert status == 0 and "Traceback" not in log


def test_lost_datagrams_are_reported_not_waited_for(client):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))  # bound, so no ICMP error, but it never answers
        start = time.monotonic()
        done = client("udp_echo_client", "--port", str(silent.getsockname()[1]), "--count", "3", "--timeout", "0.2")
    assert time.monotonic() - start < 8
    assert done.returncode == 1
    assert done.stdout == "seq=1 lost\nseq=2 lost\nseq=3 lost\nudp: 3 sent, 0 received, 3 lost\n"


def test_nobody_listening(client, unused_port):
    udp = client("udp_echo_client", "--port", str(unused_port), "--count", "2", "--timeout", "5")
    assert udp.returncode == 1 and udp.stdout.endswith("udp: 2 sent, 0 received, 2 lost\n")
    tcp = client("udp_echo_client", "--tcp", "--port", str(unused_port), "--count", "2")
    assert tcp.returncode == 1 and tcp.stdout.endswith("tcp: 2 sent, 0 received, 2 lost\n")


def test_late_replies_are_ignored():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fake:
        fake.bind((HOST, 0))
        fake.settimeout(10)

        def serve_late() -> None:
            first, peer = fake.recvfrom(100)  # ping 1: no answer while the client waits
            second, _ = fake.recvfrom(100)  # ping 2, sent after the client gave ping 1 up
            fake.sendto(first, peer)  # the late answer to ping 1 comes first
            fake.sendto(second, peer)
            third, _ = fake.recvfrom(100)
            fake.sendto(third, peer)

        worker = threading.Thread(target=serve_late, daemon=True)
        worker.start()
        rtts = list(udp_round_trips(HOST, fake.getsockname()[1], 3, timeout=0.3))
        worker.join(10)
    assert rtts[0] is None and None not in rtts[1:]
    assert summary("udp", rtts).startswith("udp: 3 sent, 2 received, 1 lost; rtt min/median/max ")


def test_in_process_functions(serve):
    udp_port, tcp_port = serve(UDPEchoServer((HOST, 0))), serve(TCPEchoServer((HOST, 0)))
    assert all(r is not None and r > 0 for r in udp_round_trips(HOST, udp_port, 3))
    assert all(r is not None and r > 0 for r in tcp_round_trips(HOST, tcp_port, 3, nodelay=True))


@pytest.mark.parametrize("args", [["--count", "0"], ["--timeout", "0"], ["--timeout", "-1"], ["--count", "x"]])
def test_bad_arguments(client, args):
    done = client("udp_echo_client", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error:" in done.stderr.splitlines()[-1]


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


FAMILIES = [
    pytest.param("127.0.0.1", 65507, id="ipv4"),
    pytest.param("::1", 65527, id="ipv6", marks=pytest.mark.skipif(
        not _ipv6_loopback(), reason="IPv6 loopback (::1) is not available on this machine")),
]


@pytest.mark.parametrize(("host", "largest"), FAMILIES)
def test_every_datagram_size_comes_back_whole(serve, host, largest):
    port = serve(UDPEchoServer((host, 0)))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for a few of the largest
        sock.settimeout(10)
        sock.connect((host, port))
        for size in (0, 1, 8192, 8193, 40000, largest - 1, largest):
            data = bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)
            sock.send(data)
            got = sock.recv(1 << 17)  # larger than any datagram: a cut would show
            assert len(got) == size and got == data, f"{size}-byte datagram came back as {len(got)} bytes"
        with pytest.raises(OSError):  # one byte more does not fit in a datagram at all
            sock.send(b"x" * (largest + 1))


@pytest.mark.parametrize(("host", "largest"), FAMILIES)
def test_client_times_the_largest_datagrams(serve, host, largest):
    port = serve(UDPEchoServer((host, 0)))  # a reply cut by the server or by the client's buffer is lost
    assert all(r is not None for r in udp_round_trips(host, port, 3, timeout=5, size=largest))


def test_client_size_option(spawn, client):
    server = spawn("udp_echo_server")
    done = client("udp_echo_client", "--port", str(server.port), "--count", "2", "--size", "65507")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("\n") and "udp: 2 sent, 2 received, 0 lost; " in done.stdout
    too_big = client("udp_echo_client", "--port", str(server.port), "--size", "65508")
    assert too_big.returncode == 2 and "--size must be between 0 and 65507" in too_big.stderr
    tcp = spawn("udp_echo_server", "--tcp")
    done = client("udp_echo_client", "--tcp", "--port", str(tcp.port), "--count", "2", "--size", "65507")
    assert done.returncode == 0 and "tcp: 2 sent, 2 received, 0 lost; " in done.stdout
