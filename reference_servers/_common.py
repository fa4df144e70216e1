"""What every reference program shares: arguments, logging, the readiness line,
client connections (with the Nagle choice), and a clean stop on Ctrl-C / SIGTERM.

Readiness line: once a server is listening, its first stdout line, flushed at
once, is ``listening on HOST PORT``: the address it bound and the real port (so
``--port 0`` tells what the OS chose; the port is always the last word). What
a server logs goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5000
READY_FORMAT = "listening on {host} {port}"
UDP_MAX_DATAGRAM = 65535  # bytes: what UDP's 16-bit length field allows, so no datagram is ever cut


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def parser(description: str, server: bool) -> argparse.ArgumentParser:
    """The arguments every program has: ``--host`` and ``--port``."""
    p = argparse.ArgumentParser(description=description)
    what = "address to listen on" if server else "the server's address"
    p.add_argument("--host", default=DEFAULT_HOST, help=f"{what} (default {DEFAULT_HOST})")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})" + ("; 0 lets the OS choose" if server else ""))
    return p


def setup_logging() -> None:
    """Log to stderr; called by the command-line entry points only, never on import."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def address_family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(host: str, port: int, timeout: float | None, nodelay: bool = False) -> socket.socket:
    """A TCP connection to a server; ``nodelay`` turns Nagle's algorithm off (TCP_NODELAY)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def stdin_lines() -> Iterator[bytes]:
    """Lines of standard input as bytes, for a daemon thread to read: a reader of its own,
    because one blocked in ``sys.stdin`` makes the interpreter abort at exit."""
    return io.BufferedReader(io.FileIO(sys.stdin.fileno(), "rb", closefd=False))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(server: socketserver.BaseServer, log: logging.Logger, on_ready: Callable[[], None] | None = None) -> int:
    """Print the readiness line, call ``on_ready``, serve until Ctrl-C or SIGTERM,
    then close without a traceback. Returns the exit status (0)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    host, port = server.server_address[:2]
    try:
        print(READY_FORMAT.format(host=host, port=port), flush=True)
        log.info("listening on %s port %d", host, port)
        if on_ready is not None:
            on_ready()
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


def listen_error(program: str, host: str, port: int, exc: OSError) -> int:
    """One line on stderr when a server cannot listen; exit status 1."""
    print(f"{program}: cannot listen on {host} port {port}: {exc.strerror or exc}", file=sys.stderr)
    return 1


def run(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; Ctrl-C ends a program quietly (status 130)."""
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
