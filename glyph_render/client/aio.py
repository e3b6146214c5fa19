"""The asyncio face: :class:`AsyncGlyphClient`, the mirror of
:class:`~glyph_render.client.sync.GlyphClient` that awaits where that one blocks.

Rendering and encoding run in threads, so many requests can be in flight on one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import openai

from ..compress import ContextFit
from ..config import RenderConfig
from ..errors import ClientError, RequestRejected, StreamDropped
from ..render import RenderedPage
from .answer import Answer, StreamAccumulator, StreamEvent, parse_completion
from .core import (
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
from .reliability import Deadline, ErrorReply, retry_async

T = TypeVar("T")

__all__ = ["AsyncGlyphClient"]


class AsyncGlyphClient(ClientCore):
    """:class:`~glyph_render.client.GlyphClient` for asyncio: the same arguments and
    methods, awaited."""

    _oa: openai.AsyncOpenAI
    _ainfo_lock: asyncio.Lock | None = None

    def _open(self) -> None:
        http = openai.DefaultAsyncHttpxClient(event_hooks={"response": [self._error_reply]})
        self._oa = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                                      timeout=self.timeout, max_retries=0, http_client=http)

    async def close(self) -> None:
        await self._oa.close()
        self._close_pool()

    async def __aenter__(self) -> AsyncGlyphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def model_info(self) -> ModelInfo:
        """See :meth:`GlyphClient.model_info`."""
        if self._info is not None:
            return self._info
        if self._ainfo_lock is None:
            self._ainfo_lock = asyncio.Lock()
        async with self._ainfo_lock:
            if self._info is None:
                self._info = await self._discover()
            return self._info

    async def _discover(self) -> ModelInfo:
        bound = self._bound()

        async def once() -> Any:
            return self._json(await self._read(self._oa.models.with_streaming_response.list,
                                               bound))

        try:
            return self._pick_model(await retry_async(once, self.policy, bound))
        except RequestRejected as exc:
            return self._model_without_listing(exc)

    # --- asking ----------------------------------------------------------------------------

    async def ask(self, text: str, question: str, *, config: RenderConfig | None = None,
                  dpi: float | None = None, budget: int | None = None,
                  system: str | None = None, thinking: bool | None = None,
                  max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                  extra_body: dict[str, Any] | None = None,
                  overflow: Literal["error", "split"] | None = None,
                  fit: Literal["auto", "error"] | None = None) -> Answer:
        """See :meth:`GlyphClient.ask`."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body, overflow=overflow, fit=fit)
        info, job, reqs = await self._requests(text, question, o, config, dpi, budget, t_start)
        if len(reqs) == 1:
            answer = await self.send(reqs[0])
            answer.timings["plan"] = job.seconds
            return answer
        parts = sorted([a async for a in self._iter_parts(reqs)], key=first_page)
        final = await self.send(self._reduce_request(question, parts, o, info, t_start))
        return self._combine(final, parts, job, t_start)

    async def ask_pages(self, pages: Sequence[RenderedPage | bytes], question: str, *,
                        system: str | None = None, thinking: bool | None = None,
                        max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                        extra_body: dict[str, Any] | None = None) -> Answer:
        """See :meth:`GlyphClient.ask_pages`."""
        return await self.send(await self.prepare(
            question, pages, system=system, thinking=thinking, max_tokens=max_tokens,
            sampling=sampling, extra_body=extra_body, require_pages=True))

    async def ask_images(self, images: PageFiles, question: str, *,
                         local_media: bool | None = None, system: str | None = None,
                         thinking: bool | None = None, max_tokens: int | None = None,
                         sampling: dict[str, Any] | None = None,
                         extra_body: dict[str, Any] | None = None) -> Answer:
        """See :meth:`GlyphClient.ask_images`."""
        return await self.send(await self.prepare_images(
            images, question, local_media=local_media, system=system, thinking=thinking,
            max_tokens=max_tokens, sampling=sampling, extra_body=extra_body))

    async def ask_text(self, prompt: str, *, text_tokens: int = 0, system: str | None = None,
                       thinking: bool | None = None, max_tokens: int | None = None,
                       sampling: dict[str, Any] | None = None,
                       extra_body: dict[str, Any] | None = None) -> Answer:
        """See :meth:`GlyphClient.ask_text`."""
        return await self.send(await self.prepare(
            prompt, (), text_tokens=text_tokens, system=system, thinking=thinking,
            max_tokens=max_tokens, sampling=sampling, extra_body=extra_body))

    async def ask_stream(self, text: str, question: str, *,
                         config: RenderConfig | None = None, dpi: float | None = None,
                         budget: int | None = None, system: str | None = None,
                         thinking: bool | None = None, max_tokens: int | None = None,
                         sampling: dict[str, Any] | None = None,
                         extra_body: dict[str, Any] | None = None,
                         overflow: Literal["error", "split"] | None = None,
                         fit: Literal["auto", "error"] | None = None,
                         ) -> AsyncIterator[StreamEvent]:
        """See :meth:`GlyphClient.ask_stream`."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body, overflow=overflow, fit=fit)
        info, job, reqs = await self._requests(text, question, o, config, dpi, budget, t_start)
        parts: list[Answer] = []
        if len(reqs) == 1:
            req = reqs[0]
        else:
            async for part in self._iter_parts(reqs):
                parts.append(part)
                yield StreamEvent("part", part.text, part)
            parts.sort(key=first_page)
            req = self._reduce_request(question, parts, o, info, t_start)
        async for event in self._stream(req, job, parts):
            yield event

    # --- the request path ------------------------------------------------------------------

    async def prepare(self, question: str, pages: Sequence[RenderedPage | bytes] = (), *,
                      check_context: bool = True, text_tokens: int = 0,
                      system: str | None = None, thinking: bool | None = None,
                      max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                      extra_body: dict[str, Any] | None = None,
                      require_pages: bool = False) -> PreparedRequest:
        """See :meth:`GlyphClient.prepare`."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body)
        self._check_pages(pages, require_pages)
        info = await self.model_info()
        return await asyncio.to_thread(self._prepare_pages, pages, question, o, info,
                                       check_context=check_context, text_tokens=text_tokens,
                                       started=t_start)

    async def prepare_images(self, images: PageFiles, question: str, *,
                             local_media: bool | None = None, check_context: bool = True,
                             system: str | None = None, thinking: bool | None = None,
                             max_tokens: int | None = None,
                             sampling: dict[str, Any] | None = None,
                             extra_body: dict[str, Any] | None = None) -> PreparedRequest:
        """See :meth:`GlyphClient.prepare_images`."""
        t_start = time.perf_counter()
        o = self._options(system=system, thinking=thinking, max_tokens=max_tokens,
                          sampling=sampling, extra_body=extra_body)
        paths = await asyncio.to_thread(page_files, images)
        info = await self.model_info()
        return await asyncio.to_thread(
            self._prepare_files, paths, question, o, info, started=t_start,
            check_context=check_context,
            local_media=self.local_media if local_media is None else local_media)

    async def send(self, request: PreparedRequest) -> Answer:
        """See :meth:`GlyphClient.send`."""
        bound = self._bound()
        make = functools.partial(self._oa.chat.completions.with_streaming_response.create,
                                 **request.body())

        async def once() -> Any:
            return self._json(await self._read(make, bound, request))

        t_send = self._emit_sending(request)
        reply = parse_completion(await retry_async(once, self.policy, bound), self.url)
        self._emit_answered(request, t_send)
        return self._answer(reply, request, timed(request, t_send, None, None))

    def stream(self, request: PreparedRequest) -> AsyncIterator[StreamEvent]:
        """See :meth:`GlyphClient.stream`."""
        return self._stream(request, None, [])

    def stream_lines(self, request: PreparedRequest,
                     reader: StreamAccumulator) -> AsyncIterator[str]:
        """See :meth:`GlyphClient.stream_lines`."""
        return self._lines(request, reader, self._bound(), retry=True)

    async def reachable(self, timeout: float = 10.0) -> bool:
        """See :meth:`GlyphClient.reachable`."""
        try:
            await self._read(self._oa.models.with_streaming_response.list,
                             Deadline(min(timeout, self.timeout)))
            return True
        except ClientError:
            return False

    # --- transport: every wait bounded (see GlyphClient) ------------------------------------

    async def _within(self, bound: Deadline, step: Awaitable[T]) -> T:
        """``step`` cut off at the deadline: asyncio cancels a read however the server
        trickles (the role the sync face's watchdog plays)."""
        left = bound.remaining()
        if left is None:
            return await step
        try:
            return await asyncio.wait_for(step, max(left, 1e-3))
        except asyncio.TimeoutError as exc:
            if isinstance(exc, ClientError):  # RequestTimeout is a TimeoutError too
                raise
            bound.fired = True
            raise

    async def _response(self, make: Callable[..., Any], bound: Deadline,
                        req: PreparedRequest | None) -> tuple[Any, Any]:
        """See :meth:`GlyphClient._response`."""
        with self._translated(req, None, bound):
            ctx = make(timeout=bound.timeout(self.timeout))
            return ctx, (await self._within(bound, ctx.__aenter__())).http_response

    async def _error_reply(self, response: Any) -> None:
        """See :meth:`GlyphClient._error_reply` (the deadline: :meth:`_response`'s
        ``_within`` cancels this read with the rest of the opening, a redirect's body too)."""
        if response.status_code < 400:
            self._bound_redirect(response, None)
            return
        limit = self._error_body_limit()
        data = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= limit:
                    break
        except Exception:  # noqa: BLE001 - a body cut short: the status still stands
            pass
        finally:
            await response.aclose()
        raise ErrorReply(response.status_code, response, bytes(data[:limit]))

    async def _read(self, make: Callable[..., Any], bound: Deadline,
                    req: PreparedRequest | None = None) -> bytes:
        """See :meth:`GlyphClient._read`."""
        ctx, http = await self._response(make, bound, req)
        try:
            with self._translated(req, None, bound):
                body = self._reply_body(http.headers, bound)
                chunks = http.aiter_bytes()
                while True:
                    try:
                        chunk = await self._within(bound, chunks.__anext__())
                    except StopAsyncIteration:
                        return body.data
                    body.feed(chunk)
        finally:
            await ctx.__aexit__(None, None, None)

    async def _lines(self, request: PreparedRequest, reader: StreamAccumulator,
                     bound: Deadline, *, retry: bool) -> AsyncGenerator[str, None]:
        """See :meth:`GlyphClient._lines`."""
        make = functools.partial(self._oa.chat.completions.with_streaming_response.create,
                                 **request.body(stream=True))
        if retry:
            ctx, http = await retry_async(functools.partial(self._response, make, bound,
                                                            request), self.policy, bound)
        else:
            ctx, http = await self._response(make, bound, request)
        try:
            with self._translated(request, reader, bound):
                body = self._reply_body(http.headers, bound, reader)
                chunks = http.aiter_bytes()
                while True:
                    try:
                        chunk = await self._within(bound, chunks.__anext__())
                    except StopAsyncIteration:
                        break
                    for line in body.lines(chunk):
                        yield line
                for line in body.rest():
                    yield line
        finally:
            await ctx.__aexit__(None, None, None)

    # --- internals -------------------------------------------------------------------------

    async def _requests(self, text: str, question: str, o: _Options,
                        config: RenderConfig | None, dpi: float | None, budget: int | None,
                        t_start: float) -> tuple[ModelInfo, ContextFit, list[PreparedRequest]]:
        """See :meth:`GlyphClient._requests` (the CPU work in a thread)."""
        info = await self.model_info()
        job = await asyncio.to_thread(self._fit, text, question, o, info, config=config,
                                      dpi=dpi, budget=budget)
        return info, job, await asyncio.to_thread(self._prepare_text, text, job, question, o,
                                                  info, t_start)

    async def _iter_parts(self, reqs: list[PreparedRequest]) -> AsyncIterator[Answer]:
        """Each chunk asked, at most ``max_concurrency`` at once; in the order they complete."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(req: PreparedRequest) -> Answer:
            async with gate:
                return await self.send(req)

        tasks = [asyncio.ensure_future(one(r)) for r in reqs]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for t in tasks:
                t.cancel()

    async def _stream(self, req: PreparedRequest, job: ContextFit | None,
                      parts: list[Answer]) -> AsyncIterator[StreamEvent]:
        """See :meth:`GlyphClient._stream`."""
        bound = self._bound()
        t_send = self._emit_sending(req)
        shown = StreamShown(self, req, t_send)

        async def until_first_event(
        ) -> tuple[StreamAccumulator, AsyncGenerator[str, None], list[StreamEvent]]:
            reader = self.stream_reader(req)
            lines = self._lines(req, reader, bound, retry=False)
            try:
                async for line in lines:
                    events = reader.line(line)
                    if events:
                        return reader, lines, events
                return reader, lines, []
            except StreamDropped as exc:
                await lines.aclose()
                exc.retryable = True  # nothing of it was shown: ask again
                raise
            except BaseException:
                await lines.aclose()
                raise

        reader, lines, events = await retry_async(until_first_event, self.policy, bound)
        first = time.perf_counter() if events else None
        async with contextlib.aclosing(lines):
            for event in events:
                shown.delta()
                yield event
            async for line in lines:
                for event in reader.line(line):
                    if first is None:
                        first = time.perf_counter()
                    shown.delta()
                    yield event
        for event in reader.close():
            yield event
        self._emit_answered(req, t_send)
        yield self._done(reader, req, t_send, first, job, parts)
