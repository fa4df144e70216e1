"""Build packets in memory (scapy) and write them as capture files for tests."""

from __future__ import annotations

import signal
import struct
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from sockinspect import Capture, analyze

CLIENT, SERVER = "10.10.10.3", "10.10.10.2"  # the lab's KALI and R2 (never sent, only written to files)
T0 = 1_700_000_000_000_000_000  # ns
# Explicit MAC addresses: a bare Ether() makes scapy resolve the destination's neighbour
# (ARP / ND) for every frame built, about 1 s each for addresses nobody answers.
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:03", "02:00:00:00:00:02"


def ether() -> Ether:
    """An Ethernet header with both addresses set, so building it never touches the network."""
    return Ether(src=CLIENT_MAC, dst=SERVER_MAC)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int = 0, ack: int = 0,
        payload: bytes = b"", vlan: tuple[int, ...] = (), options: list | None = None,
        window: int = 8192) -> bytes:
    """One Ethernet frame carrying a TCP segment."""
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    frame = ether()
    for v in vlan:
        frame = frame / Dot1Q(vlan=v)
    seg = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, options=options or [], window=window)
    return bytes(frame / ip / seg / payload)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return bytes(ether() / ip / UDP(sport=sport, dport=dport) / payload)


def write_pcap(path: Path, frames: list[tuple[int, bytes]], linktype: int = 1, nano: bool = True,
               endian: str = "<") -> Path:
    """Write (ts_ns, frame bytes) records as a pcap file."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262_144, linktype))
        for ts, data in frames:
            frac = ts % 1_000_000_000 if nano else ts % 1_000_000_000 // 1000
            f.write(struct.pack(endian + "IIII", ts // 1_000_000_000, frac, len(data), len(data)))
            f.write(data)
    return path


def analyze_frames(tmp_path: Path, frames: list[bytes], gap_ns: int = 1_000_000, **kw) -> Capture:
    """Write ``frames`` 1 ms apart (by default) and analyze the file."""
    records = [(T0 + i * gap_ns, f) for i, f in enumerate(frames)]
    return analyze(write_pcap(tmp_path / "t.pcap", records, **kw))


def handshake(cport: int = 40000, sport: int = 5000, cseq: int = 1000, sseq: int = 5000,
              client: str = CLIENT, server: str = SERVER, vlan: tuple[int, ...] = ()) -> list[bytes]:
    return [
        tcp(client, server, cport, sport, "S", cseq, vlan=vlan, options=[("MSS", 1460), ("WScale", 7)]),
        tcp(server, client, sport, cport, "SA", sseq, cseq + 1, vlan=vlan, options=[("MSS", 1400)]),
        tcp(client, server, cport, sport, "A", cseq + 1, sseq + 1, vlan=vlan),
    ]


def full_connection(cport: int = 40000, sport: int = 5000, cseq: int = 1000, sseq: int = 5000,
                    request: bytes = b"hello", reply: bytes = b"HELLO!", **kw) -> list[bytes]:
    """Handshake, one request and one reply, FIN both ways."""
    c, s = kw.pop("client", CLIENT), kw.pop("server", SERVER)
    a, b = cseq + 1, sseq + 1
    return [
        *handshake(cport, sport, cseq, sseq, c, s, **kw),
        tcp(c, s, cport, sport, "PA", a, b, request, **kw),
        tcp(s, c, sport, cport, "PA", b, a + len(request), reply, **kw),
        tcp(c, s, cport, sport, "FA", a + len(request), b + len(reply), **kw),
        tcp(s, c, sport, cport, "FA", b + len(reply), a + len(request) + 1, **kw),
        tcp(c, s, cport, sport, "A", a + len(request) + 1, b + len(reply) + 1, **kw),
    ]


def sigint_by_default() -> None:
    """A ``preexec_fn`` for programs a test stops with Ctrl-C (SIGINT): a shell that
    starts the suite in the background without job control makes its children
    ignore SIGINT, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
