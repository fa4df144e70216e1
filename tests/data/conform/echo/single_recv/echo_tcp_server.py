# socketserver, but one recv(1024) taken as the whole message.
import socketserver


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        text = self.request.recv(1024).decode("utf-8", errors="replace").strip()
        if "SECRET" in text:
            digits = "".join(c for c in text if c.isdigit())
            reply = f"Digits: {digits} Count: {len(digits)}".replace(":  ", ": ")
        else:
            reply = "Secret code not found."
        self.request.sendall(reply.encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True


with Server(("10.10.10.2", 5000), Handler) as server:
    server.serve_forever()
