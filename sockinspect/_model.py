"""The records analysis produces: frozen, slotted, time in integer nanoseconds.

These are the public data model (``sockinspect.analyze`` returns a
:class:`Capture`); the JSON document is their :func:`sockinspect._report.to_json`
rendering, documented in docs/json.md.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal, TypeVar

from ._delays import NagleEvidence, NagleVerdict, Stall
from ._record import record

# Zeek's conn_state (sockinspect._metrics.CONN_STATES says what each means).
ConnState = Literal["S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"]
Side = Literal["client", "server"]


def ms(ns: int | None) -> float | None:
    """Nanoseconds to milliseconds, None stays None."""
    return None if ns is None else ns / 1_000_000


@record
class Endpoint:
    addr: str
    port: int

    def __str__(self) -> str:
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


@record
class Stats:
    """Summary of a set of values (delays and latencies in ms)."""

    count: int = 0
    min: float | None = None
    median: float | None = None
    p95: float | None = None
    max: float | None = None


@record
class Sizes:
    """Payload sizes of the segments that carried data, in bytes, relative to the MSS."""

    count: int = 0
    min: int | None = None
    median: float | None = None
    p95: int | None = None
    max: int | None = None
    mss: int | None = None  # the full-sized payload the buckets use (None: not known)
    sub_mss: int = 0  # segments smaller than ``mss``
    over_mss: int = 0  # segments larger than ``mss``: segmentation offload at the capture host
    histogram: tuple[tuple[str, int], ...] = ()  # (bucket label, segments)


@record
class Handshake:
    """The three-way handshake as seen at the capture point."""

    syn_ts_ns: int | None = None  # first SYN (without ACK) from the client
    last_syn_ts_ns: int | None = None  # the client's last SYN before the handshake's ACK (after retries)
    synack_ts_ns: int | None = None  # first SYN/ACK from the server
    ack_ts_ns: int | None = None  # first client ACK after the SYN/ACK (after the SYN if none was seen)
    syn_count: int = 0  # SYNs sent by the client (1 + retries)
    synack_count: int = 0

    @property
    def complete(self) -> bool:
        return None not in (self.syn_ts_ns, self.synack_ts_ns, self.ack_ts_ns)

    @property
    def half_seen(self) -> bool:
        """The client's SYN and its ACK were captured, the SYN/ACK was not (a capture point
        that sees one direction): ``rtt_ms`` is then measured on the client's packets alone."""
        return self.synack_ts_ns is None and None not in (self.syn_ts_ns, self.ack_ts_ns)

    @property
    def syn_retries(self) -> int:
        return max(self.syn_count - 1, 0)

    @property
    def syn_synack_ms(self) -> float | None:
        """The last SYN to the SYN/ACK: a retried SYN's timeout is not part of it."""
        return _gap_ms(self.last_syn_ts_ns, self.synack_ts_ns)

    @property
    def synack_ack_ms(self) -> float | None:
        return _gap_ms(self.synack_ts_ns, self.ack_ts_ns)

    @property
    def syn_retry_ms(self) -> float | None:
        """Time lost to SYN retries: the first SYN to the last one (0 without retries)."""
        return _gap_ms(self.syn_ts_ns, self.last_syn_ts_ns)

    @property
    def rtt_ms(self) -> float | None:
        """The last SYN to the handshake's ACK: what tshark calls the initial RTT
        (tshark too restarts it at each SYN sent before the first ACK)."""
        return _gap_ms(self.last_syn_ts_ns, self.ack_ts_ns)


def _gap_ms(start: int | None, end: int | None) -> float | None:
    return None if start is None or end is None else (end - start) / 1_000_000


@record
class Direction:
    """One direction of a TCP connection: ``c2s`` (client to server) or ``s2c``."""

    packets: int = 0
    payload_bytes: int = 0  # retransmissions counted again
    segments: int = 0  # segments carrying payload
    frame_bytes: int = 0  # wire length of the frames, link header included
    sizes: Sizes = field(default_factory=Sizes)
    mss_option: int | None = None  # the MSS option of this side's SYN: the largest segment it accepts
    wscale: int | None = None
    sack_perm: bool | None = None
    timestamps: bool | None = None
    retransmissions: int = 0
    fins: int = 0
    rsts: int = 0
    first_data_ts_ns: int | None = None  # the first segment carrying payload
    last_data_ts_ns: int | None = None  # the last one
    unique_bytes: int = 0  # payload bytes of sequence space the capture had not seen before
    retransmitted_bytes: int = 0  # payload bytes resending sequence space already seen
    zero_windows: int = 0  # segments this side sent announcing a zero receive window (tshark's rule)
    zero_window_ns_total: int = 0  # time this side's receive window stayed at zero
    window_full: int = 0  # data segments that filled the peer's announced window (tshark's rule)
    nagle: NagleVerdict = "unknown"  # the sender's Nagle algorithm
    nagle_evidence: NagleEvidence = field(default_factory=NagleEvidence)
    ack_delay_ms: Stats = field(default_factory=Stats)  # data segment -> first ACK covering it
    delayed_acks: int = 0  # ACKs of this direction's data held by the receiver's delayed-ACK timer
    stall_list: tuple[Stall, ...] = ()  # the first 1000 stalls
    stalls: int = 0  # all of them
    stall_ns_total: int = 0

    @property
    def stall_ms_total(self) -> float:
        return self.stall_ns_total / 1e6

    @property
    def segments_over_mss(self) -> int:
        return self.sizes.over_mss

    @property
    def offload_suspected(self) -> bool | None:
        """Segments larger than the peer's MSS allows: the capture saw them before segmentation
        (TSO/GSO on the sending host) or after coalescing (GRO/LRO on the receiving host), not
        as the wire carried them. None without a handshake (the MSS is not known)."""
        return None if self.sizes.mss is None else self.sizes.over_mss > 0

    @property
    def zero_window_ms_total(self) -> float:
        return self.zero_window_ns_total / 1e6

    @property
    def data_ms(self) -> float | None:
        """The data-transfer time: first to last segment carrying payload (None: fewer than two)."""
        return _gap_ms(self.first_data_ts_ns, self.last_data_ts_ns) if self.segments > 1 else None

    @property
    def throughput_bps(self) -> float | None:
        """Payload bits per second over ``data_ms``, retransmissions included."""
        return _bps(self.payload_bytes, self.data_ms)

    @property
    def goodput_bps(self) -> float | None:
        """Unique payload bits per second over ``data_ms``: what the application got across."""
        return _bps(self.unique_bytes, self.data_ms)


def _bps(nbytes: int, duration_ms: float | None) -> float | None:
    return None if not duration_ms or duration_ms <= 0 else nbytes * 8 / (duration_ms / 1000)


@record
class TcpConnection:
    """A TCP connection: client = the SYN sender (or inferred, see ``inferred``)."""

    index: int  # 0-based, in order of first packet
    client: Endpoint
    server: Endpoint
    inferred: bool  # no SYN or SYN/ACK seen: the client role is a guess
    vlan: tuple[int, ...]
    handshake: Handshake
    c2s: Direction
    s2c: Direction
    state: ConnState  # Zeek's conn_state
    closed_by: Side | None  # who sent the first FIN or RST (None: neither did)
    first_ts_ns: int | None
    last_ts_ns: int | None
    first_packet: int
    last_packet: int
    client_port_ephemeral_linux: bool
    client_port_ephemeral_iana: bool
    # A request's first byte to the last byte of its reply (the server's last data before
    # the client's next request, or the end of the capture); to the reply's first byte:
    request_latency_ms: Stats = field(default_factory=Stats)
    response_first_byte_ms: Stats = field(default_factory=Stats)
    history: str = ""  # Zeek's conn.log history letters (upper case: the client)

    @property
    def duration_ms(self) -> float | None:
        return _gap_ms(self.first_ts_ns, self.last_ts_ns)

    @property
    def packets(self) -> int:
        return self.c2s.packets + self.s2c.packets


@record
class UdpDirection:
    packets: int = 0
    bytes: int = 0  # UDP payload bytes (length field minus 8)
    frame_bytes: int = 0


@record
class UdpFlow:
    """A UDP flow; ``a`` sent the first datagram."""

    index: int
    a: Endpoint
    b: Endpoint
    vlan: tuple[int, ...]
    a2b: UdpDirection
    b2a: UdpDirection
    rtt_ms: Stats  # a datagram one way answered by the next one back
    first_ts_ns: int | None
    last_ts_ns: int | None
    first_packet: int
    last_packet: int

    @property
    def duration_ms(self) -> float | None:
        return _gap_ms(self.first_ts_ns, self.last_ts_ns)

    @property
    def packets(self) -> int:
        return self.a2b.packets + self.b2a.packets


T = TypeVar("T", TcpConnection, UdpFlow)


class Selection(tuple[T, ...]):
    """A tuple of connections or flows with helpers to pick the one you mean."""

    def only(self) -> T:
        """The single element; AssertionError naming how many there are otherwise."""
        __tracebackhide__ = True
        if len(self) != 1:
            raise AssertionError(f"expected exactly one, found {len(self)}: {_names(self)}")
        return self[0]

    def by_port(self, port: int) -> Selection[T]:
        return Selection(c for c in self if port in _ports(c))

    def by_host(self, addr: str) -> Selection[T]:
        return Selection(c for c in self if addr in _addrs(c))


def _ports(c: TcpConnection | UdpFlow) -> tuple[int, int]:
    return (c.client.port, c.server.port) if isinstance(c, TcpConnection) else (c.a.port, c.b.port)


def _addrs(c: TcpConnection | UdpFlow) -> tuple[str, str]:
    return (c.client.addr, c.server.addr) if isinstance(c, TcpConnection) else (c.a.addr, c.b.addr)


def _names(items: Selection) -> str:
    shown = [
        f"{c.client} -> {c.server}" if isinstance(c, TcpConnection) else f"{c.a} <-> {c.b}"
        for c in items[:5]
    ]
    return ", ".join(shown) + (", ..." if len(items) > 5 else "") if shown else "none"


@record
class Capture:
    """Everything ``analyze`` learned from one capture file."""

    file: str
    format: str
    linktypes: tuple[str, ...]
    packets: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    warnings: tuple[str, ...]
    defects: dict[str, int]
    tcp: Selection[TcpConnection]
    udp: Selection[UdpFlow]

    @property
    def duration_ms(self) -> float | None:
        return _gap_ms(self.first_ts_ns, self.last_ts_ns)
