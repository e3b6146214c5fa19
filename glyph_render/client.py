"""Ask a Glyph endpoint (vLLM or SGLang, OpenAI-compatible) about a long text.

The text is rendered into pages, the pages are sent as Glyph expects them (one user message: the
page images in order as ``data:image/png;base64`` URLs, then the question), and the reply comes
back as an :class:`~glyph_render.answer.Answer` with the reasoning kept apart.

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

Reliability: see :mod:`glyph_render.reliability` (429/5xx retried with backoff, everything else
raised at once as one of the ``ClientError`` types in :mod:`glyph_render.errors`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import openai

from .answer import Answer, Reply, StreamAccumulator, StreamEvent, parse_completion, split_reasoning
from .compress import DEFAULT_MAX_DPI, Plan, compress, context_budget
from .config import RenderConfig, detect_preset
from .document import check_text
from .encode import encode_png
from .errors import (
    BudgetError,
    ClientError,
    ConfigError,
    ContextOverflow,
    InputError,
    MalformedReply,
    RequestRejected,
)
from .layout import layout
from .reliability import (
    Overflow,
    RetryPolicy,
    classify,
    reason,
    retry_async,
    retry_sync,
    status_error,
)
from .render import RenderedPage, iter_pages, page_sizes
from .text_tokens import TextTokenizer, get_tokenizer
from .vision_tokens import VisionProfile, get_profile, image_tokens, prompt_tokens

__all__ = ["AsyncGlyphClient", "GlyphClient", "ModelInfo", "compress_and_ask"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
#: Glyph's published sampling settings (top_k and repetition_penalty travel in extra_body).
GLYPH_SAMPLING: dict[str, Any] = {"temperature": 0.0001, "top_p": 1.0, "top_k": 1,
                                  "repetition_penalty": 1.1}
DEFAULT_MAX_TOKENS = 8192
# Fields the openai client takes as arguments; any other sampling field goes in extra_body.
_OPENAI_FIELDS = frozenset({
    "temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "n",
    "logit_bias", "logprobs", "top_logprobs", "response_format", "user",
})
MAP_PROMPT = ("{question}\n\n(These pages are part {part} of {parts} of a longer document; "
              "answer from them alone, or say that this part does not contain the answer.)")
REDUCE_PROMPT = ("Partial answers to the question below, one from each of {parts} consecutive "
                 "parts of a document, in order:\n\n{answers}\n\nQuestion: {question}\n"
                 "Combine them into one answer to the question, ignoring the parts that did not "
                 "contain it.")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    config: RenderConfig | None = None
    dpi: float | None = None
    budget: int | None = None


@dataclass
class _Job:
    """What to render: the config and the source spans, one per request (one unless split)."""

    config: RenderConfig
    spans: list[tuple[int, int]]
    text_tokens: int
    budget: int | None
    seconds: float


@dataclass
class _Request:
    """One chat request ready to send, and what went into it."""

    messages: list[dict[str, Any]]
    pages: list[RenderedPage]
    predicted: int
    payload_bytes: int
    timings: dict[str, float | None] = field(default_factory=dict)
    dpi: float | None = None


def _encode_page(img: Any, dpi: float) -> tuple[str, float]:
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


def _display_url(url: str) -> str:
    """The endpoint without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


def _normalise_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if urlsplit(url).path in ("", "/"):
        url += "/v1"  # vLLM and SGLang serve the OpenAI API under /v1
    return url


class _ClientCore:
    """Everything the sync and async clients share: settings, planning, rendering, parsing."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 model: str | None = None, max_model_len: int | None = None,
                 profile: str | VisionProfile = "glyph",
                 tokenizer: str | TextTokenizer | None = None,
                 system: str | None = None, thinking: bool | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, sampling: dict[str, Any] | None = None,
                 extra_body: dict[str, Any] | None = None,
                 overflow: Literal["error", "split"] = "split",
                 fit: Literal["auto", "error"] = "auto", timeout: float = 600.0,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 30.0,
                 max_retry_after: float = 120.0, max_concurrency: int = 4,
                 encode_workers: int | None = None,
                 min_px_per_em: float | None = None,
                 max_dpi: float = DEFAULT_MAX_DPI) -> None:
        raw = base_url or os.environ.get("GLYPH_BASE_URL") or os.environ.get(
            "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = _normalise_base_url(raw)
        self.url = _display_url(self.base_url)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._secrets = (key,)
        self._api_key = key
        self.profile = get_profile(profile)
        self.tokenizer = get_tokenizer(self.profile.text_tokenizer if tokenizer is None
                                       else tokenizer)
        self.timeout = timeout
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

    def __repr__(self) -> str:  # never the key
        model = self._info.name if self._info else self._model
        return f"{type(self).__name__}(base_url={self.url!r}, model={model!r})"

    # --- settings ------------------------------------------------------------------------

    def _options(self, *, config: RenderConfig | None = None, dpi: float | None = None,
                 budget: int | None = None, system: str | None = None,
                 thinking: bool | None = None, max_tokens: int | None = None,
                 overflow: str | None = None, fit: str | None = None,
                 extra_body: dict[str, Any] | None = None, **sampling: Any) -> _Options:
        d = self._defaults
        o = _Options(
            system=d.system if system is None else system,
            thinking=d.thinking if thinking is None else thinking,
            max_tokens=d.max_tokens if max_tokens is None else max_tokens,
            sampling={**d.sampling, **sampling},
            extra_body={**d.extra_body, **(extra_body or {})},
            overflow=(overflow or d.overflow), fit=(fit or d.fit),  # type: ignore[arg-type]
            config=config, dpi=dpi, budget=budget,
        )
        if isinstance(o.max_tokens, bool) or not isinstance(o.max_tokens, int) \
                or o.max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive whole number, got {o.max_tokens!r}")
        if dpi is not None and budget is not None:
            raise ConfigError("give dpi or budget, not both")
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

    def _info_without_models(self) -> ModelInfo:
        """When ``/v1/models`` is missing (404) but a model name was given."""
        if self._model is None:
            raise RequestRejected(f"{self.url} has no /models listing; pass the model name",
                                  url=self.url)
        return ModelInfo(self._model, self._max_model_len)

    # --- planning and rendering (CPU; the async client runs these in a thread) -------------

    def _map_question(self, question: str, part: int, parts: int) -> str:
        return MAP_PROMPT.format(question=question, part=part, parts=parts)

    def _predict(self, sizes: Sequence[tuple[int, int]], question: str, o: _Options) -> int:
        return prompt_tokens(sizes, question, profile=self.profile, system=o.system,
                             tokenizer=self.tokenizer)

    def _plan(self, text: str, question: str, o: _Options, info: ModelInfo) -> _Job:
        """Choose the rendering and the chunks; raises ContextOverflow when nothing may fit."""
        t0 = time.perf_counter()
        check_text(text)
        cfg = o.config or RenderConfig.preset(detect_preset(text))
        if o.dpi is not None:
            cfg = cfg.replace(dpi=float(o.dpi))
        ctx = info.max_model_len
        fitting = None if ctx is None else self._context_budget(ctx, question, o, info)
        budget = o.budget
        if budget is None:
            sizes = page_sizes(list(layout(text, cfg)), cfg)
            need = self._predict(sizes, question, o)
            if ctx is None or need + o.max_tokens <= ctx:
                return _Job(cfg, [(0, len(text))], self.tokenizer.count(text), None,
                            time.perf_counter() - t0)
            if o.fit == "error":
                raise ContextOverflow(
                    f"the document needs {need:,} prompt tokens at {cfg.dpi:g} DPI plus "
                    f"{o.max_tokens:,} for the answer, over {info.name}'s context of {ctx:,}; "
                    f"a vision-token budget of {fitting:,} would fit (budget={fitting})",
                    prompt_tokens=need, max_context=ctx, fitting_budget=fitting)
            budget = fitting
        elif fitting is not None and o.fit == "auto":
            budget = min(budget, fitting)
        assert budget is not None
        try:
            plan = self._compress(text, cfg, budget, "error")
        except BudgetError as exc:
            if o.overflow == "error":
                if ctx is None:
                    raise
                raise ContextOverflow(f"the document does not fit {info.name}'s context of "
                                      f"{ctx:,} tokens: {exc}", max_context=ctx,
                                      fitting_budget=fitting) from None
            if ctx is not None:  # chunks carry a longer question: price the longest
                budget = min(budget, self._context_budget(
                    ctx, self._map_question(question, 9999, 9999), o, info))
            try:
                plan = self._compress(text, cfg, budget, "split")
            except BudgetError as exc2:
                if ctx is None:
                    raise
                raise ContextOverflow(f"the document cannot be split to fit {info.name}'s "
                                      f"context of {ctx:,} tokens: {exc2}", max_context=ctx,
                                      fitting_budget=fitting) from None
        spans = [(c.start, c.end) for c in plan.chunks] or [(0, len(text))]
        return _Job(plan.config, spans, plan.text_tokens, budget, time.perf_counter() - t0)

    def _context_budget(self, ctx: int, question: str, o: _Options, info: ModelInfo) -> int:
        try:
            return context_budget(ctx, question, o.max_tokens, model=self.profile,
                                  system=o.system, tokenizer=self.tokenizer)
        except BudgetError as exc:
            raise ContextOverflow(f"{exc}; lower max_tokens (model {info.name} at {self.url})",
                                  max_context=ctx) from None

    def _compress(self, text: str, cfg: RenderConfig, budget: int,
                  overflow: Literal["error", "split"]) -> Plan:
        return compress(text, budget, model=self.profile, config=cfg, tokenizer=self.tokenizer,
                        min_px_per_em=self.min_px_per_em, max_dpi=self.max_dpi,
                        overflow=overflow, per_image_tokens=self.profile.image_wrapper_tokens)

    def _render(self, text: str, cfg: RenderConfig
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
            if len(futures) > window:
                futures[-window - 1].result()
        t_render = time.perf_counter() - t0
        return pages, [f.result() for f in futures], t_render

    def _request(self, pages: list[RenderedPage], urls: list[str], question: str,
                 o: _Options, info: ModelInfo, timings: dict[str, float | None],
                 dpi: float | None) -> _Request:
        """Messages for pages + question, priced and checked against the context."""
        t0 = time.perf_counter()
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": u}} for u in urls]
        content.append({"type": "text", "text": question})
        messages: list[dict[str, Any]] = []
        if o.system is not None:
            messages.append({"role": "system", "content": o.system})
        messages.append({"role": "user", "content": content})
        predicted = self._predict([(p.width, p.height) for p in pages], question, o)
        payload = sum(len(u) for u in urls) + len(question.encode("utf-8")) + len(
            (o.system or "").encode("utf-8"))
        timings = {**timings, "build": time.perf_counter() - t0}
        ctx = info.max_model_len
        if ctx is not None and predicted + o.max_tokens > ctx:
            fitting = self._fitting_budget(pages, predicted, ctx, o)
            raise ContextOverflow(
                f"the prompt would take {predicted:,} tokens plus {o.max_tokens:,} for the "
                f"answer, over {info.name}'s context of {ctx:,}"
                + (f"; a vision-token budget of {fitting:,} would fit (budget={fitting})"
                   if fitting > 0 else "; shorten the question or max_tokens"),
                prompt_tokens=predicted, max_context=ctx, fitting_budget=fitting)
        return _Request(messages, pages, predicted, payload, timings, dpi)

    def _fitting_budget(self, pages: list[RenderedPage], prompt: int, ctx: int,
                        o: _Options) -> int:
        """The budget (as :func:`compress` counts it: image tokens + wrappers) that would fit
        beside the rest of a prompt priced at ``prompt`` tokens, and the answer."""
        images = sum(p.vision_tokens + self.profile.image_wrapper_tokens for p in pages)
        return ctx - o.max_tokens - (prompt - images)

    def _prepare_text(self, text: str, job: _Job, question: str, o: _Options,
                      info: ModelInfo) -> list[_Request]:
        """One request per chunk (one for a document that fits), all checked before any goes.

        The document is rendered whole and its pages grouped by chunk, so every page is exactly
        the page the plan priced (a chunk laid out on its own may break differently).
        """
        pages, encoded, t_render = self._render(text, job.config)
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
            q = question if n == 1 else self._map_question(question, k + 1, len(groups))
            timings = {"render": t_render * share,
                       "encode": sum(encoded[i][1] for i in members)}
            out.append(self._request([pages[i] for i in members],
                                     [encoded[i][0] for i in members], q, o, info, timings,
                                     job.config.dpi))
        return out

    def _prepare_pages(self, pages: Sequence[RenderedPage | bytes], question: str,
                       o: _Options, info: ModelInfo) -> _Request:
        """Already rendered pages (RenderedPage with png or image, or PNG bytes)."""
        if not pages:
            raise InputError("no pages to ask about")
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
        return self._request(out, [u for u, _ in done], question, o, info,
                             {"render": 0.0, "encode": sum(s for _, s in done)}, None)

    def _reduce_request(self, question: str, parts: list[Answer], o: _Options,
                        info: ModelInfo) -> _Request:
        answers = "\n\n".join(
            f"Part {i} (characters {p.pages[0].start:,}-{p.pages[-1].end:,}): "
            f"{p.text or '(no answer)'}" for i, p in enumerate(parts, 1))
        q = REDUCE_PROMPT.format(parts=len(parts), answers=answers, question=question)
        try:
            return self._request([], [], q, o, info, {}, None)
        except ContextOverflow as exc:
            raise ContextOverflow(
                f"the {len(parts)} partial answers are too long to combine in one call: "
                f"{exc}; lower max_tokens or ask a narrower question",
                prompt_tokens=exc.prompt_tokens, max_context=exc.max_context) from None

    # --- requests and replies ------------------------------------------------------------

    def _create_args(self, req: _Request, o: _Options, model: str, stream: bool) -> dict[str, Any]:
        args: dict[str, Any] = {"model": model, "messages": req.messages,
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

    def _overflow_budget(self, req: _Request | None,
                         o: _Options | None) -> Callable[[Overflow], int | None]:
        """For a server's context-overflow reply: the budget that would have fit."""
        def fits(over: Overflow) -> int | None:
            if req is None or o is None or not req.pages:
                return None
            prompt = over.prompt_tokens if over.prompt_tokens is not None else req.predicted
            return self._fitting_budget(req.pages, prompt, over.max_context, o)
        return fits

    def _classify(self, exc: BaseException, req: _Request | None, o: _Options | None,
                  streaming: bool = False) -> ClientError | None:
        return classify(exc, self.url, self.timeout, self._secrets,
                        self._overflow_budget(req, o), streaming=streaming)

    def _stream_error(self, req: _Request, o: _Options) -> Callable[[dict[str, Any]], Exception]:
        """An error event inside a stream (vLLM sends ``data: {"error": {...}}``)."""
        def make(obj: dict[str, Any]) -> Exception:
            err = obj.get("error")
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            return status_error(status, obj, None, self.url, self._secrets,
                                self._overflow_budget(req, o))
        return make

    def _json(self, response: Any) -> Any:
        try:
            return response.json()
        except ValueError:
            text = getattr(response, "text", "")
            raise MalformedReply(f"the reply from {self.url} is not JSON ({len(text)} "
                                 f"characters: {text[:120]!r})", url=self.url) from None

    def _answer(self, reply: Reply, req: _Request, info: ModelInfo, timings: dict[str, Any],
                text_tokens: int, budget: int | None) -> Answer:
        text, reasoning = split_reasoning(reply.content, reply.reasoning)
        return Answer(
            text=text, reasoning=reasoning, finish_reason=reply.finish_reason,
            model=reply.model or info.name, usage=reply.usage,
            predicted_prompt_tokens=req.predicted, pages=req.pages,
            timings={**req.timings, **timings}, payload_bytes=req.payload_bytes,
            text_tokens=text_tokens, dpi=req.dpi, budget=budget,
        )

    def _combine(self, final: Answer, parts: list[Answer], job: _Job,
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

    def _cut(self, exc: BaseException, acc: StreamAccumulator, req: _Request,
             o: _Options) -> Exception:
        """A failure while reading a stream: a timeout stays one, anything else is a cut."""
        err = self._classify(exc, req, o, streaming=True)
        if err is None:
            return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
        if isinstance(err, MalformedReply) or err.retryable:
            return acc.interrupted(f"the stream from {self.url} was cut mid-way, after "
                                   f"{acc.events} events ({reason(exc)})")
        return err


def _first_page(answer: Answer) -> int:
    return answer.pages[0].number


def _timed(req: _Request, t_send: float, first: float | None, t_start: float,
           plan: float | None) -> dict[str, float | None]:
    now = time.perf_counter()
    return {"plan": plan, "request": now - t_send,
            "first_token": (first - t_send) if first is not None else None,
            "total": now - t_start}


class GlyphClient(_ClientCore):
    """Ask a Glyph endpoint about long texts (thread-safe; one connection pool).

    Endpoint: ``base_url``, else ``$GLYPH_BASE_URL``, else ``$OPENAI_BASE_URL``; key:
    ``api_key``, else ``$OPENAI_API_KEY``, else ``"EMPTY"``. ``model`` and ``max_model_len``
    are read from ``/v1/models`` when not given. ``tokenizer`` counts the question (pass the
    model's ``tokenizer.json`` for exact predictions). Every keyword of :meth:`ask` has a
    client-wide default here (``system``, ``thinking``, ``max_tokens``, ``sampling``,
    ``extra_body``, ``overflow``, ``fit``).
    """

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._oa = openai.OpenAI(base_url=self.base_url, api_key=self._api_key,
                                 timeout=self.timeout, max_retries=0)

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
        def once() -> Any:
            try:
                return self._json(self._oa.models.with_raw_response.list().http_response)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, None, None)
                if err is None:
                    raise
                raise err from None

        try:
            return self._pick_model(retry_sync(once, self.policy))
        except RequestRejected as exc:
            if exc.status_code == 404:
                return self._info_without_models()
            raise

    def ask(self, text: str, question: str, **kwargs: Any) -> Answer:
        """Render ``text``, ask ``question`` about it, return the :class:`Answer`.

        Keywords: ``config`` (a RenderConfig; default the preset detected from the text),
        ``dpi`` or ``budget`` (vision tokens), ``system``, ``thinking`` (True/False/None =
        server default), ``max_tokens``, ``overflow`` ("split"/"error"), ``fit``
        ("auto"/"error"), ``extra_body``, and any sampling field (``temperature``, ``top_k``,
        ...).
        """
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = self.model_info()
        job = self._plan(text, question, o, info)
        reqs = self._prepare_text(text, job, question, o, info)
        if len(reqs) == 1:
            answer = self._send(reqs[0], o, info, job.text_tokens, job.budget, t_start)
            answer.timings["plan"] = job.seconds
            return answer
        parts = sorted(self._iter_parts(reqs, o, info, job), key=_first_page)
        final = self._send(self._reduce_request(question, parts, o, info), o, info, 0, None,
                           time.perf_counter())
        return self._combine(final, parts, job, t_start)

    def ask_pages(self, pages: Sequence[RenderedPage | bytes], question: str,
                  **kwargs: Any) -> Answer:
        """Ask about pages rendered earlier (e.g. one render, many questions)."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = self.model_info()
        return self._send(self._prepare_pages(pages, question, o, info), o, info, 0, None,
                          t_start)

    def ask_text(self, prompt: str, *, text_tokens: int = 0, **kwargs: Any) -> Answer:
        """Ask with no pages, the prompt as plain text: the text-only baseline on the same
        endpoint (``glyph-render eval --as-text``). ``text_tokens`` is what the document part
        of the prompt costs as text, for the answer's figures."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = self.model_info()
        return self._send(self._request([], [], prompt, o, info, {}, None), o, info,
                          text_tokens, None, t_start)

    def ask_stream(self, text: str, question: str, **kwargs: Any) -> Iterator[StreamEvent]:
        """Like :meth:`ask`, yielding reasoning/content deltas as they arrive, then ``done``.

        A split document yields a ``part`` event per chunk answered, then streams the
        combining call.
        """
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = self.model_info()
        job = self._plan(text, question, o, info)
        reqs = self._prepare_text(text, job, question, o, info)
        if len(reqs) == 1:
            yield from self._stream(reqs[0], o, info, job, t_start, [])
            return
        parts: list[Answer] = []
        for part in self._iter_parts(reqs, o, info, job):
            parts.append(part)
            yield StreamEvent("part", part.text, part)
        parts.sort(key=_first_page)
        req = self._reduce_request(question, parts, o, info)
        yield from self._stream(req, o, info, job, t_start, parts)

    # --- internals -------------------------------------------------------------------------

    def _iter_parts(self, reqs: list[_Request], o: _Options, info: ModelInfo,
                    job: _Job) -> Iterator[Answer]:
        """Each chunk asked in a bounded thread pool; answers in the order they complete."""
        def one(req: _Request) -> Answer:
            return self._send(req, o, info, 0, job.budget, time.perf_counter())

        with ThreadPoolExecutor(min(self.max_concurrency, len(reqs)),
                                thread_name_prefix="glyph-part") as ex:
            pending = {ex.submit(one, r) for r in reqs}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in done:
                        yield f.result()
            finally:
                for f in pending:
                    f.cancel()

    def _send(self, req: _Request, o: _Options, info: ModelInfo, text_tokens: int,
              budget: int | None, t_start: float) -> Answer:
        args = self._create_args(req, o, info.name, stream=False)

        def once() -> Any:
            try:
                raw = self._oa.chat.completions.with_raw_response.create(**args)
                return self._json(raw.http_response)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, req, o)
                if err is None:
                    raise
                raise err from None

        t_send = time.perf_counter()
        reply = parse_completion(retry_sync(once, self.policy), self.url)
        return self._answer(reply, req, info, _timed(req, t_send, None, t_start, None),
                            text_tokens, budget)

    def _stream(self, req: _Request, o: _Options, info: ModelInfo, job: _Job, t_start: float,
                parts: list[Answer]) -> Iterator[StreamEvent]:
        args = self._create_args(req, o, info.name, stream=True)

        def open_stream() -> Any:
            try:
                return self._oa.chat.completions.create(**args)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, req, o)
                if err is None:
                    raise
                raise err from None

        t_send = time.perf_counter()
        stream = retry_sync(open_stream, self.policy)
        acc = StreamAccumulator(self.url, self._stream_error(req, o))
        first: float | None = None
        try:
            for line in stream.response.iter_lines():
                for event in acc.line(line):
                    if first is None:
                        first = time.perf_counter()
                    yield event
            tail = acc.close()
        except ClientError:
            raise
        except Exception as exc:
            raise self._cut(exc, acc, req, o) from None
        finally:
            stream.close()
        yield from tail
        answer = self._answer(acc.reply(), req, info, _timed(req, t_send, first, t_start,
                                                             job.seconds),
                              job.text_tokens, job.budget)
        if parts:
            answer = self._combine(answer, parts, job, t_start)
        yield StreamEvent("done", answer.text, answer)

class AsyncGlyphClient(_ClientCore):
    """:class:`GlyphClient` for asyncio: the same arguments and methods, awaited.

    Rendering and encoding run in threads, so many requests can be in flight on one loop.
    """

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._oa = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                                      timeout=self.timeout, max_retries=0)
        self._ainfo_lock: asyncio.Lock | None = None

    async def close(self) -> None:
        await self._oa.close()
        self._close_pool()

    async def __aenter__(self) -> AsyncGlyphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def model_info(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        if self._ainfo_lock is None:
            self._ainfo_lock = asyncio.Lock()
        async with self._ainfo_lock:
            if self._info is None:
                self._info = await self._discover()
            return self._info

    async def _discover(self) -> ModelInfo:
        async def once() -> Any:
            try:
                raw = await self._oa.models.with_raw_response.list()
                return self._json(raw.http_response)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, None, None)
                if err is None:
                    raise
                raise err from None

        try:
            return self._pick_model(await retry_async(once, self.policy))
        except RequestRejected as exc:
            if exc.status_code == 404:
                return self._info_without_models()
            raise

    async def ask(self, text: str, question: str, **kwargs: Any) -> Answer:
        """See :meth:`GlyphClient.ask`."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = await self.model_info()
        job = await asyncio.to_thread(self._plan, text, question, o, info)
        reqs = await asyncio.to_thread(self._prepare_text, text, job, question, o, info)
        if len(reqs) == 1:
            answer = await self._send(reqs[0], o, info, job.text_tokens, job.budget, t_start)
            answer.timings["plan"] = job.seconds
            return answer
        parts = sorted([a async for a in self._iter_parts(reqs, o, info, job)], key=_first_page)
        req = self._reduce_request(question, parts, o, info)
        final = await self._send(req, o, info, 0, None, time.perf_counter())
        return self._combine(final, parts, job, t_start)

    async def ask_pages(self, pages: Sequence[RenderedPage | bytes], question: str,
                        **kwargs: Any) -> Answer:
        """See :meth:`GlyphClient.ask_pages`."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = await self.model_info()
        req = await asyncio.to_thread(self._prepare_pages, pages, question, o, info)
        return await self._send(req, o, info, 0, None, t_start)

    async def ask_text(self, prompt: str, *, text_tokens: int = 0, **kwargs: Any) -> Answer:
        """See :meth:`GlyphClient.ask_text`."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = await self.model_info()
        req = await asyncio.to_thread(self._request, [], [], prompt, o, info, {}, None)
        return await self._send(req, o, info, text_tokens, None, t_start)

    async def ask_stream(self, text: str, question: str,
                         **kwargs: Any) -> AsyncIterator[StreamEvent]:
        """See :meth:`GlyphClient.ask_stream`."""
        t_start = time.perf_counter()
        o = self._options(**kwargs)
        info = await self.model_info()
        job = await asyncio.to_thread(self._plan, text, question, o, info)
        reqs = await asyncio.to_thread(self._prepare_text, text, job, question, o, info)
        parts: list[Answer] = []
        if len(reqs) == 1:
            req = reqs[0]
        else:
            async for part in self._iter_parts(reqs, o, info, job):
                parts.append(part)
                yield StreamEvent("part", part.text, part)
            parts.sort(key=_first_page)
            req = self._reduce_request(question, parts, o, info)
        async for event in self._stream(req, o, info, job, t_start, parts):
            yield event

    # --- internals -------------------------------------------------------------------------

    async def _iter_parts(self, reqs: list[_Request], o: _Options, info: ModelInfo,
                          job: _Job) -> AsyncIterator[Answer]:
        """Each chunk asked, at most ``max_concurrency`` at once; in the order they complete."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(req: _Request) -> Answer:
            async with gate:
                return await self._send(req, o, info, 0, job.budget, time.perf_counter())

        tasks = [asyncio.ensure_future(one(r)) for r in reqs]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for t in tasks:
                t.cancel()

    async def _send(self, req: _Request, o: _Options, info: ModelInfo, text_tokens: int,
                    budget: int | None, t_start: float) -> Answer:
        args = self._create_args(req, o, info.name, stream=False)

        async def once() -> Any:
            try:
                raw = await self._oa.chat.completions.with_raw_response.create(**args)
                return self._json(raw.http_response)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, req, o)
                if err is None:
                    raise
                raise err from None

        t_send = time.perf_counter()
        reply = parse_completion(await retry_async(once, self.policy), self.url)
        return self._answer(reply, req, info, _timed(req, t_send, None, t_start, None),
                            text_tokens, budget)

    async def _stream(self, req: _Request, o: _Options, info: ModelInfo, job: _Job,
                      t_start: float, parts: list[Answer]) -> AsyncIterator[StreamEvent]:
        args = self._create_args(req, o, info.name, stream=True)

        async def open_stream() -> Any:
            try:
                return await self._oa.chat.completions.create(**args)
            except ClientError:
                raise
            except Exception as exc:
                err = self._classify(exc, req, o)
                if err is None:
                    raise
                raise err from None

        t_send = time.perf_counter()
        stream = await retry_async(open_stream, self.policy)
        acc = StreamAccumulator(self.url, self._stream_error(req, o))
        first: float | None = None
        try:
            async for line in stream.response.aiter_lines():
                for event in acc.line(line):
                    if first is None:
                        first = time.perf_counter()
                    yield event
            tail = acc.close()
        except ClientError:
            raise
        except Exception as exc:
            raise self._cut(exc, acc, req, o) from None
        finally:
            await stream.close()
        for event in tail:
            yield event
        answer = self._answer(acc.reply(), req, info, _timed(req, t_send, first, t_start,
                                                             job.seconds),
                              job.text_tokens, job.budget)
        if parts:
            answer = self._combine(answer, parts, job, t_start)
        yield StreamEvent("done", answer.text, answer)


_CLIENT_KEYS = frozenset({
    "base_url", "api_key", "model", "max_model_len", "profile", "tokenizer", "timeout",
    "max_retries", "backoff", "max_backoff", "max_retry_after", "max_concurrency",
    "encode_workers", "min_px_per_em", "max_dpi", "sampling",
})


def compress_and_ask(text: str, question: str, **kwargs: Any) -> Answer:
    """One call: a :class:`GlyphClient` for the endpoint, ``ask``, close.

    Client keywords (``base_url``, ``api_key``, ``model``, ``timeout``, ...) go to the client,
    the rest to :meth:`GlyphClient.ask`.
    """
    client_kw = {k: v for k, v in kwargs.items() if k in _CLIENT_KEYS}
    ask_kw = {k: v for k, v in kwargs.items() if k not in _CLIENT_KEYS}
    with GlyphClient(**client_kw) as client:
        return client.ask(text, question, **ask_kw)
