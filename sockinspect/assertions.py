"""Assertions about captured traffic, for tests and CI.

Each function takes a connection (or UDP flow) from :func:`sockinspect.analyze`
and raises ``AssertionError`` saying what was expected, what was seen and where
(connection, packet number, time). Their own frames are hidden from pytest
tracebacks, so the failure points at the test's line.

>>> conn = sockinspect.analyze("capture.pcap").tcp.by_port(5000).only()
>>> assert_closed_cleanly(conn)
>>> assert_no_stalls(conn)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from ._delays import held_decimals_ms
from ._model import Direction, TcpConnection, UdpFlow

__all__ = [
    "assert_client_port_ephemeral",
    "assert_closed_by",
    "assert_closed_cleanly",
    "assert_handshake_complete",
    "assert_max_segment_size",
    "assert_nagle",
    "assert_no_rst",
    "assert_no_stalls",
    "assert_payload_bytes",
    "assert_request_latency",
    "assert_state",
    "assert_udp_replies",
]

DIRECTIONS = ("c2s", "s2c")


def _where(conn: TcpConnection | UdpFlow) -> str:
    if isinstance(conn, TcpConnection):
        name = f"TCP connection #{conn.index} {conn.client} -> {conn.server}"
    else:
        name = f"UDP flow #{conn.index} {conn.a} <-> {conn.b}"
    return f"{name} (packets {conn.first_packet}..{conn.last_packet}, from {_clock(conn.first_ts_ns)})"


def _clock(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "an unknown time"
    stamp = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%H:%M:%S")
    return f"{stamp}.{ts_ns % 1_000_000_000:09d}"


def _fail(conn: TcpConnection | UdpFlow, expected: str, seen: str) -> None:
    __tracebackhide__ = True
    raise AssertionError(f"expected {expected}, seen {seen}\n  in {_where(conn)}")


def _directions(direction: str | None) -> tuple[str, ...]:
    if direction is None:
        return DIRECTIONS
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'c2s' or 's2c', not {direction!r}")
    return (direction,)


def assert_handshake_complete(conn: TcpConnection, within_ms: float | None = None) -> None:
    """SYN, SYN/ACK and ACK were all seen (and, if given, SYN to ACK took at most ``within_ms``)."""
    __tracebackhide__ = True
    h = conn.handshake
    if not h.complete:
        missing = [name for name, ts in (("SYN", h.syn_ts_ns), ("SYN/ACK", h.synack_ts_ns), ("ACK", h.ack_ts_ns))
                   if ts is None]
        _fail(conn, "a complete three-way handshake", f"no {', no '.join(missing)}")
    if within_ms is not None and h.rtt_ms is not None and h.rtt_ms > within_ms:
        _fail(conn, f"handshake within {within_ms} ms", f"{h.rtt_ms:.3f} ms (SYN at {_clock(h.syn_ts_ns)})")


def assert_state(conn: TcpConnection, *states: str) -> None:
    """The Zeek-style connection state is one of ``states`` (e.g. ``"SF"``)."""
    __tracebackhide__ = True
    if conn.state not in states:
        _fail(conn, f"state {' or '.join(states)}", f"{conn.state}")


def assert_no_rst(conn: TcpConnection) -> None:
    __tracebackhide__ = True
    if conn.c2s.rsts or conn.s2c.rsts:
        _fail(conn, "no RST", f"{conn.c2s.rsts} RST from the client, {conn.s2c.rsts} from the server")


def assert_closed_cleanly(conn: TcpConnection) -> None:
    """Closed with FIN both ways and no RST (state ``SF``)."""
    __tracebackhide__ = True
    assert_no_rst(conn)
    if conn.state != "SF":
        _fail(conn, "a clean close with FIN both ways (state SF)",
              f"state {conn.state}, FIN c2s={conn.c2s.fins} s2c={conn.s2c.fins}")


def assert_closed_by(conn: TcpConnection, role: str) -> None:
    """The first FIN (or RST) came from ``role``: ``"client"`` or ``"server"``."""
    __tracebackhide__ = True
    if role not in ("client", "server"):
        raise ValueError(f"role must be 'client' or 'server', not {role!r}")
    if conn.closed_by != role:
        _fail(conn, f"closed by the {role}", f"closed by {conn.closed_by or 'nobody'}")


def assert_client_port_ephemeral(conn: TcpConnection, ranges: str = "any") -> None:
    """The client port is ephemeral: in Linux's range (32768-60999), IANA's (49152-65535), or ``any``."""
    __tracebackhide__ = True
    linux, iana = conn.client_port_ephemeral_linux, conn.client_port_ephemeral_iana
    ok = {"linux": linux, "iana": iana, "any": linux or iana}.get(ranges)
    if ok is None:
        raise ValueError(f"ranges must be 'linux', 'iana' or 'any', not {ranges!r}")
    if not ok:
        _fail(conn, f"an ephemeral client port ({ranges})", f"port {conn.client.port}")


def assert_nagle(conn: TcpConnection, expected: str, direction: str = "c2s") -> None:
    """The sender of ``direction`` had Nagle ``"on"`` or ``"off"`` (TCP_NODELAY)."""
    __tracebackhide__ = True
    d: Direction = getattr(conn, _directions(direction)[0])
    if d.nagle != expected:
        e = d.nagle_evidence
        _fail(conn, f"Nagle {expected} for {direction}",
              f"{d.nagle} (held until ACK: {e.held_until_ack}, small while small unacked: "
              f"{e.small_while_small_unacked}, sub-MSS segments: {e.small_segments})")


def assert_no_stalls(conn: TcpConnection, at_most: int = 0, direction: str | None = None) -> None:
    """At most ``at_most`` delayed-ACK stalls (in both directions unless one is named)."""
    __tracebackhide__ = True
    for name in _directions(direction):
        d: Direction = getattr(conn, name)
        if d.stalls > at_most:
            first = d.stall_list[0]
            _fail(conn, f"at most {at_most} stalls in {name}",
                  f"{d.stalls} stalls losing {d.stall_ms_total:.1f} ms; the first: data packet "
                  f"{first.data_packet}, delayed ACK packet {first.ack_packet} after {first.ack_delay_ms:.1f} ms "
                  f"(at {_clock(first.ack_ts_ns)}), next data packet {first.next_packet}")


def assert_max_segment_size(conn: TcpConnection, max_bytes: int | str, direction: str | None = None) -> None:
    """No segment carried more than ``max_bytes`` of payload; ``"mss"``: more than the
    sender's full-sized segment (``sizes.mss``: the MSS its peer announced, less TCP
    timestamps). Loopback's MSS is 65,483, Ethernet's 1460 (1448 with timestamps); a
    larger segment shows segmentation offload at the capture point."""
    __tracebackhide__ = True
    if max_bytes != "mss" and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)):
        raise ValueError(f"max_bytes must be a number of bytes or 'mss', not {max_bytes!r}")
    for name in _directions(direction):
        sizes = getattr(conn, name).sizes
        limit = sizes.mss if max_bytes == "mss" else max_bytes
        if sizes.max is None:
            continue
        if limit is None:
            _fail(conn, f"no {name} segment above the MSS", "no MSS: the handshake was not captured")
        elif sizes.max > limit:
            what = f"the MSS ({limit} bytes)" if max_bytes == "mss" else f"{limit} bytes"
            _fail(conn, f"no {name} segment above {what}",
                  f"one of {sizes.max} bytes (the sender's MSS: {sizes.mss})")


def assert_payload_bytes(conn: TcpConnection, expected: int | str | os.PathLike[str], direction: str = "c2s",
                         *, allow_retransmissions: bool = True) -> None:
    """``direction`` carried ``expected`` payload bytes (an int, or a file whose size it is).
    Retransmitted bytes are counted again, so by default the check is ``>=`` when there
    were retransmissions and ``==`` otherwise."""
    __tracebackhide__ = True
    size = expected if isinstance(expected, int) else os.path.getsize(expected)
    what = f"{size} bytes" if isinstance(expected, int) else f"{size} bytes (the size of {os.fspath(expected)})"
    d: Direction = getattr(conn, _directions(direction)[0])
    if d.retransmissions and allow_retransmissions:
        if d.payload_bytes < size:
            _fail(conn, f"at least {what} {direction}", f"{d.payload_bytes} bytes")
    elif d.payload_bytes != size:
        _fail(conn, f"{what} {direction}", f"{d.payload_bytes} bytes in {d.segments} segments")


def assert_request_latency(conn: TcpConnection, max_ms: float, statistic: str = "max") -> None:
    """Replies came within ``max_ms`` of their requests (``statistic``: max, p95 or median)."""
    __tracebackhide__ = True
    if statistic not in ("max", "p95", "median"):
        raise ValueError(f"statistic must be 'max', 'p95' or 'median', not {statistic!r}")
    lat = conn.request_latency_ms
    if not lat.count:
        _fail(conn, "requests answered by replies", "no request followed by a reply")
    value = getattr(lat, statistic)
    if value > max_ms:
        shown = f"{value:.3f}" if statistic == "max" else _sketched(value)  # max is exact
        _fail(conn, f"request latency ({statistic}) at most {max_ms} ms",
              f"{shown} ms over {lat.count} requests (median {_sketched(lat.median)} ms)")


def _sketched(ms: float) -> str:
    """min and max are exact; a median or p95 only holds the digits its sketch bucket does."""
    return f"{ms:.{max(held_decimals_ms(ms), 0)}f}"


def assert_udp_replies(flow: UdpFlow) -> None:
    """Every datagram from ``a`` got a reply from ``b``."""
    __tracebackhide__ = True
    if flow.rtt_ms.count < flow.a2b.packets:
        _fail(flow, f"a reply to each of the {flow.a2b.packets} requests",
              f"{flow.rtt_ms.count} answered, {flow.a2b.packets - flow.rtt_ms.count} without reply")
