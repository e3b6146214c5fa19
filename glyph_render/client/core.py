"""Ask a Glyph endpoint (vLLM or SGLang, OpenAI-compatible) about a long text.

The text is rendered into pages, the pages are sent as Glyph expects them (one user message: the
page images in order as ``data:image/png;base64`` URLs, then the question), and the reply comes
back as an :class:`~glyph_render.client.answer.Answer` with the reasoning kept
apart. Pages already on disk (``ask_images``) may travel as ``file://`` URLs instead
(``local_media``), for a server that reads local media (vLLM's ``--allowed-local-media-path``).

Endpoints: a bare host, the base URL or a full route (``.../v1/chat/completions``, as Glyph's
scripts post to) all name the same base URL (:func:`normalise_base_url`).

Fitting the context. Before anything is uploaded the prompt is priced exactly
(:func:`~glyph_render.vision_tokens.prompt_tokens` over the page sizes) and compared with the
model's ``max_model_len`` (read from ``/v1/models``), leaving ``max_tokens`` for the answer.
When it does not fit, ``fit="auto"`` (the default) picks the vision-token budget that does
(context - template and question - max_tokens, see :func:`~glyph_render.compress.
context_budget`) and lets :func:`~glyph_render.compress.compress` choose the most legible
rendering within it; ``fit="error"`` raises :class:`~glyph_render.errors.ContextOverflow`.

Map-reduce. When even the most compact legible rendering does not fit and ``overflow="split"``
(the default), the document is cut into N consecutive chunks that each fit; each chunk is asked
the question (at most ``max_concurrency`` at a time) and one final text-only call combines the N
partial answers. Cost: N + 1 calls; prompt tokens about the whole document's vision tokens plus
N times the question and template, plus the combining prompt (the partial answers and the
question); completion tokens up to (N + 1) x ``max_tokens``. ``Answer.parts`` holds the partial
answers and ``Answer.total_usage`` the sum. ``overflow="error"`` raises instead.

Reliability: see :mod:`glyph_render.client.reliability` (429/5xx retried with backoff,
everything else raised at once as one of the ``ClientError`` types in
:mod:`glyph_render.errors`); :meth:`ClientCore._translated` is where that happens. Every call is
bounded three ways: ``timeout`` (idle seconds per read), ``deadline`` (total seconds per
request or stream, retries included) and ``max_reply_bytes`` (:class:`ReplyBody` counts the
bytes as they arrive). A non-2xx reply's body is read by the faces' response hooks, at most
``ERROR_BODY_BYTES`` of it within the deadline, before openai could read it whole.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import glob
import importlib
import json
import os
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ..compress import DEFAULT_MAX_DPI, ContextFit, fit_to_context
from ..config import RenderConfig
from ..encode import encode_png
from ..errors import (
    ClientError,
    ConfigError,
    ContextOverflow,
    DeadlineExceeded,
    InputError,
    MalformedReply,
    ReplyTooLarge,
    RequestRejected,
    RequestTimeout,
    StreamDropped,
    StreamStalled,
)
from ..render import RenderedPage, iter_pages
from ..settings import check_number
from ..text_tokens import TextTokenizer, get_tokenizer
from ..vision_tokens import VisionProfile, get_profile, image_tokens, prompt_tokens
from .answer import Answer, Reply, StreamAccumulator, StreamEvent, split_reasoning
from .progress import Progress, ProgressCallback
from .reliability import Deadline, Overflow, RetryPolicy, classify, reason, status_error

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MAX_TOKENS", "GLYPH_SAMPLING", "MAP_PROMPT",
           "REDUCE_PROMPT", "ClientCore", "ModelInfo", "PageFiles", "PreparedRequest",
           "longest_map_question", "normalise_base_url", "page_files"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
#: Glyph's published sampling settings (top_k and repetition_penalty travel in extra_body).
GLYPH_SAMPLING: dict[str, Any] = {"temperature": 0.0001, "top_p": 1.0, "top_k": 1,
                                  "repetition_penalty": 1.1}
DEFAULT_MAX_TOKENS = 8192
DEFAULT_DEADLINE = 1800.0  # seconds per request or stream, retries included
DEFAULT_MAX_REPLY_BYTES = 64 * 2**20  # a chat completion is kilobytes; logprobs, megabytes
ERROR_BODY_BYTES = 64 * 2**10  # of an error reply: its message is at the start
# Fields the openai client takes as arguments; any other sampling field goes in extra_body.
_OPENAI_FIELDS = frozenset({
    "temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "n",
    "logit_bias", "logprobs", "top_logprobs", "response_format", "user",
})
#: The question each chunk of a split document carries (``question``, ``part``, ``parts``);
#: the gateway sends the same words for the documents it splits.
MAP_PROMPT = ("{question}\n\n(These pages are part {part} of {parts} of a longer document; "
              "answer from them alone, or say that this part does not contain the answer.)")
#: The question that combines the chunks' partial answers (``parts``, ``answers``,
#: ``question``) into one.
REDUCE_PROMPT = ("Partial answers to the question below, one from each of {parts} consecutive "
                 "parts of a document, in order:\n\n{answers}\n\nQuestion: {question}\n"
                 "Combine them into one answer to the question, ignoring the parts that did not "
                 "contain it.")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def longest_map_question(question: str) -> str:
    """The longest question a chunk of a split document carries (``MAP_PROMPT`` at part 9999
    of 9999): what fitting prices each chunk's request with."""
    return MAP_PROMPT.format(question=question, part=9999, parts=9999)


@dataclass(frozen=True)
class ModelInfo:
    """The served model's name and context window (None when the server does not say)."""

    name: str
    max_model_len: int | None


@dataclass
class _Options:
    """One call's settings: the client's defaults overridden by the call's arguments."""

    system: str | None
    thinking: bool | None
    max_tokens: int
    sampling: dict[str, Any]
    extra_body: dict[str, Any]
    overflow: Literal["error", "split"]
    fit: Literal["auto", "error"]


@dataclass
class PreparedRequest:
    """One chat request ready to send (``client.prepare(...)``), and what went into it.

    :meth:`body` is what goes on the wire (the openai ``chat.completions.create`` arguments);
    the rest are the figures an :class:`~glyph_render.client.answer.Answer` reports.
    """

    model: str
    messages: list[dict[str, Any]]
    pages: list[RenderedPage]
    predicted_prompt_tokens: int
    payload_bytes: int
    options: _Options = field(repr=False)
    timings: dict[str, float | None] = field(default_factory=dict)
    dpi: float | None = None
    text_tokens: int = 0  # what the document costs as text, for the answer's ratio
    budget: int | None = None
    started: float = field(default_factory=time.perf_counter)
    part: tuple[int, int] | None = None  # (k, N): chunk k of a document split in N

    def body(self, *, stream: bool = False) -> dict[str, Any]:
        """The request's arguments: Glyph's sampling, extras in ``extra_body``, thinking."""
        o = self.options
        args: dict[str, Any] = {"model": self.model, "messages": self.messages,
                                "max_tokens": o.max_tokens}
        extra = dict(o.extra_body)
        for k, v in o.sampling.items():
            if v is None:
                continue
            if k in _OPENAI_FIELDS:
                args[k] = v
            else:
                extra.setdefault(k, v)
        if o.thinking is not None:
            kwargs = dict(extra.get("chat_template_kwargs") or {})
            kwargs.setdefault("enable_thinking", o.thinking)
            extra["chat_template_kwargs"] = kwargs
        if stream:
            args["stream"] = True
            args["stream_options"] = {"include_usage": True}
        if extra:
            args["extra_body"] = extra
        return args


def _encode_page(img: Any, dpi: float | None) -> tuple[str, float]:
    """PNG + base64 data URL of one page (thread pool: zlib releases the GIL)."""
    t0 = time.perf_counter()
    url = "data:image/png;base64," + base64.b64encode(encode_png(img, dpi)).decode("ascii")
    return url, time.perf_counter() - t0


def _png_url(png: bytes) -> tuple[str, float]:
    t0 = time.perf_counter()
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return url, time.perf_counter() - t0


def _png_size(png: bytes) -> tuple[int, int]:
    if len(png) < 24 or not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise InputError("a page given as bytes must be a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


#: page images on disk: a file, a folder or a glob pattern, or a list of them
PageFiles = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _natural(path: Path) -> list[Any]:
    """page_2 before page_10, whatever the zero padding."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def page_files(specs: PageFiles) -> list[Path]:
    """The page images ``specs`` name, in page order: each entry a file, a folder (its
    ``.png``/``.jpg``/``.webp`` files, as ``glyph-render render`` or Glyph's ``text_to_images``
    wrote them) or a glob pattern (``out/page_*.png``), sorted by page number. A name that
    matches nothing is an :class:`~glyph_render.errors.InputError`."""
    items = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    out: list[Path] = []
    for spec in items:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = [f for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES
                     and f.is_file()]
            if not found:
                raise InputError(f"{p}: no page images (.png, .jpg, .webp) in this folder")
        elif p.is_file():
            found = [p]
        elif glob.has_magic(str(p)):
            found = [Path(f) for f in glob.glob(str(p)) if Path(f).is_file()]
            if not found:
                raise InputError(f"{spec}: no file matches this pattern")
        else:
            raise InputError(f"{spec}: no such file or folder")
        out.extend(sorted(found, key=_natural))
    if not out:
        raise InputError("no page images given")
    return out


def _image_file(path: Path, local_media: bool) -> tuple[int, int, str, float]:
    """Width, height and URL of one page image on disk: ``file://`` (the server reads it)
    or a base64 data URL; the seconds spent."""
    from PIL import Image, UnidentifiedImageError

    t0 = time.perf_counter()
    try:
        with Image.open(path) as im:  # the header only: no pixels are decoded
            width, height = im.size
            mime = _MIME.get(im.format or "")
        if mime is None:
            raise InputError(f"{path}: a {im.format} image; pages must be PNG, JPEG or WebP")
        if local_media:
            url = path.resolve().as_uri()
        else:
            url = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: cannot read it as an image "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    return width, height, url, time.perf_counter() - t0


def _display_url(url: str) -> str:
    """The endpoint without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


# Routes a user may paste instead of the base URL (Glyph's scripts post to the full
# ``.../v1/chat/completions``); the base URL is what comes before them.
_API_ROUTES = ("/chat/completions", "/completions", "/models")


def normalise_base_url(url: str) -> str:
    """The OpenAI base URL (``http://host:port/v1``) of what a user gave: a bare host, a
    root URL, the base URL itself, or a full route such as ``.../v1/chat/completions``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for route in _API_ROUTES:
        if path.endswith(route):
            path = path[: -len(route)]
            break
    if path in ("", "/"):
        path = "/v1"  # vLLM and SGLang serve the OpenAI API under /v1
    return urlunsplit(parts._replace(path=path))



class ReplyBody:
    """A reply's bytes as they arrive, held within ``limit`` bytes and the call's deadline.

    Why not the HTTP library's own reading: it reads a body whole (a 400 MB reply is in memory
    before anything can refuse it) and its timeout is per read (a server trickling a byte a
    second never trips it). :meth:`feed` keeps a plain body; :meth:`lines` splits a stream
    into its lines (a line never completes: the limit still holds).
    """

    def __init__(self, url: str, limit: int | None, headers: Any,
                 past_deadline: Callable[[], Exception] | None = None,
                 deadline: Deadline | None = None) -> None:
        self.url = url
        self.limit = limit
        self.size = 0
        self._buf = bytearray()
        self._deadline = deadline
        self._past_deadline = past_deadline
        declared = headers.get("content-length") if headers is not None else None
        if limit is not None and declared is not None and declared.strip().isdigit() \
                and int(declared) > limit:
            raise self._too_large(int(declared), "declared by its Content-Length")

    def _too_large(self, size: int, how: str) -> ReplyTooLarge:
        return ReplyTooLarge(
            f"the reply from {self.url} is larger than the limit of {self.limit:,} bytes "
            f"({size:,} bytes {how}); refused unread (raise max_reply_bytes / --max-reply-mb "
            "if such replies are expected)", url=self.url, limit=self.limit, size=size)

    def _take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise self._too_large(self.size, "arrived before reading stopped")
        if self._deadline is not None and self._deadline.expired() \
                and self._past_deadline is not None:
            raise self._past_deadline()
        self._buf += chunk

    def feed(self, chunk: bytes) -> None:
        """One chunk of a plain body."""
        self._take(chunk)

    @property
    def data(self) -> bytes:
        return bytes(self._buf)

    def lines(self, chunk: bytes) -> list[str]:
        """One chunk of a stream: the lines it completes (CR, LF or CRLF ended)."""
        self._take(chunk)
        parts = bytes(self._buf).splitlines(keepends=True)
        rest = parts.pop() if parts and not parts[-1].endswith((b"\n", b"\r")) else b""
        self._buf = bytearray(rest)
        return [p.rstrip(b"\r\n").decode("utf-8", "replace") for p in parts]

    def rest(self) -> list[str]:
        """The last line of a stream that ended without a line break."""
        tail, self._buf = bytes(self._buf), bytearray()
        return [tail.decode("utf-8", "replace")] if tail else []


class RedirectBody(ReplyBody):
    """A redirect's body, held to ``limit`` bytes and the call's deadline.

    httpx reads a redirect's body whole before it follows the redirect (openai's HTTP client
    follows them), so a 3xx with a 400 MB or endless body would be read into memory with no
    bound. The faces' response hooks put this in place of the response's stream: the same
    checks as any reply's body (:class:`ReplyBody`: its Content-Length, then the bytes as they
    arrive, and the deadline), at an error reply's limit, in the stream httpx reads.
    """

    def __init__(self, response: Any, limit: int, url: str, bound: Deadline | None,
                 past_deadline: Callable[[], Exception]) -> None:
        self._stream = response.stream
        self._what = f"the redirect (HTTP {response.status_code}) from {url}"
        super().__init__(url, limit, response.headers, past_deadline, bound)

    def _too_large(self, size: int, how: str) -> ReplyTooLarge:
        return ReplyTooLarge(
            f"{self._what} carries a body over {self.limit:,} bytes ({size:,} bytes {how}); "
            "refused unread (a redirect's body is discarded: point the client at the URL it "
            "redirects to)", url=self.url, limit=self.limit, size=size)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self.feed(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()

    async def aclose(self) -> None:
        await self._stream.aclose()


@functools.cache
def _redirect_body_class(library: str) -> type[RedirectBody]:
    """:class:`RedirectBody` as a byte stream of the HTTP library that made the response
    (openai's client is httpx, or its successor httpx2 in newer openai releases): the
    library checks a response's stream against its own stream classes."""
    lib = importlib.import_module(library)
    return type("RedirectBody", (RedirectBody, lib.SyncByteStream, lib.AsyncByteStream), {})


def first_page(answer: Answer) -> int:
    return answer.pages[0].number


def timed(req: PreparedRequest, t_send: float, first: float | None,
          plan: float | None) -> dict[str, float | None]:
    """An answer's timings: planning, the request, the first token, the whole call."""
    now = time.perf_counter()
    return {"plan": plan, "request": now - t_send,
            "first_token": (first - t_send) if first is not None else None,
            "total": now - req.started}


class StreamShown:
    """The progress of one streamed reply: ``first_token`` once, then ``streaming`` at most
    twice a second (a delta may be one token; the hook need not see each)."""

    INTERVAL = 0.5

    def __init__(self, core: ClientCore, req: PreparedRequest, t_send: float) -> None:
        self._core, self._t_send = core, t_send
        self._part = req.part or (None, None)
        self._n, self._last = 0, t_send

    def delta(self) -> None:
        if self._core.progress is None:
            return
        self._n += 1
        now = time.perf_counter()
        k, n = self._part
        if self._n == 1:
            self._core._emit("first_token", seconds=now - self._t_send, part=k, parts=n)
        elif now - self._last < self.INTERVAL:
            return
        else:
            self._core._emit("streaming", done=self._n, seconds=now - self._t_send, part=k,
                             parts=n)
        self._last = now


class ClientCore:
    """Everything the sync and async clients share, none of it I/O: settings, fitting,
    rendering, request building, reply reading and error translation."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 model: str | None = None, max_model_len: int | None = None,
                 profile: str | VisionProfile = "glyph",
                 tokenizer: str | TextTokenizer | None = None,
                 system: str | None = None, thinking: bool | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, sampling: dict[str, Any] | None = None,
                 extra_body: dict[str, Any] | None = None,
                 overflow: Literal["error", "split"] = "split",
                 fit: Literal["auto", "error"] = "auto", timeout: float = 600.0,
                 deadline: float | None = DEFAULT_DEADLINE,
                 max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 30.0,
                 max_retry_after: float = 120.0, max_concurrency: int = 4,
                 encode_workers: int | None = None,
                 min_px_per_em: float | None = None,
                 max_dpi: float = DEFAULT_MAX_DPI,
                 progress: ProgressCallback | None = None,
                 local_media: bool = False) -> None:
        raw = base_url or os.environ.get("GLYPH_BASE_URL") or os.environ.get(
            "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = normalise_base_url(raw)
        self.url = _display_url(self.base_url)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._secrets = (key,)
        self._api_key = key
        self.profile = get_profile(profile)
        self.tokenizer = get_tokenizer(self.profile.text_tokenizer if tokenizer is None
                                       else tokenizer)
        self.timeout = check_number("timeout", timeout)
        self.deadline = None if deadline is None else check_number("deadline", deadline)
        if max_reply_bytes is not None and (isinstance(max_reply_bytes, bool) or not isinstance(
                max_reply_bytes, int) or max_reply_bytes < 1):
            raise ConfigError(f"max_reply_bytes must be a whole number >= 1 or None, got "
                              f"{max_reply_bytes!r}")
        self.max_reply_bytes = max_reply_bytes
        self.policy = RetryPolicy(max_retries, backoff, max_backoff, max_retry_after)
        if overflow not in ("error", "split"):
            raise ConfigError(f"overflow must be 'error' or 'split', got {overflow!r}")
        if fit not in ("auto", "error"):
            raise ConfigError(f"fit must be 'auto' or 'error', got {fit!r}")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self.min_px_per_em = min_px_per_em
        self.max_dpi = max_dpi
        self.progress = progress
        self.local_media = local_media
        self._defaults = _Options(system, thinking, max_tokens, {**GLYPH_SAMPLING,
                                  **(sampling or {})}, dict(extra_body or {}), overflow, fit)
        self._model = model
        self._max_model_len = max_model_len
        self._info: ModelInfo | None = (ModelInfo(model, max_model_len)
                                        if model and max_model_len else None)
        self._info_lock = threading.Lock()
        self._workers = encode_workers or min(8, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        """The face's HTTP client (openai's sync or async one)."""
        raise NotImplementedError

    def __repr__(self) -> str:  # never the key
        model = self._info.name if self._info else self._model
        return f"{type(self).__name__}(base_url={self.url!r}, model={model!r})"

    # --- settings ------------------------------------------------------------------------

    def _options(self, *, system: str | None = None, thinking: bool | None = None,
                 max_tokens: int | None = None, sampling: dict[str, Any] | None = None,
                 extra_body: dict[str, Any] | None = None, overflow: str | None = None,
                 fit: str | None = None) -> _Options:
        d = self._defaults
        o = _Options(
            system=d.system if system is None else system,
            thinking=d.thinking if thinking is None else thinking,
            max_tokens=d.max_tokens if max_tokens is None else max_tokens,
            sampling={**d.sampling, **(sampling or {})},
            extra_body={**d.extra_body, **(extra_body or {})},
            overflow=(overflow or d.overflow), fit=(fit or d.fit),  # type: ignore[arg-type]
        )
        if isinstance(o.max_tokens, bool) or not isinstance(o.max_tokens, int) \
                or o.max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive whole number, got {o.max_tokens!r}")
        return o

    def _pages_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="glyph-encode")
            return self._pool

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # --- progress ----------------------------------------------------------------------------

    def _emit(self, stage: str, **fields: Any) -> None:
        """Tell the progress hook (see :mod:`.progress`), if there is one."""
        if self.progress is not None:
            self.progress(Progress(stage, **fields))

    def _emit_sending(self, req: PreparedRequest) -> float:
        """``upload`` then ``waiting`` for a request about to go out; the send time."""
        k, n = req.part or (None, None)
        self._emit("upload", pages=len(req.pages), bytes=req.payload_bytes,
                   tokens=req.predicted_prompt_tokens, part=k, parts=n)
        self._emit("waiting", part=k, parts=n)
        return time.perf_counter()

    def _emit_answered(self, req: PreparedRequest, t_send: float) -> None:
        k, n = req.part or (None, None)
        self._emit("answered", seconds=time.perf_counter() - t_send, part=k, parts=n)

    def _pick_model(self, data: Any) -> ModelInfo:
        """The model entry of a ``/v1/models`` body (vLLM adds ``max_model_len`` to each)."""
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise MalformedReply(f"{self.url}/models did not list models: {str(data)[:160]}",
                                 url=self.url)
        ids = [e.get("id") for e in entries if isinstance(e, dict)]
        if self._model is not None:
            entry = next((e for e in entries if isinstance(e, dict)
                          and e.get("id") == self._model), None)
            if entry is None:
                raise RequestRejected(f"{self.url} does not serve model {self._model!r}; it "
                                      f"serves {', '.join(map(str, ids)) or 'nothing'}",
                                      url=self.url)
        elif entries and isinstance(entries[0], dict) and isinstance(entries[0].get("id"), str):
            entry = entries[0]
        else:
            raise RequestRejected(f"{self.url} serves no models", url=self.url)
        mml = self._max_model_len or entry.get("max_model_len") or entry.get("context_length")
        return ModelInfo(entry["id"], mml if isinstance(mml, int) and mml > 0 else None)

    def _model_without_listing(self, exc: RequestRejected) -> ModelInfo:
        """When ``/v1/models`` is missing (404) but a model name was given."""
        if exc.status_code != 404:
            raise exc
        if self._model is None:
            raise RequestRejected(f"{self.url} has no /models listing; pass the model name",
                                  url=self.url)
        return ModelInfo(self._model, self._max_model_len)

    # --- fitting and rendering (CPU; the async client runs these in a thread) --------------

    def _fit(self, text: str, question: str, o: _Options, info: ModelInfo, *,
             config: RenderConfig | None, dpi: float | None, budget: int | None) -> ContextFit:
        """The rendering and the chunks (see :func:`~glyph_render.compress.fit_to_context`)."""
        if dpi is not None and budget is not None:
            raise ConfigError("give dpi or budget, not both")
        job = fit_to_context(
            text, question, config=config, profile=self.profile, tokenizer=self.tokenizer,
            max_context=info.max_model_len, max_tokens=o.max_tokens, system=o.system,
            model_name=info.name, dpi=dpi, budget=budget, fit=o.fit, overflow=o.overflow,
            min_px_per_em=self.min_px_per_em, max_dpi=self.max_dpi,
            chunk_question=longest_map_question(question))
        if job.configured is not None:  # said now: before anything is rendered or sent
            pages, from_dpi, need = job.configured
            self._emit("replan", from_pages=pages, from_dpi=from_dpi, from_tokens=need,
                       context=info.max_model_len, answer_tokens=o.max_tokens,
                       model=info.name, pages=job.pages,
                       dpi=job.config.dpi, parts=len(job.spans))
        return job

    def _render(self, text: str, cfg: RenderConfig, total: int | None = None
                ) -> tuple[list[RenderedPage], list[tuple[str, float]], float]:
        """All pages of ``text``, rastered here and PNG-encoded in the pool meanwhile."""
        pool = self._pages_pool()
        window = 2 * self._workers + 2  # pages rastered ahead of the encoder, at most
        pages: list[RenderedPage] = []
        futures: list[Future[tuple[str, float]]] = []
        t0 = time.perf_counter()
        for rp in iter_pages(text, cfg, profile=self.profile, encode=False, keep_image=True):
            futures.append(pool.submit(_encode_page, rp.image, cfg.dpi))
            rp.image = None
            pages.append(rp)
            self._emit("render", done=len(pages), total=total or None)
            if len(futures) > window:
                futures[-window - 1].result()
        t_render = time.perf_counter() - t0
        return pages, [f.result() for f in futures], t_render

    def _build(self, pages: list[RenderedPage], urls: list[str], question: str, o: _Options,
               info: ModelInfo, timings: dict[str, float | None], *, dpi: float | None = None,
               check_context: bool = True, text_tokens: int = 0, budget: int | None = None,
               started: float | None = None) -> PreparedRequest:
        """Messages for pages + question, priced and (unless told not to) checked against
        the context."""
        t0 = time.perf_counter()
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": u}} for u in urls]
        content.append({"type": "text", "text": question})
        messages: list[dict[str, Any]] = []
        if o.system is not None:
            messages.append({"role": "system", "content": o.system})
        messages.append({"role": "user", "content": content})
        predicted = prompt_tokens([(p.width, p.height) for p in pages], question,
                                  profile=self.profile, system=o.system,
                                  tokenizer=self.tokenizer)
        payload = sum(len(u) for u in urls) + len(question.encode("utf-8")) + len(
            (o.system or "").encode("utf-8"))
        timings = {**timings, "build": time.perf_counter() - t0}
        ctx = info.max_model_len
        if check_context and ctx is not None and predicted + o.max_tokens > ctx:
            fitting = self._fitting_budget(pages, predicted, ctx, o)
            raise ContextOverflow(
                f"the prompt would take {predicted:,} tokens plus {o.max_tokens:,} for the "
                f"answer, over {info.name}'s context of {ctx:,}"
                + (f"; a vision-token budget of {fitting:,} would fit (budget={fitting})"
                   if fitting > 0 else "; shorten the question or max_tokens"),
                prompt_tokens=predicted, max_context=ctx, fitting_budget=fitting)
        return PreparedRequest(info.name, messages, pages, predicted, payload, o, timings, dpi,
                               text_tokens, budget, t0 if started is None else started)

    def _fitting_budget(self, pages: list[RenderedPage], prompt: int, ctx: int,
                        o: _Options) -> int:
        """The budget (as :func:`compress` counts it: image tokens + wrappers) that would fit
        beside the rest of a prompt priced at ``prompt`` tokens, and the answer."""
        images = sum(p.vision_tokens + self.profile.image_wrapper_tokens for p in pages)
        return ctx - o.max_tokens - (prompt - images)

    def _prepare_text(self, text: str, job: ContextFit, question: str, o: _Options,
                      info: ModelInfo, started: float) -> list[PreparedRequest]:
        """One request per chunk (one for a document that fits), all checked before any goes.

        The document is rendered whole and its pages grouped by chunk, so every page is exactly
        the page the plan priced (a chunk laid out on its own may break differently).
        """
        pages, encoded, t_render = self._render(text, job.config, job.pages)
        n = len(job.spans)
        groups: list[list[int]] = [[] for _ in range(n)]
        k = 0
        for i, page in enumerate(pages):
            while k + 1 < n and page.start >= job.spans[k + 1][0]:
                k += 1
            groups[k].append(i)
        groups = [g for g in groups if g]
        out = []
        for k, members in enumerate(groups):
            share = len(members) / len(pages)
            q = question if n == 1 else MAP_PROMPT.format(question=question, part=k + 1,
                                                          parts=len(groups))
            timings = {"render": t_render * share,
                       "encode": sum(encoded[i][1] for i in members)}
            req = self._build(
                [pages[i] for i in members], [encoded[i][0] for i in members], q, o, info,
                timings, dpi=job.config.dpi, text_tokens=job.text_tokens if n == 1 else 0,
                budget=job.budget, started=started if n == 1 else None)
            if len(groups) > 1:
                req.part = (k + 1, len(groups))
            out.append(req)
        return out

    def _prepare_pages(self, pages: Sequence[RenderedPage | bytes], question: str,
                       o: _Options, info: ModelInfo, *, check_context: bool = True,
                       text_tokens: int = 0, started: float | None = None) -> PreparedRequest:
        """Already rendered pages (RenderedPage with png or image, or PNG bytes); none for a
        text-only question."""
        pool = self._pages_pool()
        futures: list[Future[tuple[str, float]]] = []
        out: list[RenderedPage] = []
        for i, page in enumerate(pages, 1):
            if isinstance(page, (bytes, bytearray)):
                w, h = _png_size(bytes(page))
                futures.append(pool.submit(_png_url, bytes(page)))
                out.append(RenderedPage(i, 0, 0, 0, w, h, image_tokens(w, h, self.profile)))
            elif page.png is not None:
                futures.append(pool.submit(_png_url, page.png))
                out.append(replace(page, png=None, image=None))
            elif page.image is not None:
                futures.append(pool.submit(_encode_page, page.image, None))
                out.append(replace(page, png=None, image=None))
            else:
                raise InputError(f"page {i} has neither PNG bytes nor an image")
        done = [f.result() for f in futures]
        timings: dict[str, float | None] = (
            {"render": 0.0, "encode": sum(s for _, s in done)} if pages else {})
        return self._build(out, [u for u, _ in done], question, o, info, timings,
                           check_context=check_context, text_tokens=text_tokens,
                           started=started)

    def _prepare_files(self, paths: list[Path], question: str, o: _Options, info: ModelInfo,
                       *, local_media: bool, started: float,
                       check_context: bool = True) -> PreparedRequest:
        """Page images on disk, priced from their sizes; ``file://`` URLs when the server
        may read local media, else base64 (read in the pool)."""
        pool = self._pages_pool()
        done = list(pool.map(lambda p: _image_file(p, local_media), paths))
        pages = [RenderedPage(i, 0, 0, 0, w, h, image_tokens(w, h, self.profile))
                 for i, (w, h, _, _) in enumerate(done, 1)]
        timings: dict[str, float | None] = {"render": 0.0, "encode": sum(d[3] for d in done)}
        return self._build(pages, [d[2] for d in done], question, o, info, timings,
                           check_context=check_context, started=started)

    def _reduce_request(self, question: str, parts: list[Answer], o: _Options,
                        info: ModelInfo, started: float) -> PreparedRequest:
        answers = "\n\n".join(
            f"Part {i} (characters {p.pages[0].start:,}-{p.pages[-1].end:,}): "
            f"{p.text or '(no answer)'}" for i, p in enumerate(parts, 1))
        q = REDUCE_PROMPT.format(parts=len(parts), answers=answers, question=question)
        try:
            return self._build([], [], q, o, info, {}, started=started)
        except ContextOverflow as exc:
            raise ContextOverflow(
                f"the {len(parts)} partial answers are too long to combine in one call: "
                f"{exc}; lower max_tokens or ask a narrower question",
                prompt_tokens=exc.prompt_tokens, max_context=exc.max_context) from None

    @staticmethod
    def _check_pages(pages: Sequence[Any], required: bool) -> None:
        if required and not pages:
            raise InputError("no pages to ask about")

    # --- replies and errors ----------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, req: PreparedRequest | None = None,
                    acc: StreamAccumulator | None = None,
                    bound: Deadline | None = None) -> Iterator[None]:
        """The one place a failure of openai/httpx becomes a :class:`ClientError`. Past the
        call's deadline ``bound``: :class:`DeadlineExceeded`. With ``acc`` (reading a stream):
        silence after the stream started is :class:`StreamStalled`, a cut is
        :class:`StreamDropped`, both with the partial text."""
        try:
            yield
        except ClientError:
            raise
        except Exception as exc:
            if bound is not None and bound.expired():
                raise self._past_deadline(bound, acc) from None
            err = classify(exc, self.url, self.timeout, self._secrets,
                           self._overflow_budget(req), streaming=acc is not None)
            if err is None:
                raise
            if acc is not None and isinstance(err, RequestTimeout) and acc.events:
                raise self._partial(StreamStalled, acc, (
                    f"the stream from {self.url} stalled: nothing for {self.timeout:g} s after "
                    f"{acc.events} events (raise the timeout if the model pauses that long)")
                ) from None
            if acc is not None and (isinstance(err, MalformedReply) or err.retryable):
                raise self._partial(StreamDropped, acc, (
                    f"the stream from {self.url} was cut mid-way, after {acc.events} events "
                    f"({reason(exc)})")) from None
            raise err from None

    def _partial(self, cls: type[Any], acc: StreamAccumulator | None, message: str,
                 **kw: Any) -> Any:
        """An error of ``cls`` carrying what a stream had delivered."""
        text, reasoning = split_reasoning("".join(acc.content), "".join(acc.reasoning)) \
            if acc is not None else ("", "")
        return cls(message, url=self.url, partial_text=text, partial_reasoning=reasoning, **kw)

    def _bound(self) -> Deadline:
        """A new call's deadline."""
        return Deadline(self.deadline)

    def _past_deadline(self, bound: Deadline, acc: StreamAccumulator | None = None
                       ) -> DeadlineExceeded:
        what = (f"the stream had sent {acc.events} events" if acc is not None
                else "no complete reply")
        return self._partial(DeadlineExceeded, acc, (
            f"{self.url} did not finish within the deadline of {bound.limit:g} s ({what}); "
            "raise deadline / --deadline for longer answers"), deadline=bound.limit)

    def _reply_body(self, headers: Any, bound: Deadline,
                    acc: StreamAccumulator | None = None) -> ReplyBody:
        """A reader of one reply's body within this client's size limit and ``bound``."""
        return ReplyBody(self.url, self.max_reply_bytes, headers,
                         lambda: self._past_deadline(bound, acc), bound)

    def _bound_redirect(self, response: Any, bound: Deadline | None) -> None:
        """For the faces' response hooks: a redirect's body (which httpx reads whole before
        following it) held to :meth:`_error_body_limit` bytes and ``bound``."""
        if 300 <= response.status_code < 400 and response.has_redirect_location:
            cls = _redirect_body_class(type(response).__module__.partition(".")[0])
            response.stream = cls(
                response, self._error_body_limit(), self.url, bound,
                functools.partial(self._past_deadline, bound))  # called only with a bound

    def _error_body_limit(self) -> int:
        """How much of a non-2xx reply's body the faces' response hooks read before they
        hang up: the error's message is at its start, and openai would read it whole."""
        return min(ERROR_BODY_BYTES, self.max_reply_bytes or ERROR_BODY_BYTES)

    def _overflow_budget(self, req: PreparedRequest | None
                         ) -> Callable[[Overflow], int | None]:
        """For a server's context-overflow reply: the budget that would have fit."""
        def fits(over: Overflow) -> int | None:
            if req is None or not req.pages:
                return None
            prompt = (over.prompt_tokens if over.prompt_tokens is not None
                      else req.predicted_prompt_tokens)
            return self._fitting_budget(req.pages, prompt, over.max_context, req.options)
        return fits

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace")
            raise MalformedReply(f"the reply from {self.url} is not JSON ({len(text)} "
                                 f"characters: {text[:120]!r})", url=self.url) from None

    def _answer(self, reply: Reply, req: PreparedRequest, timings: dict[str, Any]) -> Answer:
        text, reasoning = split_reasoning(reply.content, reply.reasoning)
        return Answer(
            text=text, reasoning=reasoning, finish_reason=reply.finish_reason,
            model=reply.model or req.model, usage=reply.usage,
            predicted_prompt_tokens=req.predicted_prompt_tokens, pages=req.pages,
            timings={**req.timings, **timings}, payload_bytes=req.payload_bytes,
            text_tokens=req.text_tokens, dpi=req.dpi, budget=req.budget,
        )

    def _combine(self, final: Answer, parts: list[Answer], job: ContextFit,
                 t_start: float) -> Answer:
        """The combining call's answer, carrying every part's pages, costs and timings."""
        final.parts = parts
        final.pages = [p for a in parts for p in a.pages]
        final.payload_bytes += sum(a.payload_bytes for a in parts)
        final.text_tokens = job.text_tokens
        final.dpi = job.config.dpi
        final.budget = job.budget
        for key in ("render", "encode", "build"):
            final.timings[key] = sum((a.timings.get(key) or 0.0) for a in [final, *parts])
        final.timings["plan"] = job.seconds
        final.timings["total"] = time.perf_counter() - t_start
        return final

    def stream_reader(self, request: PreparedRequest) -> StreamAccumulator:
        """A reader for :meth:`stream_lines`' lines: ``line()`` gives the events, ``close()``
        checks the stream ended, ``reply()`` the whole reply; error events inside the stream
        become the same errors as a plain reply's (vLLM sends ``data: {"error": {...}}``)."""
        def make(obj: dict[str, Any]) -> Exception:
            err = obj.get("error")
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            return status_error(status, obj, None, self.url, self._secrets,
                                self._overflow_budget(request))
        return StreamAccumulator(self.url, make)

    def _done(self, reader: StreamAccumulator, req: PreparedRequest, t_send: float,
              first: float | None, job: ContextFit | None, parts: list[Answer]) -> StreamEvent:
        """A finished stream's last event, with its :class:`Answer` (combined with the parts'
        when the document was split)."""
        answer = self._answer(reader.reply(), req,
                              timed(req, t_send, first, job.seconds if job else None))
        if parts and job is not None:
            answer = self._combine(answer, parts, job, req.started)
        return StreamEvent("done", answer.text, answer)
