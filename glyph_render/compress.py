"""Compressor: choose the rendering parameters that fit a vision-token budget.

Layout is in points and DPI only scales pixels, so one layout per rung of the ladder gives the
exact token cost of *every* DPI by arithmetic over its page sizes (pages of equal geometry are
priced once). Nothing is rastered to plan.

The ladder, from most legible to most compact (each rung keeps the previous rungs' changes):

1. ``base``: the given config (by default Glyph's published English/Chinese one);
2. ``margins-4``: page margins 4 pt;
3. ``newline-marker``: newlines become Glyph's inline red ``\\n`` marker instead of line breaks
   (only when the text has newlines and the base breaks lines): short lines stop wasting width;
4. ``tight-leading``: line height equal to the font size;
5. ``font-8``, ``font-7``, ``font-6``: smaller fonts, line height equal to the size.

The floor is in pixels per em, so a smaller font is only allowed at a proportionally higher DPI:
at the floor every font-size rung draws glyphs of the same pixel size, and those rungs differ
only in how the fixed frame padding and margins weigh. Density comes from rungs 2-4.

On each rung the DPI is searched between the legibility floor and ``max_dpi``; the first rung
(in ladder order) where some DPI fits wins, at the highest DPI that fits. Rules: the plan is never
over budget; when the most legible allowed config (``base`` at ``max_dpi``) does not fit, the
chosen one uses at least 90% of the budget unless no rung can (then the figures say so); and no
text is drawn smaller than the floor.

The legibility floor is in pixels per em (font size x DPI / 72), because that is what legibility
depends on: ``benchmarks/legibility.py`` finds Tesseract's character error rate a function of
px/em alone, whatever the point size. On DejaVu Sans prose drawn as Glyph's renderer draws it
(unhinted) it measured (median CER, English / Russian): 6.0 px/em 9% / 11%, 6.5 px/em 4% / 7%,
7.0 px/em 2% / 4%, 8 px/em 0.9% / 0.2%, 9 px/em (Glyph's published 9 pt at 72 DPI) 0.6% / 0.1%.
So the default floor is 7 px/em, the first size under 5% in both scripts, ~1 px/em above the
10% cliff. CJK needs more: 31-72% at 7 px/em, 15-23% at 9, 8-13% at 11 (Tesseract is a weak
proxy for a VLM, and weakest on CJK), the knee between 8 and 9 px/em, so CJK-dominant text
gets 9 px/em, Glyph's own published setting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import GLYPH_NEWLINE_MARKER, MAX_PAGE_PIXELS, RenderConfig, detect_preset, number
from .document import check_text
from .errors import BudgetError, ConfigError
from .layout import Page, layout
from .raster import page_pixel_size
from .text_tokens import TextTokenizer, get_tokenizer
from .vision_tokens import VisionProfile, get_profile, image_tokens, prompt_tokens

DEFAULT_MIN_PX_PER_EM = 7.0  # Latin, Cyrillic, Greek...
DEFAULT_MIN_PX_PER_EM_CJK = 9.0  # Han, kana, Hangul: denser glyphs need more pixels
DEFAULT_MAX_DPI = 120.0


@dataclass(frozen=True)
class Rung:
    name: str
    changes: dict[str, Any]


def ladder(base: RenderConfig, text: str) -> list[Rung]:
    rungs = [Rung("base", {})]
    acc: dict[str, Any] = {}
    if base.margin_x > 4 or base.margin_y > 4:
        acc = {**acc, "margin_x": min(base.margin_x, 4.0), "margin_y": min(base.margin_y, 4.0)}
        rungs.append(Rung("margins-4", dict(acc)))
    if base.newline.line_break and not base.remove_line_breaks and "\n" in text[:2_000_000]:
        acc = {**acc, "newline_markup": GLYPH_NEWLINE_MARKER}
        rungs.append(Rung("newline-marker", dict(acc)))
    if base.line_height > base.font_size:
        acc = {**acc, "line_height": base.font_size}
        rungs.append(Rung("tight-leading", dict(acc)))
    for size in (8.0, 7.0, 6.0):
        if size < base.font_size:
            acc = {**acc, "font_size": size, "line_height": size}
            rungs.append(Rung(f"font-{size:g}", dict(acc)))
    return rungs


@dataclass
class PagePlan:
    start: int
    end: int
    width: int
    height: int
    vision_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "width": self.width,
                "height": self.height, "vision_tokens": self.vision_tokens}


@dataclass
class Chunk:
    """A consecutive piece of the document that fits the budget on its own (split mode)."""

    start: int
    end: int
    pages: list[PagePlan]

    @property
    def vision_tokens(self) -> int:
        return sum(p.vision_tokens for p in self.pages)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "page_count": len(self.pages),
                "vision_tokens": self.vision_tokens}


@dataclass
class Plan:
    """The chosen config and the figures proving it fits."""

    budget: int
    config: RenderConfig
    pages: list[PagePlan]
    text_tokens: int
    tokenizer: str
    profile: str
    rungs: list[dict[str, Any]]
    limited_by: Literal["budget", "legibility", "split"]
    per_image_tokens: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def vision_tokens(self) -> int:
        return sum(p.vision_tokens for p in self.pages)

    @property
    def cost(self) -> int:
        """What the budget is compared with: image tokens plus any per-image overhead."""
        return self.vision_tokens + self.per_image_tokens * len(self.pages)

    @property
    def ratio(self) -> float:
        return self.text_tokens / self.vision_tokens if self.vision_tokens else 0.0

    @property
    def dpi(self) -> float:
        return self.config.dpi

    def to_json(self) -> dict[str, Any]:
        out = {
            "budget": self.budget, "vision_tokens": self.vision_tokens, "cost": self.cost,
            "budget_used": round(self.cost / self.budget, 4) if self.budget else None,
            "text_tokens": self.text_tokens, "ratio": round(self.ratio, 4),
            "tokenizer": self.tokenizer, "profile": self.profile, "dpi": self.dpi,
            "config": self.config.to_dict(), "page_count": len(self.pages),
            "pages": [p.to_json() for p in self.pages], "rungs": self.rungs,
            "limited_by": self.limited_by, "seconds": round(self.seconds, 4),
        }
        if self.chunks:
            out["chunks"] = [c.to_json() for c in self.chunks]
        return out


def pages_cost(sizes: Iterable[tuple[int, int]], profile: VisionProfile,
               per_image: int | None = None) -> int:
    """Prompt tokens of pages (or any images) of these pixel sizes: each one's image tokens by
    the profile's rule plus ``per_image`` (default: the profile's image wrapper tokens, which
    a chat prompt adds around every image). The one place a page is priced."""
    extra = profile.image_wrapper_tokens if per_image is None else per_image
    return sum(image_tokens(w, h, profile) + extra for w, h in sizes)


class _Priced:
    """One rung's layout, priced at any DPI by the pages' exact pixel sizes (no rastering)."""

    def __init__(self, cfg: RenderConfig, pages: list[Page], prof: VisionProfile,
                 per_image: int, offset: int = 0):
        self.cfg = cfg
        self.pages = pages
        self.prof = prof
        self.per_image = per_image
        self.offset = offset  # where the laid-out text starts in the document
        self._costs: dict[float, int] = {}

    def sizes(self, dpi: float) -> list[tuple[int, int]]:
        n = len(self.pages)
        return [page_pixel_size(p, self.cfg, last=i == n - 1, dpi=dpi)
                for i, p in enumerate(self.pages)]

    def cost(self, dpi: float) -> int:
        c = self._costs.get(dpi)
        if c is None:
            c = pages_cost(self.sizes(dpi), self.prof, self.per_image)
            self._costs[dpi] = c
        return c

    def page_plans(self, dpi: float) -> list[PagePlan]:
        o = self.offset
        return [PagePlan(p.start + o, p.end + o, w, h, image_tokens(w, h, self.prof))
                for p, (w, h) in zip(self.pages, self.sizes(dpi), strict=True)]


def _best_dpi(priced: _Priced, budget: int, lo: float, hi: float) -> float | None:
    """Highest DPI in [lo, hi] (0.01 steps) whose cost fits; None if even ``lo`` does not."""
    if priced.cost(lo) > budget:
        return None
    if priced.cost(hi) <= budget:
        return hi
    a, b = lo, hi  # cost(a) fits, cost(b) does not
    while b - a > 0.01:
        mid = (a + b) / 2
        if priced.cost(mid) <= budget:
            a = mid
        else:
            b = mid
    dpi = math.floor(a * 100) / 100
    while dpi > lo and priced.cost(dpi) > budget:  # guard against non-monotone rounding
        dpi = round(dpi - 0.01, 2)
    return max(dpi, lo) if priced.cost(max(dpi, lo)) <= budget else None


def compress(text: str, budget: int, *, model: str | VisionProfile = "glyph",
             config: RenderConfig | None = None, tokenizer: str | TextTokenizer = "cl100k_base",
             min_px_per_em: float | None = None, max_dpi: float = DEFAULT_MAX_DPI,
             overflow: Literal["error", "split"] = "error", per_image_tokens: int = 0) -> Plan:
    """Pick the most legible rendering of ``text`` whose vision tokens fit ``budget``.

    ``per_image_tokens`` adds a fixed cost per page (e.g. the model's image wrapper tokens when
    the budget is a share of a context window). ``overflow="split"`` returns the document cut
    into consecutive chunks that each fit, for map-reduce question answering, instead of raising
    :class:`BudgetError` when nothing fits.
    """
    t0 = time.perf_counter()
    check_text(text)
    prof = get_profile(model)
    base = config or RenderConfig.preset("glyph-en")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise BudgetError(f"budget: {budget!r} must be a positive whole number of tokens")
    if min_px_per_em is None:
        min_px_per_em = legibility_floor(text)
    _check_positive("min_px_per_em", min_px_per_em)
    _check_positive("max_dpi", max_dpi)
    if isinstance(per_image_tokens, bool) or not isinstance(per_image_tokens, int) \
            or per_image_tokens < 0:
        raise BudgetError(f"per_image_tokens: {per_image_tokens!r} must be a whole number >= 0")
    if overflow not in ("error", "split"):
        raise BudgetError(f"overflow: {overflow!r} must be 'error' or 'split'")
    tok = get_tokenizer(tokenizer)
    rungs_report: list[dict[str, Any]] = []
    chosen: tuple[_Priced, float] | None = None
    most_compact: tuple[_Priced, float, str] | None = None
    skipped: list[str] = []
    for k, rung in enumerate(ladder(base, text)):
        lo, hi = _dpi_range(base, min_px_per_em, max_dpi,
                            rung.changes.get("font_size", base.font_size))
        if lo > hi:
            skipped.append(f"{rung.name}: its legibility floor {lo:.1f} DPI makes pages past "
                           f"{MAX_PAGE_PIXELS:,} pixels")
            continue
        try:  # at the rung's floor DPI: the base's own DPI may draw its smaller font too small
            cfg = base.replace(**rung.changes, dpi=lo)
        except ConfigError as exc:
            skipped.append(f"{rung.name}: {exc}")
            continue
        pages = list(layout(text, cfg))
        priced = _Priced(cfg, pages, prof, per_image_tokens)
        dpi = _best_dpi(priced, budget, lo, hi)
        entry: dict[str, Any] = {
            "rung": rung.name, "font_size": cfg.font_size, "line_height": cfg.line_height,
            "margin_x": cfg.margin_x, "newline_markup": cfg.newline_markup,
            "pages": len(pages), "dpi_range": [round(lo, 2), round(hi, 2)],
            "cost_at_floor": priced.cost(lo), "fits": dpi is not None,
        }
        if dpi is not None:
            entry.update(dpi=dpi, cost=priced.cost(dpi))
        rungs_report.append(entry)
        most_compact = (priced, lo, rung.name)
        if dpi is not None:
            chosen = (priced, dpi)
            limited = "legibility" if k == 0 and dpi >= hi else "budget"
            break
    if chosen is None:
        if most_compact is None:
            raise BudgetError("no rung of the ladder can be drawn: " + "; ".join(skipped))
        priced, lo, name = most_compact
        need = priced.cost(lo)
        if overflow == "error":
            raise BudgetError(
                f"budget {budget:,} tokens is too small: the most compact allowed config "
                f"({name} at {lo:.1f} DPI, {min_px_per_em:g} px/em) needs {need:,} tokens for "
                f"{len(priced.pages)} pages; raise the budget, lower --min-px-per-em, or split"
            )
        return _split(text, budget, base, prof, tok, min_px_per_em, max_dpi, per_image_tokens,
                      rungs_report, t0)
    priced, dpi = chosen
    cfg = priced.cfg.replace(dpi=dpi)
    return Plan(
        budget=budget, config=cfg, pages=priced.page_plans(dpi), text_tokens=tok.count(text),
        tokenizer=tok.name, profile=prof.name, rungs=rungs_report, limited_by=limited,
        per_image_tokens=per_image_tokens, seconds=time.perf_counter() - t0,
    )


def _check_positive(name: str, value: Any) -> None:
    """A DPI or px/em argument: a finite number above 0 (NaN and inf reach no arithmetic)."""
    if isinstance(value, str):  # a number from Python, not a flag's text
        raise BudgetError(f"{name}: expected a number, got {value!r:.60}")
    try:
        number(value)
    except ValueError as exc:
        raise BudgetError(f"{name}: {exc}") from None


def _dpi_range(cfg: RenderConfig, min_px_per_em: float, max_dpi: float,
               font_size: float | None = None) -> tuple[float, float]:
    """The DPIs ``cfg`` (with ``font_size``) may be drawn at: from the legibility floor (never
    under one pixel per em) to ``max_dpi`` (raised to the floor), capped where a page passes
    Pillow's pixel limit; ``lo > hi`` when even the floor is past it."""
    lo = max(min_px_per_em, 1.0) * 72.0 / (font_size or cfg.font_size)
    lo = math.ceil(lo * 1e6) / 1e6  # so font_size x lo / 72 never rounds under the floor
    w, h = cfg.page_size
    cap = 72.0 * math.sqrt(MAX_PAGE_PIXELS / (w * cfg.horizontal_scale * h))
    return lo, min(max(max_dpi, lo), math.floor(cap * 0.999 * 100) / 100)


def _split(text: str, budget: int, base: RenderConfig, prof: VisionProfile, tok: TextTokenizer,
           min_px_per_em: float, max_dpi: float, per_image: int, rungs: list[dict[str, Any]],
           t0: float) -> Plan:
    """Cut the document into runs of text that each fit, rendered with the base layout.

    The DPI is the base config's, clamped into the allowed range and lowered until one page fits.
    Chunks start at page boundaries of the whole document's layout; each is then laid out and
    priced alone (as the client will render it) and shortened until it fits on its own. A
    piece of one page that still does not fit alone lowers the DPI for every chunk (to the
    floor at most): no chunk is ever over the budget; when one cannot fit, BudgetError says so.
    """
    lo, hi = _dpi_range(base, min_px_per_em, max_dpi)
    if lo > hi:
        raise BudgetError(f"the legibility floor ({lo:.1f} DPI) makes a {base.page_size[0]:g}x"
                          f"{base.page_size[1]:g} pt page past {MAX_PAGE_PIXELS:,} pixels")
    base = base.replace(dpi=min(max(base.dpi, lo), hi))
    pages = list(layout(text, base))
    single_max = max(pages_cost([page_pixel_size(p, base, last=False, dpi=lo)], prof, per_image)
                     for p in pages)
    if single_max > budget:
        raise BudgetError(
            f"budget {budget:,} tokens cannot hold even one page: a page needs {single_max:,} "
            f"tokens at the legibility floor ({lo:.1f} DPI)"
        )
    dpi = base.dpi
    while dpi > lo:
        one = max(pages_cost([page_pixel_size(p, base, last=False, dpi=dpi)], prof, per_image)
                  for p in pages)
        if one <= budget:
            break
        dpi = max(lo, round(dpi * 0.95, 2))
    while True:
        cfg = base.replace(dpi=dpi)
        chunks, over = _chunks(text, pages, cfg, prof, per_image, budget)
        if over is None:
            break
        # One page's text, laid out alone, is over the budget at this DPI: find the DPI where
        # it fits and cut every chunk again there (rare: a page alone crops differently).
        fit = _best_dpi(over, budget, lo, dpi)
        if fit is None or fit >= dpi:
            first = over.pages[0] if over.pages else None
            at = f"characters {over.offset:,}-{over.offset + (first.end if first else 0):,}"
            raise BudgetError(
                f"budget {budget:,} tokens cannot hold {at} of the document alone: their page "
                f"needs {over.cost(lo):,} tokens even at the legibility floor ({lo:.1f} DPI)")
        dpi = fit
    plans = []
    for p in pages:  # priced as non-last pages: a chunk's last page is cropped only smaller
        w, h = page_pixel_size(p, cfg, last=False)
        plans.append(PagePlan(p.start, p.end, w, h, image_tokens(w, h, prof)))
    rungs.append({"rung": "split", "dpi": dpi, "chunks": len(chunks), "pages": len(plans)})
    return Plan(
        budget=budget, config=cfg, pages=plans, text_tokens=tok.count(text),
        tokenizer=tok.name, profile=prof.name, rungs=rungs, limited_by="split",
        per_image_tokens=per_image, chunks=chunks, seconds=time.perf_counter() - t0,
    )


def _chunks(text: str, pages: list[Page], cfg: RenderConfig, prof: VisionProfile,
            per_image: int, budget: int) -> tuple[list[Chunk], _Priced | None]:
    """Greedy chunks at ``cfg.dpi``, each priced alone; or the piece that cannot fit."""
    dpi = cfg.dpi
    n = len(text)
    ends = [p.end for p in pages]
    est = [pages_cost([page_pixel_size(p, cfg, last=False)], prof, per_image) for p in pages]
    chunks: list[Chunk] = []
    s = k = 0
    while s < n:
        while k < len(pages) and ends[k] <= s:
            k += 1
        j, cost = k, 0  # greedy: as many pages as fit by the whole-document layout
        while j < len(pages) and (j == k or cost + est[j] <= budget):
            cost += est[j]
            j += 1
        end = ends[j - 1] if j < len(pages) else n
        while True:
            # A chunk laid out alone may paginate differently (Glyph's 30-line paragraphs
            # restart at its first line), so price it alone and give back pages until it fits.
            alone = _alone(text, s, end, cfg, prof, per_image)
            if alone.cost(dpi) <= budget:
                break
            cut = max((p.end for p in alone.pages if 0 < p.end < end - s), default=0)
            if j > k + 1:
                j -= 1
                end = ends[j - 1]
            elif cut:
                end = s + cut  # one page's text took more pages alone: keep the first ones
            else:
                return chunks, alone
        chunks.append(Chunk(s, end, alone.page_plans(dpi)))
        s = end
    return chunks, None


def _alone(text: str, start: int, end: int, cfg: RenderConfig, prof: VisionProfile,
           per_image: int) -> _Priced:
    """``text[start:end]`` laid out on its own, priced as a document of its own."""
    return _Priced(cfg, list(layout(text[start:end], cfg)), prof, per_image, offset=start)


def legibility_floor(text: str) -> float:
    """The default floor in px/em for ``text``: 9 for CJK-dominant text, else 7."""
    return DEFAULT_MIN_PX_PER_EM_CJK if detect_preset(text) == "glyph-zh" else \
        DEFAULT_MIN_PX_PER_EM


def context_budget(max_context: int, question: str, max_output_tokens: int, *,
                   model: str | VisionProfile = "glyph", system: str | None = None,
                   tokenizer: str | TextTokenizer | None = None) -> int:
    """Image tokens left in a context window after the template, question and answer.

    Pages also cost the profile's per-image wrapper tokens: pass
    ``per_image_tokens=get_profile(model).image_wrapper_tokens`` to :func:`compress` with it.
    """
    fixed = prompt_tokens([], question, profile=model, system=system, tokenizer=tokenizer)
    return pages_room(max_context, fixed, max_output_tokens,
                      what="the question and template take")


def pages_room(max_context: int, frame_tokens: int, max_output_tokens: int, *,
               what: str = "the prompt without its pages takes") -> int:
    """Tokens left for pages in a context window once the rest of the prompt (``frame_tokens``:
    template, system, other messages, question) and the answer are counted; BudgetError when
    none are left (``what`` names the rest in its message)."""
    left = max_context - frame_tokens - max_output_tokens
    if left <= 0:
        raise BudgetError(
            f"context {max_context:,} leaves no room for pages: {what} "
            f"{frame_tokens:,} tokens and the answer {max_output_tokens:,}"
        )
    return left


__all__ = ["Chunk", "PagePlan", "Plan", "compress", "context_budget", "ladder", "pages_cost",
           "pages_room"]


# ---- fitting a document to a model's context -------------------------------------------------


@dataclass
class ContextFit:
    """How to send a document: its config and the source spans, one per request (one unless
    split), with the text tokens and the budget it was planned for (None: as given)."""

    config: RenderConfig
    spans: list[tuple[int, int]]
    text_tokens: int
    budget: int | None
    seconds: float
    pages: int = 0  # pages of the chosen rendering (all chunks together)
    #: when the rendering as configured did not fit and was re-planned: its pages, DPI and
    #: prompt tokens (the client announces the re-plan before it renders or sends anything)
    configured: tuple[int, float, int] | None = None


def fit_to_context(text: str, question: str, *, config: RenderConfig | None = None,
                   profile: VisionProfile, tokenizer: TextTokenizer,
                   max_context: int | None, max_tokens: int, system: str | None = None,
                   model_name: str = "the model", dpi: float | None = None,
                   budget: int | None = None, fit: Literal["auto", "error"] = "auto",
                   overflow: Literal["error", "split"] = "split",
                   min_px_per_em: float | None = None, max_dpi: float = DEFAULT_MAX_DPI,
                   chunk_question: str | None = None,
                   frame_tokens: int | None = None) -> ContextFit:
    """Choose the rendering (and the chunks) that fit a prompt in ``max_context`` tokens,
    leaving ``max_tokens`` for the answer.

    A document that fits as configured is sent as it is. Otherwise ``fit="auto"`` plans the
    budget that fits the context (``fit="error"`` raises :class:`ContextOverflow` naming it);
    a given ``budget`` is capped by that one. When no legible rendering fits, ``overflow=
    "split"`` cuts the document into chunks that each fit beside ``chunk_question`` (the
    longest question a chunk carries, in place of ``question``), else :class:`ContextOverflow`
    is raised. With no known context (``max_context=None``) only the budget applies.

    The prompt is priced as the document's pages plus its frame. By default the frame is one
    user turn of ``system`` and ``question`` (the client's request). A prompt that holds more
    (the gateway's: a system turn, earlier messages, passed-through images, text around the
    pages) gives its tokens besides the pages as ``frame_tokens``, ``question``'s included.
    """
    from .errors import ContextOverflow
    from .render import page_sizes  # render imports this module

    t0 = time.perf_counter()
    check_text(text)
    cfg = config or RenderConfig.preset(detect_preset(text))
    if dpi is not None:
        cfg = cfg.replace(dpi=float(dpi))
    ctx = max_context
    if frame_tokens is None:
        frame = prompt_tokens([], question, profile=profile, system=system, tokenizer=tokenizer)
        rest = "the question and template take"
    else:
        frame, rest = frame_tokens, "the prompt without its pages takes"
    chunk_frame = frame if chunk_question is None else \
        frame - tokenizer.count(question) + tokenizer.count(chunk_question)

    def room(tokens: int) -> int:
        assert ctx is not None
        try:
            return pages_room(ctx, tokens, max_tokens, what=rest)
        except BudgetError as exc:
            raise ContextOverflow(f"{exc}; lower max_tokens (model {model_name})",
                                  max_context=ctx) from None

    def plan(b: int, how: Literal["error", "split"]) -> Plan:
        return compress(text, b, model=profile, config=cfg, tokenizer=tokenizer,
                        min_px_per_em=min_px_per_em, max_dpi=max_dpi, overflow=how,
                        per_image_tokens=profile.image_wrapper_tokens)

    fitting = None if ctx is None else room(frame)
    configured = None
    if budget is None:
        sizes = page_sizes(list(layout(text, cfg)), cfg)
        need = frame + pages_cost(sizes, profile)
        if ctx is None or need + max_tokens <= ctx:
            return ContextFit(cfg, [(0, len(text))], tokenizer.count(text), None,
                              time.perf_counter() - t0, len(sizes))
        if fit == "error":
            raise ContextOverflow(
                f"the document needs {need:,} prompt tokens at {cfg.dpi:g} DPI plus "
                f"{max_tokens:,} for the answer, over {model_name}'s context of {ctx:,}; "
                f"a vision-token budget of {fitting:,} would fit (budget={fitting})",
                prompt_tokens=need, max_context=ctx, fitting_budget=fitting)
        budget = fitting
        configured = (len(sizes), cfg.dpi, need)
    elif fitting is not None and fit == "auto":
        budget = min(budget, fitting)
    assert budget is not None
    try:
        chosen = plan(budget, "error")
    except BudgetError as exc:
        if overflow == "error":
            if ctx is None:
                raise
            raise ContextOverflow(f"the document does not fit {model_name}'s context of "
                                  f"{ctx:,} tokens: {exc}", max_context=ctx,
                                  fitting_budget=fitting) from None
        if ctx is not None:  # chunks carry a longer question: price the longest
            budget = min(budget, room(chunk_frame))
        try:
            chosen = plan(budget, "split")
        except BudgetError as exc2:
            if ctx is None:
                raise
            raise ContextOverflow(f"the document cannot be split to fit {model_name}'s "
                                  f"context of {ctx:,} tokens: {exc2}", max_context=ctx,
                                  fitting_budget=fitting) from None
    spans = [(c.start, c.end) for c in chosen.chunks] or [(0, len(text))]
    return ContextFit(chosen.config, spans, chosen.text_tokens, budget, time.perf_counter() - t0,
                      len(chosen.pages), configured)


__all__ += ["ContextFit", "fit_to_context"]
