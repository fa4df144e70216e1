# A correct chat server (R2) without socketserver: one chat, a thread for what arrives.
import os
import socket
import sys
import threading

HOST, PORT = "10.10.10.2", 5000
NAME = "R2"

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((HOST, PORT))
s.listen()
conn, addr = s.accept()


def receive():
    for line in conn.makefile("r", encoding="utf-8", newline="\n"):
        print(line.rstrip("\n"), flush=True)
    conn.close()  # the other side ended the chat
    os._exit(0)


threading.Thread(target=receive, daemon=True).start()
for line in sys.stdin:
    conn.sendall((NAME + ": " + line.rstrip("\n") + "\n").encode("utf-8"))
conn.shutdown(socket.SHUT_WR)
threading.Event().wait()
