"""A structure-aware fuzzer for ``analyze`` and the reports built from it.

Each case starts from a real capture (tests/data, captures/, ../shared/pcaps when
present) or from nothing, and mutates what a capture is made of: pcap file and
record headers, pcapng blocks (lengths, types, interface ids, link types,
options, sections), and packets built with deep and odd encapsulation (VLAN,
MPLS, PPPoE, IP in IP, IPv6 extension headers, IPComp, fragments). A case passes
when analyzing it and rendering every report ends within ``CASE_SECONDS`` and
``MAX_RSS_MB``, raising nothing but ``CaptureFormatError``.

Cases are reproducible: case ``i`` of seed ``s`` is always the same input.

    python tests/fuzzing.py --seconds 600 --save tests/data/fuzz   # what ``make fuzz`` runs
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_DIRS = [ROOT / "tests" / "data" / "corpus", ROOT / "captures" / "examples",
             ROOT.parent / "shared" / "pcaps" / "corpus"]
MAX_INPUT = 1 << 20  # inputs of at most 1 MB
CASE_SECONDS = 10
MAX_RSS_MB = 500
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 65535]
PCAP_MAGICS = [0xA1B2C3D4, 0xA1B23C4D]
LITTLE, BIG = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"), (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
SHB = 0x0A0D0D0A


class CaseTimeout(Exception):
    pass


# -- seeds ------------------------------------------------------------------------------


def seed_files() -> list[bytes]:
    out = []
    for folder in SEED_DIRS:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in (".pcap", ".pcapng", ".cap", ".trace") and path.stat().st_size <= MAX_INPUT:
                    out.append(path.read_bytes())
    return out


# -- packets with deep and odd encapsulation ----------------------------------------------


def _tcp(rng: random.Random) -> tuple[int, bytes]:
    options = b""
    for _ in range(rng.randrange(4)):
        options += rng.choice([b"\x02\x04\x05\xb4", b"\x03\x03\x07", b"\x04\x02", b"\x01",
                               b"\x08\x0a" + rng.randbytes(8), rng.randbytes(rng.randrange(1, 6))])
    options += bytes(-len(options) % 4)
    offset = (5 + len(options) // 4) if rng.random() < 0.9 else rng.randrange(16)
    header = struct.pack("!HHIIBBHHH", rng.choice([80, 5000, rng.randrange(65536)]), rng.randrange(65536),
                         rng.randrange(1 << 32), rng.randrange(1 << 32), (offset & 15) << 4,
                         rng.randrange(256), rng.randrange(65536), 0, 0)
    return 6, header + options + rng.randbytes(rng.choice([0, 0, 1, 10, 100, 1400]))


def _udp(rng: random.Random) -> tuple[int, bytes]:
    body = rng.randbytes(rng.choice([0, 8, 100]))
    length = len(body) + 8 if rng.random() < 0.9 else rng.randrange(65536)
    return 17, struct.pack("!HHHH", rng.randrange(65536), rng.randrange(65536), length, 0) + body


def _ipv4(proto: int, payload: bytes, rng: random.Random, frag: int = 0, ident: int = 1) -> bytes:
    ihl = 5 if rng.random() < 0.9 else rng.randrange(16)
    total = 20 + len(payload) if rng.random() < 0.9 else rng.choice([0, 1, 65535, rng.randrange(65536)])
    opts = bytes(max(ihl - 5, 0) * 4)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total & 0xFFFF, ident, frag, 64, proto, 0,
                       bytes([10, 0, 0, rng.randrange(1, 4)]), bytes([10, 0, 0, 9])) + opts + payload


def _ipv6(nxt: int, payload: bytes, rng: random.Random) -> bytes:
    length = len(payload) if rng.random() < 0.9 else rng.randrange(65536)
    return struct.pack("!IHBB16s16s", 6 << 28, length & 0xFFFF, nxt, 64, bytes(15) + bytes([rng.randrange(1, 4)]),
                       bytes(15) + b"\x09") + payload


def _wrap_ip(rng: random.Random, proto: int, payload: bytes, depth: int) -> tuple[int, bytes, int]:
    """Wrap (proto, payload) in ``depth`` random IP-level layers; returns (ip version, packet, proto)."""
    version = rng.choice([4, 6])
    packet = _ipv4(proto, payload, rng) if version == 4 else _ipv6(proto, payload, rng)
    if rng.random() < 0.05:  # a decompression bomb
        bomb = _deflate_bomb()
        packet = _ipv4(108, bomb, rng) if version == 4 else _ipv6(108, bomb, rng)
    uniform = rng.random() < 0.5  # one kind of layer all the way down, as a hostile file would
    kinds = [rng.choice(["ip4", "ip6", "ext"])] if uniform else ["ip4", "ip6", "ext", "ipcomp", "ah", "frag6"]
    for _ in range(depth):
        kind = rng.choice(kinds)
        inner = 4 if version == 4 else 41
        if kind == "ip4":
            packet, version = _ipv4(inner, packet, rng), 4
        elif kind == "ip6":
            packet, version = _ipv6(inner, packet, rng), 6
        elif kind == "ipcomp":
            c = zlib.compressobj(rng.randrange(10), zlib.DEFLATED, -15)
            body = struct.pack("!BBH", inner, 0, rng.choice([2, 2, 1, 64])) + c.compress(packet) + c.flush()
            packet = _ipv4(108, body, rng) if rng.random() < 0.5 else _ipv6(108, body, rng)
            version = packet[0] >> 4
        else:
            nh = {"ext": rng.choice([0, 43, 60]), "ah": 51, "frag6": 44}[kind]
            hdr = (struct.pack("!BBHI", inner, 0, 0, rng.randrange(1 << 32)) if nh == 44
                   else struct.pack("!BB6x", inner, 0 if nh != 51 else 1) + (bytes(4) if nh == 51 else b""))
            packet, version = _ipv6(nh, hdr + packet, rng), 6
    return version, packet, proto


@functools.cache
def _deflate_bomb() -> bytes:
    """An IPComp payload of IPComp: 64 MiB of zeros inside, deflated twice (about 1 KB)."""
    zeros = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    inner = struct.pack("!BBH", 6, 0, 2) + b"".join(c.compress(zeros) for _ in range(64)) + c.flush()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return struct.pack("!BBH", 108, 0, 2) + c.compress(inner) + c.flush()


def _link(rng: random.Random, version: int, packet: bytes) -> tuple[int, bytes]:
    etype = b"\x08\x00" if version == 4 else b"\x86\xdd"
    kind = rng.choice(["ether", "ether", "vlan", "mpls", "pppoe", "null", "raw", "sll", "sll2"])
    if kind == "ether":
        return 1, bytes(12) + etype + packet
    if kind == "vlan":
        tags = rng.choice([1, 2, 3, 31, 32, 33, 1000, 20_000])
        return 1, bytes(12) + b"\x81\x00\x00\x07" * tags + etype + packet
    if kind == "mpls":
        labels = rng.choice([1, 2, 31, 32, 33, 1000, 20_000])
        return 1, bytes(12) + b"\x88\x47" + b"\x00\x01\x00\x40" * (labels - 1) + b"\x00\x01\x01\x40" + packet
    if kind == "pppoe":
        ppp = b"\x00\x21" if version == 4 else b"\x00\x57"
        length = len(packet) + 2 if rng.random() < 0.8 else rng.randrange(65536)
        return 1, bytes(12) + b"\x88\x64" + struct.pack("!BBHH", 0x11, 0, 1, length & 0xFFFF) + ppp + packet
    if kind == "null":
        return 0, struct.pack("<I", 2 if version == 4 else rng.choice([10, 24, 28, 30])) + packet
    if kind == "raw":
        return 101, packet
    if kind == "sll":
        return 113, bytes(14) + etype + packet
    return 276, etype + bytes(18) + packet


def built_frames(rng: random.Random) -> tuple[int, list[bytes]]:
    """A handful of frames of one link type: deep stacks, fragments, odd lengths."""
    frames: list[bytes] = []
    linktype = None
    for _ in range(rng.randrange(1, 6)):
        proto, payload = (_tcp if rng.random() < 0.7 else _udp)(rng)
        depth = rng.choice([0, 0, 1, 2, 5, 31, 33, 40, rng.randrange(200), 1500])
        version, packet, proto = _wrap_ip(rng, proto, payload, depth)
        pieces = [packet]
        if rng.random() < 0.3 and version == 4:
            pieces = _fragments(rng, proto, packet[20:])
        for piece in pieces:
            lt, frame = _link(rng, piece[0] >> 4, piece)
            if linktype is None:
                linktype = lt
            if lt == linktype:
                frames.append(frame)
    return linktype or 1, frames


def _fragments(rng: random.Random, proto: int, payload: bytes) -> list[bytes]:
    size = rng.choice([8, 16, 64, 512])
    ident = rng.randrange(65536)
    out = []
    for off in range(0, max(len(payload), 1), size):
        more = 0x2000 if off + size < len(payload) else 0
        out.append(_ipv4(proto, payload[off : off + size], rng, frag=more | (off // 8) & 0x1FFF, ident=ident))
    if rng.random() < 0.5:
        rng.shuffle(out)
    if rng.random() < 0.3:  # overlapping duplicates and a flood
        out += [rng.choice(out) for _ in range(rng.choice([3, 100, 9000]))]
    return out


# -- pcap ---------------------------------------------------------------------------------


def pcap_file(linktype: int, frames: list[bytes], rng: random.Random) -> bytes:
    magic = rng.choice(PCAP_MAGICS)
    endian = rng.choice("<>")
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262_144, linktype)]
    for i, frame in enumerate(frames):
        out.append(struct.pack(endian + "IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


def split_pcap(data: bytes) -> tuple[str, bytes, list[list]] | None:
    """(endian, file header, [[ts_s, ts_frac, caplen, wirelen, body]]) of a pcap file, or None."""
    if len(data) < 24 or data[:4] not in (*LITTLE, *BIG):
        return None
    endian = "<" if data[:4] in LITTLE else ">"
    records, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack_from(endian + "IIII", data, pos)
        if pos + 16 + caplen > len(data):
            break
        records.append([sec, frac, caplen, wirelen, data[pos + 16 : pos + 16 + caplen]])
        pos += 16 + caplen
    return endian, data[:24], records


def join_pcap(endian: str, header: bytes, records: list[list]) -> bytes:
    return header + b"".join(struct.pack(endian + "IIII", *(v & 0xFFFFFFFF for v in r[:4])) + r[4] for r in records)


def mutate_pcap(rng: random.Random, data: bytes) -> bytes:
    parsed = split_pcap(data)
    if parsed is None:
        return data
    endian, header, records = parsed
    header = bytearray(header)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(10)
        if op == 0:  # file header fields
            field = rng.choice([(4, "H", [1, 2, 3, 0xFFFF]), (6, "H", [0, 4, 0xFFFF]),
                                (16, "I", [0, 1, 64, 0xFFFFFFFF]), (20, "I", LINKTYPES + [rng.randrange(1 << 32)])])
            struct.pack_into(endian + field[1], header, field[0], rng.choice(field[2]))
        elif op == 1 and records:  # a record's lengths
            r = rng.choice(records)
            which = rng.choice([2, 3])
            r[which] = rng.choice([0, 1, r[which] - 1, r[which] + 1, 1 << 24, 0xFFFFFFFF, rng.randrange(1 << 32)])
        elif op == 2 and records:  # a record's time
            r = rng.choice(records)
            r[0], r[1] = rng.choice([0, 0xFFFFFFFF, r[0] + 1]), rng.choice([0, 999_999, 10**9, 0xFFFFFFFF])
        elif op == 3 and records:  # delete, duplicate, rotate records
            i, j = rng.randrange(len(records)), rng.randrange(len(records))
            how = rng.randrange(3)
            if how == 0:
                records.pop(i)
            elif how == 1:
                records.insert(i, list(records[j]))
            else:
                records[:] = records[j:] + records[:j]
        elif op == 4:  # packets with deep and odd encapsulation
            _lt, frames = built_frames(rng)
            for frame in frames:
                records.insert(rng.randrange(len(records) + 1), [1_700_000_000, 0, len(frame), len(frame), frame])
        elif op == 5 and records:  # a packet's bytes
            r = rng.choice(records)
            r[4] = _flip(rng, r[4])
        elif op == 6 and records:  # a packet cut short, lengths left as they were
            r = rng.choice(records)
            r[4] = r[4][: rng.randrange(len(r[4]) + 1)]
            r[2] = len(r[4])
        elif op == 7:  # the linktype changes under the packets
            struct.pack_into(endian + "I", header, 20, rng.choice(LINKTYPES))
        elif op == 8 and records:  # a flood of one packet (the input stays within MAX_INPUT)
            r = rng.choice(records)
            records.extend([r] * min(rng.choice([100, 5000]), MAX_INPUT // (16 + len(r[4]))))
        else:
            pass
    out = join_pcap(endian, bytes(header), records)
    if rng.random() < 0.2:
        out = out[: rng.randrange(len(out) + 1)]
    return out


# -- pcapng -------------------------------------------------------------------------------


def split_pcapng(data: bytes) -> list[list] | None:
    """[[endian, type, body]] of the blocks of a pcapng file, or None."""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        return None
    blocks, pos, endian = [], 0, "<"
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            endian = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        if blen < 12 or pos + blen > len(data):
            break
        blocks.append([endian, btype, data[pos + 8 : pos + blen - 4]])
        pos += blen
    return blocks


def block(endian: str, btype: int, body: bytes, length: int | None = None, trailer: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n if length is None else length) + body + struct.pack(
        endian + "I", n if trailer is None else trailer)


def _option(endian: str, code: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack(endian + "HH", code, len(value) if length is None else length) + value + bytes(-len(value) % 4)


def pcapng_file(linktype: int, frames: list[bytes], rng: random.Random) -> bytes:
    e = rng.choice("<>")
    out = [block(e, SHB, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(e, 1, struct.pack(e + "HHI", linktype, 0, 0) + _option(e, 9, bytes([9])) + _option(e, 0, b""))]
    for i, frame in enumerate(frames):
        ts = (1_700_000_000 + i) * 10**9
        times = struct.pack(e + "III", 0, ts >> 32, ts & 0xFFFFFFFF)
        out.append(block(e, 6, times + struct.pack(e + "II", len(frame), len(frame)) + frame))
    return b"".join(out)


def mutate_pcapng(rng: random.Random, data: bytes) -> bytes:
    blocks = split_pcapng(data)
    if blocks is None:
        return data
    out: list[bytes] = []
    for e, btype, body in blocks:
        r = rng.random()
        if r < 0.85 or not body:
            out.append(block(e, btype, body))
            continue
        choice = rng.randrange(9)
        body = bytearray(body)
        if choice == 0:  # length at the front, the back, or both
            n = len(body) + 12 + (-len(body) % 4)
            bad = rng.choice([0, 4, 8, 12, n - 4, n + 4, 1 << 24, 0xFFFFFFFF])
            out.append(block(e, btype, bytes(body), length=rng.choice([bad, n]), trailer=rng.choice([bad, n])))
            continue
        if choice == 1:  # another block type
            btype = rng.choice([1, 2, 3, 4, 5, 6, 7, SHB, 0x80000001, rng.randrange(1 << 32)])
        elif choice == 2 and btype in (2, 6) and len(body) >= 4:  # an interface that does not exist
            struct.pack_into(e + ("I" if btype == 6 else "H"), body, 0, rng.choice([1, 2, 255, 0xFFFF]))
        elif choice == 3 and btype == 1 and len(body) >= 2:  # the interface's link type
            struct.pack_into(e + "H", body, 0, rng.choice(LINKTYPES))
        elif choice == 4 and btype == 1:  # options: clock resolution and offset, lengths that overrun
            body = body[:8] + _option(e, 9, bytes([rng.choice([0, 3, 6, 9, 19, 0x80 | 63, 0xFF, 0x7F])]))
            body += _option(e, 14, struct.pack(e + "q", rng.choice([0, -1, 1 << 62, -(1 << 62)])))
            body += _option(e, rng.randrange(1, 20), rng.randbytes(4), length=rng.choice([4, 0xFFFF, 100]))
        elif choice == 5 and btype in (2, 6) and len(body) >= 20:  # captured / wire length
            struct.pack_into(e + "I", body, 12, rng.choice([0, 1, len(body), 1 << 24, 0xFFFFFFFF]))
        elif choice == 6:  # a new section, maybe of the other byte order, maybe bad
            e2 = rng.choice("<>")
            bom = 0x1A2B3C4D if rng.random() < 0.9 else 0xDEADBEEF
            out.append(block(e2, SHB, struct.pack(e2 + "IHHq", bom, 1, 0, -1)))
            out.append(block(e2, 1, struct.pack(e2 + "HHI", rng.choice(LINKTYPES), 0, 0)))
        elif choice == 7:  # a simple packet block, maybe before any interface
            _lt, frames = built_frames(rng)
            out.insert(rng.randrange(len(out) + 1), block(e, 3, struct.pack(e + "I", len(frames[0]) if frames else 0)
                                                          + (frames[0] if frames else b"")))
        elif choice == 8 and btype == 6 and len(body) >= 20:  # deep and odd packets
            _lt, frames = built_frames(rng)
            if frames:
                body = body[:12] + struct.pack(e + "II", len(frames[0]), len(frames[0])) + frames[0]
        out.append(block(e, btype, bytes(body)))
    result = b"".join(out)
    if rng.random() < 0.2:
        result = result[: rng.randrange(len(result) + 1)]
    return result


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


# -- cases --------------------------------------------------------------------------------


def make_case(seed: int, index: int, seeds: list[bytes]) -> bytes:
    rng = random.Random(f"{seed}:{index}")
    if not seeds or rng.random() < 0.25:
        linktype, frames = built_frames(rng)
        data = (pcap_file if rng.random() < 0.5 else pcapng_file)(linktype, frames, rng)
    else:
        data = rng.choice(seeds)
    for _ in range(rng.randrange(1, 4)):
        data = mutate_pcapng(rng, data) if data[:4] == b"\x0a\x0d\x0d\x0a" else mutate_pcap(rng, data)
    if rng.random() < 0.1:
        data = _flip(rng, data)
    return data[:MAX_INPUT]


def check_input(path: Path) -> None:
    """Analyze one input and render every report; raises on anything but CaptureFormatError,
    CaseTimeout past CASE_SECONDS."""
    from sockinspect import analyze
    from sockinspect._documents import capture_document
    from sockinspect._report import connection_detail, csv_text, text_report, to_csv_rows
    from sockinspect.errors import CaptureFormatError

    def timeout(_signum, _frame):  # noqa: ANN001
        raise CaseTimeout(f"{path}: not done within {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        try:
            cap = analyze(path, workers=1)
        except CaptureFormatError:
            return
        json.dumps(capture_document(cap, cap.tcp, cap.udp))
        text_report(cap, list(cap.tcp), list(cap.udp))
        csv_text(to_csv_rows(cap, cap.tcp, cap.udp))
        for conn in cap.tcp[:5]:
            connection_detail(conn)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s*(\d+)", f.read())[1]) / 1024


def fuzz(seconds: float, seed: int, save: Path | None, report: Callable[[str], None] = print) -> int:
    """Run cases for ``seconds``; returns the number of failing cases (each saved under ``save``)."""
    seeds = seed_files()
    failures = cases = 0
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case"
        while time.monotonic() < deadline:
            data = make_case(seed, cases, seeds)
            path.write_bytes(data)
            problem = None
            try:
                check_input(path)
            except Exception:  # noqa: BLE001 - any exception is the finding
                problem = traceback.format_exc(limit=-3)
            if problem is None and peak_rss_mb() > MAX_RSS_MB:
                problem = f"peak memory {peak_rss_mb():.0f} MB is over {MAX_RSS_MB} MB"
            if problem is not None:
                failures += 1
                name = f"crash-seed{seed}-case{cases}.pcap"
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    (save / name).write_bytes(data)
                report(f"FAIL seed {seed} case {cases} ({len(data)} bytes, saved as {name}):\n{problem}")
                if problem.startswith("peak memory"):
                    break  # the memory is not given back: later cases would all fail
            cases += 1
    report(f"fuzz: {cases} cases in {seconds:.0f} s (seed {seed}, {len(seeds)} seed files), "
           f"{failures} failures, peak memory {peak_rss_mb():.0f} MB")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to run (default 600)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="cases of this seed (default: the time)")
    parser.add_argument("--save", type=Path, help="folder for the inputs that fail (e.g. tests/data/fuzz)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    return 1 if fuzz(args.seconds, args.seed, args.save) else 0


if __name__ == "__main__":
    sys.exit(main())
