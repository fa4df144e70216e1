"""Edge: read capture files (pcap, pcapng, either gzip-compressed) into frames.

The format is detected from the first bytes, never from the file name. Files are
read in chunks, so memory does not grow with the size of the capture. Problems
inside a readable file (a truncated last record, a corrupt block) end the
reading with a warning naming the byte offset; only a file that cannot be read
at all raises :class:`CaptureFormatError`.
"""

from __future__ import annotations

import gzip
import os
import stat
import struct
import sys
import zlib
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from .errors import CaptureFormatError

CHUNK = 1 << 20
# A gzip stream inflates freely up to INFLATION_ALLOWANCE bytes, then at most
# MAX_INFLATION times the compressed bytes read: a 1 MB gzip bomb of tiny records
# would otherwise make gigabytes of them. Real captures inflate 1-20 times.
INFLATION_ALLOWANCE = 16 << 20
MAX_INFLATION = 32
_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)
PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
# A record larger than this cannot be a packet: the file is corrupt from there on.
MAX_RECORD = 1 << 24
# pcapng blocks shorter than their fixed fields (by block type), whole block length.
MIN_BLOCK_LENGTH = {1: 20, 2: 32, 3: 16, 6: 32}


class Frame(NamedTuple):
    """One captured frame. ``data[offset:offset+caplen]`` holds its bytes."""

    ts_ns: int | None  # None for pcapng Simple Packet Blocks, which carry no time
    linktype: int
    wirelen: int
    data: bytes
    offset: int
    caplen: int


class PcapHeader(NamedTuple):
    big_endian: bool
    ns_per_unit: int  # 1000 (microsecond timestamps) or 1 (nanosecond)
    snaplen: int
    linktype: int
    limit: int  # a record's captured length above this is corruption
    rest: bytes  # bytes read after the header


class CaptureReader:
    """Iterate over the frames of a capture file; see ``warnings`` afterwards.

    Attributes filled while reading: ``format`` ("pcap", "pcap-ns", "pcapng",
    with "+gzip" when compressed), ``linktypes`` (of the interfaces declared),
    ``warnings`` (one line each); ``position()`` tells how far reading got.
    """

    def __init__(self, path: str | os.PathLike[str], max_inflation: int = MAX_INFLATION) -> None:
        """``max_inflation``: past the first INFLATION_ALLOWANCE bytes, a gzip stream
        may inflate at most this many times the compressed bytes read (0: no limit)."""
        self.path = os.fspath(path)
        self.warnings: list[str] = []
        self.linktypes: list[int] = []
        self._source, head, gz = _open(self.path)
        self._file = self._source if gz is None else _SafeGzip(gz, self._source, max_inflation)
        self.format = "" if gz is None else "+gzip"
        self.size = self._source.size
        self._head = head
        if head[:4] in PCAP_MAGIC:
            self._frames = self._pcap(head)
        elif head[:4] == PCAPNG_SHB:
            self._frames = self._pcapng(head)
        else:
            head += self._file.read(12)
            self._file.close()
            raise CaptureFormatError(f"{self.path}: not a pcap or pcapng file ({_describe(head)})")

    @property
    def forkable(self) -> bool:
        """Whether a forked process can read the input on: not standard input, which
        multiprocessing closes in the processes it starts."""
        return self.path != STDIN

    def position(self) -> int:
        """Bytes of the input consumed so far (compressed bytes for gzip), for progress;
        ``size`` is 0 for a pipe or FIFO, whose size is unknown."""
        return self._source.consumed

    def more_into(self, into: memoryview, base: int, pos: int, end: int) -> int:
        """The next bytes of a pcap file's records, into ``into`` (as many as fit and come):
        how many; 0 at its end, with a warning for a record cut short at byte ``base + pos``
        (``end - pos`` bytes left over). A buffer read into again and again costs no fresh
        pages, as a new 1 MiB bytes object each time does (~1 ms of page faults)."""
        got = self._file.readinto(into)
        if not got:
            self._ended(base, pos, end, "packet")
        return got

    def _more(self, base: int, pos: int, end: int, unit: str) -> bytes | None:
        """The next chunk of the file, or None at its end (with a warning for a
        partial ``unit`` left over, or a damaged gzip stream)."""
        more = self._file.read(CHUNK)
        if more:
            return more
        self._ended(base, pos, end, unit)
        return None

    def _ended(self, base: int, pos: int, end: int, unit: str) -> None:
        """Warn, at the end of the input, of a damaged gzip stream or a partial ``unit`` left over."""
        if getattr(self._file, "damaged", False):
            self._warn("the gzip stream is damaged; the packets before the damage were read")
        if getattr(self._file, "bomb", False):  # our own stop: a record cut there is no news
            self._warn(f"stopped reading at byte {self._source.consumed} of the gzip stream: it inflates more "
                       f"than {self._file.max_inflation} times its size (a decompression bomb?); the packets "
                       "before were read (analyze --max-inflation 0 reads it all)")
        elif pos < end:
            self._warn(
                f"file cut short in the middle of a {unit} at byte offset {base + pos} "
                f"({end - pos} bytes left over); the packets before it were read"
            )

    def __iter__(self) -> Iterator[Frame]:
        try:
            yield from self._frames
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()

    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    # -- pcap ---------------------------------------------------------------

    @property
    def is_pcap(self) -> bool:
        return self._head[:4] in PCAP_MAGIC

    def pcap_header(self) -> PcapHeader:
        """Read a pcap file's header (``is_pcap``): what its records need, and the bytes
        read past it (``rest``). For reading the records some other way than iterating."""
        head = self._head
        endian, ns_per_unit = PCAP_MAGIC[head[:4]]
        self.format = ("pcap" if ns_per_unit == 1_000 else "pcap-ns") + self.format
        buf = head + self._file.read(CHUNK)
        if len(buf) < 24:
            raise CaptureFormatError(f"{self.path}: pcap file header cut short ({len(buf)} of 24 bytes)")
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
        if major != 2:
            raise CaptureFormatError(f"{self.path}: pcap version {major}.{minor} is not supported (only 2.x)")
        linktype = network & 0xFFFF
        self.linktypes.append(linktype)
        limit = min(max(snaplen, 262_144) if snaplen else MAX_RECORD, MAX_RECORD)
        return PcapHeader(endian == ">", ns_per_unit, snaplen, linktype, limit, buf[24:])

    def corrupt_record(self, offset: int, caplen: int, snaplen: int) -> None:
        """Stop at a record whose captured length is impossible, with a warning."""
        self._warn(f"corrupt record at byte offset {offset}: captured length {caplen} "
                   f"is larger than the snapshot length {snaplen}; stopped reading there")

    def _pcap(self, head: bytes) -> Iterator[Frame]:
        big_endian, ns_per_unit, snaplen, linktype, limit, buf = self.pcap_header()
        record = struct.Struct((">" if big_endian else "<") + "IIII").unpack_from
        pos, base = 0, 24  # base: file offset of buf[0]
        while True:
            end = len(buf)
            while pos + 16 <= end:
                sec, frac, caplen, wirelen = record(buf, pos)
                if caplen > limit:
                    self.corrupt_record(base + pos, caplen, snaplen)
                    return
                if pos + 16 + caplen > end:
                    break
                yield _new(Frame, (sec * 1_000_000_000 + frac * ns_per_unit, linktype, wirelen, buf, pos + 16, caplen))
                pos += 16 + caplen
            more = self._more(base, pos, end, "packet")
            if more is None:
                return
            base += pos
            buf = buf[pos:] + more
            pos = 0

    # -- pcapng ---------------------------------------------------------------

    def _pcapng(self, head: bytes) -> Iterator[Frame]:
        self.format = "pcapng" + self.format
        buf = head + self._file.read(CHUNK)
        pos, base = 0, 0
        endian = "<"
        interfaces: list[tuple[int, int, int, int]] = []  # linktype, num, den, offset_ns
        first_section = True
        while True:
            end = len(buf)
            while pos + 12 <= end:
                btype_raw = buf[pos : pos + 4]
                if btype_raw == PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        endian = ">"
                    else:
                        return self._fail(first_section, base + pos, "section header with a bad byte-order magic")
                btype, blen = struct.unpack_from(endian + "II", buf, pos)
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    return self._fail(first_section, base + pos, f"block of impossible length {blen}")
                if pos + blen > end:
                    break
                if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
                    return self._fail(first_section, base + pos, "block lengths at start and end differ")
                body, body_end = pos + 8, pos + blen - 4
                if blen < MIN_BLOCK_LENGTH.get(btype, 12):
                    self._warn(f"block of type {btype} at byte offset {base + pos} is too short "
                               f"({blen} bytes); skipped")
                elif btype == 6 or btype == 2:  # Enhanced Packet Block, obsolete Packet Block
                    if btype == 6:
                        iface, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(endian + "IIIII", buf, body)
                    else:
                        iface, _drops, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(endian + "HHIIII", buf, body)
                    if iface >= len(interfaces) or body + 20 + caplen > body_end:
                        self._warn(f"bad packet block at byte offset {base + pos}; skipped")
                    else:
                        linktype, num, den, off = interfaces[iface]
                        ts = ((ts_hi << 32 | ts_lo) * num) // den + off
                        yield Frame(ts, linktype, wirelen, buf, body + 20, caplen)
                elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                    (wirelen,) = struct.unpack_from(endian + "I", buf, body)
                    if not interfaces:
                        self._warn(f"simple packet block before any interface at byte offset {base + pos}; skipped")
                    else:
                        caplen = min(wirelen, body_end - body - 4)
                        yield Frame(None, interfaces[0][0], wirelen, buf, body + 4, caplen)
                elif btype == 1:  # Interface Description Block
                    linktype, _reserved, _snaplen = struct.unpack_from(endian + "HHI", buf, body)
                    num, den, off = _interface_clock(buf, body + 8, body_end, endian)
                    interfaces.append((linktype, num, den, off))
                    self.linktypes.append(linktype)
                elif btype == 0x0A0D0D0A:
                    if not _options_fit(buf, body + 16, body_end, endian):
                        return self._fail(first_section, base + pos, "section header options overrun the block")
                    interfaces = []
                    first_section = False
                pos += blen
            more = self._more(base, pos, end, "block")
            if more is None:
                return
            base += pos
            buf = buf[pos:] + more
            pos = 0

    def _fail(self, fatal: bool, offset: int, what: str) -> None:
        if fatal:
            raise CaptureFormatError(f"{self.path}: corrupt pcapng file: {what} at byte offset {offset}")
        self._warn(f"corrupt pcapng file: {what} at byte offset {offset}; stopped reading there")


def _interface_clock(buf: bytes, pos: int, end: int, endian: str) -> tuple[int, int, int]:
    """(numerator, denominator, offset_ns) turning an interface's time units into ns."""
    num, den, offset_ns = 1_000, 1, 0  # default resolution: microseconds
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = pos + 4
        if value + length > end:
            break  # an option overrunning its block: keep what was read
        if code == 9 and length >= 1:  # if_tsresol
            r = buf[value]
            units_per_s = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
            num, den = 1_000_000_000, units_per_s
        elif code == 14 and length >= 8:  # if_tsoffset, seconds
            offset_ns = struct.unpack_from(endian + "q", buf, value)[0] * 1_000_000_000
        pos = value + (length + 3) // 4 * 4
    return num, den, offset_ns


def _options_fit(buf: bytes, pos: int, end: int, endian: str) -> bool:
    """Whether a block's option list stays within the block."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            return True
        pos += 4 + (length + 3) // 4 * 4
        if pos > end:
            return False
    return pos <= end


STDIN = "-"


def is_fifo(path: str) -> bool:
    """Whether ``path`` is a named pipe (opening it waits for a writer)."""
    try:
        return path != STDIN and stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def capture_paths(paths: list[str]) -> list[str]:
    """``paths`` with each directory replaced by the capture files in it (not its
    subfolders), in name order: the files whose first bytes are a pcap, pcapng or
    gzip magic, whatever their names. CaptureFormatError for a directory with none."""
    out: list[str] = []
    if paths.count(STDIN) > 1:
        raise CaptureFormatError("-: standard input can be read once: give - only once")
    for path in paths:
        if path == STDIN or not os.path.isdir(path):
            out.append(path)
            continue
        found = [entry.path for entry in sorted(os.scandir(path), key=lambda e: e.name)
                 if _is_file(entry) and _looks_like_capture(entry.path)]
        if not found:
            raise CaptureFormatError(f"{path}: a directory with no pcap, pcapng or gzip files in it")
        out.extend(found)
    return out


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symlink loop, a name gone since the listing
        return False


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in PCAP_MAGIC or head == PCAPNG_SHB or head[:2] == GZIP_MAGIC


def _open(path: str) -> tuple[_Source, bytes, gzip.GzipFile | None]:
    """Open ``path`` ("-": standard input); return (source, first bytes, the gzip
    stream over the source when the input is gzip-compressed).
    A FIFO blocks here until a writer opens it (the CLI says so first)."""
    if path == STDIN and sys.stdin is None:
        raise CaptureFormatError("-: standard input is closed")
    try:
        raw = sys.stdin.buffer if path == STDIN else open(path, "rb")  # noqa: SIM115 - closed by CaptureReader
    except FileNotFoundError:
        raise CaptureFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaptureFormatError(f"{path}: is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureFormatError(f"{path}: cannot open: {exc.strerror}") from None
    source = _Source(raw)
    head = source.read_exactly(4)
    if head[:2] != GZIP_MAGIC:
        if not head:
            source.close()
            raise CaptureFormatError(f"{path}: empty {'input' if path == STDIN else 'file'} (0 bytes), not a capture")
        return source, head, None
    source.unread(head)
    unzipped = gzip.GzipFile(fileobj=source, mode="rb")
    try:
        head = unzipped.read(4)
    except (OSError, EOFError, zlib.error) as exc:
        source.close()
        raise CaptureFormatError(f"{path}: gzip-compressed but cannot be decompressed: {exc}") from None
    if not head:
        source.close()
        raise CaptureFormatError(f"{path}: gzip-compressed file holds nothing")
    return source, head, unzipped


class _Source:
    """The input's bytes, as read from a file, a pipe or a FIFO: counts what was
    consumed (progress works on pipes too) and can give back the first bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        st = os.fstat(raw.fileno())
        self.size = st.st_size if stat.S_ISREG(st.st_mode) else 0
        self.consumed = 0
        self._back = b""

    def read(self, n: int = -1) -> bytes:
        if self._back:
            cut = len(self._back) if n < 0 else n
            out, self._back = self._back[:cut], self._back[cut:]
            return out
        data = self.raw.read(n)
        self.consumed += len(data)
        return data

    def readinto(self, into: memoryview) -> int:
        if self._back:
            n = min(len(into), len(self._back))
            into[:n], self._back = self._back[:n], self._back[n:]
            return n
        n = self.raw.readinto(into) or 0  # None: a non-blocking pipe with nothing yet (not ours)
        self.consumed += n
        return n

    def read_exactly(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end of the input (a pipe may give less per read)."""
        parts, size = [], 0
        while size < n:
            part = self.read(n - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        self._back = data

    def close(self) -> None:
        if self.raw is not getattr(sys.stdin, "buffer", None):  # standard input stays open
            self.raw.close()


class _SafeGzip:
    """A gzip stream whose damage ends the data instead of raising mid-iteration,
    and that ends (``bomb``) when it inflates past ``max_inflation`` (see MAX_INFLATION)."""

    def __init__(self, gz: gzip.GzipFile, source: _Source, max_inflation: int = MAX_INFLATION) -> None:
        self.gz, self.source, self.max_inflation = gz, source, max_inflation
        self.damaged = self.bomb = False
        self.inflated = 0

    def read(self, n: int) -> bytes:
        # Small read1 steps, so that damage loses at most one step of good data.
        parts: list[bytes] = []
        size = 0
        limit = self.max_inflation
        if limit and self.inflated > INFLATION_ALLOWANCE and self.inflated > limit * self.source.consumed:
            self.bomb = True
            return b""
        while size < n and not self.damaged:
            try:
                part = self.gz.read1(min(n - size, 8192))
            except (OSError, EOFError, zlib.error):
                self.damaged = True
                break
            if not part:
                break
            parts.append(part)
            size += len(part)
        self.inflated += size
        return b"".join(parts)

    def readinto(self, into: memoryview) -> int:
        data = self.read(min(len(into), CHUNK))
        into[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.gz.close()
        self.source.close()


def _describe(head: bytes) -> str:
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it starts with the text {head.decode('ascii')!r}"
    return f"unknown magic bytes {head.hex()}"

