"""Connection rebuilding on packets built in memory: roles, handshake, states, reuse."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from helpers import CLIENT, SERVER, T0, analyze_frames, ether, full_connection, handshake, tcp, udp, write_pcap
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6

from sockinspect import analyze
from sockinspect._documents import capture_document as to_dict
from sockinspect.errors import CaptureFormatError


def test_full_connection(tmp_path):
    cap = analyze_frames(tmp_path, full_connection())
    conn = cap.tcp.only()
    assert (conn.client.addr, conn.client.port) == (CLIENT, 40000)
    assert (conn.server.addr, conn.server.port) == (SERVER, 5000)
    assert not conn.inferred
    assert conn.state == "SF" and conn.closed_by == "client"
    assert conn.handshake.complete
    assert conn.handshake.syn_synack_ms == 1.0 and conn.handshake.synack_ack_ms == 1.0
    assert conn.handshake.rtt_ms == 2.0
    assert (conn.c2s.packets, conn.c2s.payload_bytes, conn.c2s.segments) == (5, 5, 1)
    assert (conn.s2c.packets, conn.s2c.payload_bytes, conn.s2c.segments) == (3, 6, 1)
    assert (conn.c2s.mss_option, conn.c2s.wscale, conn.s2c.mss_option, conn.s2c.wscale) == (1460, 7, 1400, None)
    assert conn.client_port_ephemeral_linux and not conn.client_port_ephemeral_iana
    assert conn.duration_ms == 7.0  # 8 packets, 1 ms apart


def test_states(tmp_path):
    syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 1)
    rst_ack = tcp(SERVER, CLIENT, 5000, 40000, "RA", 0, 2)
    assert analyze_frames(tmp_path, [syn]).tcp.only().state == "S0"
    assert analyze_frames(tmp_path, [syn, rst_ack]).tcp.only().state == "REJ"
    assert analyze_frames(tmp_path, [syn, tcp(CLIENT, SERVER, 40000, 5000, "R", 2)]).tcp.only().state == "RSTOS0"
    est = handshake(cseq=1, sseq=100)
    assert analyze_frames(tmp_path, est).tcp.only().state == "S1"
    client_rst = tcp(CLIENT, SERVER, 40000, 5000, "R", 2)
    assert analyze_frames(tmp_path, [*est, client_rst]).tcp.only().state == "RSTO"
    server_rst = tcp(SERVER, CLIENT, 5000, 40000, "R", 101)
    conn = analyze_frames(tmp_path, [*est, server_rst]).tcp.only()
    assert (conn.state, conn.closed_by, conn.s2c.rsts) == ("RSTR", "server", 1)
    fin = tcp(CLIENT, SERVER, 40000, 5000, "FA", 2, 101)
    assert analyze_frames(tmp_path, [*est, fin]).tcp.only().state == "S2"


def test_syn_retry_is_one_connection(tmp_path):
    syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 7)
    conn = analyze_frames(tmp_path, [syn, syn, *handshake(cseq=7)[1:]]).tcp.only()
    assert (conn.handshake.syn_count, conn.handshake.syn_retries) == (2, 1)
    assert conn.handshake.rtt_ms == 2.0  # from the last SYN


def test_handshake_rtt_after_syn_retries_runs_from_the_last_syn(tmp_path):
    """Linux resends an unanswered SYN after 1 s, then 3 s: the RTT is the answered
    attempt's (tshark's initial_rtt restarts at each SYN), the retries are counted apart."""
    syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 7)
    _syn, synack, ack = handshake(cseq=7)
    ms = 1_000_000
    records = [(T0, syn), (T0 + 1000 * ms, syn), (T0 + 3000 * ms, syn),
               (T0 + 3000 * ms + 400_000, synack), (T0 + 3000 * ms + 800_000, ack)]
    conn = analyze(write_pcap(tmp_path / "retry.pcap", records)).tcp.only()
    h = conn.handshake
    assert h.rtt_ms == pytest.approx(0.8) and h.syn_synack_ms == pytest.approx(0.4)
    assert (h.syn_count, h.syn_retries) == (3, 2)
    assert h.syn_ts_ns == T0 and h.last_syn_ts_ns == T0 + 3000 * ms
    assert h.syn_retry_ms == 3000.0
    doc = to_dict(analyze(tmp_path / "retry.pcap"), [conn], [])["tcp"][0]["handshake"]
    assert doc["rtt_ms"] == 0.8 and doc["syn_retry_ms"] == 3000.0 and doc["syn_ts"] == T0 / 1e9


def test_a_syn_ack_lost_after_the_capture_point_is_timed_from_the_answer_to_the_retry(tmp_path):
    """SYN, SYN/ACK (lost on its way), SYN again 1 s later, SYN/ACK, ACK: the parts of the
    handshake are the answered attempt's, so they add up to its RTT (none is negative)."""
    syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 7)
    _syn, synack, ack = handshake(cseq=7)
    ms = 1_000_000
    records = [(T0, syn), (T0 + 1 * ms, synack), (T0 + 1000 * ms, syn), (T0 + 1001 * ms, synack),
               (T0 + 1002 * ms, ack)]
    h = analyze(write_pcap(tmp_path / "lost.pcap", records)).tcp.only().handshake
    assert (h.syn_synack_ms, h.synack_ack_ms, h.rtt_ms) == (1.0, 1.0, 2.0)
    assert h.synack_count == 2 and h.syn_retries == 1


def test_port_reuse_starts_a_new_connection(tmp_path):
    first = full_connection(cseq=1000)
    second = full_connection(cseq=900_000)
    cap = analyze_frames(tmp_path, first + second)
    assert len(cap.tcp) == 2
    assert [c.state for c in cap.tcp] == ["SF", "SF"]
    assert [c.first_packet for c in cap.tcp] == [1, 9]


def test_mid_stream_capture_infers_the_client(tmp_path):
    # The server (port 80) speaks first; the client is the side on the ephemeral port.
    frames = [
        tcp(SERVER, CLIENT, 80, 51000, "PA", 10, 20, b"data"),
        tcp(CLIENT, SERVER, 51000, 80, "A", 20, 14),
    ]
    conn = analyze_frames(tmp_path, frames).tcp.only()
    assert conn.inferred and conn.state == "OTH"
    assert conn.client.port == 51000 and conn.server.port == 80
    assert conn.s2c.payload_bytes == 4
    assert conn.handshake.rtt_ms is None


def test_synack_before_syn_keeps_roles(tmp_path):
    syn, synack, ack = handshake()
    conn = analyze_frames(tmp_path, [synack, syn, ack]).tcp.only()
    assert conn.client.port == 40000 and not conn.inferred
    assert conn.handshake.syn_synack_ms == -1.0  # as captured: the SYN/ACK came first
    assert conn.handshake.rtt_ms == 1.0


def test_retransmission_is_counted(tmp_path):
    frames = full_connection()
    cap = analyze_frames(tmp_path, frames[:4] + [frames[3]] + frames[4:])
    conn = cap.tcp.only()
    assert conn.c2s.retransmissions == 1 and conn.c2s.payload_bytes == 10


def _data(seq: int, size: int, ack: int = 5001) -> bytes:
    return tcp(CLIENT, SERVER, 40000, 5000, "A", seq, ack, b"d" * size)


def test_retransmitted_and_unique_bytes_add_up_to_the_payload(tmp_path):
    """A resend is counted again in payload_bytes and once in retransmitted_bytes; a segment
    that arrives late (reordered) fills a gap and is new data, not a resend."""
    frames = handshake() + [
        _data(1001, 1000), _data(3001, 1000),  # 2001-3000 not seen yet: a gap
        _data(2001, 1000),  # the gap filled (reordered): new bytes
        _data(1001, 1000),  # all old: resent
        _data(3501, 1000),  # half old, half new
    ]
    c2s = analyze_frames(tmp_path, frames).tcp.only().c2s
    assert c2s.payload_bytes == 5000 and c2s.segments == 5
    assert (c2s.unique_bytes, c2s.retransmitted_bytes) == (3500, 1500)
    # Data from 3 ms to 7 ms (1 ms apart): 4 ms.
    assert c2s.data_ms == 4.0
    assert c2s.throughput_bps == 5000 * 8 / 0.004 and c2s.goodput_bps == 3500 * 8 / 0.004
    keep_alive = handshake() + [_data(1001, 10), tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 1011),
                                tcp(CLIENT, SERVER, 40000, 5000, "A", 1010, 5001, b"\0")]
    c2s = analyze_frames(tmp_path, keep_alive).tcp.only().c2s
    assert (c2s.payload_bytes, c2s.unique_bytes, c2s.retransmitted_bytes) == (11, 10, 0)
    assert c2s.data_ms == 2.0 and c2s.throughput_bps == 11 * 8 / 0.002
    one = analyze_frames(tmp_path, handshake() + [_data(1001, 10)]).tcp.only().c2s
    assert one.data_ms is None and one.goodput_bps is None  # one segment: no transfer time


def test_unique_bytes_across_sequence_wrap_and_a_bounded_number_of_gaps(tmp_path):
    start = (1 << 32) - 1500  # the sequence numbers wrap inside the transfer
    frames = handshake(cseq=start - 1)
    # Every other 100-byte segment (99 gaps), then the others newest first (the first one new).
    frames += [_data((start + i * 100) & 0xFFFFFFFF, 100) for i in range(0, 200, 2)]
    frames += [_data((start + i * 100) & 0xFFFFFFFF, 100) for i in range(199, 0, -2)]
    c2s = analyze_frames(tmp_path, frames).tcp.only().c2s
    assert c2s.payload_bytes == 20_000
    # Only the 64 newest gaps are remembered: the 35 oldest fills count as resent.
    assert (c2s.unique_bytes, c2s.retransmitted_bytes) == (16_500, 3_500)
    frames = handshake(cseq=start - 1) + [_data((start + i * 100) & 0xFFFFFFFF, 100) for i in (0, 2, 1, 1)]
    c2s = analyze_frames(tmp_path, frames).tcp.only().c2s
    assert (c2s.unique_bytes, c2s.retransmitted_bytes) == (300, 100)  # across the wrap, without loss


def test_json_times_keep_a_nanosecond_capture_s_digits(tmp_path):
    """A float at today's epoch holds about 0.24 µs: the *_ts_ns twins hold every digit."""
    t0 = T0 + 123_456_789
    frames = [(t0 + i * 1_000_001, f) for i, f in enumerate(full_connection())]
    cap = analyze(write_pcap(tmp_path / "ns.pcap", frames, nano=True))
    assert int(round(t0 / 1e9 * 1e9)) != t0  # the float alone loses digits
    doc = to_dict(cap, cap.tcp, cap.udp)
    conn = doc["tcp"][0]
    assert (doc["first_ts_ns"], doc["last_ts_ns"]) == (t0, t0 + 7 * 1_000_001)
    assert doc["first_ts"] == t0 / 1e9
    assert (conn["first_ts_ns"], conn["handshake"]["syn_ts_ns"], conn["handshake"]["ack_ts_ns"]) == (
        t0, t0, t0 + 2 * 1_000_001)
    assert (conn["c2s"]["first_data_ts_ns"], conn["s2c"]["last_data_ts_ns"]) == (t0 + 3_000_003, t0 + 4_000_004)
    keys = {k for k in _all_keys(doc) if k.endswith("_ts")}
    assert keys and all(k + "_ns" in _all_keys(doc) for k in keys)


def _all_keys(obj, out=None) -> set:
    out = set() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _all_keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _all_keys(v, out)
    return out


def test_segments_over_the_mss_say_segmentation_offload(tmp_path):
    """The MSS option and the largest segment are different facts: a capture taken on a host
    with TSO/GSO sees segments larger than the peer's MSS, and the report says why."""
    from sockinspect._report import connection_detail, text_report

    frames = handshake() + [_data(1001, 1400), _data(2401, 2800), _data(5201, 4200)]  # the server's MSS: 1400
    cap = analyze_frames(tmp_path, frames)
    conn = cap.tcp.only()
    assert (conn.c2s.mss_option, conn.s2c.mss_option) == (1460, 1400)
    assert (conn.c2s.sizes.mss, conn.c2s.sizes.max) == (1400, 4200)
    assert conn.c2s.segments_over_mss == 2 and conn.c2s.offload_suspected is True
    assert conn.s2c.segments_over_mss == 0 and conn.s2c.offload_suspected is False
    doc = to_dict(cap, cap.tcp, cap.udp)["tcp"][0]["c2s"]
    assert (doc["mss_option"], doc["segments_over_mss"], doc["offload_suspected"]) == (1460, 2, True)
    assert "mss" not in doc  # renamed in schema 2: the option is mss_option, the largest segment sizes.max
    note = "note: #0 c2s: 2 segments larger than the MSS (1400 B), up to 4200 B: the capture host used " \
           "segmentation offload"
    assert note in text_report(cap, list(cap.tcp), []) and note in connection_detail(conn)
    mid = analyze_frames(tmp_path, frames[3:]).tcp.only()
    assert mid.c2s.offload_suspected is None and mid.c2s.segments_over_mss == 0  # no MSS known
    assert "note:" not in text_report(cap, [], [])


def _window_frames(zero_at: list[int], reopen_at: int, windows: bool = True) -> list[tuple[int, bytes]]:
    """Handshake with window scaling 2 on the server; the server announces a zero window
    at the given ms, and a 4096-byte window at ``reopen_at``."""
    ms = 1_000_000
    c_opts = [("MSS", 1460), ("WScale", 7)] if windows else [("MSS", 1460)]
    frames = [
        (0, tcp(CLIENT, SERVER, 40000, 5000, "S", 1000, options=c_opts, window=64240)),
        (1 * ms, tcp(SERVER, CLIENT, 5000, 40000, "SA", 5000, 1001, options=[("MSS", 1400), ("WScale", 2)],
                     window=1000)),  # a SYN's window is never scaled: 1000 bytes
        (2 * ms, tcp(CLIENT, SERVER, 40000, 5000, "A", 1001, 5001, window=502)),
        (3 * ms, _data(1001, 1000)),  # reaches 1001 + 1000: the SYN/ACK's window is full
        (4 * ms, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 2001, window=1024)),  # 4096 bytes (<< 2)
        (5 * ms, _data(2001, 1000)), (6 * ms, _data(3001, 1000)), (7 * ms, _data(4001, 1000)),
        (8 * ms, _data(5001, 1096)),  # to 2001 + 4096: full again
    ]
    frames += [(t * ms, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 6097, window=0)) for t in zero_at]
    frames.append((zero_at[-1] * ms + ms // 2, _data(6097, 1)))  # a zero-window probe is not a zero window
    frames.append((reopen_at * ms, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 6097, window=1024)))
    frames.append(((reopen_at + 1) * ms, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 6097, window=0)))
    return frames


def test_zero_window_and_window_full(tmp_path):
    """tshark's rules: zero_window on a segment announcing window 0 (no SYN, FIN, RST; not a
    zero-window probe); window_full on data reaching the edge of the peer's scaled window."""
    frames = _window_frames(zero_at=[9, 20, 30], reopen_at=59)
    conn = analyze(write_pcap(tmp_path / "w.pcap", [(T0 + t, f) for t, f in frames])).tcp.only()
    assert (conn.s2c.zero_windows, conn.c2s.zero_windows) == (4, 0)
    assert conn.c2s.window_full == 2 and conn.s2c.window_full == 0
    # 9 -> 59 ms, then 60 ms to the end of the connection (60 ms): 50 ms.
    assert conn.s2c.zero_window_ms_total == 50.0 and conn.c2s.zero_window_ms_total == 0
    # Without window scaling on both SYNs the server's 1024 is 1024 bytes: not full at 2001 + 4096.
    frames = _window_frames(zero_at=[9], reopen_at=10, windows=False)
    conn = analyze(write_pcap(tmp_path / "w.pcap", [(T0 + t, f) for t, f in frames])).tcp.only()
    assert conn.c2s.window_full == 1 and conn.s2c.zero_windows == 2
    # Without the handshake the scaling is unknown: no window_full, as tshark.
    mid = [(T0 + t, f) for t, f in frames[2:]]
    assert analyze(write_pcap(tmp_path / "m.pcap", mid)).tcp.only().c2s.window_full == 0


def test_vlans_separate_connections_but_not_directions(tmp_path):
    two = analyze_frames(tmp_path, full_connection(vlan=(10,)) + full_connection(vlan=(20,)))
    assert [c.vlan for c in two.tcp] == [(10,), (20,)]
    syn, synack, ack = handshake()
    asym = [
        tcp(CLIENT, SERVER, 40000, 5000, "S", 1000, vlan=(81,)),
        tcp(SERVER, CLIENT, 5000, 40000, "SA", 5000, 1001, vlan=(80,)),
        tcp(CLIENT, SERVER, 40000, 5000, "A", 1001, 5001, vlan=(81,)),
    ]
    conn = analyze_frames(tmp_path, asym).tcp.only()
    assert conn.handshake.complete and conn.s2c.packets == 1


def test_ipv6(tmp_path):
    conn = analyze_frames(tmp_path, full_connection(client="2001:db8::3", server="2001:db8::2")).tcp.only()
    assert conn.client.addr == "2001:db8::3" and conn.state == "SF"
    assert str(conn.client) == "[2001:db8::3]:40000"


def test_helpers_build_frames_without_asking_the_network(monkeypatch):
    """A bare Ether() resolved the destination's neighbour for every frame (~1 s each for IPv6)."""
    from scapy.config import conf

    def resolve(*_args):
        raise AssertionError("a test frame asked the network for a MAC address")

    monkeypatch.setattr(conf.neighbor, "resolve", resolve)
    for c, s in ((CLIENT, SERVER), ("2001:db8::3", "2001:db8::2")):
        assert full_connection(client=c, server=s) and udp(c, s, 1, 2, b"x")


def test_udp_flow_and_round_trips(tmp_path):
    frames = []
    for i in range(3):
        frames.append(udp(CLIENT, SERVER, 40001, 53, b"q" * (10 + i)))
        frames.append(udp(SERVER, CLIENT, 53, 40001, b"a" * 100))
    flow = analyze_frames(tmp_path, frames).udp.only()
    assert (flow.a.port, flow.b.port) == (40001, 53)
    assert (flow.a2b.packets, flow.a2b.bytes, flow.b2a.packets, flow.b2a.bytes) == (3, 33, 3, 300)
    assert flow.rtt_ms.count == 3 and flow.rtt_ms.median == 1.0


def test_fragments_are_reassembled(tmp_path):
    big = IP(src=CLIENT, dst=SERVER, id=77) / UDP(sport=40002, dport=9) / (b"x" * 3000)
    frames = [bytes(ether() / f) for f in fragment(big, fragsize=1000)]
    cap = analyze_frames(tmp_path, frames)
    flow = cap.udp.only()
    assert flow.a2b.bytes == 3000 and flow.a2b.packets == 1
    assert flow.first_packet == len(frames)  # counted on the frame completing the datagram
    assert cap.defects == {"ip_fragment": len(frames) - 1}


def test_truncated_header_is_a_warning_not_a_crash(tmp_path):
    frames = full_connection()
    frames[3] = frames[3][: 14 + 20 + 10]  # cut inside the TCP header
    cap = analyze_frames(tmp_path, frames)
    assert cap.defects == {"truncated": 1}
    assert cap.warnings == ("packet 4: TCP header cut short",)
    assert cap.tcp.only().c2s.packets == 4


CORPUS = sorted(p for p in (Path(__file__).parent / "data" / "corpus").glob("*.pcap*"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_two_processes_give_the_analysis_of_one(path):
    """Large files go through two processes (the engine's, and this one making records):
    the report must not change, also for the engine running as Python there."""
    try:
        one = analyze(path, workers=1)
    except CaptureFormatError:
        return
    two = analyze(path, workers=2)
    assert to_dict(two, two.tcp, two.udp) == to_dict(one, one.tcp, one.udp)
    assert two.warnings == one.warnings


def test_two_processes_count_the_same_defects(tmp_path):
    frames = [bytes(ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000 + i, dport=80, dataofs=4) / (b"x" * 12))
              for i in range(8)]
    path = write_pcap(tmp_path / "bad.pcap", [(T0 + i, f) for i, f in enumerate(frames)])
    assert analyze(path, workers=1).defects == analyze(path, workers=2).defects == {"bad_tcp_header": 8}


def test_vlan_tag_after_a_linux_cooked_header(tmp_path):
    """libpcap puts a stripped 802.1Q tag back after the SLL header (protocol 0x8100)."""
    def cooked(frame: bytes, vlan: int) -> bytes:
        return struct.pack("!HHH8s", 0, 1, 6, b"") + b"\x81\x00" + struct.pack("!H", vlan) + frame[12:]
    records = [(T0 + i * 1_000_000, cooked(f, 10)) for i, f in enumerate(full_connection())]
    cap = analyze(write_pcap(tmp_path / "sll.pcap", records, linktype=113))
    assert cap.defects == {} and cap.tcp.only().vlan == (10,) and cap.tcp.only().state == "SF"


def test_ipv4_header_longer_than_the_datagram_is_a_defect(tmp_path):
    first = bytes(ether() / IP(src=CLIENT, dst=SERVER, id=7, proto=17, flags="MF") / (b"\0" * 16))
    ip = bytearray(bytes(IP(src=CLIENT, dst=SERVER, id=7, proto=17, frag=2)))
    ip[0], ip[2:4] = 0x4F, struct.pack("!H", 20)  # IHL 60 bytes, total length 20
    last = bytes(ether())[:12] + b"\x08\x00" + bytes(ip) + b"\0" * 40
    cap = analyze_frames(tmp_path, [first, last])
    assert cap.defects == {"bad_ip_header": 1, "ip_fragment": 1}
    assert any("IPv4 length shorter than its header" in w for w in cap.warnings)


def test_ipv6_headers_inside_the_fragmented_part(tmp_path):
    """RFC 8200 allows destination options after the fragment header: they are in the reassembled payload."""
    dgram = (IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=6) / IPv6ExtHdrDestOpt()
             / UDP(sport=1, dport=2) / (b"x" * 3000))
    cap = analyze_frames(tmp_path, [bytes(ether() / f) for f in fragment6(dgram, 1280)])
    flow = cap.udp.only()
    assert (flow.a2b.packets, flow.a2b.bytes) == (1, 3000)


def test_syn_after_a_mid_stream_connection_starts_a_new_one(tmp_path):
    old = [tcp(CLIENT, SERVER, 40000, 5000, "PA", 777777, 888888, b"req"),
           tcp(SERVER, CLIENT, 5000, 40000, "PA", 888888, 777780, b"rep")]
    cap = analyze_frames(tmp_path, old + full_connection(cseq=123456))
    first, second = cap.tcp
    assert first.inferred and first.state == "OTH"
    assert not second.inferred and second.state == "SF" and second.handshake.complete
    assert second.c2s.retransmissions == second.s2c.retransmissions == 0


def test_request_latency_of_a_mid_stream_connection(tmp_path):
    frames, a, b = [], 1000, 9000
    for _ in range(3):
        frames += [tcp(CLIENT, SERVER, 40000, 80, "PA", a, b, b"GET"),
                   tcp(SERVER, CLIENT, 80, 40000, "PA", b, a + 3, b"OK!")]
        a, b = a + 3, b + 3
    conn = analyze_frames(tmp_path, frames).tcp.only()
    assert conn.inferred and conn.client.port == 40000
    assert conn.request_latency_ms.count == 3 and conn.request_latency_ms.median == 1.0


def test_resent_single_byte_is_a_retransmission_but_a_keep_alive_is_not(tmp_path):
    keystroke = tcp(CLIENT, SERVER, 40000, 5000, "PA", 1001, 5001, b"k")
    resent = handshake() + [keystroke, keystroke, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 1002)]
    assert analyze_frames(tmp_path, resent, gap_ns=200_000_000).tcp.only().c2s.retransmissions == 1
    keep_alive = [*resent[:3], keystroke, tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 1002),
                  tcp(CLIENT, SERVER, 40000, 5000, "A", 1001, 5001, b"\0")]  # one old byte, all acknowledged
    assert analyze_frames(tmp_path, keep_alive, gap_ns=200_000_000).tcp.only().c2s.retransmissions == 0


def test_half_seen_handshake_gives_the_rtt_seen_from_the_capture_point(tmp_path):
    """Asymmetric routing: the capture sees the SYN and the client's ACK, never the SYN/ACK."""
    syn, _synack, ack = handshake()
    data = tcp(CLIENT, SERVER, 40000, 5000, "PA", 1001, 5001, b"hello")
    conn = analyze_frames(tmp_path, [syn, ack, data]).tcp.only()
    h = conn.handshake
    assert h.half_seen and not h.complete
    assert h.rtt_ms == 1.0 and h.syn_synack_ms is None and h.synack_ack_ms is None
    assert to_dict(analyze(tmp_path / "t.pcap"), [conn], [])["tcp"][0]["handshake"]["half_seen"] is True
    full = analyze_frames(tmp_path, full_connection()).tcp.only().handshake
    assert full.complete and not full.half_seen


def _close(cseq: int = 1001, sseq: int = 5001, cport: int = 40000) -> list[bytes]:
    return [tcp(CLIENT, SERVER, cport, 5000, "FA", cseq, sseq), tcp(SERVER, CLIENT, 5000, cport, "FA", sseq, cseq + 1),
            tcp(CLIENT, SERVER, cport, 5000, "A", cseq + 1, sseq + 1)]


def test_zeek_states_without_a_captured_syn(tmp_path):
    """Zeek: FIN both ways is SF whether or not the SYN was captured (was OTH, or SHR with a SYN/ACK)."""
    data = [tcp(CLIENT, SERVER, 40000, 5000, "PA", 1001, 5001, b"req"),
            tcp(SERVER, CLIENT, 5000, 40000, "PA", 5001, 1004, b"rep")]
    conn = analyze_frames(tmp_path, data + _close(1004, 5004)).tcp.only()
    assert (conn.state, conn.history) == ("SF", "DdFfA")
    _syn, synack, ack = handshake()
    conn = analyze_frames(tmp_path, [synack, ack] + _close()).tcp.only()
    assert (conn.state, conn.history) == ("SF", "^hAFf")


def test_the_zeek_conn_log_of_missing_syn(tmp_path):
    """A conn.log line Zeek wrote for this connection (141.42.64.125:56730 -> 125.190.109.199:80):
    SF with history ^hADdFaf (quoted in a log parser's test suite)."""
    conn = analyze(Path(__file__).parent / "data" / "corpus" / "zeek__missing-syn.pcap").tcp.only()
    assert (conn.client.port, conn.server.port, conn.state, conn.history) == (56730, 80, "SF", "^hADdFaf")


def test_refused_attempts_with_the_same_isn_are_separate_connections(tmp_path):
    """A SYN resent after the previous attempt was answered by RST is a new attempt (was one REJ, 2 retries)."""
    syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 7)
    rst = tcp(SERVER, CLIENT, 5000, 40000, "RA", 0, 8)
    cap = analyze_frames(tmp_path, [syn, rst] * 3)
    assert [(c.state, c.handshake.syn_retries, c.history) for c in cap.tcp] == [("REJ", 0, "Sr")] * 3


def test_split_handshake_and_simultaneous_open_are_established(tmp_path):
    c_syn = tcp(CLIENT, SERVER, 40000, 5000, "S", 1000)
    s_syn = tcp(SERVER, CLIENT, 5000, 40000, "S", 5000)
    c_synack = tcp(CLIENT, SERVER, 40000, 5000, "SA", 1000, 5001)
    s_ack = tcp(SERVER, CLIENT, 5000, 40000, "A", 5001, 1001)
    split = [c_syn, s_syn, c_synack, s_ack]
    assert analyze_frames(tmp_path, split + _close()).tcp.only().state == "SF"
    reset = analyze_frames(tmp_path, [*split, tcp(CLIENT, SERVER, 40000, 5000, "R", 1001)]).tcp.only()
    assert reset.state == "RSTO"  # not RSTOS0: the server answered
    s_synack = tcp(SERVER, CLIENT, 5000, 40000, "SA", 5000, 1001)
    simultaneous = [c_syn, s_syn, s_synack, c_synack]
    conn = analyze_frames(tmp_path, simultaneous).tcp.only()
    assert conn.state == "S1" and conn.history == "Ss"


def test_history_letters(tmp_path):
    conn = analyze_frames(tmp_path, full_connection()).tcp.only()
    assert conn.history == "ShADdFf"
    frames = full_connection()
    resent = frames[:4] + [frames[3]] * 10 + frames[4:]  # the request sent 11 times: T at 1 and 10
    assert analyze_frames(tmp_path, resent).tcp.only().history == "ShADTTdFf"
    assert to_dict(analyze(tmp_path / "t.pcap"), [conn], [])["tcp"][0]["history"] == "ShADdFf"


def test_the_record_types_name_every_value_the_analysis_gives():
    """ConnState, NagleVerdict and Side are the Literal types of the records' fields."""
    from typing import get_args

    from sockinspect._delays import NagleEvidence, NagleVerdict, nagle_verdict
    from sockinspect._metrics import CONN_STATES
    from sockinspect._model import ConnState

    assert set(get_args(ConnState)) == set(CONN_STATES)
    verdicts = {nagle_verdict(NagleEvidence(5, on, off)) for on in range(6) for off in range(6)}
    assert verdicts == set(get_args(NagleVerdict))
