"""Part 3 of the lab: the file transfer server (R2).

Protocol, one file per connection. The client sends a header line
``SOCKINSPECT-FILE/1 <size> <name>\\n`` (size in decimal, name in UTF-8), then
exactly ``size`` bytes, then closes its sending side. The server answers one
line, ``OK <sha256 of what it stored>`` or ``ERROR <reason>``, and closes.

A stream that does not start with ``SOCKINSPECT-FILE/1 ``, as
``nc -N HOST PORT < file`` sends, is a file too: every byte up to the end of
the stream, saved as ``received-<date>-<time>-<n>.bin`` (a connection that
sends nothing at all stores nothing). With ``--quiet-plain`` such a stream gets
no answer line, as from the lab's own server: the lab's client may close its
socket as soon as it has sent, and a line sent then would be answered by a reset.

Safety. Bytes go to a temporary ``.partial-*`` file in ``--dir``, renamed to
the final name only once all of them arrived: a transfer cut off midway (the
client goes away, ``timeout`` seconds of silence, the server is stopped) leaves
nothing behind. A name is reduced to its last path component
(``../../etc/passwd`` is stored as ``passwd``, ``/etc/shadow`` as ``shadow``);
names that are empty, ``.``/``..``, longer than 255 bytes or contain control
characters (NUL, newline, ...) are refused, so nothing is ever written outside
``--dir``. An existing file is never overwritten: ``name-1.ext``, ``name-2.ext``
... instead. Each connection has its own thread and temporary file, so
transfers at the same time do not mix.

    python3 reference_servers/tcp_file_transfer_server.py --dir OUT [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import socketserver
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import address_family, listen_error, parser, run, serve, setup_logging

MAGIC = b"SOCKINSPECT-FILE/1 "
MAX_HEADER = 4096
MAX_NAME_BYTES = 255  # NAME_MAX on Linux
CHUNK = 1 << 20
log = logging.getLogger("tcp_file_transfer_server")


class TransferError(Exception):
    """The transfer cannot complete; the message goes back to the client."""


def safe_name(raw: str) -> str:
    """The base name to store ``raw`` under; TransferError for names that cannot be one."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise TransferError(f"file name {raw!r} contains control characters")
    base = raw.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        raise TransferError(f"unusable file name {raw!r}")
    if len(base.encode("utf-8", errors="surrogateescape")) > MAX_NAME_BYTES:
        raise TransferError(f"file name longer than {MAX_NAME_BYTES} bytes")
    return base


def numbered(name: str, n: int) -> str:
    """``name`` for n == 0, else ``stem-n.ext`` (``a.tar.gz`` -> ``a-1.tar.gz``, ``.rc`` -> ``.rc-1``)."""
    if n == 0:
        return name
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    return f"{stem}-{n}{dot}{ext}"


def parse_header(line: bytes) -> tuple[str, int]:
    """(safe name, size) from a header line (``MAGIC`` already read); TransferError if malformed."""
    if not line.endswith(b"\n"):
        raise TransferError("header line missing or too long")
    try:
        size_text, _, raw_name = line[:-1].decode("utf-8").removesuffix("\r").partition(" ")
    except UnicodeDecodeError:
        raise TransferError("header line is not UTF-8") from None
    if not (size_text.isascii() and size_text.isdigit()):
        raise TransferError(f"malformed size {size_text!r} in the header line")
    return safe_name(raw_name), int(size_text)


def copy(src: BinaryIO, out: BinaryIO, size: int | None, digest: hashlib._Hash) -> int:
    """Copy ``size`` bytes (None: all until EOF) from ``src`` to ``out``; bytes copied."""
    got = 0
    while size is None or got < size:
        chunk = src.read1(CHUNK if size is None else min(CHUNK, size - got))
        if not chunk:
            break
        out.write(chunk)
        digest.update(chunk)
        got += len(chunk)
    return got


class FileHandler(socketserver.StreamRequestHandler):
    timeout = 60.0  # seconds of silence after which a transfer is abandoned

    def handle(self) -> None:
        peer = "{}:{}".format(*self.client_address[:2])
        self._plain = False  # set by _receive: the stream has no header (nc, the lab's client)
        try:
            name, size, digest = self._receive()
        except TransferError as exc:
            log.info("%s: refused: %s", peer, exc)
            self._reply(f"ERROR {exc}")
        except TimeoutError:
            log.info("%s: silent for %g s; transfer abandoned", peer, self.timeout)
            self._reply(f"ERROR nothing received for {self.timeout:g} s; transfer abandoned")
        except ConnectionError as exc:
            log.info("%s: transfer cut off: %s", peer, exc)
        except OSError as exc:  # the disk, most likely: full, read-only, ...
            log.warning("%s: cannot store the file: %s", peer, exc)
            self._reply(f"ERROR the server cannot store the file: {exc.strerror or exc}")
        else:
            log.info("%s: saved %d bytes as %s (sha256 %s)", peer, size, name, digest)
            self._reply(f"OK {digest}")

    def _receive(self) -> tuple[str, int, str]:
        """Receive one file and store it; (stored name, size, sha256)."""
        server: FileTransferServer = self.server  # type: ignore[assignment]
        head = self.rfile.read(len(MAGIC))  # all of it, or less at the end of the stream
        digest = hashlib.sha256()
        if head == MAGIC:
            name, size = parse_header(self.rfile.readline(MAX_HEADER))
            with server.partial() as out:
                got = copy(self.rfile, out, size, digest)
                if got != size:
                    raise TransferError(f"connection ended after {got} of {size} bytes")
                final = server.keep(out, name)
        else:  # a raw stream (nc): the whole stream is the file
            self._plain = True
            with server.partial() as out:
                out.write(head)
                digest.update(head)
                got = len(head) + copy(self.rfile, out, None, digest)
                if not got:
                    raise TransferError("nothing received")
                final = server.keep(out, server.generated_name())
        return final.name, got, digest.hexdigest()

    def _reply(self, text: str) -> None:
        if self._plain and self.server.quiet_plain:  # type: ignore[attr-defined]
            return
        with contextlib.suppress(OSError):
            self.wfile.write(text.encode("utf-8", errors="replace") + b"\n")


class FileTransferServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    quiet_plain = False  # no answer line to a stream without a header (see the module docstring)
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int], folder: Path,
                 handler: type[socketserver.BaseRequestHandler] = FileHandler) -> None:
        self.address_family = address_family(address[0])
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._partials: set[Path] = set()
        self._count = itertools.count(1)
        super().__init__(address, handler)

    @contextlib.contextmanager
    def partial(self) -> Iterator[BinaryIO]:
        """An open temporary file in the folder, removed on exit unless ``keep`` renamed it."""
        out = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".partial-", delete=False)  # noqa: SIM115
        path = Path(out.name)
        with self._lock:
            self._partials.add(path)
        try:
            with out:
                yield out
        finally:
            with self._lock:
                kept = path not in self._partials
                self._partials.discard(path)
            if not kept:
                path.unlink(missing_ok=True)

    def keep(self, out: BinaryIO, name: str) -> Path:
        """Give the complete temporary file ``out`` its final name: ``name``, or ``name-1`` ...
        when that exists (never overwrites)."""
        out.flush()
        tmp = Path(out.name)
        tmp.chmod(0o644)  # temporary files are private; the received file is not
        with self._lock:
            for n in itertools.count():
                final = self.folder / numbered(name, n)
                try:
                    final.touch(exist_ok=False)  # claim the name (O_EXCL)
                except FileExistsError:
                    continue
                try:
                    os.replace(tmp, final)
                except OSError:
                    final.unlink(missing_ok=True)
                    raise
                self._partials.discard(tmp)
                return final
        raise AssertionError("unreachable")

    def generated_name(self) -> str:
        return f"received-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._count)}.bin"

    def server_close(self) -> None:
        """Stop listening; transfers still running are cut off, so remove their temporary files."""
        super().server_close()
        with self._lock:
            for path in self._partials:
                path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's file transfer server: stores each received file in --dir.", server=True)
    p.add_argument("--dir", type=Path, default=Path("."), help="folder for received files (default: here)")
    p.add_argument("--quiet-plain", action="store_true",
                   help="answer nothing to a plain stream (no header), as the lab's own server does")
    args = p.parse_args(argv)
    if not args.dir.is_dir():
        p.error(f"--dir {args.dir}: not a folder")
    setup_logging()
    try:
        server = FileTransferServer((args.host, args.port), args.dir.resolve())
        server.quiet_plain = args.quiet_plain
    except OSError as exc:
        return listen_error("tcp_file_transfer_server", args.host, args.port, exc)
    return serve(server, log)


if __name__ == "__main__":
    run(main)
