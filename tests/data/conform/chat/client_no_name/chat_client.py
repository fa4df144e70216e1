# Sends its lines without the "KALI: " prefix.
import os
import socket
import sys
import threading

NAME = "KALI"
s = socket.create_connection(("10.10.10.2", 5000))


def receive():
    for line in s.makefile("r", encoding="utf-8", newline="\n"):
        print(line.rstrip("\n"), flush=True)
    os._exit(0)  # the server ended the chat


threading.Thread(target=receive, daemon=True).start()
for line in sys.stdin:
    s.sendall(line.encode("utf-8"))  # without its name
s.shutdown(socket.SHUT_WR)
threading.Event().wait()
