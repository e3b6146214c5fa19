"""Which text of a chat request becomes pages, and the request that goes upstream instead.

The rules (docs/gateway.md has the user's view):

* a text part longer than ``threshold`` text tokens becomes pages; a short paragraph leading
  or closing it (an instruction, the question) stays text around the pages, in place;
* the latest user turn's question (its last text part, when short) always stays text;
* older turns: every message before the last ``keep_turns`` ones (system messages aside)
  becomes one ``User: ...`` / ``Assistant: ...`` transcript, rendered, as Glyph's MRCR
  evaluation renders a conversation, when it is over the threshold, or when needed to fit;
* images that arrive are passed through; other content parts likewise;
* fitting: the prompt is priced exactly (page sizes by the model's image rule, the text by the
  gateway's tokenizer, the chat template's turn tokens) against the upstream's
  ``max_model_len`` minus the answer's ``max_tokens``; when it does not fit, older turns are
  rendered first (then all earlier turns; when still nothing fits, the stage with the smallest
  prompt is kept), and then the documents are fitted by
  :func:`~glyph_render.compress.fit_to_context`, the client's own fitting: a single document
  against the whole prompt (the rest of it priced as its ``frame_tokens``), split into chunks
  for map-reduce when it is in the latest turn and no legible rendering fits, as
  ``compress_and_ask`` does; several documents within a budget shared in proportion to their
  size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import re
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from glyph_render.client import MAP_PROMPT, REDUCE_PROMPT, longest_map_question
from glyph_render.compress import pages_cost, pages_room
from glyph_render.config import RenderConfig, detect_preset
from glyph_render.errors import BudgetError, GlyphRenderError
from glyph_render.evaluate.mrcr_task import render_conversation
from glyph_render.text_tokens import TextTokenizer
from glyph_render.vision_tokens import VisionProfile

from .errors import ApiError
from .pages import DocPages, DocPlan, FitRequest, LruCache, Renderer, digest
from .settings import GatewaySettings, RequestOptions
from .upstream import ModelEntry

__all__ = ["Compressed", "Compressor", "Figures"]

HISTORY_NOTE = "(The conversation so far, rendered as the pages above.)"
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass
class Figures:
    """What compression did to one request: returned in headers and ``usage.glyph``."""

    pages: int = 0
    vision_tokens: int = 0  # image tokens of the pages (the model's rule)
    text_tokens: int = 0  # the replaced text, by the gateway's tokenizer
    saved_tokens: int = 0  # text_tokens - (vision_tokens + image wrappers)
    render_seconds: float = 0.0
    render_cpu_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    parts: int = 1
    documents: int = 0
    dpi: list[float] = field(default_factory=list)
    map_usage: dict[str, int] | None = None  # the chunk calls' tokens, for a split document

    def usage(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pages": self.pages, "vision_tokens": self.vision_tokens,
            "text_tokens": self.text_tokens, "saved_tokens": self.saved_tokens,
            "documents": self.documents, "parts": self.parts, "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses, "render_seconds": round(self.render_seconds, 4),
            "dpi": self.dpi}
        if self.map_usage is not None:
            out["map_usage"] = self.map_usage
        return out

    def headers(self) -> dict[str, str]:
        return {"x-glyph-pages": str(self.pages),
                "x-glyph-vision-tokens": str(self.vision_tokens),
                "x-glyph-text-tokens": str(self.text_tokens),
                "x-glyph-saved-tokens": str(self.saved_tokens),
                "x-glyph-parts": str(self.parts),
                "x-glyph-cache-hits": str(self.cache_hits),
                "x-glyph-render-seconds": f"{self.render_seconds:.4f}"}


@dataclass
class _Doc:
    """A stretch of text to render, and where its pages go."""

    text: str
    sha: str
    tokens: int
    msg: int  # message index; for the history, the first old message
    part: int  # content part index (-1: the history)
    lead: str = ""
    tail: str = ""
    config: RenderConfig | None = None
    cost: int = 0  # image + wrapper tokens at ``config``
    plan: DocPlan | None = None
    pages: DocPages | None = None


@dataclass
class Compressed:
    """The request to send: ``messages``, or the map calls and the reduce builder."""

    messages: list[dict[str, Any]]
    figures: Figures
    maps: list[list[dict[str, Any]]] = field(default_factory=list)
    _reduce: Any = None

    def reduce(self, answers: list[str]) -> list[dict[str, Any]]:
        return self._reduce(answers)


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]
    return []


def _text_of(content: Any) -> str:
    return "\n".join(p.get("text", "") for p in _parts(content) if p.get("type") == "text")


def _image_size(url: str) -> tuple[int, int] | None:
    """Pixel size of a ``data:`` image (header only); None for remote URLs or undecodable."""
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        head = base64.b64decode(url.split(",", 1)[1][:1 << 16])  # the header is at the start
        with Image.open(io.BytesIO(head)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - unknown images are priced 0 and left to the upstream
        return None


@functools.lru_cache(maxsize=8)
def _preset(name: str) -> RenderConfig:
    return RenderConfig.preset(name)


class Compressor:
    """Turns chat requests into Glyph requests; one per app (it holds the token-count cache)."""

    def __init__(self, settings: GatewaySettings, renderer: Renderer, profile: VisionProfile,
                 tokenizer: TextTokenizer) -> None:
        self.s = settings
        self.renderer = renderer
        self.profile = profile
        self.tok = tokenizer
        self._counts = LruCache(50_000)
        self._configs = LruCache(50_000)

    # --- counting ---------------------------------------------------------------------------

    async def count(self, text: str, sha: str | None = None) -> int:
        if len(text) < 4096:
            return self.tok.count(text)
        sha = sha or digest(text)
        n = self._counts.get(sha)
        if n is None:
            n = await asyncio.to_thread(self.tok.count, text)  # tiktoken drops the GIL
            self._counts.put(sha, n)
        return n

    async def _fixed_tokens(self, messages: list[dict[str, Any]], docs: list[_Doc],
                            history: set[int]) -> int:
        """Tokens of everything that stays as it is: template, text, passed-through images."""
        p = self.profile
        total = p.prompt_prefix_tokens + p.generation_prompt_tokens
        replaced = {(d.msg, d.part): d for d in docs}
        if history:
            total += p.user_turn_tokens + await self.count(HISTORY_NOTE)
        for i, m in enumerate(messages):
            if i in history:
                total += await self._images_tokens(m.get("content"))
                continue
            total += p.system_turn_tokens if m.get("role") == "system" else p.user_turn_tokens
            for j, part in enumerate(_parts(m.get("content"))):
                d = replaced.get((i, j))
                if d is not None:
                    total += await self.count(d.lead) + await self.count(d.tail)
                elif part.get("type") == "text":
                    total += await self.count(str(part.get("text", "")))
            total += await self._images_tokens(m.get("content"))
        return total

    async def _images_tokens(self, content: Any) -> int:
        total = 0
        for part in _parts(content):
            if part.get("type") != "image_url":
                continue
            url = (part.get("image_url") or {}).get("url", "")
            size = _image_size(url) if isinstance(url, str) else None
            if size is not None:
                # an image the model cannot take: the upstream will say what it thinks of it
                with contextlib.suppress(GlyphRenderError):
                    total += pages_cost([size], self.profile)
        return total

    # --- choosing the documents -------------------------------------------------------------

    async def _split(self, text: str, threshold: int) -> tuple[str, str, str] | None:
        """(lead, body, tail) when the body is over ``threshold`` tokens, else None."""
        lead = tail = ""
        body = text
        q = self.s.question_tokens
        first = _PARAGRAPH.search(body)
        if first and await self.count(body[:first.start()]) <= q:
            lead, body = body[:first.end()], body[first.end():]
        matches = list(_PARAGRAPH.finditer(body))
        if matches and await self.count(body[matches[-1].end():]) <= q:
            body, tail = body[:matches[-1].start()], body[matches[-1].start():]
        if not body.strip():
            return None
        n = await self.count(body)
        if n <= threshold:
            return None
        return lead, body, tail

    async def _documents(self, messages: list[dict[str, Any]], latest: int, opts: RequestOptions,
                         keep: int, force_history: bool) -> tuple[list[_Doc], set[int]]:
        threshold = 0 if opts.mode == "always" else opts.threshold
        prior = [i for i in range(latest) if messages[i].get("role") != "system"]
        old = prior[:max(0, len(prior) - keep)]
        docs: list[_Doc] = []
        history: set[int] = set()
        if old:
            transcript = render_conversation([
                {"role": messages[i].get("role", "user"),
                 "content": _text_of(messages[i].get("content"))} for i in old])
            sha = digest(transcript)
            n = await self.count(transcript, sha)
            if force_history or opts.mode == "always" or n > threshold:
                history = set(old)
                docs.append(_Doc(transcript, sha, n, old[0], -1))
        for i, m in enumerate(messages):
            if i in history or m.get("role") != "user":
                continue
            parts = _parts(m.get("content"))
            texts = [j for j, p in enumerate(parts) if p.get("type") == "text"]
            for j in texts:
                text = str(parts[j].get("text", ""))
                if i == latest and j == texts[-1] and await self.count(text) <= \
                        self.s.question_tokens:
                    continue  # the question
                found = await self._split(text, threshold)
                if found is None:
                    continue
                lead, body, tail = found
                sha = digest(body)
                docs.append(_Doc(body, sha, await self.count(body, sha), i, j, lead, tail))
        return docs, history

    def _config(self, d: _Doc, opts: RequestOptions) -> RenderConfig:
        """The base rendering of a document: the flags' config, else its preset (cached: the
        script detection reads the whole text)."""
        key = (d.sha, opts.dpi)
        cfg = self._configs.get(key)
        if cfg is None:
            cfg = self.s.config or _preset(detect_preset(d.text))
            cfg = cfg.replace(dpi=float(opts.dpi)) if opts.dpi is not None else cfg
            self._configs.put(key, cfg)
        return cfg

    async def _price(self, docs: list[_Doc], opts: RequestOptions) -> int:
        for d in docs:
            d.config = self._config(d, opts)
        costs = await asyncio.gather(*(self.renderer.price(d.text, d.sha, d.config)
                                       for d in docs if d.config is not None))
        for d, c in zip(docs, costs, strict=True):
            d.cost = c
        return sum(costs)

    # --- the whole request -----------------------------------------------------------------

    async def compress(self, body: dict[str, Any], opts: RequestOptions,
                       entry: ModelEntry) -> Compressed:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise ApiError(400, "'messages' must be a non-empty list of objects with a 'role'",
                           param="messages", code="invalid_messages")
        latest = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if opts.mode == "never" or latest is None:
            return Compressed(messages, Figures(documents=0))
        ctx = entry.max_model_len
        reserve = body.get("max_completion_tokens") or body.get("max_tokens") or \
            self.s.answer_reserve
        if not isinstance(reserve, int) or isinstance(reserve, bool) or reserve < 1:
            raise ApiError(400, f"max_tokens: {reserve!r} must be a positive whole number",
                           param="max_tokens", code="invalid_value")
        t0 = time.perf_counter()
        drawn: list[tuple[DocPages | None, bool]] | None = None
        stages = [(opts.keep_turns, False), (opts.keep_turns, True), (0, True)]
        least: tuple[int, list[_Doc], set[int]] | None = None
        for k, (keep, force) in enumerate(stages):
            docs, history = await self._documents(messages, latest, opts, keep, force)
            for d in docs:
                d.config = self._config(d, opts)
            if ctx is None and opts.budget is None:
                break
            fixed = await self._fixed_tokens(messages, docs, history)
            if k == 0 and len(docs) == 1 and opts.budget is None and ctx is not None:
                # The common case, one document: priced and drawn in one pass when it fits.
                d = docs[0]
                assert d.config is not None
                pages, hit = await self.renderer.render(d.text, d.sha, d.config,
                                                        ctx - reserve - fixed)
                if pages is not None:
                    drawn = [(pages, hit)]
                    break
            need = fixed + await self._price(docs, opts)
            if ctx is None or need + reserve <= ctx:
                break
            if least is None or need < least[0]:
                least = (need, docs, history)
        else:
            # Nothing fits as configured: fit from the stage whose prompt is the smallest (a
            # few short turns drawn as a page cost more than their text, and one document
            # alone may still be split).
            assert least is not None
            _, docs, history = least
        if not docs:
            return Compressed(messages, Figures(documents=0))
        budget = opts.budget
        fixed = 0
        if ctx is not None and drawn is None:
            fixed = await self._fixed_tokens(messages, docs, history)
            try:
                room = pages_room(ctx, fixed, reserve, what="the prompt's text alone takes")
            except BudgetError as exc:
                raise ApiError(400, f"{exc} ({entry.name})", param="messages",
                               code="context_length_exceeded") from None
            budget = room if budget is None else min(budget, room)
        split_doc: _Doc | None = None
        if drawn is None and budget is not None and sum(d.cost for d in docs) > budget:
            split_doc = await self._fit(docs, budget, latest, entry, ctx, reserve, fixed)
        rendered = drawn or await asyncio.gather(*(
            self.renderer.render(d.text, d.sha, d.plan.config if d.plan else d.config)
            for d in docs if d.config is not None))
        figures = Figures(documents=len(docs), render_seconds=time.perf_counter() - t0)
        for d, (pages, hit) in zip(docs, rendered, strict=True):
            assert pages is not None  # drawn without a cap
            d.pages = pages
            figures.pages += len(pages.urls)
            figures.vision_tokens += sum(pages.tokens)
            figures.text_tokens += d.tokens
            figures.cache_hits += hit
            figures.cache_misses += not hit
            figures.render_cpu_seconds += 0.0 if hit else pages.cpu_seconds
            figures.dpi.append((d.plan.config if d.plan else d.config).dpi)  # type: ignore
        figures.saved_tokens = figures.text_tokens - figures.vision_tokens - \
            figures.pages * self.profile.image_wrapper_tokens
        if split_doc is not None:
            return self._map_reduce(messages, docs, history, split_doc, figures)
        return Compressed(_rebuild(messages, docs, history, {}), figures)

    async def _fit(self, docs: list[_Doc], budget: int, latest: int, entry: ModelEntry,
                   ctx: int | None, reserve: int, fixed: int) -> _Doc | None:
        """Plan the documents, which do not fit as they are, by
        :func:`~glyph_render.compress.fit_to_context`; the one split into chunks, if any.

        One document is fitted to the whole prompt (``fixed``: its tokens besides the pages),
        as the client fits one, and is split for map-reduce when it is in the latest turn and
        no legible rendering fits. Several share ``budget`` in proportion to their size."""
        try:
            if len(docs) == 1:
                d = docs[0]
                assert d.config is not None
                question = (d.lead + d.tail).strip()
                split = ctx is not None and d.msg == latest and d.part >= 0
                # A chunk's request carries the longer map question: the longest it can be.
                chunk = longest_map_question(question)
                d.plan = await self.renderer.fit(d.text, d.sha, d.config, FitRequest(
                    budget, ctx, reserve, None if ctx is None else fixed, question,
                    chunk if split else None, split, entry.name))
                return d if d.plan.chunks else None
            total = sum(d.cost for d in docs) or 1
            shares = [max(1, budget * d.cost // total) for d in docs]

            async def one(d: _Doc, share: int) -> None:
                if d.cost > share:
                    assert d.config is not None
                    d.plan = await self.renderer.fit(d.text, d.sha, d.config, FitRequest(share))

            await asyncio.gather(*(one(d, s) for d, s in zip(docs, shares, strict=True)))
            return None
        except BudgetError as exc:
            msg = str(exc) if len(docs) == 1 and ctx is not None else (
                f"the documents do not fit {entry.name}'s context of "
                f"{ctx if ctx is not None else budget:,} tokens at any legible rendering: {exc}")
            raise ApiError(400, msg, param="messages",
                           code="context_length_exceeded") from None

    def _map_reduce(self, messages: list[dict[str, Any]], docs: list[_Doc], history: set[int],
                    d: _Doc, figures: Figures) -> Compressed:
        assert d.plan is not None and d.pages is not None
        spans = d.plan.chunks
        groups: list[list[int]] = [[] for _ in spans]
        k = 0
        for i, (start, _end) in enumerate(d.pages.spans):
            while k + 1 < len(spans) and start >= spans[k + 1][0]:
                k += 1
            groups[k].append(i)
        groups = [g for g in groups if g]
        question = (d.lead + d.tail).strip()
        maps = [_rebuild(messages, docs, history, {id(d): (
            "", [d.pages.urls[i] for i in g],
            MAP_PROMPT.format(question=question, part=n, parts=len(groups)))})
            for n, g in enumerate(groups, 1)]
        figures.parts = len(groups) + 1

        def reduce(answers: list[str]) -> list[dict[str, Any]]:
            text = "\n\n".join(f"Part {i}: {a or '(no answer)'}"
                               for i, a in enumerate(answers, 1))
            q = REDUCE_PROMPT.format(parts=len(answers), answers=text, question=question)
            return _rebuild(messages, docs, history, {id(d): ("", [], q)})

        return Compressed(maps[0], figures, maps, reduce)


def _rebuild(messages: list[dict[str, Any]], docs: list[_Doc], history: set[int],
             override: dict[int, tuple[str, list[str], str]]) -> list[dict[str, Any]]:
    """The messages with each document's text replaced by its pages (``override``: by id)."""
    def pieces(d: _Doc) -> list[dict[str, Any]]:
        assert d.pages is not None
        lead, urls, tail = override.get(id(d), (d.lead, list(d.pages.urls), d.tail))
        out: list[dict[str, Any]] = []
        if lead.strip():
            out.append({"type": "text", "text": lead})
        out.extend({"type": "image_url", "image_url": {"url": u}} for u in urls)
        if tail.strip():
            out.append({"type": "text", "text": tail})
        return out

    by_part = {(d.msg, d.part): d for d in docs if d.part >= 0}
    hist = next((d for d in docs if d.part < 0), None)
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] | None = None  # the history turn, merged into a next user turn
    for i, m in enumerate(messages):
        if i in history:
            if hist is not None and i == hist.msg:
                passed = [p for j in sorted(history) for p in _parts(messages[j].get("content"))
                          if p.get("type") != "text"]
                pending = passed + pieces(hist) + [{"type": "text", "text": HISTORY_NOTE}]
            continue
        content: Any = m.get("content")
        if any((i, j) in by_part for j in range(len(_parts(content)))):
            new: list[dict[str, Any]] = []
            for j, p in enumerate(_parts(content)):
                d = by_part.get((i, j))
                new.extend(pieces(d) if d is not None else [p])
            content = new
        if pending is not None:
            if m.get("role") == "user":
                content = pending + _parts(content)
            else:
                out.append({"role": "user", "content": pending})
            pending = None
        out.append({**m, "content": content})
    if pending is not None:
        out.append({"role": "user", "content": pending})
    return out
