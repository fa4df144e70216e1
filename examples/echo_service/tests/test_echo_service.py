"""The service's own tests: what its traffic must look like on the wire."""

import threading

import pytest
from echo_service import EchoHandler, EchoServer, client

from sockinspect.assertions import (
    assert_client_port_ephemeral,
    assert_closed_cleanly,
    assert_handshake_complete,
    assert_no_stalls,
    assert_payload_bytes,
)

LINES = ["one", "two", "three", "four", "five", "six"]


@pytest.fixture
def echo_server():
    server = EchoServer(("127.0.0.1", 0), EchoHandler)
    server.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_echo_replies(echo_server):
    assert client("127.0.0.1", echo_server.port, ["hi"]) == ["echo: hi"]


def test_connection_is_clean_and_quick(tcp_capture, echo_server):
    with tcp_capture(port=echo_server.port) as cap:
        client("127.0.0.1", echo_server.port, LINES)
    conn = cap.analysis.tcp.only()
    assert_handshake_complete(conn, within_ms=5)
    assert_client_port_ephemeral(conn)
    assert_payload_bytes(conn, sum(len(line) + 1 for line in LINES), "c2s")
    assert_no_stalls(conn)
    assert_closed_cleanly(conn)
