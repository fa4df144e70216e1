"""Part 1 of the lab: the named chat, client side (KALI).

Lines typed here (stdin) go to the server as ``KALI: text\\n`` (``--name``)
and are shown here too; lines from the server are shown as they come. The
server may be chat_server or a plain ``nc -l``. End of input (Ctrl-D) closes
the sending side and the server then ends the chat; Ctrl-C ends it at once;
the server ending the chat ends the client. Exit status 0 in all three cases,
1 (one line on stderr) when the server cannot be reached.

    python3 reference_servers/chat_client.py --name KALI --host R2_ADDRESS [--port 5000]
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the folder as a package, for the line below
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = Path(__file__).resolve().parent.name  # noqa: A001
from ._common import connect, parser, run, stdin_lines

CONNECT_TIMEOUT_S = 10.0


def send_lines(sock: socket.socket, name: str, lines: Iterable[bytes], echo: bool = True) -> None:
    """Send each line of ``lines`` as ``NAME: text\\n``; then close
    the sending side. ``echo``: also print each line here."""
    with contextlib.suppress(OSError):
        for raw in lines:
            line = f"{name}: {raw.decode('utf-8', errors='replace').rstrip(chr(13) + chr(10))}"
            if echo:
                print(line, flush=True)
            sock.sendall((line + "\n").encode("utf-8"))
        sock.shutdown(socket.SHUT_WR)


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's named chat client.", server=False)
    p.add_argument("--name", default="KALI", help="the name before each of your lines (default KALI)")
    args = p.parse_args(argv)
    try:
        sock = connect(args.host, args.port, CONNECT_TIMEOUT_S)
    except OSError as exc:
        print(f"chat_client: {args.host} port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    sock.settimeout(None)  # a chat may be quiet for as long as it likes
    threading.Thread(target=send_lines, args=(sock, args.name, stdin_lines()), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt, OSError), sock, sock.makefile("rb") as incoming:
        for raw in incoming:
            print(raw.decode("utf-8", errors="replace").rstrip("\r\n"), flush=True)
    return 0


if __name__ == "__main__":
    run(main)
