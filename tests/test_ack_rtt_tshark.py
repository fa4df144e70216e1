"""ACK delays against tshark's tcp.analysis.ack_rtt, where the two measure the same thing.

tshark gives one ack_rtt per ACK: the time since the data segment that ACK
acknowledges (the latest one fully covered; SYN and FIN segments included).
sockinspect gives one delay per data segment: the time to the first ACK that
covers it, leaving out segments sent more than once. They agree by definition
for an ACK that newly covers exactly one data segment that was sent once and
carries no SYN/FIN; they differ by definition when an ACK covers several
segments (sockinspect also times the earlier ones), for ACKs of SYN or FIN
(tshark times them, sockinspect does not), and around retransmissions.
Runs only where tshark is installed; CI compares against committed golden files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sockinspect._decode import Decoder, Packet
from sockinspect._delays import AckLog
from sockinspect._read import CaptureReader
from sockinspect.analysis.engine import Engine

DATA = Path(__file__).parent / "data"
CAPTURES = [
    DATA / "nagle" / "nagle-on.pcap",
    DATA / "nagle" / "nodelay.pcap",
    DATA / "corpus" / "zeek__get.trace",
    DATA / "corpus" / "tcpdump__ssh.pcap",
    DATA / "corpus" / "dpkt__http.pcap",
    DATA / "corpus" / "zeek__tls1.2.pcap",
]
TSHARK = shutil.which("tshark")


def _tshark_ack_rtt(path: Path) -> dict[int, tuple[int, float]]:
    """ACK frame -> (frame it acknowledges, ack_rtt in seconds)."""
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-Y", "tcp.analysis.ack_rtt", "-T", "fields",
         "-e", "frame.number", "-e", "tcp.analysis.acks_frame", "-e", "tcp.analysis.ack_rtt"],
        capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        frame, acks, rtt = line.split("\t")
        rows[int(frame)] = (int(acks), float(rtt))
    return rows


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (the comparison needs it)")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_single_segment_acks_agree_with_tshark(path):
    log: AckLog = []
    decoder, engine = Decoder(), Engine(ack_log=log)
    frames = enumerate(CaptureReader(path), 1)
    engine.feed(pkt for pkt in (decoder.decode(frame, number) for number, frame in frames) if type(pkt) is Packet)
    engine.finish()
    theirs = _tshark_ack_rtt(path)
    compared = 0
    for ack_pkt, _first, last_pkt, covered, delay_ns, clean, exact in log:
        if covered != 1 or not clean or not exact or ack_pkt not in theirs:
            continue  # differs by definition (see the module docstring)
        acked, rtt_s = theirs[ack_pkt]
        assert acked == last_pkt, (path.name, ack_pkt)
        assert delay_ns / 1e9 == pytest.approx(rtt_s, abs=1e-6), (path.name, ack_pkt)
        compared += 1
    assert compared >= 1, f"{path.name}: no single-segment ACK to compare"
