"""Regenerate tests/data/nagle/: real loopback captures cut to their headers.

    .venv/bin/python tests/make_nagle_data.py   (needs root or 'unshare -rn')

Each capture is written with every frame cut to 128 bytes (the wire length is
kept, so payload sizes stay right) and its expected values are computed with
dpkt, independently of sockinspect, into expected.json.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import dpkt
from loopback import run_requests

DATA = Path(__file__).parent / "data" / "nagle"
SNAP = 128
CASES = {
    "nagle-on.pcap": ("write-write", False),
    "nodelay.pcap": ("write-write", True),
    "coalesced.pcap": ("coalesced", False),
    "bulk.pcap": ("bulk", False),
}


def shrink(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    out = [data[:16] + struct.pack("<I", SNAP) + data[20:24]]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack_from("<IIII", data, pos)
        body = data[pos + 16 : pos + 16 + caplen]
        out.append(struct.pack("<IIII", sec, frac, min(caplen, SNAP), wirelen) + body[:SNAP])
        pos += 16 + caplen
    dst.write_bytes(b"".join(out))


def independent_facts(path: Path) -> dict:
    """Stalls as a reader would count them by hand: a pure ACK from the server at
    least 35 ms after the client's last data, followed by client data within 2 ms."""
    rows = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            payload = ip.len - ip.hl * 4 - tcp.off * 4
            rows.append((float(ts), tcp.sport, payload, bool(tcp.flags & dpkt.tcp.TH_ACK)))
    client_port = rows[0][1]
    stalls, last_client_data = [], None
    for i, (ts, sport, n, _ack) in enumerate(rows):
        if sport == client_port and n:
            last_client_data = ts
        elif sport != client_port and n == 0 and last_client_data is not None and ts - last_client_data >= 0.035:
            nxt = next((r for r in rows[i + 1 :] if r[1] == client_port and r[2]), None)
            if nxt and nxt[0] - ts <= 0.002:
                stalls.append(round(float(nxt[0] - last_client_data) * 1000, 3))
    data_segments = sum(1 for r in rows if r[1] == client_port and r[2])
    return {"client_data_segments": data_segments, "stalls": len(stalls), "stall_gaps_ms": stalls}


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (mode, nodelay) in CASES.items():
            full = run_requests(Path(tmp) / name, mode, nodelay, bulk_bytes=2 << 20)
            shrink(full, DATA / name)
            expected[name] = {"mode": mode, "nodelay": nodelay, **independent_facts(DATA / name)}
    (DATA / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
