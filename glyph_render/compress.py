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
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import GLYPH_NEWLINE_MARKER, RenderConfig, detect_preset
from .document import check_text
from .errors import BudgetError
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


class _Priced:
    """One rung's layout, priced at any DPI by the pages' exact pixel sizes (no rastering)."""

    def __init__(self, cfg: RenderConfig, pages: list[Page], prof: VisionProfile,
                 per_image: int):
        self.cfg = cfg
        self.pages = pages
        self.prof = prof
        self.per_image = per_image
        self._costs: dict[float, int] = {}

    def sizes(self, dpi: float) -> list[tuple[int, int]]:
        n = len(self.pages)
        return [page_pixel_size(p, self.cfg, last=i == n - 1, dpi=dpi)
                for i, p in enumerate(self.pages)]

    def cost(self, dpi: float) -> int:
        c = self._costs.get(dpi)
        if c is None:
            c = sum(image_tokens(w, h, self.prof) + self.per_image for w, h in self.sizes(dpi))
            self._costs[dpi] = c
        return c

    def page_plans(self, dpi: float) -> list[PagePlan]:
        return [PagePlan(p.start, p.end, w, h, image_tokens(w, h, self.prof))
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
    if not min_px_per_em > 0:
        raise BudgetError(f"min_px_per_em: {min_px_per_em!r} must be greater than 0")
    if overflow not in ("error", "split"):
        raise BudgetError(f"overflow: {overflow!r} must be 'error' or 'split'")
    tok = get_tokenizer(tokenizer)
    rungs_report: list[dict[str, Any]] = []
    chosen: tuple[_Priced, float] | None = None
    most_compact: tuple[_Priced, float, str] | None = None
    for k, rung in enumerate(ladder(base, text)):
        cfg = base.replace(**rung.changes) if rung.changes else base
        lo = min_px_per_em * 72.0 / cfg.font_size
        hi = max(max_dpi, lo)
        if lo > hi:
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
        assert most_compact is not None
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


def _split(text: str, budget: int, base: RenderConfig, prof: VisionProfile, tok: TextTokenizer,
           min_px_per_em: float, max_dpi: float, per_image: int, rungs: list[dict[str, Any]],
           t0: float) -> Plan:
    """Cut the document into page runs that each fit, rendered with the base layout.

    The DPI is the base config's, clamped into the allowed range and lowered until one page fits.
    Chunks start at page boundaries of the whole document's layout; each is then laid out and
    priced alone (as the client will render it) and shortened until it fits on its own.
    """
    lo = min_px_per_em * 72.0 / base.font_size
    dpi = min(max(base.dpi, lo), max(max_dpi, lo))
    pages = list(layout(text, base))
    single_max = max(image_tokens(*page_pixel_size(p, base, last=False, dpi=lo), prof)
                     for p in pages) + per_image
    if single_max > budget:
        raise BudgetError(
            f"budget {budget:,} tokens cannot hold even one page: a page needs {single_max:,} "
            f"tokens at the legibility floor ({lo:.1f} DPI)"
        )
    while dpi > lo:
        one = max(image_tokens(*page_pixel_size(p, base, last=False, dpi=dpi), prof)
                  for p in pages) + per_image
        if one <= budget:
            break
        dpi = max(lo, round(dpi * 0.95, 2))
    plans = []
    for p in pages:  # priced as non-last pages: a chunk's last page is cropped only smaller
        w, h = page_pixel_size(p, base, last=False, dpi=dpi)
        plans.append(PagePlan(p.start, p.end, w, h, image_tokens(w, h, prof)))
    chunks: list[Chunk] = []
    cfg = base.replace(dpi=dpi)
    i = 0
    while i < len(plans):
        j, cost = i, 0  # greedy: as many pages as fit by the whole-document layout
        while j < len(plans) and (j == i or cost + plans[j].vision_tokens + per_image <= budget):
            cost += plans[j].vision_tokens + per_image
            j += 1
        while True:
            # A chunk laid out alone may paginate differently (Glyph's 30-line paragraphs
            # restart at its first line), so price it alone and give back pages until it fits.
            start, end = plans[i].start, plans[j - 1].end if j < len(plans) else len(text)
            alone = _chunk_pages(text[start:end], cfg, prof, per_image, start)
            if sum(p.vision_tokens + per_image for p in alone) <= budget or j == i + 1:
                break
            j -= 1
        chunks.append(Chunk(start, end, alone))
        i = j
    rungs.append({"rung": "split", "dpi": dpi, "chunks": len(chunks), "pages": len(plans)})
    return Plan(
        budget=budget, config=base.replace(dpi=dpi), pages=plans, text_tokens=tok.count(text),
        tokenizer=tok.name, profile=prof.name, rungs=rungs, limited_by="split",
        per_image_tokens=per_image, chunks=chunks, seconds=time.perf_counter() - t0,
    )


def _chunk_pages(chunk: str, cfg: RenderConfig, prof: VisionProfile, per_image: int,
                 offset: int) -> list[PagePlan]:
    pages = list(layout(chunk, cfg))
    n = len(pages)
    out = []
    for k, p in enumerate(pages):
        w, h = page_pixel_size(p, cfg, last=k == n - 1)
        out.append(PagePlan(p.start + offset, p.end + offset, w, h, image_tokens(w, h, prof)))
    return out


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
    left = max_context - fixed - max_output_tokens
    if left <= 0:
        raise BudgetError(
            f"context {max_context:,} leaves no room for pages: the question and template take "
            f"{fixed:,} tokens and the answer {max_output_tokens:,}"
        )
    return left


__all__ = ["Chunk", "PagePlan", "Plan", "compress", "context_budget",
           "ladder"]


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


def fit_to_context(text: str, question: str, *, config: RenderConfig | None = None,
                   profile: VisionProfile, tokenizer: TextTokenizer,
                   max_context: int | None, max_tokens: int, system: str | None = None,
                   model_name: str = "the model", dpi: float | None = None,
                   budget: int | None = None, fit: Literal["auto", "error"] = "auto",
                   overflow: Literal["error", "split"] = "split",
                   min_px_per_em: float | None = None, max_dpi: float = DEFAULT_MAX_DPI,
                   chunk_question: str | None = None) -> ContextFit:
    """Choose the rendering (and the chunks) that fit a prompt in ``max_context`` tokens,
    leaving ``max_tokens`` for the answer.

    A document that fits as configured is sent as it is. Otherwise ``fit="auto"`` plans the
    budget that fits the context (``fit="error"`` raises :class:`ContextOverflow` naming it);
    a given ``budget`` is capped by that one. When no legible rendering fits, ``overflow=
    "split"`` cuts the document into chunks that each fit beside ``chunk_question`` (the
    longest question a chunk carries), else :class:`ContextOverflow` is raised. With no known
    context (``max_context=None``) only the budget applies.
    """
    from .errors import ContextOverflow
    from .render import page_sizes  # render imports this module

    t0 = time.perf_counter()
    check_text(text)
    cfg = config or RenderConfig.preset(detect_preset(text))
    if dpi is not None:
        cfg = cfg.replace(dpi=float(dpi))
    ctx = max_context

    def room(q: str) -> int:
        assert ctx is not None
        try:
            return context_budget(ctx, q, max_tokens, model=profile, system=system,
                                  tokenizer=tokenizer)
        except BudgetError as exc:
            raise ContextOverflow(f"{exc}; lower max_tokens (model {model_name})",
                                  max_context=ctx) from None

    def plan(b: int, how: Literal["error", "split"]) -> Plan:
        return compress(text, b, model=profile, config=cfg, tokenizer=tokenizer,
                        min_px_per_em=min_px_per_em, max_dpi=max_dpi, overflow=how,
                        per_image_tokens=profile.image_wrapper_tokens)

    fitting = None if ctx is None else room(question)
    if budget is None:
        sizes = page_sizes(list(layout(text, cfg)), cfg)
        need = prompt_tokens(sizes, question, profile=profile, system=system,
                             tokenizer=tokenizer)
        if ctx is None or need + max_tokens <= ctx:
            return ContextFit(cfg, [(0, len(text))], tokenizer.count(text), None,
                              time.perf_counter() - t0)
        if fit == "error":
            raise ContextOverflow(
                f"the document needs {need:,} prompt tokens at {cfg.dpi:g} DPI plus "
                f"{max_tokens:,} for the answer, over {model_name}'s context of {ctx:,}; "
                f"a vision-token budget of {fitting:,} would fit (budget={fitting})",
                prompt_tokens=need, max_context=ctx, fitting_budget=fitting)
        budget = fitting
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
            budget = min(budget, room(chunk_question or question))
        try:
            chosen = plan(budget, "split")
        except BudgetError as exc2:
            if ctx is None:
                raise
            raise ContextOverflow(f"the document cannot be split to fit {model_name}'s "
                                  f"context of {ctx:,} tokens: {exc2}", max_context=ctx,
                                  fitting_budget=fitting) from None
    spans = [(c.start, c.end) for c in chosen.chunks] or [(0, len(text))]
    return ContextFit(chosen.config, spans, chosen.text_tokens, budget, time.perf_counter() - t0)


__all__ += ["ContextFit", "fit_to_context"]
