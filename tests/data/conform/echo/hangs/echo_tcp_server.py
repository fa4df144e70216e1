# A correct echo server without socketserver: plain sockets and a thread per client.
import socket
import threading

HOST, PORT = "10.10.10.2", 5000


def answer(text):
    if "SECRET" not in text:
        return "Secret code not found."
    digits = "".join(ch for ch in text if ch in "0123456789")
    return "Digits: " + (digits + " " if digits else "") + "Count: " + str(len(digits))


def serve(conn):
    with conn:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
        conn.sendall((answer(data.decode("utf-8").rstrip("\n")) + "\n").encode("utf-8"))


with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    while True:
        conn, addr = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
