"""Part 1 of the lab: the named chat, client side (KALI).

Lines typed here go to the server as ``KALI: text`` (``--name``) and are shown
here too; lines from the server are shown as they come. Ctrl-D or Ctrl-C here,
or the server ending the chat, ends it cleanly.

    python3 reference_servers/chat_client.py --name KALI --host R2_ADDRESS [--port 5000]
"""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_servers._common import parser


def _send_keyboard(sock: socket.socket, name: str) -> None:
    try:
        for raw in sys.stdin:
            line = f"{name}: {raw.rstrip(chr(13) + chr(10))}"
            print(line, flush=True)
            sock.sendall((line + "\n").encode("utf-8"))
        sock.shutdown(socket.SHUT_WR)  # Ctrl-D: we are done talking
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = parser("The lab's named chat client.", server=False)
    p.add_argument("--name", default="KALI", help="the name before each of your lines (default KALI)")
    args = p.parse_args(argv)
    try:
        sock = socket.create_connection((args.host, args.port))
    except OSError as exc:
        print(f"chat_client: {args.host} port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    threading.Thread(target=_send_keyboard, args=(sock, args.name), daemon=True).start()
    try:
        with sock, sock.makefile("rb") as incoming:
            for raw in incoming:
                print(raw.decode("utf-8", errors="replace").rstrip("\r\n"), flush=True)
    except KeyboardInterrupt:
        pass
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
