"""The assertion API: each helper passes on good traffic and fails with a message
that says what was expected, what was seen and where."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import analyze_frames, full_connection, handshake, tcp
from loopback import run_requests

import sockinspect
from sockinspect._capture import can_capture
from sockinspect.assertions import (
    assert_client_port_ephemeral,
    assert_closed_by,
    assert_closed_cleanly,
    assert_handshake_complete,
    assert_max_segment_size,
    assert_nagle,
    assert_no_rst,
    assert_no_stalls,
    assert_payload_bytes,
    assert_request_latency,
    assert_state,
    assert_udp_replies,
)

DATA = Path(__file__).parent / "data"
NAGLE_ON = sockinspect.analyze(DATA / "nagle" / "nagle-on.pcap").tcp.only()
NODELAY = sockinspect.analyze(DATA / "nagle" / "nodelay.pcap").tcp.only()


def test_clean_connection_passes_everything(tmp_path):
    conn = analyze_frames(tmp_path, full_connection()).tcp.only()
    assert_handshake_complete(conn, within_ms=5)
    assert_state(conn, "SF")
    assert_no_rst(conn)
    assert_closed_cleanly(conn)
    assert_closed_by(conn, "client")
    assert_client_port_ephemeral(conn, "linux")
    assert_max_segment_size(conn, 6)
    assert_payload_bytes(conn, 5, "c2s")
    assert_payload_bytes(conn, 6, "s2c")


def test_payload_bytes_of_a_file(tmp_path):
    conn = analyze_frames(tmp_path, full_connection(request=b"12345")).tcp.only()
    f = tmp_path / "sent.bin"
    f.write_bytes(b"12345")
    assert_payload_bytes(conn, f)
    f.write_bytes(b"123456")
    with pytest.raises(AssertionError, match=r"expected 6 bytes \(the size of .*sent.bin\) c2s, seen 5 bytes"):
        assert_payload_bytes(conn, f)


def test_failure_messages_say_expected_seen_where(tmp_path):
    syn, synack, _ack = handshake()
    rst = tcp("10.10.10.2", "10.10.10.3", 5000, 40000, "R", 5001)
    conn = analyze_frames(tmp_path, [syn, synack, rst]).tcp.only()
    with pytest.raises(AssertionError) as err:
        assert_handshake_complete(conn)
    text = str(err.value)
    assert text.startswith("expected a complete three-way handshake, seen no ACK")
    assert "TCP connection #0 10.10.10.3:40000 -> 10.10.10.2:5000 (packets 1..3, from " in text
    with pytest.raises(AssertionError, match="expected no RST, seen 0 RST from the client, 1 from the server"):
        assert_no_rst(conn)
    with pytest.raises(AssertionError, match="expected closed by the client, seen closed by server"):
        assert_closed_by(conn, "client")
    with pytest.raises(AssertionError, match="expected state SF or S1, seen RSTR"):
        assert_state(conn, "SF", "S1")


def test_nagle_and_stalls_on_real_captures():
    assert_nagle(NAGLE_ON, "on")
    assert_nagle(NODELAY, "off")
    assert_no_stalls(NODELAY)
    assert_request_latency(NODELAY, 30, "median")
    with pytest.raises(AssertionError) as err:
        assert_no_stalls(NAGLE_ON)
    text = str(err.value)
    first = NAGLE_ON.c2s.stall_list[0]
    assert text.startswith(f"expected at most 0 stalls in c2s, seen {NAGLE_ON.c2s.stalls} stalls")
    assert f"data packet {first.data_packet}, delayed ACK packet {first.ack_packet}" in text
    with pytest.raises(AssertionError, match=r"expected Nagle off for c2s, seen on \(held until ACK: 24"):
        assert_nagle(NAGLE_ON, "off")
    with pytest.raises(AssertionError, match=r"request latency \(median\) at most 10 ms, seen 4\d\.\d+ ms"):
        assert_request_latency(NAGLE_ON, 10, "median")


def test_segment_size_and_ephemeral_failures(tmp_path):
    conn = analyze_frames(tmp_path, full_connection(cport=1023)).tcp.only()
    with pytest.raises(AssertionError, match="expected an ephemeral client port \\(any\\), seen port 1023"):
        assert_client_port_ephemeral(conn)
    with pytest.raises(AssertionError, match="expected no s2c segment above 3 bytes, seen one of 6 bytes"):
        assert_max_segment_size(conn, 3, "s2c")


def test_udp_replies(tmp_path):
    from helpers import udp

    frames = [udp("10.10.10.3", "10.10.10.2", 40001, 7, b"x"), udp("10.10.10.2", "10.10.10.3", 7, 40001, b"x"),
              udp("10.10.10.3", "10.10.10.2", 40001, 7, b"y")]
    flow = analyze_frames(tmp_path, frames).udp.only()
    with pytest.raises(AssertionError, match="expected a reply to each of the 2 requests, seen 1 answered"):
        assert_udp_replies(flow)
    assert_udp_replies(analyze_frames(tmp_path, frames[:2]).udp.only())


def test_bad_arguments_are_errors_not_failures():
    with pytest.raises(ValueError):
        assert_no_stalls(NODELAY, direction="up")
    with pytest.raises(ValueError):
        assert_closed_by(NODELAY, "nobody")


def test_selection_helpers():
    cap = sockinspect.analyze(DATA / "corpus" / "dpkt__http.pcap")
    assert len(cap.tcp.by_port(80)) == 2
    assert cap.tcp.by_host("216.239.59.99").only().server.port == 80
    with pytest.raises(AssertionError, match="expected exactly one, found 2"):
        cap.tcp.only()


# -- the README's example holds on loopback ----------------------------------------------------------------

README = Path(__file__).parent.parent / "README.md"
no_capture = can_capture()


def readme_block(after: str) -> str:
    """The first ```python block after the line starting with ``after``."""
    text = README.read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


@pytest.fixture(scope="module")
def loopback_bulk(tmp_path_factory):
    if no_capture is not None:
        pytest.skip(f"live capture impossible here: {no_capture}")
    path = run_requests(tmp_path_factory.mktemp("lo") / "bulk.pcap", mode="bulk", bulk_bytes=1 << 20)
    return path, sockinspect.analyze(path).tcp.only()


def test_readme_python_example_holds_on_loopback(loopback_bulk, tmp_path):
    path, conn = loopback_bulk
    sent = tmp_path / "sent.bin"
    sent.write_bytes(b"x" * (1 << 20))
    code = readme_block("**Python API**")
    assert 'analyze("capture.pcap").tcp.by_port(5000)' in code and '"sent.bin"' in code
    code = code.replace('"capture.pcap"', repr(str(path))).replace("5000", str(conn.server.port))
    exec(compile(code.replace('"sent.bin"', repr(str(sent))), "README.md", "exec"), {})


def test_loopback_segments_exceed_1448_but_not_the_mss(loopback_bulk):
    _, conn = loopback_bulk
    assert conn.c2s.sizes.mss == 65483 and conn.c2s.sizes.max > 1448
    with pytest.raises(AssertionError, match=r"expected no c2s segment above 1448 bytes, seen one of \d+ bytes "
                                             r"\(the sender's MSS: 65483\)"):
        assert_max_segment_size(conn, 1448, "c2s")
    assert_max_segment_size(conn, "mss")


def test_max_segment_size_against_the_mss(tmp_path):
    conn = analyze_frames(tmp_path, full_connection()).tcp.only()
    assert_max_segment_size(conn, "mss")
    with pytest.raises(ValueError, match="a number of bytes or 'mss'"):
        assert_max_segment_size(conn, "1448")
    syn, synack, ack = handshake()
    data = tcp("10.10.10.3", "10.10.10.2", 40000, 5000, "PA", 1001, 5001, b"hello")
    midstream = analyze_frames(tmp_path, [data]).tcp.only()
    with pytest.raises(AssertionError, match="seen no MSS: the handshake was not captured"):
        assert_max_segment_size(midstream, "mss")


def test_readme_segment_size_examples_hold_on_loopback(loopback_bulk):
    """Each ``assert_max_segment_size(conn, ...)`` the README shows (once, 1448: false on loopback)."""
    _, conn = loopback_bulk
    calls = re.findall(r"assert_max_segment_size\(conn, [^)`]*\)", README.read_text())
    assert calls
    for call in calls:
        eval(call, {"assert_max_segment_size": assert_max_segment_size, "conn": conn})
