# A correct echo client without socketserver.
import socket
import sys

HOST, PORT = "10.10.10.2", 5000
message = " ".join(sys.argv[1:])
with socket.create_connection((HOST, PORT)) as s:
    s.sendall((message + "\n").encode("utf-8"))
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(1024)
        if not chunk:
            break
        reply += chunk
print("Sent:      " + message)
print("Received: " + reply.decode("utf-8").rstrip("\n"))
