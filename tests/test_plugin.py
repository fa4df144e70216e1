"""The pytest plugin's tcp_capture fixture, run inside a nested pytest."""

from __future__ import annotations

import pytest

from sockinspect._capture import can_capture

no_capture = can_capture()

TEST_FILE = '''
import socket, socketserver, threading
import pytest
from sockinspect.assertions import assert_closed_cleanly, assert_nagle

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())

@pytest.fixture
def server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()

def talk(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"hello\\n")
        s.recv(100)

def test_passes(tcp_capture, server):
    port = server.server_address[1]
    with tcp_capture(port=port) as cap:
        talk(port)
    conn = cap.analysis.tcp.only()
    assert conn.server.port == port
    assert_closed_cleanly(conn)

def test_fails_and_keeps_capture(tcp_capture, server):
    port = server.server_address[1]
    with tcp_capture(port=port) as cap:
        talk(port)
    assert_nagle(cap.analysis.tcp.only(), "off")
'''


@pytest.mark.skipif(no_capture is not None, reason=f"live capture impossible here: {no_capture}")
def test_fixture_captures_and_reports_kept_file(pytester):
    pytester.makepyfile(test_inner=TEST_FILE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # loaded by its pytest11 entry point
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*expected Nagle off for c2s, seen unknown*",
        "*sockinspect captures (kept for Wireshark)*",
        "*capture-0.pcap",
    ])


def test_fixture_skips_with_a_reason_when_capture_is_impossible(pytester, monkeypatch):
    pytester.makepyfile(test_inner='''
import sockinspect._pytest_plugin as plugin
plugin.can_capture = lambda interface="lo": "live capture needs CAP_NET_RAW"

def test_x(tcp_capture):
    pass
''')
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*sockinspect: live capture needs CAP_NET_RAW*"])
