"""The ASGI app: routes, keys, limits, the chat route's compress-then-forward, streaming.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models`` (the upstream's list), ``GET /health``
(open), ``GET /metrics`` (Prometheus). Every route but ``/health`` needs one of the gateway's own
keys when any is configured. Every refusal is in the OpenAI error shape (:mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from glyph_render.client import RetryPolicy, split_reasoning
from glyph_render.errors import ClientError, GlyphRenderError, scrub
from glyph_render.text_tokens import get_tokenizer
from glyph_render.vision_tokens import get_profile

from .errors import ApiError, from_client_error
from .metrics import GatewayMetrics
from .pages import Renderer
from .policy import Compressed, Compressor, Figures
from .settings import GatewaySettings, request_options
from .upstream import Upstream

__all__ = ["Gateway", "create_app"]

CHAT = "/v1/chat/completions"


class Gateway:
    """The state one app instance holds: upstream client, renderer, caches, metrics, limits."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.s = settings
        profile = get_profile(settings.profile)
        tokenizer = settings.tokenizer or profile.text_tokenizer
        self.renderer = Renderer(settings.render_workers, int(settings.cache_mb * 1024 * 1024),
                                 settings.render_timeout, settings.profile, tokenizer,
                                 settings.min_px_per_em)
        self.compressor = Compressor(settings, self.renderer, profile, get_tokenizer(tokenizer))
        key = settings.upstream_key()
        self._secrets = (key, *settings.api_keys)
        self.upstream = Upstream(
            _v1(settings.upstream), key, timeout=settings.timeout,
            policy=RetryPolicy(settings.max_retries, settings.backoff, settings.max_backoff,
                               settings.max_retry_after),
            max_model_len=settings.max_model_len, models_ttl=settings.models_ttl,
            connections=max(settings.max_concurrency * settings.map_concurrency, 16))
        self.metrics = GatewayMetrics()
        self._digests = [hashlib.sha256(k.encode()).digest() for k in settings.api_keys]
        self.inflight = 0

    async def start(self) -> None:
        self.renderer.start()

    async def stop(self) -> None:
        self.renderer.close()
        await self.upstream.close()

    # --- checks -----------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if not self._digests:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        got = hashlib.sha256(token.strip().encode()).digest()
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(got, d)
                                                  for d in self._digests):
            raise ApiError(401, "Incorrect or missing API key for this gateway (send "
                           "'Authorization: Bearer KEY' with one of its --api-key keys).",
                           code="invalid_api_key")

    async def read_json(self, request: Request) -> dict[str, Any]:
        limit = self.s.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError(400, "Content-Length is not a number",
                               code="invalid_body") from None
            if size > limit:
                await _drain(request, 16 * limit)
                raise ApiError(413, f"the request body of {size:,} bytes is over the gateway's "
                               f"limit of {limit:,} (--max-body-mb)", code="body_too_large")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                await _drain(request, 16 * limit)
                raise ApiError(413, f"the request body is over the gateway's limit of "
                               f"{limit:,} bytes (--max-body-mb)", code="body_too_large")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})",
                           code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
        return body

    def log(self, method: str, path: str, status: int, seconds: float, note: str = "") -> None:
        """One access-log line on stderr: never headers or bodies (keys stay out of logs)."""
        if self.s.quiet:
            return
        line = f"glyph-gateway: {method} {path} {status} {seconds:.3f}s" + (
            f" {note}" if note else "")
        print(scrub(line, self._secrets), file=sys.stderr, flush=True)

    # --- the chat route ---------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        if self.inflight >= self.s.max_concurrency:
            raise ApiError(429, f"the gateway is serving its limit of {self.s.max_concurrency} "
                           "requests (--max-concurrency); retry shortly",
                           code="gateway_saturated",
                           headers={"Retry-After": str(self.s.retry_after)})
        self.inflight += 1
        self.metrics.inflight.inc()
        released = handed_off = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.inflight -= 1
                self.metrics.inflight.dec()

        try:
            body = await self.read_json(request)
            opts = request_options(body, self.s)
            stream = bool(body.get("stream"))
            entry = await self.upstream.model(body.get("model"))
            try:
                done = await self.compressor.compress(body, opts, entry)
            except GlyphRenderError as exc:  # bad text, impossible config: the caller's input
                if isinstance(exc, ClientError):
                    raise
                raise ApiError(400, str(exc), code="render_failed") from None
            self._count(done.figures)
            f = done.figures
            request.state.note = (f"pages={f.pages} saved_tokens={f.saved_tokens} "
                                  f"cache_hits={f.cache_hits} parts={f.parts}")
            if done.maps:
                done = await self._map(body, done)
            out = {**body, "messages": done.messages}
            if stream:
                response = await self._stream(out, done.figures, release)
                handed_off = True  # the response frees the slot when it ends
                return response
            reply, seconds = await self.upstream.complete(out)
            self.metrics.upstream_seconds.observe(seconds)
            _add_usage(reply, done.figures)
            return JSONResponse(reply, headers=done.figures.headers())
        finally:
            if not handed_off:
                release()

    def _count(self, f: Figures) -> None:
        m = self.metrics
        m.documents.inc(f.documents)
        m.pages.inc(f.pages)
        m.vision_tokens.inc(f.vision_tokens)
        m.text_tokens.inc(f.text_tokens)
        m.saved_tokens.inc(max(0, f.saved_tokens))
        m.cache_hits.inc(f.cache_hits)
        m.cache_misses.inc(f.cache_misses)
        m.render_cpu.inc(f.render_cpu_seconds)
        m.cache_bytes.set(self.renderer.pages.total)
        if f.documents:
            m.render_seconds.observe(f.render_seconds)

    async def _map(self, body: dict[str, Any], done: Compressed) -> Compressed:
        """Ask each chunk (at most ``map_concurrency`` at once), then build the reduce call."""
        gate = asyncio.Semaphore(self.s.map_concurrency)
        base = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}

        async def one(messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
            async with gate:
                reply, seconds = await self.upstream.complete({**base, "messages": messages})
            self.metrics.upstream_seconds.observe(seconds)
            choice = (reply.get("choices") or [{}])[0]
            msg = choice.get("message") or {}
            text, _ = split_reasoning(msg.get("content"),
                                      msg.get("reasoning") or msg.get("reasoning_content"))
            return text, reply.get("usage") or {}

        results = await asyncio.gather(*(one(m) for m in done.maps))
        used = {k: sum(int(u.get(k) or 0) for _, u in results)
                for k in ("prompt_tokens", "completion_tokens")}
        done.figures.map_usage = used
        return Compressed(done.reduce([t for t, _ in results]), done.figures)

    async def _stream(self, body: dict[str, Any], figures: Figures,
                      release: Callable[[], None]) -> Response:
        t0 = time.perf_counter()
        upstream = await self.upstream.open_stream(body)
        self.metrics.upstream_seconds.observe(time.perf_counter() - t0)
        opts = body.get("stream_options")
        with_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for line in upstream.aiter_lines():
                    if with_usage and line.startswith("data: {") and '"usage":{' in \
                            line.replace(" ", ""):
                        line = _with_usage_line(line, figures)
                    yield (line + "\n").encode("utf-8")
            except Exception as exc:  # noqa: BLE001 - every cut becomes one error event
                err = self.upstream.cut(exc)
                self.metrics.errors.labels("stream_cut").inc()
                event = {"error": {"message": f"the upstream stream was cut: {err}",
                                   "type": "server_error", "param": None,
                                   "code": "upstream_stream_cut"}}
                yield ("\ndata: " + json.dumps(event) + "\n\n").encode("utf-8")
            finally:
                await upstream.aclose()

        return _ReleasingStream(relay(), release, upstream.aclose,
                                media_type="text/event-stream",
                                headers={**figures.headers(), "Cache-Control": "no-cache"})


class _ReleasingStream(StreamingResponse):
    """Closes the upstream stream and frees the concurrency slot when the response ends,
    however it ends (also when the caller left before the first byte)."""

    def __init__(self, content: Any, release: Callable[[], None],
                 close: Callable[[], Awaitable[None]], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._release = release
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._close()
            finally:
                self._release()


def _v1(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


async def _drain(request: Request, limit: int) -> None:
    """Read and drop what remains of an oversized body (up to ``limit``), so the client,
    still uploading, reads our 413 instead of a reset connection."""
    seen = 0
    with contextlib.suppress(Exception):
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                break


def _add_usage(reply: dict[str, Any], figures: Figures) -> None:
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        usage = reply["usage"] = {}
    usage["glyph"] = figures.usage()


def _with_usage_line(line: str, figures: Figures) -> str:
    try:
        obj = json.loads(line[len("data: "):])
    except ValueError:
        return line
    if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
        obj["usage"]["glyph"] = figures.usage()
        return "data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return line


def create_app(settings: GatewaySettings) -> Starlette:
    """The ASGI app for ``settings`` (uvicorn, hypercorn, gunicorn's uvicorn worker...)."""
    gw = Gateway(settings)

    def route(path: str, methods: list[str], guarded: bool = True) -> Any:
        def wrap(handler: Any) -> Route:
            async def endpoint(request: Request) -> Response:
                t0 = time.perf_counter()
                status, note = 500, ""
                try:
                    if guarded:
                        gw.authorize(request)
                    response = await handler(request)
                    status = response.status_code
                    note = getattr(request.state, "note", "")
                    return response
                except ApiError as exc:
                    status, note = exc.status, exc.kind
                    gw.metrics.errors.labels(exc.kind).inc()
                    return _error(exc)
                except ClientError as exc:
                    api = from_client_error(exc)
                    status, note = api.status, api.kind
                    gw.metrics.errors.labels(api.kind).inc()
                    return _error(api)
                except Exception as exc:  # a bug: say so in the OpenAI shape, keep serving
                    gw.metrics.errors.labels("internal").inc()
                    note = f"internal {type(exc).__name__}"
                    traceback.print_exc(file=sys.stderr)
                    return _error(ApiError(500, f"internal gateway error: "
                                           f"{type(exc).__name__}", code="internal_error"))
                finally:
                    gw.metrics.requests.labels(path, str(status)).inc()
                    gw.log(request.method, path, status, time.perf_counter() - t0, note)
            return Route(path, endpoint, methods=methods)
        return wrap

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        gw.metrics.cache_bytes.set(gw.renderer.pages.total)
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4")

    async def models(request: Request) -> Response:
        return JSONResponse(await gw.upstream.models())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        what = "no such route" if status == 404 else f"method {request.method} not allowed"
        return _error(ApiError(status, f"{what}: {request.method} {request.url.path}",
                               code="not_found" if status == 404 else "method_not_allowed"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    routes = [route("/health", ["GET"], guarded=False)(health),
              route("/metrics", ["GET"])(metrics),
              route("/v1/models", ["GET"])(models),
              route(CHAT, ["POST"])(gw.chat)]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: not_found})
    app.state.gateway = gw
    return app


def _error(exc: ApiError) -> Response:
    return Response(exc.bytes(), status_code=exc.status, media_type="application/json",
                    headers=exc.headers)

