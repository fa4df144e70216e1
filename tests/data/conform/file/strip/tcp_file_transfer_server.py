# Strips each chunk it receives, as a common broken solution does.
import socket
import threading

HOST, PORT = "10.10.10.2", 6000


def receive(conn):
    with conn, open("received_file", "w") as f:
        while True:
            chunk = conn.recv(1024)
            if not chunk:
                break
            f.write(chunk.decode("latin-1").strip())


with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    while True:
        conn, addr = s.accept()
        threading.Thread(target=receive, args=(conn,), daemon=True).start()
