"""A tiny HTTP backend for the real-Traefik tests: `python traefik_backend.py NAME PORT MODE LOG`.

MODE `echo` answers every request with NAME; `drop-first` resets every odd-numbered
connection without answering (so each request's first attempt fails) and answers the
others; `drop-all` never answers. `/health` is always answered and never counted. Every
other connection is appended to LOG, so a test can count the gateway's attempts. Responses close the connection, which keeps
one request per connection and makes the counting exact.
"""

from __future__ import annotations

import socket
import struct
import sys


def serve(name: str, port: int, mode: str, log_path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    count = 0
    while True:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                request += chunk
            # the gateway's health checks are answered and not counted as attempts
            if not request:
                continue  # a port probe, not a request
            health = request.split(b" ", 2)[1:2] == [b"/health"]
            if not health:
                count += 1
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"{count}\n")
            if not health and (mode == "drop-all" or (mode == "drop-first" and count % 2 == 1)):
                # a reset, not a polite close: the gateway sees a dropped connection
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                continue
            body = f"{name}\n".encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            connection.sendall(head.encode() + body)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
