"""Golden tests: sockinspect against tshark 4.0.17 on the shared capture corpus.

The corpus and tshark's answers (one JSON per capture, see tests/data/corpus/
README.md) are copied from ../shared/pcaps so these tests run without it.

What is compared, for every capture tshark could read: the TCP connections'
endpoints, packets and payload bytes per direction, the initial RTT (within 1 µs;
also of half-seen handshakes, SYN and ACK without a captured SYN/ACK), the
zero-window segments, and the UDP flows' endpoints, datagrams and bytes per direction.
Connections are
compared per endpoint pair, summed, because sockinspect deliberately splits
some of tshark's streams; every deliberate difference is listed in DIFFERENCES
with its reason, and the test checks that it still holds (so a fix shows up).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from sockinspect import analyze
from sockinspect.errors import CaptureFormatError

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus"
ORACLE = DATA / "oracle"
ORACLES = sorted(ORACLE.glob("*.json"))

# Where sockinspect differs from tshark on purpose: file -> {aspect: reason}.
# Aspects: "tcp" (connections, packets, bytes), "initial_rtt".
DIFFERENCES = {
    "dpkt__nb6-http.pcap": {
        "tcp": "tunnels (L2TP over UDP) are not decoded: the inner IPv6 HTTP connection "
        "is seen only as the outer UDP flow",
    },
    "zeek__vxlan-overlapping-http-get.pcap": {
        "tcp": "VXLAN is not decoded: the inner TCP connections are seen only as the outer UDP flow",
    },
    "zeek__vlan-collisions.pcap": {
        "initial_rtt": "tshark merges the untagged, VLAN 42 and QinQ copies of the connection "
        "(README caveat 1) and measures SYN to ACK across copies (20.034 ms); sockinspect "
        "keeps one connection per VLAN and measures each copy's own handshake (70.034 ms)",
    },
    "zeek__rst-inject-rae.pcap": {
        "initial_rtt": "tshark puts its initial RTT on the injected RST (SYN to RST, 233.736 ms, "
        "caveat 11); sockinspect measures SYN to the handshake's ACK (1267.865 ms)",
    },
}
# Our own value where we differ on initial RTT: (client port, server port) -> ms.
OUR_INITIAL_RTT_MS = {
    "zeek__vlan-collisions.pcap": {(59856, 80): 70.034},
    "zeek__rst-inject-rae.pcap": {(2527, 6649): 1267.865},
}
# Files tshark cannot read; sockinspect reads some of them (a superset, not a difference).
UNREADABLE_BY_TSHARK = {
    "libpcap__pcap-invalid-version-1.pcap": "error",
    "libpcap__shb-option-too-long.pcapng": "error",
    "tcpdump__dsa.pcap": "no TCP/UDP: link type 284 is counted as a defect",
}


def _oracle(path: Path) -> dict:
    return json.loads(path.read_text())


def _ep(d: dict) -> tuple[str, int]:
    return (d["addr"], d["port"])


def _tcp_by_pair(streams, get) -> dict:
    """Sum per-direction counts by ordered (client, server) endpoint pair."""
    out: dict = defaultdict(lambda: [0, 0, 0, 0])
    for s in streams:
        c, srv, (pc, ps, bc, bs) = get(s)
        a = out[(c, srv)]
        a[0] += pc
        a[1] += ps
        a[2] += bc
        a[3] += bs
    return dict(out)


def _ours_tcp(cap):
    return _tcp_by_pair(
        cap.tcp,
        lambda c: (
            (c.client.addr, c.client.port),
            (c.server.addr, c.server.port),
            (c.c2s.packets, c.s2c.packets, c.c2s.payload_bytes, c.s2c.payload_bytes),
        ),
    )


def _theirs_tcp(oracle):
    return _tcp_by_pair(
        oracle["tcp_streams"],
        lambda s: (
            _ep(s["client"]),
            _ep(s["server"]),
            (s["packets_c2s"], s["packets_s2c"], s["payload_bytes_c2s"], s["payload_bytes_s2c"]),
        ),
    )


def _unordered(pairs: dict) -> dict:
    """Key by unordered endpoint pair, counts oriented from the smaller endpoint."""
    out = {}
    for (c, s), (pc, ps, bc, bs) in pairs.items():
        if c <= s:
            key, val = (c, s), (pc, ps, bc, bs)
        else:
            key, val = (s, c), (ps, pc, bs, bc)
        prev = out.get(key, (0, 0, 0, 0))
        out[key] = tuple(x + y for x, y in zip(prev, val, strict=True))
    return out


@pytest.mark.parametrize("oracle_path", ORACLES, ids=lambda p: p.name.removesuffix(".json"))
def test_matches_tshark(oracle_path: Path) -> None:
    oracle = _oracle(oracle_path)
    name = oracle["file"]
    capture = CORPUS / name
    if oracle["tshark_exit_code"] and not oracle["packets"]:
        # tshark could not read it at all: we must not crash, and either read it or say why.
        try:
            cap = analyze(capture)
        except CaptureFormatError as exc:
            assert name in str(exc)
            return
        assert name in UNREADABLE_BY_TSHARK, f"{name}: read although tshark could not"
        assert not cap.tcp
        return
    cap = analyze(capture)
    assert cap.packets == oracle["packets"] - _custom_blocks(oracle)
    differs = DIFFERENCES.get(name, {})
    same_tcp = _unordered(_ours_tcp(cap)) == _unordered(_theirs_tcp(oracle))
    assert same_tcp != ("tcp" in differs), f"{name}: TCP connections {differs.get('tcp', 'differ')}"
    if "tcp" in differs:
        return
    _check_udp(cap, oracle)
    _check_zero_windows(cap, oracle)
    if "initial_rtt" in differs:
        for conn in cap.tcp:
            expected = OUR_INITIAL_RTT_MS[name][(conn.client.port, conn.server.port)]
            assert conn.handshake.rtt_ms == pytest.approx(expected, abs=1e-3)
        with pytest.raises(AssertionError):
            _check_initial_rtt(cap, oracle)
    else:
        _check_initial_rtt(cap, oracle)


def _custom_blocks(oracle: dict) -> int:
    """tshark counts pcapng Custom Blocks as frames (README caveat 9); we do not."""
    return oracle["packets"] - oracle["capinfos_packets"] if oracle["file"].endswith("test202.pcapng") else 0


def _check_udp(cap, oracle) -> None:
    ours = _unordered({
        ((f.a.addr, f.a.port), (f.b.addr, f.b.port)): (f.a2b.packets, f.b2a.packets, f.a2b.bytes, f.b2a.bytes)
        for f in cap.udp
    })
    theirs = _unordered({
        (_ep(f["a"]), _ep(f["b"])): (f["packets_a2b"], f["packets_b2a"], f["bytes_a2b"], f["bytes_b2a"])
        for f in oracle["udp_flows"]
    })
    assert ours == theirs


def _check_zero_windows(cap, oracle) -> None:
    """Segments announcing a zero window (tshark's tcp.analysis.zero_window), per endpoint pair."""
    ours, theirs = defaultdict(int), defaultdict(int)
    for c in cap.tcp:
        ours[frozenset([(c.client.addr, c.client.port), (c.server.addr, c.server.port)])] += (
            c.c2s.zero_windows + c.s2c.zero_windows)
    for s in oracle["tcp_streams"]:
        theirs[frozenset([_ep(s["client"]), _ep(s["server"])])] += s["zero_window"]
    assert {k: v for k, v in ours.items() if v} == {k: v for k, v in theirs.items() if v}


def test_zero_windows_are_in_the_corpus() -> None:
    """zeek__206_example_b.pcap: the client announces a zero window 57 times (tshark)."""
    assert [s["zero_window"] for s in _oracle(ORACLE / "zeek__206_example_b.pcap.json")["tcp_streams"]][0] == 57
    conn = analyze(CORPUS / "zeek__206_example_b.pcap").tcp[0]
    assert (conn.c2s.zero_windows, conn.s2c.zero_windows) == (57, 0)
    assert conn.c2s.zero_window_ms_total > 0


def _half_seen(s: dict) -> bool:
    """tshark's stream: the client's SYN and ACK, no SYN/ACK, no RST (a one-directional capture)."""
    return bool(s["syn_c2s"]) and not s["synack_s2c"] and not s["rst"] and s["initial_rtt_s"] is not None


def _check_initial_rtt(cap, oracle) -> None:
    """Initial RTT of every completed or half-seen handshake agrees with tshark within 1 µs."""
    theirs = {
        (_ep(s["client"]), _ep(s["server"])): s["initial_rtt_s"]
        for s in oracle["tcp_streams"]
        if (s["handshake_complete"] or _half_seen(s)) and s["initial_rtt_s"] is not None
    }
    ours = {
        ((c.client.addr, c.client.port), (c.server.addr, c.server.port)): c.handshake.rtt_ms
        for c in cap.tcp
        if c.handshake.complete or c.handshake.half_seen
    }
    assert set(ours) == set(theirs)
    for pair, rtt_s in theirs.items():
        assert ours[pair] == pytest.approx(rtt_s * 1000, abs=1e-3), pair


def test_every_difference_is_in_the_corpus() -> None:
    names = {p.name for p in CORPUS.iterdir()}
    assert set(DIFFERENCES) <= names
    assert set(UNREADABLE_BY_TSHARK) <= names


def test_half_seen_handshake_is_in_the_corpus() -> None:
    """zeek__mixed-vlan-mpls.pcap: the telnet SYN and the client's ACK, no SYN/ACK; tshark 0.905 ms."""
    oracle = _oracle(ORACLE / "zeek__mixed-vlan-mpls.pcap.json")
    assert [s["initial_rtt_s"] for s in oracle["tcp_streams"] if _half_seen(s)] == [0.000905]
    conn = analyze(CORPUS / "zeek__mixed-vlan-mpls.pcap").tcp.by_port(23).only()
    assert conn.handshake.half_seen and not conn.handshake.complete
    assert conn.handshake.rtt_ms == pytest.approx(0.905, abs=1e-3)
