"""HTTP side of the stand-in: routes, auth, faults, SSE streaming, logging, lifecycle.

Standard library only (``ThreadingHTTPServer``, HTTP/1.1 keep-alive, chunked SSE like uvicorn)
so the stand-in starts in a fraction of a second and needs nothing beyond glyph-render's own
dependencies. Status codes and bodies follow vLLM 0.32: ``{"error": "Unauthorized"}`` for a bad
key on ``/v1`` routes (``/health`` and ``/metrics`` stay open), ``{"detail": "Not Found"}`` for
unknown paths, ``{"error": {...}}`` for everything the OpenAI routes refuse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from glyph_render.errors import GlyphRenderError

from .config import ServerConfig
from .engine import Engine, Generation
from .faults import FaultDecision, FaultPlan
from .metrics import Metrics
from .protocol import (
    ApiError,
    completion_body,
    new_id,
    parse_chat_request,
    split_pieces,
    stream_chunk,
    usage_body,
)

__all__ = ["OcrServer"]

MAX_BODY_BYTES = 1 << 30  # 1 GiB: hundreds of base64 pages, not unbounded
_GUARDED = ("/v1", "/v2", "/inference")  # vLLM's AuthenticationMiddleware prefixes
_CHAT = "/v1/chat/completions"


class _Dropped(Exception):
    """The connection was closed on purpose (fault) or by the client; nothing more to send."""


@dataclass
class _Outcome:
    """What the access-log line reports about one request."""

    status: int = 0
    pages: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ocr_seconds: float | None = None
    note: str = ""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmark bursts of concurrent connects must not hit the backlog

    def __init__(self, app: OcrServer) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.inflight = 0
        self.inflight_cond = threading.Condition()
        super().__init__((app.config.host, app.config.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping keep-alive connections is normal; only real bugs get a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "serve-ocr"
    sys_version = ""
    timeout = 300  # idle keep-alive connections close after this many seconds
    server: _HttpServer

    # --- plumbing ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib access log: ours has tokens and never includes headers."""

    @property
    def app(self) -> OcrServer:
        return self.server.app

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        outcome = _Outcome()
        with self.server.inflight_cond:
            self.server.inflight += 1
        try:
            body = self._read_body()
            self._route(method, path, body, outcome)
        except _Dropped:
            self.close_connection = True
        except ApiError as exc:  # raised before a route could answer (e.g. body too large)
            self._send_error(exc, outcome)
        except Exception as exc:  # a bug: answer 500 like vLLM's catch-all, and say why
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(OSError):
                self._send_error(ApiError(500, f"{type(exc).__name__}: {exc}"), outcome)
        finally:
            with self.server.inflight_cond:
                self.server.inflight -= 1
                self.server.inflight_cond.notify_all()
            self.app.log_request(method, path, outcome, time.perf_counter() - started)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # we will not read it, so the connection is spent
            raise ApiError(413, f"request body of {length} bytes is over {MAX_BODY_BYTES}")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                raise ApiError(413, f"request body is over {MAX_BODY_BYTES} bytes")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        if data or content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(
        self, status: int, obj: Any, outcome: _Outcome, headers: dict[str, str] | None = None
    ) -> None:
        outcome.status = status
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send_bytes(status, data, "application/json", headers)

    def _send_error(self, exc: ApiError, outcome: _Outcome) -> None:
        outcome.note = outcome.note or exc.message[:120]
        self._send_json(exc.status, exc.body(), outcome, exc.headers)

    def _drop(self, outcome: _Outcome, note: str) -> None:
        """Close the socket now (FIN), whatever was or was not sent."""
        outcome.note = note
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped()

    # --- routes -----------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: bytes, outcome: _Outcome) -> None:
        if path.startswith(_GUARDED) and not self.app.authorized(self.headers.get("Authorization")):
            self._send_json(401, {"error": "Unauthorized"}, outcome)
            outcome.note = "bad or missing API key"
            return
        routes = {
            "/health": ("GET", self._health),
            "/ping": ("GET", self._health),
            "/version": ("GET", self._version),
            "/metrics": ("GET", self._metrics),
            "/v1/models": ("GET", self._models),
            _CHAT: ("POST", self._chat),
        }
        entry = routes.get(path.rstrip("/") or "/")
        if entry is None:
            self._send_json(404, {"detail": "Not Found"}, outcome)
            return
        allowed, handler = entry
        if method != allowed:
            self._send_json(405, {"detail": "Method Not Allowed"}, outcome, {"Allow": allowed})
            return
        handler(body, outcome)

    def _health(self, body: bytes, outcome: _Outcome) -> None:
        outcome.status = 200
        self._send_bytes(200, b"", "")

    def _version(self, body: bytes, outcome: _Outcome) -> None:
        self._send_json(200, {"version": "0.32.0+serve-ocr"}, outcome)

    def _metrics(self, body: bytes, outcome: _Outcome) -> None:
        outcome.status = 200
        text = self.app.metrics.render().encode("utf-8")
        self._send_bytes(200, text, "text/plain; version=0.0.4; charset=utf-8")

    def _models(self, body: bytes, outcome: _Outcome) -> None:
        self._send_json(200, self.app.models_body(), outcome)

    def _chat(self, body: bytes, outcome: _Outcome) -> None:
        app = self.app
        decision = app.faults.next()
        if decision.kind:
            outcome.note = f"fault {decision.kind} on request #{decision.number}"
        if app.config.delay:
            time.sleep(app.config.delay)
        if self._inject(decision, outcome):
            return
        started = time.perf_counter()
        try:
            request = parse_chat_request(body)
            outcome.pages = len(request.image_urls)
            app.metrics.started()
            try:
                generation = app.engine.run(request)
            except BaseException:
                app.metrics.finished()  # refused or failed: not counted as a finished request
                raise
        except ApiError as exc:
            self._send_error(exc, outcome)
            return
        except GlyphRenderError as exc:  # OCR failure and the like: the engine broke
            self._send_error(ApiError(500, str(exc)), outcome)
            return
        outcome.prompt_tokens = generation.prompt_tokens
        outcome.completion_tokens = generation.completion_tokens
        outcome.ocr_seconds = generation.ocr_seconds
        reason = generation.finish_reason

        def count() -> None:
            app.metrics.finished(
                prompt_tokens=generation.prompt_tokens,
                generation_tokens=generation.completion_tokens,
                reason=reason,
                seconds=time.perf_counter() - started,
            )

        # A whole reply is counted before it is written, as vLLM's engine counts a request when
        # it finishes: a client reading /metrics as soon as it has the reply sees it counted (a
        # count after the write raced that read). A stream, or a reply cut by a fault, is
        # counted when its end is known.
        counted = not request.stream and decision.kind != "drop_stream"
        if counted:
            count()
        try:
            if request.stream:
                self._stream(request.include_usage, generation, decision, outcome)
            else:
                self._complete(generation, decision, outcome)
        except _Dropped:
            reason = "abort"
            raise
        finally:
            if not counted:
                count()

    def _inject(self, decision: FaultDecision, outcome: _Outcome) -> bool:
        """Answer with the request's injected fault, if it has one that precedes generation."""
        if decision.kind == "drop_connection":
            self._drop(outcome, outcome.note)
        if decision.kind == "fail_429":
            retry = self.app.config.retry_after
            retry_text = str(int(retry)) if float(retry).is_integer() else f"{retry:g}"
            message = (
                f"Too many requests (serve-ocr --fail-429, request #{decision.number}); "
                f"retry after {retry_text} s."
            )
            self._send_error(ApiError(429, message, headers={"Retry-After": retry_text}), outcome)
            return True
        if decision.kind == "fail_500":
            message = f"Internal server error (serve-ocr --fail-500, request #{decision.number})."
            self._send_error(ApiError(500, message), outcome)
            return True
        return False

    def _complete(self, gen: Generation, decision: FaultDecision, outcome: _Outcome) -> None:
        body = completion_body(
            request_id=new_id(),
            model=gen.model,
            content=gen.content,
            reasoning=gen.reasoning,
            reasoning_fields=self.app.config.reasoning_fields,
            finish_reason=gen.finish_reason,
            usage=usage_body(gen.prompt_tokens, gen.completion_tokens, gen.reasoning_tokens),
        )
        if decision.kind != "drop_stream":
            self._send_json(200, body, outcome)
            return
        # A non-streaming reply cut mid-body: headers promise the full length, half arrives.
        outcome.status = 200
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self._drop(outcome, outcome.note)

    def _stream(
        self, include_usage: bool, gen: Generation, decision: FaultDecision, outcome: _Outcome
    ) -> None:
        cfg = self.app.config
        request_id, created = new_id(), int(time.time())
        deltas: list[dict[str, Any]] = []
        if gen.reasoning:
            for piece in split_pieces(gen.reasoning, cfg.stream_words):
                deltas.append({name: piece for name in cfg.reasoning_fields})
        if gen.content:
            deltas.extend({"content": p} for p in split_pieces(gen.content, cfg.stream_words))
        if not deltas:
            deltas.append({"content": ""})
        events = [stream_chunk(request_id=request_id, model=gen.model, created=created,
                               delta={"role": "assistant", "content": ""}, first=True)]
        for index, delta in enumerate(deltas):
            last = index == len(deltas) - 1
            events.append(stream_chunk(
                request_id=request_id, model=gen.model, created=created, delta=delta,
                finish_reason=gen.finish_reason if last else None,
                last=last and not include_usage,
            ))
        if include_usage:
            usage = usage_body(gen.prompt_tokens, gen.completion_tokens, gen.reasoning_tokens)
            usage.pop("prompt_tokens_details")
            events.append(stream_chunk(request_id=request_id, model=gen.model, created=created,
                                       delta=None, usage=usage))
        cut = None
        if decision.kind == "drop_stream":  # after the role chunk, before the end: never whole
            cut = min(max(2, len(events) // 2), len(events) - 1)

        outcome.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, event in enumerate(events):
                if cut is not None and index == cut:
                    self._drop(outcome, f"{outcome.note} after {cut} chunks")
                data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                self._write_chunk(f"data: {data}\n\n".encode())
                if cfg.chunk_delay:
                    time.sleep(cfg.chunk_delay)
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            outcome.note = "client went away mid-stream"
            raise _Dropped() from exc

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class OcrServer:
    """The stand-in server: ``with OcrServer(max_model_len=4096) as srv: srv.base_url``.

    Settings are :class:`ServerConfig` fields, given as a config and/or keyword overrides.
    ``start()`` binds (port 0: a free port) and serves from a background thread; ``stop()``
    stops accepting, lets running requests finish (up to ``drain_timeout``) and closes all
    connections.
    """

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        config = config or ServerConfig()
        self.config = config.with_(**overrides) if overrides else config
        self.engine = Engine(self.config)
        self.metrics = Metrics(
            self.engine.model_name,
            block_size=self.config.block_size,
            enable_prefix_caching=self.config.enable_prefix_caching,
        )
        self.faults: FaultPlan = self.config.fault_plan()
        self._key_digest = (
            hashlib.sha256(self.config.api_key.encode()).digest() if self.config.api_key else None
        )
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._created = int(time.time())
        self._log_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> OcrServer:
        if self._httpd is not None:
            return self
        self._httpd = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"serve-ocr:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, drain_timeout: float = 5.0) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()  # no new connections are accepted after this returns
        deadline = time.monotonic() + drain_timeout
        with httpd.inflight_cond:
            while httpd.inflight and time.monotonic() < deadline:
                httpd.inflight_cond.wait(timeout=max(0.0, deadline - time.monotonic()))
        with httpd.connections_lock:
            for conn in list(httpd.connections):  # idle keep-alive (or stuck) connections
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.engine.close()
        self._httpd = None

    def __enter__(self) -> OcrServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("OcrServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL (``/health``, ``/metrics``)."""
        host = self.config.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{shown}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, ending in ``/v1``."""
        return self.url + "/v1"

    @property
    def requests_seen(self) -> int:
        """Chat completion requests counted so far (what ``@N`` fault rules refer to)."""
        return self.faults.requests_seen

    # --- used by the handler ----------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if self._key_digest is None:
            return True
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return secrets.compare_digest(hashlib.sha256(token.encode()).digest(), self._key_digest)

    def models_body(self) -> dict[str, Any]:
        data = [
            {
                "id": name,
                "object": "model",
                "created": self._created,
                "owned_by": "glyph-render",
                "root": self.config.served_model_names[0],
                "parent": None,
                "max_model_len": self.config.max_model_len,
                "permission": [],
            }
            for name in self.config.served_model_names
        ]
        return {"object": "list", "data": data}

    def log_request(self, method: str, path: str, outcome: _Outcome, seconds: float) -> None:
        """One access-log line on stderr; never headers (the API key stays out of logs)."""
        if self.config.quiet:
            return
        parts = [f"serve-ocr: {method} {path} {outcome.status or '-'}"]
        if outcome.pages is not None:
            parts.append(f"pages={outcome.pages}")
        if outcome.prompt_tokens is not None:
            parts.append(f"prompt_tokens={outcome.prompt_tokens}")
        if outcome.completion_tokens is not None:
            parts.append(f"completion_tokens={outcome.completion_tokens}")
        if outcome.ocr_seconds:
            parts.append(f"ocr={outcome.ocr_seconds:.2f}s")
        parts.append(f"{seconds:.2f}s")
        if outcome.note:
            parts.append(f"({outcome.note})")
        with self._log_lock:
            print(" ".join(parts), file=sys.stderr, flush=True)
