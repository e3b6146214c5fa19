"""The synchronous face: :class:`GlyphClient` (threads for split documents)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Literal

import openai

from ..compress import DEFAULT_MAX_DPI, ContextFit
from ..config import RenderConfig
from ..errors import ClientError, RequestRejected, StreamDropped
from ..render import RenderedPage
from .answer import Answer, StreamAccumulator, StreamEvent, parse_completion
from .core import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_REPLY_BYTES,
    ClientCore,
    ModelInfo,
    PageFiles,
    PreparedRequest,
    StreamShown,
    _Options,
    first_page,
    page_files,
    timed,
)
from .progress import ProgressCallback
from .reliability import Deadline, ErrorReply, retry_sync

__all__ = ["GlyphClient", "compress_and_ask"]

#: the deadline of the call now sending on this thread, for the error-body hook
_BOUND: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "glyph_render_bound", default=None)


class GlyphClient(ClientCore):
    """Ask a Glyph endpoint about long texts (thread-safe; one connection pool).

    Endpoint: ``base_url``, else ``$GLYPH_BASE_URL``, else ``$OPENAI_BASE_URL``; key:
    ``api_key``, else ``$OPENAI_API_KEY``, else ``"EMPTY"``. ``model`` and ``max_model_len``
    are read from ``/v1/models`` when not given. ``tokenizer`` counts the question (pass the
    model's ``tokenizer.json`` for exact predictions). Every keyword of :meth:`ask` has a
    client-wide default here (``system``, ``thinking``, ``max_tokens``, ``sampling``,
    ``extra_body``, ``overflow``, ``fit``). ``progress``: a callback receiving a
    :class:`~glyph_render.client.progress.Progress` at each step of a call (re-plan, rendering,
    upload, waiting, first token); ``local_media``: :meth:`ask_images` sends ``file://`` URLs.

    The request path is public: :meth:`prepare` builds a :class:`PreparedRequest` (priced,
    checked against the context), :meth:`send` sends it with retries, :meth:`stream` streams
    it, and :meth:`stream_lines` gives the raw server-sent lines (for tools that time them).
    """

    _oa: openai.OpenAI

    def _open(self) -> None:
        http = openai.DefaultHttpxClient(event_hooks={"response": [self._error_reply]})
        self._oa = openai.OpenAI(base_url=self.base_url, api_key=self._api_key,
                                 timeout=self.timeout, max_retries=0, http_client=http)

    def close(self) -> None:
        self._oa.close()
        self._close_pool()

    def __enter__(self) -> GlyphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def model_info(self) -> ModelInfo:
        """Served model name and ``max_model_len`` (from ``/v1/models``, cached)."""
        with self._info_lock:
            if self._info is None:
                self._info = self._discover()
            return self._info

    def _discover(self) -> ModelInfo:
        bound = self._bound()

        def once() -> Any:
            return self._json(self._read(self._oa.models.with_streaming_response.list, bound))

        try:
            return self._pick_model(retry_sync(once, self.policy, bound))
        except RequestRejected as exc:
            return self._model_without_listing(exc)

    # --- asking ----------------------------------------------------------------------------

    def ask(self, text: str, question: str, *, config: RenderConfig | None = None,
            dpi: float | None = None, budget: int | None = None, system: str | None = None,
            thinking: bool | None = None, max_tokens: int | None = None,
            sampling: dict[str, Any] | None = None, extra_body: dict[str, Any] | None = None,
            overflow: Literal["error", "split"] | None = None,
            fit: Literal["auto", "error"] | None = None) -> Answer:
        """Render ``text``, ask ``question`` about it, return the :class:`Answer`.

        ``config``: a RenderConfig (default the preset detected from the text); ``dpi`` or
        ``budget`` (vision tokens); ``thinking``: True/False/None = the server's default;
        ``sampling``: fields such as ``temperature`` or ``top_k`` over Glyph's; ``overflow``
        ("split"/"error") and ``fit`` ("auto"/"error"): see the module. Unset keywords take
        the client's defaults.
        """
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body, overflow=overflow, fit=fit)
        info, job, reqs = self._requests(text, question, o, config, dpi, budget, t_start)
        if len(reqs) == 1:
            answer = self.send(reqs[0])
            answer.timings["plan"] = job.seconds
            return answer
        parts = sorted(self._iter_parts(reqs), key=first_page)
        final = self.send(self._reduce_request(question, parts, o, info, t_start))
        return self._combine(final, parts, job, t_start)

    def ask_pages(self, pages: Sequence[RenderedPage | bytes], question: str, *,
                  system: str | None = None, thinking: bool | None = None,
                  max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                  extra_body: dict[str, Any] | None = None) -> Answer:
        """Ask about pages rendered earlier (e.g. one render, many questions)."""
        return self.send(self.prepare(question, pages, system=system, thinking=thinking,
                                      max_tokens=max_tokens, sampling=sampling,
                                      extra_body=extra_body, require_pages=True))

    def ask_images(self, images: PageFiles, question: str, *,
                   local_media: bool | None = None, system: str | None = None,
                   thinking: bool | None = None, max_tokens: int | None = None,
                   sampling: dict[str, Any] | None = None,
                   extra_body: dict[str, Any] | None = None) -> Answer:
        """Ask about page images already on disk (``glyph-render render``'s folder, Glyph's
        ``text_to_images`` output, a glob such as ``out/page_*.png``, or a list of files), in
        page order. The prompt is priced from the images' sizes and checked against the
        context before anything is sent; ``local_media`` (default: the client's) sends
        ``file://`` URLs the server reads itself (vLLM's ``--allowed-local-media-path``)
        instead of base64."""
        return self.send(self.prepare_images(
            images, question, local_media=local_media, system=system, thinking=thinking,
            max_tokens=max_tokens, sampling=sampling, extra_body=extra_body))

    def ask_text(self, prompt: str, *, text_tokens: int = 0, system: str | None = None,
                 thinking: bool | None = None, max_tokens: int | None = None,
                 sampling: dict[str, Any] | None = None,
                 extra_body: dict[str, Any] | None = None) -> Answer:
        """Ask with no pages, the prompt as plain text: the text-only baseline on the same
        endpoint (``glyph-render eval --as-text``). ``text_tokens`` is what the document part
        of the prompt costs as text, for the answer's figures."""
        return self.send(self.prepare(prompt, (), text_tokens=text_tokens, system=system,
                                      thinking=thinking, max_tokens=max_tokens,
                                      sampling=sampling, extra_body=extra_body))

    def ask_stream(self, text: str, question: str, *, config: RenderConfig | None = None,
                   dpi: float | None = None, budget: int | None = None,
                   system: str | None = None, thinking: bool | None = None,
                   max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                   extra_body: dict[str, Any] | None = None,
                   overflow: Literal["error", "split"] | None = None,
                   fit: Literal["auto", "error"] | None = None) -> Iterator[StreamEvent]:
        """Like :meth:`ask`, yielding reasoning/content deltas as they arrive, then ``done``.

        A split document yields a ``part`` event per chunk answered, then streams the
        combining call.
        """
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body, overflow=overflow, fit=fit)
        info, job, reqs = self._requests(text, question, o, config, dpi, budget, t_start)
        if len(reqs) == 1:
            yield from self._stream(reqs[0], job, [])
            return
        parts: list[Answer] = []
        for part in self._iter_parts(reqs):
            parts.append(part)
            yield StreamEvent("part", part.text, part)
        parts.sort(key=first_page)
        yield from self._stream(self._reduce_request(question, parts, o, info, t_start), job,
                                parts)

    # --- the request path ------------------------------------------------------------------

    def prepare(self, question: str, pages: Sequence[RenderedPage | bytes] = (), *,
                check_context: bool = True, text_tokens: int = 0,
                system: str | None = None, thinking: bool | None = None,
                max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                extra_body: dict[str, Any] | None = None,
                require_pages: bool = False) -> PreparedRequest:
        """``question`` after ``pages`` (RenderedPage with PNG bytes or an image, or PNG
        bytes; none for a text-only prompt), as one request: encoded, priced and, unless
        ``check_context=False``, checked against the model's context."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body)
        self._check_pages(pages, require_pages)
        return self._prepare_pages(pages, question, o, self.model_info(),
                                   check_context=check_context, text_tokens=text_tokens,
                                   started=t_start)

    def prepare_images(self, images: PageFiles, question: str, *,
                       local_media: bool | None = None, check_context: bool = True,
                       system: str | None = None, thinking: bool | None = None,
                       max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                       extra_body: dict[str, Any] | None = None) -> PreparedRequest:
        """:meth:`ask_images`' request, ready for :meth:`send` or :meth:`stream`."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body)
        paths = page_files(images)
        info = self.model_info()
        return self._prepare_files(
            paths, question, o, info, started=t_start, check_context=check_context,
            local_media=self.local_media if local_media is None else local_media)

    def send(self, request: PreparedRequest) -> Answer:
        """Send a prepared request (429/5xx and cut replies retried, all within the
        deadline); the :class:`Answer`."""
        bound = self._bound()
        make = functools.partial(self._oa.chat.completions.with_streaming_response.create,
                                 **request.body())
        t_send = self._emit_sending(request)
        data = retry_sync(lambda: self._json(self._read(make, bound, request)), self.policy,
                          bound)
        reply = parse_completion(data, self.url)
        self._emit_answered(request, t_send)
        return self._answer(reply, request, timed(request, t_send, None, None))

    def stream(self, request: PreparedRequest) -> Iterator[StreamEvent]:
        """Send a prepared request streamed: its deltas as they arrive, then ``done``."""
        return self._stream(request, None, [])

    def stream_lines(self, request: PreparedRequest,
                     reader: StreamAccumulator) -> Iterator[str]:
        """The raw server-sent lines of a prepared request, streamed (opening retried under
        the policy), within the deadline and the reply size limit. Feed them to ``reader``
        (:meth:`stream_reader`): a stream cut mid-way raises
        :class:`~glyph_render.errors.StreamDropped` with its partial text."""
        return self._lines(request, reader, self._bound(), retry=True)

    def reachable(self, timeout: float = 10.0) -> bool:
        """Whether the endpoint answers its model listing now: one attempt, at most
        ``timeout`` seconds (how a batch job probes an outage)."""
        try:
            self._read(self._oa.models.with_streaming_response.list,
                       Deadline(min(timeout, self.timeout)))
            return True
        except ClientError:
            return False

    # --- transport: every wait bounded ------------------------------------------------------

    def _response(self, make: Callable[..., Any], bound: Deadline,
                  req: PreparedRequest | None) -> tuple[Any, Any]:
        """The response context and its HTTP response, status checked, body unread."""
        with self._translated(req, None, bound):
            token = _BOUND.set(bound)
            try:
                ctx = make(timeout=bound.timeout(self.timeout))
                return ctx, ctx.__enter__().http_response
            finally:
                _BOUND.reset(token)

    def _error_reply(self, response: Any) -> None:
        """The HTTP client's response hook: a non-2xx reply's body read here, at most
        :meth:`_error_body_limit` bytes and within the call's deadline (the watchdog cuts a
        trickle), then the connection closed, where openai would read the body whole before
        raising (a 400 MB error page held in memory). Raises :class:`ErrorReply`, which
        :meth:`_translated` turns into the status's error. A redirect's body is bounded the
        same way (:class:`~glyph_render.client.core.RedirectBody`)."""
        bound = _BOUND.get()
        if response.status_code < 400:
            self._bound_redirect(response, bound)
            return
        limit = self._error_body_limit()
        data = bytearray()
        try:
            with _Watchdog(response, bound) if bound is not None else contextlib.nullcontext():
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) >= limit or (bound is not None and bound.expired()):
                        break
        except Exception:  # noqa: BLE001 - a body cut short: the status still stands
            pass
        finally:
            response.close()
        raise ErrorReply(response.status_code, response, bytes(data[:limit]))

    def _read(self, make: Callable[..., Any], bound: Deadline,
              req: PreparedRequest | None = None) -> bytes:
        """One request's whole body, read within the size limit and the deadline."""
        ctx, http = self._response(make, bound, req)
        try:
            with _Watchdog(http, bound), self._translated(req, None, bound):
                body = self._reply_body(http.headers, bound)
                for chunk in http.iter_bytes():
                    body.feed(chunk)
                return body.data
        finally:
            ctx.__exit__(None, None, None)

    def _lines(self, request: PreparedRequest, reader: StreamAccumulator, bound: Deadline, *,
               retry: bool) -> Generator[str, None, None]:
        """A streamed request's lines; its opening retried under the policy when ``retry``."""
        make = functools.partial(self._oa.chat.completions.with_streaming_response.create,
                                 **request.body(stream=True))
        if retry:
            ctx, http = retry_sync(lambda: self._response(make, bound, request), self.policy, bound)
        else:
            ctx, http = self._response(make, bound, request)
        try:
            with _Watchdog(http, bound), self._translated(request, reader, bound):
                body = self._reply_body(http.headers, bound, reader)
                for chunk in http.iter_bytes():
                    yield from body.lines(chunk)
                yield from body.rest()
        finally:
            ctx.__exit__(None, None, None)

    # --- internals -------------------------------------------------------------------------

    def _requests(self, text: str, question: str, o: _Options, config: RenderConfig | None,
                  dpi: float | None, budget: int | None, t_start: float,
                  ) -> tuple[ModelInfo, ContextFit, list[PreparedRequest]]:
        """The model, how the text fits its context, and the requests that send it."""
        info = self.model_info()
        job = self._fit(text, question, o, info, config=config, dpi=dpi, budget=budget)
        return info, job, self._prepare_text(text, job, question, o, info, t_start)

    def _iter_parts(self, reqs: list[PreparedRequest]) -> Iterator[Answer]:
        """Each chunk asked in a bounded thread pool; answers in the order they complete."""
        with ThreadPoolExecutor(min(self.max_concurrency, len(reqs)),
                                thread_name_prefix="glyph-part") as ex:
            pending = {ex.submit(self.send, r) for r in reqs}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in done:
                        yield f.result()
            finally:
                for f in pending:
                    f.cancel()

    def _stream(self, req: PreparedRequest, job: ContextFit | None,
                parts: list[Answer]) -> Iterator[StreamEvent]:
        """The events of one streamed request. Until its first event reaches the caller, a
        failure is retried like a plain request's (a dropped stream included); after, it is
        raised with the partial text."""
        bound = self._bound()
        t_send = self._emit_sending(req)
        shown = StreamShown(self, req, t_send)

        def until_first_event(
        ) -> tuple[StreamAccumulator, Generator[str, None, None], list[StreamEvent]]:
            reader = self.stream_reader(req)
            lines = self._lines(req, reader, bound, retry=False)
            try:
                for line in lines:
                    events = reader.line(line)
                    if events:
                        return reader, lines, events
                return reader, lines, []
            except StreamDropped as exc:
                lines.close()
                exc.retryable = True  # nothing of it was shown: ask again
                raise
            except BaseException:
                lines.close()
                raise

        reader, lines, events = retry_sync(until_first_event, self.policy, bound)
        first = time.perf_counter() if events else None
        with contextlib.closing(lines):
            for event in events:
                shown.delta()
                yield event
            for line in lines:
                for event in reader.line(line):
                    if first is None:
                        first = time.perf_counter()
                    shown.delta()
                    yield event
        yield from reader.close()
        self._emit_answered(req, t_send)
        yield self._done(reader, req, t_send, first, job, parts)


class _Watchdog:
    """Cuts a response's connection when the call's deadline passes, so a read blocked on a
    silent or trickling server returns at once: the per-read timeout alone would wait up to the
    idle limit, and a byte a second never trips it. Without a socket to cut (another
    transport), the per-chunk check in :class:`~glyph_render.client.core.ReplyBody` remains."""

    def __init__(self, http: Any, bound: Deadline) -> None:
        self._bound = bound
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._done = False
        left = bound.remaining()
        sock = _socket_of(http)
        if left is not None and sock is not None:
            self._timer = threading.Timer(left, self._fire, (sock,))
            self._timer.daemon = True

    def _fire(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._bound.fired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read with EOF

    def __enter__(self) -> _Watchdog:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def _socket_of(http: Any) -> socket.socket | None:
    """The socket under an httpx/httpx2 response (HTTP/1.1 over httpcore), else None."""
    stream = getattr(http, "extensions", {}).get("network_stream")
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - a transport without the extra: no watchdog
        return None
    return sock if isinstance(sock, socket.socket) else None


def compress_and_ask(text: str, question: str, *, base_url: str | None = None,
                     api_key: str | None = None, model: str | None = None,
                     max_model_len: int | None = None, profile: str = "glyph",
                     tokenizer: str | None = None, timeout: float = 600.0,
                     deadline: float | None = DEFAULT_DEADLINE,
                     max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
                     max_retries: int = 3, min_px_per_em: float | None = None,
                     max_dpi: float = DEFAULT_MAX_DPI, config: RenderConfig | None = None,
                     dpi: float | None = None, budget: int | None = None,
                     system: str | None = None, thinking: bool | None = None,
                     max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                     extra_body: dict[str, Any] | None = None,
                     overflow: Literal["error", "split"] | None = None,
                     fit: Literal["auto", "error"] | None = None,
                     progress: ProgressCallback | None = None) -> Answer:
    """One call: a :class:`GlyphClient` for the endpoint, ``ask``, close.

    The keywords up to ``max_dpi`` and ``progress`` make the client, the rest are
    :meth:`GlyphClient.ask`'s.
    """
    with GlyphClient(base_url, api_key=api_key, model=model, max_model_len=max_model_len,
                     profile=profile, tokenizer=tokenizer, timeout=timeout,
                     deadline=deadline, max_reply_bytes=max_reply_bytes,
                     max_retries=max_retries, min_px_per_em=min_px_per_em,
                     max_dpi=max_dpi, progress=progress) as c:
        return c.ask(text, question, config=config, dpi=dpi, budget=budget, system=system,
                     thinking=thinking, max_tokens=max_tokens, sampling=sampling,
                     extra_body=extra_body, overflow=overflow, fit=fit)
