"""Part 4 f, g: write-write-read against the echo server, Nagle on and off (TCP_NODELAY)."""

from __future__ import annotations

import re
import socket
import statistics

from sockinspect.reference_servers._common import connect
from sockinspect.reference_servers.echo_tcp_server import EchoServer
from sockinspect.reference_servers.nagle_client import write_write_read

HOST = "127.0.0.1"


def test_connect_sets_tcp_nodelay_only_when_asked(serve):
    port = serve(EchoServer((HOST, 0)))
    for nodelay in (False, True):
        with connect(HOST, port, 5, nodelay=nodelay) as sock:
            assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay


def test_delayed_ack_stalls_write_write_read_with_nagle_on(serve):
    port = serve(EchoServer((HOST, 0)))
    nagle_on = statistics.median(write_write_read(HOST, port, 8))
    nagle_off = statistics.median(write_write_read(HOST, port, 8, nodelay=True))
    # Linux delays an ACK at least 40 ms (TCP_DELACK_MIN); without Nagle nothing waits for it.
    assert nagle_on > 30, f"median {nagle_on:.3f} ms with Nagle on: no delayed-ACK stall seen"
    assert nagle_off < 20, f"median {nagle_off:.3f} ms with TCP_NODELAY"


def test_cli(spawn, client):
    server = spawn("echo_tcp_server")
    done = client("nagle_client", "--port", str(server.port), "--count", "3", "--nodelay")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert [re.fullmatch(r"request=(\d) rtt=\d+\.\d{3} ms", line)[1] for line in lines[:3]] == ["1", "2", "3"]
    assert re.fullmatch(r"nagle off \(TCP_NODELAY\): 3 requests; rtt min/median/max [\d.]+/[\d.]+/[\d.]+ ms", lines[3])


def test_cli_against_the_wrong_server(spawn, client):
    server = spawn("udp_echo_server", "--tcp")  # echoes without a reply line of the echo server's kind
    done = client("nagle_client", "--port", str(server.port), "--count", "1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "expected" in done.stderr
