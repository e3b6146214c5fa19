"""Rendering off the event loop: a process pool, and a content-addressed LRU page cache.

Layout and raster are pure Python/numpy holding the GIL, so they run in worker processes
(sized to the cores) and the event loop only awaits them. Every result is keyed by the
SHA-256 of the text and the exact rendering config, so a document repeated across turns or
requests (a chat over one file, many agents on one corpus) is laid out and drawn once per
replica. Pages are kept as the ``data:`` URLs that go upstream (no re-encoding on a hit), and
the cache is bounded in bytes, least recently used first out. A render running for one request
is shared by every concurrent request for the same key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from glyph_render.compress import fit_to_context, pages_cost
from glyph_render.config import RenderConfig
from glyph_render.encode import encode_png
from glyph_render.errors import BudgetError, ContextOverflow
from glyph_render.layout import layout
from glyph_render.raster import rasterize
from glyph_render.render import page_sizes, with_last
from glyph_render.text_tokens import get_tokenizer
from glyph_render.vision_tokens import get_profile, image_tokens

from .errors import ApiError

__all__ = ["DocPages", "DocPlan", "FitRequest", "LruCache", "Renderer"]

T = TypeVar("T")


@dataclass(frozen=True)
class DocPages:
    """One document's pages: ``data:`` URLs with their sizes, tokens and source spans."""

    urls: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    tokens: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    cpu_seconds: float

    @property
    def nbytes(self) -> int:
        return sum(len(u) for u in self.urls)


@dataclass(frozen=True)
class DocPlan:
    """The rendering chosen for a budget: the config, and the chunks when it had to split."""

    config: RenderConfig
    chunks: tuple[tuple[int, int], ...]  # empty: one request holds the whole document


@dataclass(frozen=True)
class FitRequest:
    """What :func:`~glyph_render.compress.fit_to_context` is told about one document's
    prompt: its context (None: only ``budget`` applies), the rest of the prompt in tokens, the
    text around the pages a chunk's map question replaces, and whether it may split."""

    budget: int
    max_context: int | None = None
    max_tokens: int = 0
    frame_tokens: int | None = None
    question: str = ""
    chunk_question: str | None = None
    split: bool = False
    model_name: str = "the model"


# --- what the workers run (top-level functions: they are pickled by name) -----------------


def _warm() -> None:
    """Import the render stack once per worker, before the first request needs it."""
    get_profile("glyph")


def _worker_init(parent: int) -> None:
    """A render worker's start: leave with the gateway. A gateway killed outright (SIGKILL, the
    OOM killer) runs no shutdown, and its workers would live on, each holding a render stack."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="glyph-render-parent-watch", daemon=True).start()
    _warm()


def price_document(text: str, cfg: RenderConfig, profile: str) -> int:
    """Image tokens plus the per-image wrappers of ``text`` at ``cfg``: layout only."""
    return pages_cost(page_sizes(list(layout(text, cfg)), cfg), get_profile(profile))


def fit_document(text: str, cfg: RenderConfig, fit: FitRequest, profile: str, tokenizer: str,
                 min_px_per_em: float | None) -> DocPlan:
    """The most legible rendering of a document that does not fit as it is, by
    :func:`~glyph_render.compress.fit_to_context` (as the client fits one): chunks when it
    had to split. Raises BudgetError with the reason when nothing fits (a plain one: it
    crosses the process boundary)."""
    try:
        job = fit_to_context(
            text, fit.question, config=cfg, profile=get_profile(profile),
            tokenizer=get_tokenizer(tokenizer), max_context=fit.max_context,
            max_tokens=fit.max_tokens, model_name=fit.model_name, budget=fit.budget,
            overflow="split" if fit.split else "error", min_px_per_em=min_px_per_em,
            chunk_question=fit.chunk_question, frame_tokens=fit.frame_tokens)
    except (BudgetError, ContextOverflow) as exc:
        raise BudgetError(str(exc)) from None
    return DocPlan(job.config, tuple(job.spans) if len(job.spans) > 1 else ())


def render_document(text: str, cfg: RenderConfig, profile: str,
                    cap: int | None = None) -> tuple[int, DocPages | None]:
    """The document's cost at ``cfg`` and, unless it is over ``cap``, every page as a PNG
    ``data:`` URL (encoded here, off the event loop). One layout serves both: a document
    that fits is priced and drawn for the price of drawing it."""
    t0 = time.process_time()
    prof = get_profile(profile)
    laid = list(layout(text, cfg))
    cost = pages_cost(page_sizes(laid, cfg), prof)
    if cap is not None and cost > cap:
        return cost, None
    urls, sizes, tokens, spans = [], [], [], []
    for page, last in with_last(iter(laid)):  # as render.iter_pages draws them
        img = rasterize(page, cfg, last=last)
        png = encode_png(img, cfg.dpi)
        urls.append("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
        sizes.append(img.size)
        tokens.append(image_tokens(*img.size, prof))
        spans.append((page.start, page.end))
    return cost, DocPages(tuple(urls), tuple(sizes), tuple(tokens), tuple(spans),
                          time.process_time() - t0)


# --- the parent side -----------------------------------------------------------------------


class LruCache:
    """Least-recently-used map bounded by a size function's total (bytes, or entries)."""

    def __init__(self, limit: float, size: Callable[[Any], int] = lambda v: 1) -> None:
        self.limit = limit
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self.total = 0

    def get(self, key: Any) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        size = self._size(value)
        if size > self.limit:
            return  # larger than the whole cache: serve it, do not keep it
        old = self._data.pop(key, None)
        if old is not None:
            self.total -= self._size(old)
        self._data[key] = value
        self.total += size
        while self.total > self.limit:
            _, evicted = self._data.popitem(last=False)
            self.total -= self._size(evicted)

    def __len__(self) -> int:
        return len(self._data)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Renderer:
    """Prices, plans and renders documents in a process pool, behind the caches.

    ``workers=0`` runs them in threads instead (for embedding the app where processes
    cannot be started); the figures then include GIL contention with the event loop.
    """

    def __init__(self, workers: int, cache_bytes: int, timeout: float, profile: str,
                 tokenizer: str, min_px_per_em: float | None) -> None:
        self.workers = workers
        self.timeout = timeout
        self.profile = profile
        self.tokenizer = tokenizer
        self.min_px_per_em = min_px_per_em
        self.pages = LruCache(cache_bytes, lambda v: v.nbytes)
        self.prices = LruCache(100_000)
        self.plans = LruCache(100_000)
        self.hits = 0
        self.misses = 0
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        self._pool: Executor | None = None

    def start(self) -> None:
        if self._pool is not None:
            return
        if self.workers <= 0:
            self._pool = ThreadPoolExecutor(max(1, os.cpu_count() or 1),
                                            thread_name_prefix="glyph-render")
            return
        # spawn: the parent runs an event loop and threads, which fork would copy half-way
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(os.getpid(),))
        for _ in range(self.workers):  # start every worker now, not on the first requests
            self._pool.submit(_warm)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run(self, key: Any, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, shared with concurrent callers of the same key."""
        fut = self._pending.get(key)
        if fut is None:
            if self._pool is None:
                self.start()
            try:
                fut = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
            except BrokenProcessPool:  # it broke since the last call
                raise self._restart() from None
            self._pending[key] = fut
            fut.add_done_callback(lambda _f: self._pending.pop(key, None))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, f"rendering took longer than --render-timeout "
                           f"{self.timeout:g} s", code="render_timeout") from None
        except BrokenProcessPool:
            raise self._restart() from None

    def _restart(self) -> ApiError:
        """A worker was killed (the OOM killer, a signal): a new pool for the next requests."""
        self.close()
        return ApiError(503, "a render worker died; the render pool was restarted, retry the "
                        "request", code="render_worker_died", headers={"Retry-After": "1"})

    async def price(self, text: str, sha: str, cfg: RenderConfig) -> int:
        key = ("price", sha, cfg)
        cost = self.prices.get(key)
        if cost is None:
            cost = await self._run(key, price_document, text, cfg, self.profile)
            self.prices.put(key, cost)
        return cost

    async def fit(self, text: str, sha: str, cfg: RenderConfig, fit: FitRequest) -> DocPlan:
        """The plan that fits (:func:`fit_document`); BudgetError when nothing does."""
        key = ("fit", sha, cfg, fit)
        found = self.plans.get(key)
        if found is None:
            try:
                found = await self._run(key, fit_document, text, cfg, fit, self.profile,
                                        self.tokenizer, self.min_px_per_em)
            except BudgetError as exc:  # "nothing fits" is an answer too: keep it
                found = exc
            self.plans.put(key, found)
        if isinstance(found, BudgetError):
            raise BudgetError(str(found))
        return found

    async def render(self, text: str, sha: str, cfg: RenderConfig,
                     cap: int | None = None) -> tuple[DocPages | None, bool]:
        """The pages of ``text`` at ``cfg`` and whether they came from the cache; None (not
        drawn) when they cost more than ``cap`` tokens (the cost is then in ``prices``)."""
        key = ("pages", sha, cfg)
        found = self.pages.get(key)
        if found is not None:
            # drawn for an earlier request, maybe for a larger context: the cap still holds
            if cap is not None and pages_cost(found.sizes, get_profile(self.profile)) > cap:
                return None, False
            self.hits += 1
            return found, True
        price_key = ("price", sha, cfg)
        cost = self.prices.get(price_key)
        if cap is not None and cost is not None and cost > cap:
            return None, False
        cost, found = await self._run((key, cap), render_document, text, cfg, self.profile,
                                      cap)
        self.prices.put(price_key, cost)
        if found is None:
            return None, False
        self.misses += 1
        self.pages.put(key, found)
        return found, False
