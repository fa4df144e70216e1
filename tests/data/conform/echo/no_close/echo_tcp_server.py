# Answers, but never closes a client's socket (kept in a list).
import socket
import threading

HOST, PORT = "10.10.10.2", 5000
kept = []


def serve(conn):
    kept.append(conn)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    text = data.decode("utf-8").rstrip("\n")
    if "SECRET" in text:
        digits = "".join(ch for ch in text if ch in "0123456789")
        reply = "Digits: " + (digits + " " if digits else "") + "Count: " + str(len(digits))
    else:
        reply = "Secret code not found."
    conn.sendall((reply + "\n").encode("utf-8"))


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((HOST, PORT))
s.listen()
while True:
    conn, addr = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
