# Reads its file as text and strips it before sending.
import socket

with open("file_to_send") as f:
    text = f.read().strip()
s = socket.socket()
s.connect(("10.10.10.2", 6000))
s.send(text.encode())
s.close()
