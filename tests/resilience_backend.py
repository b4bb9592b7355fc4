"""A loopback backend for the gateway resilience tests: `python resilience_backend.py NAME PORT MODE LOG [HEALTH_FLAG]`.

Every request is answered on its own thread, and everything the backend sees is appended
to LOG, one line each, so that a test counts on the server side what reached it:

    <unix time> request <method> <path> <request id> <body bytes>   each request but /health
    <unix time> closed <request id>                                  the peer closed a hung (or late) connection
    <unix time> answered <request id> <status>                       a late answer was written
    <unix time> health <status>                                      each /health check

MODE `echo` answers every request 200 with NAME; a request carrying `X-Fail-First: N`
is answered 502 on its first N attempts (counted per `X-Request-Id`), so a test can see
the gateway retry. MODE `hang` reads each request and never answers it: it waits until the
peer closes the connection and logs when. MODE `late` answers 200 with NAME only after the
seconds in the request's `X-Answer-After` header (0 without it) and logs when it answered; if
the peer closes the connection first, it logs that and never answers. `/health` answers 200,
or 503 while the file HEALTH_FLAG exists (read on every check, so a test can flip it at run time).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Traefik's transport expects
    name = ""
    mode = "echo"
    log_path = ""
    health_flag = ""
    attempts: ClassVar[Counter] = Counter()  # attempts per X-Request-Id

    def log_message(self, format, *args):
        pass  # the LOG file is the record; stderr stays quiet

    def record(self, line: str) -> None:
        with LOCK, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"{time.time():.6f} {line}\n")

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/health":
            status = 503 if self.health_flag and os.path.exists(self.health_flag) else 200
            self.record(f"health {status}")
            self.answer(status, "unhealthy\n" if status == 503 else "ok\n")
            return
        request_id = self.headers.get("X-Request-Id", "-")
        self.record(f"request {self.command} {self.path} {request_id} {len(body)}")
        if self.mode == "hang":
            self.wait_for_close(request_id)
            return
        if self.mode == "late":
            self.answer_late(request_id, float(self.headers.get("X-Answer-After") or 0))
            return
        with LOCK:
            self.attempts[request_id] += 1
            attempt = self.attempts[request_id]
        if attempt <= int(self.headers.get("X-Fail-First") or 0):
            self.answer(502, f"{self.name} failed attempt {attempt}\n")
        else:
            self.answer(200, f"{self.name}\n")

    def wait_for_close(self, request_id: str) -> None:
        self.connection.settimeout(60)  # a bound for a forgotten connection, far beyond any test
        try:
            while self.connection.recv(4096):
                continue  # discard whatever arrives: only the peer's close (b"") matters
            self.record(f"closed {request_id}")
        except OSError as error:
            self.record(f"error {request_id} {type(error).__name__}")
        self.close_connection = True

    def answer_late(self, request_id: str, delay: float) -> None:
        """Answer 200 after `delay` seconds, unless the peer closes the connection before."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.connection], [], [], left)[0]:
                continue  # the delay is over
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:  # reset by the peer
                peeked = b""
            if not peeked:
                self.record(f"closed {request_id}")
                self.close_connection = True
                return
            time.sleep(max(0.0, deadline - time.monotonic()))  # bytes of a next request: only the delay is left
        try:
            self.answer(200, f"{self.name}\n")
            self.wfile.flush()
            self.record(f"answered {request_id} 200")
        except OSError as error:
            self.record(f"error {request_id} {type(error).__name__}")
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = handle_any


def main() -> None:
    name, port, mode, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    Handler.name, Handler.mode, Handler.log_path = name, mode, log_path
    Handler.health_flag = sys.argv[5] if len(sys.argv) > 5 else ""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
