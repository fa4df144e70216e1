# A correct file server without socketserver: a thread per connection, each file to received_file.
import socket
import threading

HOST, PORT = "10.10.10.2", 6000


def receive(conn):
    with conn, open("received_file", "wb") as f:
        while True:
            chunk = conn.recv(1024)
            if not chunk:
                break
            f.write(chunk)


with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    while True:
        conn, addr = s.accept()
        threading.Thread(target=receive, args=(conn,), daemon=True).start()
