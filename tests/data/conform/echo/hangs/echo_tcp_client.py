# Sends, then waits for the server to close before printing: it never does.
import socket
import sys

s = socket.create_connection(("10.10.10.2", 5000))
s.sendall(" ".join(sys.argv[1:]).encode())
reply = b""
while chunk := s.recv(1024):
    reply += chunk
print("Sent:      " + " ".join(sys.argv[1:]))
print("Received: " + reply.decode().strip())
