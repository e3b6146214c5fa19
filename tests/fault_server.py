"""A fault server: a real HTTP/1.1 server on 127.0.0.1 for the endpoint faults serve-ocr cannot
produce (a server trickling one byte at a time, an event stream that never ends, a 400 MB body,
a stream that stalls or drops before its first delta, an error status with a huge or endless
body, a redirect with one, a plain GET such as ``/metrics`` that never finishes). Shared by
test_bounds.py, test_doctor.py and test_bench_serve.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FaultServer", "fault_servers"]


@contextlib.contextmanager
def fault_servers() -> Iterator[Callable[..., FaultServer]]:
    """A maker of fault servers (``make(*faults, get=...)``), each closed on leaving."""
    made: list[FaultServer] = []

    def make(*faults: str, **kw: Any) -> FaultServer:
        made.append(FaultServer(*faults, **kw))
        return made[-1]

    try:
        yield make
    finally:
        for srv in made:
            srv.close()


def _completion(text: str) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text},
         "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}).encode()


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class FaultServer:
    """A fault server. Each chat request takes the next fault of ``faults`` (then ``"ok"``); a
    GET of a path in ``get`` takes that fault (any other GET lists one model, ``m``). ``sent``
    counts the body bytes it managed to write, ``requests`` the chat requests, ``hung_up``
    the replies the client walked away from before they were whole."""

    def __init__(self, *faults: str, get: dict[str, str] | None = None) -> None:
        self.faults = list(faults)
        self.get = dict(get or {})
        self.requests = 0
        self.sent = 0
        self.hung_up = 0
        self.stop = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fault = owner.get.get(self.path)
                if fault is None:
                    self._plain(200, json.dumps({"object": "list", "data": [
                        {"id": "m", "max_model_len": 65536}]}).encode())
                    return
                self._run(fault, False)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests += 1
                self._run(owner.faults.pop(0) if owner.faults else "ok",
                          body.get("stream", False))

            def _run(self, fault: str, stream: bool) -> None:
                try:
                    getattr(self, "fault_" + fault)(stream)
                except OSError:  # the client went away: what the faults are for
                    self.close_connection = True
                    if not owner.stop.is_set():
                        owner.hung_up += 1

            def _plain(self, status: int, data: bytes) -> None:
                self._head(status, "application/json", len(data))
                self.wfile.write(data)

            def _stream_head(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                owner.sent += len(data)

            def _wait(self, seconds: float) -> None:
                if owner.stop.wait(seconds):
                    raise OSError("server stopping")

            def fault_ok(self, stream: bool) -> None:
                if not stream:
                    self._plain(200, _completion("all good"))
                    return
                self._stream_head()
                self._chunk(_event({"role": "assistant", "content": ""}))
                self._chunk(_event({"content": "all good"}, "stop"))
                self._chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def fault_trickle(self, stream: bool) -> None:
                """A valid reply, a byte every 1.2 s: never idle for long, never finished."""
                self._trickle(200, _completion("slow"))

            def _trickle(self, status: int, data: bytes) -> None:
                self._head(status, "application/json", len(data))
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    owner.sent += 1
                    self._wait(1.2)

            def _head(self, status: int, kind: str, size: int) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(size))
                self.end_headers()

            def fault_endless(self, stream: bool) -> None:
                """An event stream that never ends: a delta every 20 ms, forever."""
                self._stream_head()
                self._chunk(_event({"role": "assistant", "content": ""}))
                while True:
                    self._chunk(_event({"content": "more "}))
                    self._wait(0.02)

            def fault_stall(self, stream: bool) -> None:
                """A stream that starts, then says nothing more."""
                self._stream_head()
                self._chunk(_event({"role": "assistant", "content": ""}))
                self._chunk(_event({"content": "Once upon"}))
                self._wait(60)

            def fault_drop_early(self, stream: bool) -> None:
                """A stream cut after its role chunk, before any text: nothing was shown."""
                self._stream_head()
                self._chunk(_event({"role": "assistant", "content": ""}))
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

            def fault_huge(self, stream: bool) -> None:
                """A 400 MB body, declared, written as fast as the client takes it."""
                self._huge(200, "application/json", b" ")

            def _huge(self, status: int, kind: str, fill: bytes) -> None:
                size = 400 * 2**20
                self._head(status, kind, size)
                block = fill * 65536
                for _ in range(size // len(block)):
                    self.wfile.write(block)
                    owner.sent += len(block)

            def fault_huge_chunked(self, stream: bool) -> None:
                """An endless body with no length: only counting stops it."""
                self._stream_head() if stream else self._chunked_json_head()
                block = b" " * 65536
                while True:
                    self._chunk(block)

            def fault_error_huge(self, stream: bool) -> None:
                """HTTP 500 with a 400 MB body, declared: openai alone reads it whole."""
                self._huge(500, "text/plain", b"x")

            def fault_error_endless(self, stream: bool) -> None:
                """HTTP 500 whose JSON error body never ends (chunked, no length)."""
                self._chunked_json_head(500)
                self._chunk(b'{"error": {"message": "out of memory", "detail": "')
                block = b"y" * 65536
                while True:
                    self._chunk(block)

            def fault_error_trickle(self, stream: bool) -> None:
                """HTTP 503 whose body comes a byte every 1.2 s."""
                self._trickle(503, json.dumps({"error": {"message": "overloaded"}}).encode())

            def _redirect_head(self, **headers: str) -> None:
                self.send_response(307)  # keeps the method and body: the request goes again
                self.send_header("Location", self.path)  # to the same path: then "ok"
                self.send_header("Content-Type", "text/html")
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()

            def fault_redirect_huge(self, stream: bool) -> None:
                """A redirect with a 400 MB body, declared: httpx reads a redirect's body whole
                before it follows."""
                size = 400 * 2**20
                self._redirect_head(Content_Length=str(size))
                block = b"r" * 65536
                for _ in range(size // len(block)):
                    self.wfile.write(block)
                    owner.sent += len(block)

            def fault_redirect_endless(self, stream: bool) -> None:
                """A redirect whose body never ends (chunked, no length)."""
                self._redirect_head(Transfer_Encoding="chunked")
                block = b"r" * 65536
                while True:
                    self._chunk(block)

            def fault_redirect_small(self, stream: bool) -> None:
                """A redirect with a short page, as servers send: followed as before."""
                page = b"<html><body>Moved</body></html>"
                self._redirect_head(Content_Length=str(len(page)))
                self.wfile.write(page)

            def _chunked_json_head(self, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
