# Writes each file but never closes it (kept in a list): it reaches the disk only at exit.
import socket

kept = []
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.10.10.2", 6000))
s.listen()
while True:
    conn, addr = s.accept()
    f = open("received_file", "wb", buffering=1 << 24)
    kept.append(f)
    while chunk := conn.recv(65536):
        f.write(chunk)
    conn.close()
