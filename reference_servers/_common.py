"""What every reference program shares: arguments, logging, the readiness line,
and a clean stop on Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import socketserver
import sys

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5000


def parser(description: str, server: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    what = "address to listen on" if server else "the server's address"
    p.add_argument("--host", default=DEFAULT_HOST, help=f"{what} (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})" + ("; 0 lets the OS choose" if server else ""))
    return p


def setup_logging(name: str) -> logging.Logger:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return logging.getLogger(name)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(server: socketserver.BaseServer, log: logging.Logger) -> int:
    """Announce ``listening on HOST PORT`` on stdout (one line, for scripts and tests),
    then serve until Ctrl-C or SIGTERM, and close without a traceback."""
    signal.signal(signal.SIGTERM, _terminate)
    host, port = server.server_address[:2]
    print(f"listening on {host} {port}", flush=True)
    log.info("listening on %s port %d", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


def address_family(host: str) -> int:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET
