"""One streamed chat request, timed chunk by chunk: what ``bench serve`` and ``doctor`` send.

Both tools must measure exactly what glyph-render's client sends, so requests go through
:class:`~glyph_render.client.AsyncGlyphClient`'s public request path: ``prepare()`` (its message
layout, page encoding, prompt-token prediction and Glyph sampling settings) and
``stream_lines()`` (its error classification), with no retries, a timestamp per chunk and the
raw lines at hand (which delta field carried the reasoning).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_REPLY_BYTES,
    AsyncGlyphClient,
    Deadline,
    ModelInfo,
    PreparedRequest,
)
from ..errors import ClientError, DeadlineExceeded, GlyphRenderError, ReplyTooLarge
from ..render import RenderedPage

__all__ = ["ChatEndpoint", "Response", "Timed"]


@dataclass(frozen=True)
class Response:
    """A plain GET's status and body text."""

    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Timed:
    """What one request did, in seconds since it was sent (``t_send`` is ``perf_counter``)."""

    ok: bool
    t_send: float
    e2e: float
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # one per chunk carrying text
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    delta_fields: set[str] = field(default_factory=set)  # content / reasoning / ...
    error: str | None = None
    error_type: str | None = None
    exception: ClientError | None = field(default=None, repr=False)  # what ``error`` says


class ChatEndpoint:
    """An OpenAI-compatible endpoint driven through the client's request building.

    ``max_tokens`` and ``extra_body`` apply to every request. No retries: a benchmark counts a
    failure as a failure, and the doctor reports what the server said the first time. Every
    wait is bounded as the client bounds its own: ``timeout`` idle seconds, ``deadline`` in
    all per request or stream, ``max_reply_bytes`` per reply (the plain GETs too).
    """

    def __init__(self, url: str | None, *, model: str | None = None,
                 tokenizer: str | None = None, profile: str = "glyph", max_tokens: int = 64,
                 extra_body: dict[str, Any] | None = None, timeout: float = 600.0,
                 deadline: float | None = DEFAULT_DEADLINE,
                 max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
                 api_key: str | None = None) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._headers = {"Authorization": f"Bearer {key}"} if key != "EMPTY" else {}
        self.client = AsyncGlyphClient(url, api_key=key, model=model, tokenizer=tokenizer,
                                       profile=profile, max_tokens=max_tokens, timeout=timeout,
                                       deadline=deadline, max_reply_bytes=max_reply_bytes,
                                       max_retries=0)
        self.url = self.client.url  # without any user:password part
        self.root = self.client.base_url.removesuffix("/v1")
        self._extra = dict(extra_body or {})

    async def close(self) -> None:
        await self.client.close()

    async def model_info(self) -> ModelInfo:
        """Served model and ``max_model_len`` (the client's discovery; raises ClientError)."""
        return await self.client.model_info()

    async def get(self, path: str, timeout: float = 10.0) -> Response | None:
        """GET a server path outside the OpenAI API (``/metrics``, ``/version``); None when
        nothing answers (within ``timeout`` idle seconds). Plain urllib: the openai package's
        HTTP library varies by version. Past the client's deadline or reply size limit (a
        trickling or endless body): :class:`DeadlineExceeded` or :class:`ReplyTooLarge`."""
        return await asyncio.to_thread(self._get, path, timeout)

    def _get(self, path: str, timeout: float) -> Response | None:
        bound = Deadline(self.client.deadline)
        req = urllib.request.Request(self.root + path, headers=self._headers)
        try:
            resp = urllib.request.urlopen(req, timeout=bound.timeout(timeout))
        except urllib.error.HTTPError as exc:
            resp = exc  # an error status: its body is read the same way
        except (OSError, ValueError):
            return None
        shown = self.url.removesuffix("/v1") + path  # no user:password part
        with contextlib.closing(resp):
            try:
                data = self._body(resp, shown, bound)
            except ClientError:  # a RequestTimeout is an OSError (TimeoutError) too
                raise
            except OSError:  # silent for the idle timeout, or cut: nothing usable
                return None
        return Response(resp.status, data.decode("utf-8", "replace"))

    def _body(self, resp: Any, shown: str, bound: Deadline) -> bytes:
        """A GET's body chunk by chunk (``read1``: what has arrived, so a trickle is checked
        at each byte) within the reply size limit and the deadline."""
        limit = self.client.max_reply_bytes
        declared = resp.headers.get("Content-Length") or ""
        data = bytearray()
        if limit is not None and declared.strip().isdigit() and int(declared) > limit:
            raise self._too_large(shown, limit, int(declared), "declared by its Content-Length")
        while chunk := resp.read1(65536):
            data += chunk
            if limit is not None and len(data) > limit:
                raise self._too_large(shown, limit, len(data), "arrived before reading stopped")
            if bound.expired():
                raise DeadlineExceeded(
                    f"GET {shown} did not finish within the deadline of {bound.limit:g} s "
                    f"({len(data):,} bytes arrived); raise --deadline if the server is that "
                    "slow", url=self.url, deadline=bound.limit)
        return bytes(data)

    def _too_large(self, shown: str, limit: int, size: int, how: str) -> ReplyTooLarge:
        return ReplyTooLarge(f"the reply to GET {shown} is larger than the limit of {limit:,} "
                             f"bytes ({size:,} bytes {how}); raise --max-reply-mb if such "
                             "replies are expected", url=self.url, limit=limit, size=size)

    async def prepare_pages(self, pages: Sequence[RenderedPage], question: str,
                            max_tokens: int | None = None) -> PreparedRequest:
        """Pages (with PNG bytes) + question, as ``ask_pages`` sends them; priced, not checked
        against the context (the server's verdict is what gets measured)."""
        return await self.client.prepare(question, pages, check_context=False,
                                         max_tokens=max_tokens, extra_body=self._extra)

    async def prepare_text(self, text: str, max_tokens: int | None = None) -> PreparedRequest:
        """A text-only user message: the document itself, or the doctor's baseline question."""
        return await self.client.prepare(text, (), check_context=False, max_tokens=max_tokens,
                                         extra_body=self._extra)

    async def stream(self, prep: PreparedRequest, *, inspect: bool = False) -> Timed:
        """Send one request and time every chunk; failures come back in ``Timed.error``.

        ``inspect`` also records which delta fields carried text (``reasoning`` vs
        ``reasoning_content`` vs ``content``), for the doctor.
        """
        t_send = time.perf_counter()
        reader = self.client.stream_reader(prep)
        out = Timed(ok=False, t_send=t_send, e2e=0.0)
        try:
            async with contextlib.aclosing(self.client.stream_lines(prep, reader)) as lines:
                async for line in lines:
                    before = len(reader.content) + len(reader.reasoning)
                    reader.line(line)
                    if len(reader.content) + len(reader.reasoning) > before:
                        out.chunk_times.append(time.perf_counter() - t_send)
                        if inspect:
                            out.delta_fields |= _text_fields(line)
            reader.close()
            out.ok = True
        except ClientError as exc:
            _fail(out, exc)
        finally:
            out.e2e = time.perf_counter() - t_send
        reply = reader.reply()
        usage = reply.usage or {}
        out.prompt_tokens = _int(usage.get("prompt_tokens"))
        out.completion_tokens = _int(usage.get("completion_tokens"))
        out.content, out.reasoning = reply.content, reply.reasoning
        out.finish_reason = reply.finish_reason
        out.ttft = out.chunk_times[0] if out.chunk_times else None
        return out


def _fail(out: Timed, exc: GlyphRenderError) -> None:
    out.ok = False
    out.error = str(exc)
    out.error_type = type(exc).__name__
    out.exception = exc if isinstance(exc, ClientError) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_fields(line: str) -> set[str]:
    """Names of the delta fields of one SSE line that carry non-empty text."""
    try:
        obj = json.loads(line[5:])
    except (json.JSONDecodeError, IndexError):
        return set()
    choices = obj.get("choices") if isinstance(obj, dict) else None
    found: set[str] = set()
    for choice in choices if isinstance(choices, list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            found |= {k for k, v in delta.items() if isinstance(v, str) and v}
    return found - {"role"}
