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


NO_CAPTURE = '''
import sockinspect._pytest_plugin as plugin
plugin.can_capture = lambda interface="lo": "live capture needs CAP_NET_RAW"

def test_x(tcp_capture):
    pass

def test_without_capture():
    pass
'''


def test_fixture_skips_with_a_reason_when_capture_is_impossible(pytester):
    pytester.makepyfile(test_inner=NO_CAPTURE)
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1, passed=1)
    result.stdout.fnmatch_lines(["*sockinspect: live capture needs CAP_NET_RAW*"])
    assert result.ret == 0


def test_require_capture_turns_the_skip_into_an_error(pytester):
    pytester.makepyfile(test_inner=NO_CAPTURE)
    result = pytester.runpytest_subprocess("--sockinspect-require-capture")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(["*sockinspect: live capture needs CAP_NET_RAW (and capture is required*"])
    assert result.ret == 1


@pytest.mark.parametrize(("ini", "outcome"), [("true", {"errors": 1}), ("false", {"skipped": 1})])
def test_require_capture_from_the_ini_file(pytester, ini, outcome):
    pytester.makepyfile(test_inner=NO_CAPTURE)
    pytester.makeini(f"[pytest]\nsockinspect_require_capture = {ini}\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1, **outcome)


def test_require_capture_is_in_the_help(pytester):
    pytester.runpytest_subprocess("--help").stdout.fnmatch_lines(
        ["*--sockinspect-require-capture*", "*sockinspect_require_capture*"])


def test_the_readme_example_runs_as_written(pytester):
    """The README's plugin example is a whole test file: fixture, imports and all."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme[readme.index("**pytest plugin**"):].split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(test_readme=block)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    if no_capture is not None:
        result.assert_outcomes(skipped=1)
    else:
        result.assert_outcomes(passed=1)
