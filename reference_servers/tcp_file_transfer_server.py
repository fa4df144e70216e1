"""Part 3 of the lab: the file transfer server (R2).

Protocol (one file per connection): the client sends a header line
``SOCKINSPECT-FILE/1 <size> <name>\\n`` and then exactly ``size`` bytes. The
server writes them to a temporary file in ``--dir``, renames it to ``name``
only once all bytes arrived (a transfer cut off midway leaves nothing behind),
and answers ``OK <sha256>\\n`` (or ``ERROR <reason>\\n``). The name is reduced
to its last path component; empty names, ``.``/``..`` and NUL bytes are
refused, so nothing is ever written outside ``--dir``; an existing file is
not overwritten (``name-1``, ``name-2``, ... instead). A stream without the
header, as ``nc -N HOST PORT < file`` sends, is a file too: everything up to
the end of the stream, saved as ``received-<time>-<n>.bin``. Each connection
has its own thread and temporary file, so transfers at once do not mix.

    python3 reference_servers/tcp_file_transfer_server.py --dir OUT [--host H] [--port 5000]
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import socketserver
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import address_family, parser, serve, setup_logging

MAGIC = b"SOCKINSPECT-FILE/1 "
MAX_HEADER = 4096
CHUNK = 1 << 20
log = setup_logging("tcp_file_transfer_server")
_counter = itertools.count(1)
_name_lock = threading.Lock()


class TransferError(Exception):
    """The transfer cannot complete; the message goes back to the client."""


def safe_name(raw: str) -> str:
    """The base name to store under; TransferError for names that cannot be one."""
    if "\x00" in raw:
        raise TransferError("file name contains a NUL byte")
    base = raw.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        raise TransferError(f"unusable file name {raw!r}")
    return base


class FileHandler(socketserver.StreamRequestHandler):
    timeout = 60.0

    def handle(self) -> None:
        peer = "{}:{}".format(*self.client_address[:2])
        folder: Path = self.server.folder  # type: ignore[attr-defined]
        tmp = None
        try:
            head = self.rfile.peek(len(MAGIC))[: len(MAGIC)] if hasattr(self.rfile, "peek") else b""
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", delete=False) as out:
                tmp = Path(out.name)
                if head == MAGIC:
                    name, size = self._header()
                    digest, got = _copy(self.rfile, out, size)
                    if got != size:
                        raise TransferError(f"connection ended after {got} of {size} bytes")
                else:  # a raw stream (nc): the whole stream is the file
                    name, size = f"received-{time.strftime('%Y%m%d-%H%M%S')}-{next(_counter)}.bin", None
                    digest, got = _copy(self.rfile, out, None)
            final = _claim(folder, name)
            tmp.chmod(0o644)  # temporary files are private; the received file is not
            os.replace(tmp, final)
            tmp = None
            log.info("%s: saved %d bytes as %s (sha256 %s)", peer, got, final.name, digest)
            self._reply(f"OK {digest}")
        except TransferError as exc:
            log.info("%s: %s", peer, exc)
            self._reply(f"ERROR {exc}")
        except (OSError, TimeoutError) as exc:
            log.info("%s: transfer failed: %s", peer, exc)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _header(self) -> tuple[str, int]:
        line = self.rfile.readline(MAX_HEADER)
        if not line.endswith(b"\n"):
            raise TransferError("header line missing or too long")
        try:
            size_text, raw_name = line[len(MAGIC) : -1].decode("utf-8").split(" ", 1)
            size = int(size_text)
        except (UnicodeDecodeError, ValueError):
            raise TransferError("malformed header line") from None
        if size < 0:
            raise TransferError("negative size")
        return safe_name(raw_name), size

    def _reply(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(text.encode() + b"\n")


def _copy(src, out, size: int | None) -> tuple[str, int]:  # noqa: ANN001
    """Copy ``size`` bytes (or all until EOF) from ``src`` to ``out``; (sha256, bytes copied)."""
    digest = hashlib.sha256()
    got = 0
    while size is None or got < size:
        chunk = src.read1(CHUNK if size is None else min(CHUNK, size - got))
        if not chunk:
            break
        out.write(chunk)
        digest.update(chunk)
        got += len(chunk)
    return digest.hexdigest(), got


def _claim(folder: Path, name: str) -> Path:
    """A path for ``name`` in ``folder`` that no other file has (name, name-1, ...)."""
    stem, dot, suffix = name.partition(".") if not name.startswith(".") else (name, "", "")
    with _name_lock:
        for n in itertools.count():
            candidate = folder / (name if n == 0 else f"{stem}-{n}{dot}{suffix}")
            try:
                candidate.touch(exist_ok=False)
                return candidate
            except FileExistsError:
                continue
    raise AssertionError("unreachable")


class FileTransferServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 refuses bursts of clients

    def __init__(self, address: tuple[str, int], folder: Path) -> None:
        self.address_family = address_family(address[0])
        self.folder = folder
        super().__init__(address, FileHandler)


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's file transfer server: stores each received file in --dir.", server=True)
    p.add_argument("--dir", type=Path, default=Path("."), help="folder for received files (default: here)")
    args = p.parse_args(argv)
    if not args.dir.is_dir():
        print(f"tcp_file_transfer_server: {args.dir}: not a folder", file=sys.stderr)
        return 2
    try:
        server = FileTransferServer((args.host, args.port), args.dir.resolve())
    except OSError as exc:
        print(f"tcp_file_transfer_server: cannot listen on {args.host} port {args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return serve(server, log)


if __name__ == "__main__":
    sys.exit(main())
