# A correct file client: sends file_to_send as it is.
import socket

with open("file_to_send", "rb") as f:
    data = f.read()
with socket.create_connection(("10.10.10.2", 6000)) as s:
    s.sendall(data)
