"""What the demo shows, without Gradio: a document's layout, priced, and its pages drawn lazily.

A preview lays the text out once and prices every page by arithmetic (no pixels), so its figures
are ready in the time layout takes; page images are drawn only for the window the gallery shows
(:func:`draw_pages`), so a 500-page document costs what its first dozen pages cost. Everything
here is plain Python over the public rendering API, callable from any thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glyph_render import (
    PRESETS,
    ConfigError,
    Page,
    Plan,
    RenderConfig,
    compress,
    detect_preset,
    encode_png,
    get_profile,
    get_tokenizer,
    image_tokens,
    layout,
    page_sizes,
    rasterize,
    write_pdf,
)
from glyph_render.compress import DEFAULT_MAX_DPI, ladder, legibility_floor
from glyph_render.document import check_text

PRESET_CHOICES = ("auto", *PRESETS)
TOKENIZER = "cl100k_base"  # the render report's tokenizer, so figures match `glyph-render --json`
WINDOW = 12  # pages drawn per gallery window


@dataclass(frozen=True)
class Settings:
    """The rendering choices of the input panel (as the widgets give them)."""

    preset: str = "auto"
    config_json: str = ""  # a Glyph rendering config, as JSON text; empty: the preset alone
    dpi: float | None = None  # None: the config's own
    budget: int | None = None  # vision tokens; when set the compressor picks config and DPI

    def key(self, text: str) -> str:
        """Identity of (text, settings): a preview is reused while this stays the same."""
        h = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
        h.update(json.dumps([self.preset, self.config_json, self.dpi, self.budget]).encode())
        return h.hexdigest()[:20]


def base_config(text: str, s: Settings) -> RenderConfig:
    """Preset (``auto``: by the text's script) < the JSON config < the DPI field."""
    preset = detect_preset(text) if s.preset == "auto" else s.preset
    if preset not in PRESETS:
        raise ConfigError(f"preset: {preset!r} is not one of {', '.join(PRESET_CHOICES)}")
    cfg = RenderConfig.preset(preset)
    if s.config_json.strip():
        try:
            data = json.loads(s.config_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config JSON: not valid JSON ({exc})") from None
        cfg = RenderConfig.from_dict(data, base=cfg, quiet=True)
    if s.dpi is not None and s.budget is None:
        cfg = cfg.replace(dpi=float(s.dpi))
    return cfg


@dataclass
class Preview:
    """One document laid out under one config: spans, pixel sizes, tokens; no pixels yet."""

    text: str
    settings: Settings
    base: RenderConfig  # before the compressor (what the ladder starts from)
    config: RenderConfig  # what the pages are drawn with
    pages: list[Page]
    sizes: list[tuple[int, int]]
    vision: list[int]
    text_tokens: int
    tokenizer: str
    plan: Plan | None
    seconds: float
    key: str
    profile: str = "glyph"  # the vision-token profile the pages are priced with
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glyph-ui-")))
    ladder: list[RungCosts] | None = None  # priced on first request (the chart comes after)

    @property
    def vision_tokens(self) -> int:
        return sum(self.vision)

    @property
    def ratio(self) -> float:
        return self.text_tokens / self.vision_tokens if self.vision_tokens else 0.0

    @property
    def chosen_rung(self) -> str:
        """The ladder rung the pages use (``base`` without a budget)."""
        if self.plan is None:
            return "base"
        fitting = [r for r in self.plan.rungs if r.get("fits") or r["rung"] == "split"]
        return fitting[-1]["rung"] if fitting else "base"

    def summary(self) -> dict[str, Any]:
        """The figures panel's numbers (also what the tests and benchmark read)."""
        out: dict[str, Any] = {
            "pages": len(self.pages), "chars": len(self.text), "text_tokens": self.text_tokens,
            "tokenizer": self.tokenizer, "vision_tokens": self.vision_tokens,
            "profile": self.profile,
            "ratio": round(self.ratio, 3), "dpi": self.config.dpi,
            "font_size": self.config.font_size, "rung": self.chosen_rung,
            "seconds": round(self.seconds, 3),
        }
        if self.plan is not None:
            out.update(budget=self.plan.budget, limited_by=self.plan.limited_by,
                       chunks=len(self.plan.chunks))
        return out


def make_preview(text: str, s: Settings, profile: str = "glyph") -> Preview:
    """Lay out and price ``text`` (vision tokens by ``profile``); with a budget, the compressor
    chooses the config first."""
    t0 = time.perf_counter()
    check_text(text, "document")
    base = base_config(text, s)
    plan = None
    cfg = base
    if s.budget is not None:
        plan = compress(text, int(s.budget), model=profile, config=base, tokenizer=TOKENIZER,
                        overflow="split")
        cfg = plan.config
    pages = list(layout(text, cfg))
    sizes = page_sizes(pages, cfg)
    prof = get_profile(profile)
    vision = [image_tokens(w, h, prof) for w, h in sizes]
    if plan is not None:
        count, name = plan.text_tokens, plan.tokenizer
    else:
        tok = get_tokenizer(TOKENIZER)
        count, name = tok.count(text), tok.name
    return Preview(text=text, settings=s, base=base, config=cfg, pages=pages, sizes=sizes,
                   vision=vision, text_tokens=count, tokenizer=name, plan=plan,
                   seconds=time.perf_counter() - t0, key=s.key(text), profile=profile)


def page_file(pv: Preview, index: int) -> Path:
    """Draw page ``index`` (0-based) once into the preview's folder; later calls reuse it."""
    path = pv.folder / f"page_{index + 1:04d}.png"
    if not path.exists():
        img = rasterize(pv.pages[index], pv.config, last=index == len(pv.pages) - 1)
        part = path.with_suffix(f".{threading.get_ident()}.part")  # one per drawing thread
        part.write_bytes(encode_png(img, pv.config.dpi))
        os.replace(part, path)  # a concurrent drawer of the same page never sees half a file
    return path


def caption(pv: Preview, index: int) -> str:
    p = pv.pages[index]
    w, h = pv.sizes[index]
    return (f"p. {index + 1} · chars {p.start:,}–{p.end:,} · {w}×{h} px · "
            f"{pv.vision[index]:,} vision tokens")


def draw_pages(pv: Preview, start: int, count: int = WINDOW) -> list[tuple[str, str]]:
    """``(png path, caption)`` for pages ``start .. start+count-1`` (clamped), drawn lazily."""
    start = max(0, min(start, max(len(pv.pages) - 1, 0)))
    end = min(len(pv.pages), start + count)
    return [(str(page_file(pv, i)), caption(pv, i)) for i in range(start, end)]


def source_span(pv: Preview, index: int) -> str:
    p = pv.pages[index]
    return pv.text[p.start:p.end]


def pages_zip(pv: Preview) -> Path:
    """Every page as PNG in one zip (pages already drawn are reused)."""
    out = pv.folder / "pages.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:  # PNG is compressed already
        for i in range(len(pv.pages)):
            zf.write(page_file(pv, i), f"page_{i + 1:03d}.png")
    return out


def pages_pdf(pv: Preview) -> Path:
    """Every page in one PDF at the size the DPI implies."""
    out = pv.folder / "pages.pdf"
    n = len(pv.pages)
    write_pdf((rasterize(p, pv.config, last=i == n - 1) for i, p in enumerate(pv.pages)),
              out, pv.config.dpi)
    return out


# --- the compressor's ladder, priced at a few DPIs ----------------------------------------------


@dataclass
class RungCosts:
    name: str
    font_size: float
    floor_dpi: float
    costs: list[tuple[float, int]]  # (dpi, vision tokens), ascending DPI


def ladder_costs(pv: Preview, max_dpi: float = DEFAULT_MAX_DPI,
                 dpis: tuple[float, ...] = (72.0, 96.0)) -> list[RungCosts]:
    """What each rung of the compressor's ladder would cost at its legibility floor, at common
    DPIs and at ``max_dpi``: one layout per rung, priced by page sizes (nothing rastered)."""
    prof = get_profile(pv.profile)
    floor = legibility_floor(pv.text)
    out = []
    for rung in ladder(pv.base, pv.text):
        cfg = pv.base.replace(**rung.changes) if rung.changes else pv.base
        lo = floor * 72.0 / cfg.font_size
        points = sorted({round(lo, 2), *(d for d in dpis if lo < d < max_dpi), max(max_dpi, lo)})
        pages = list(layout(pv.text, cfg))
        costs = [(d, sum(image_tokens(w, h, prof) for w, h in page_sizes(pages, cfg, d)))
                 for d in points]
        out.append(RungCosts(rung.name, cfg.font_size, round(lo, 2), costs))
    return out


def ladder_svg(rungs: list[RungCosts], budget: int | None, chosen: tuple[str, float] | None,
               width: int = 520, height: int = 230) -> str:
    """A small line chart: vision tokens against DPI, one line per rung, the budget dashed."""
    if not rungs:
        return "<p>no ladder</p>"
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    xs = [d for r in rungs for d, _ in r.costs]
    ys = [c for r in rungs for _, c in r.costs] + ([budget] if budget else [])
    x0, x1 = min(xs), max(xs)
    y1 = max(ys) * 1.08 or 1
    left, right, top, bottom = 56, 130, 10, 28
    pw, ph = width - left - right, height - top - bottom

    def px(d: float) -> float:
        return left + (d - x0) / ((x1 - x0) or 1) * pw

    def py(c: float) -> float:
        return top + ph - c / y1 * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10" '
             f'class="glyph-ladder">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             f'stroke="#999"/>']
    for frac in (0, 0.5, 1):
        c = y1 * frac
        parts.append(f'<text x="{left - 4}" y="{py(c) + 3:.1f}" text-anchor="end">'
                     f'{c:,.0f}</text>')
    for d in sorted(set(round(x) for x in xs)):
        parts.append(f'<text x="{px(d):.1f}" y="{height - 14}" text-anchor="middle">{d}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 2}" text-anchor="middle">DPI '
                 f'(vision tokens on the y axis)</text>')
    if budget:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(budget):.1f}" '
                     f'y2="{py(budget):.1f}" stroke="#000" stroke-dasharray="4 3"/>'
                     f'<text x="{left + pw - 2}" y="{py(budget) - 3:.1f}" text-anchor="end">'
                     f'budget {budget:,}</text>')
    for k, r in enumerate(rungs):
        col = colours[k % len(colours)]
        pts = " ".join(f"{px(d):.1f},{py(c):.1f}" for d, c in r.costs)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2">'
                     f'<title>{r.name}</title></polyline>')
        for d, c in r.costs:
            parts.append(f'<circle cx="{px(d):.1f}" cy="{py(c):.1f}" r="2.5" fill="{col}">'
                         f'<title>{r.name} at {d:g} DPI: {c:,} tokens</title></circle>')
        ly = top + 12 + k * 14
        parts.append(f'<line x1="{width - right + 8}" x2="{width - right + 22}" y1="{ly - 3}" '
                     f'y2="{ly - 3}" stroke="{col}" stroke-width="2"/>'
                     f'<text x="{width - right + 26}" y="{ly}">{r.name}</text>')
    if chosen is not None and x0 <= chosen[1] <= x1:  # a DPI off the chart gets no ring
        name, dpi = chosen
        for r in rungs:
            if r.name == name:
                cost = _cost_at(r, dpi)
                parts.append(f'<circle cx="{px(dpi):.1f}" cy="{py(cost):.1f}" r="6" fill="none" '
                             f'stroke="#000" stroke-width="2"><title>chosen: {name} at '
                             f'{dpi:g} DPI</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _cost_at(r: RungCosts, dpi: float) -> float:
    """Linear interpolation between the priced points (for placing the chosen marker)."""
    pts = r.costs
    if dpi <= pts[0][0]:
        return pts[0][1]
    for (d0, c0), (d1, c1) in zip(pts, pts[1:], strict=False):
        if d0 <= dpi <= d1:
            return c0 + (c1 - c0) * (dpi - d0) / ((d1 - d0) or 1)
    return pts[-1][1]


def ladder_table(rungs: list[RungCosts]) -> list[list[Any]]:
    """Rows for the table under the chart: rung, font size, floor DPI, then tokens per DPI."""
    return [[r.name, r.font_size, r.floor_dpi, "; ".join(f"{d:g} DPI: {c:,}" for d, c in r.costs)]
            for r in rungs]


def figures_markdown(pv: Preview) -> str:
    s = pv.summary()
    lines = [
        f"**{s['pages']} page{'' if s['pages'] == 1 else 's'}** · {s['chars']:,} characters · "
        f"**{s['text_tokens']:,} text tokens** ({s['tokenizer']}) → "
        f"**{s['vision_tokens']:,} vision tokens** ({s['profile']}) · ratio **{s['ratio']:.2f}×**",
        f"DPI {s['dpi']:g} · font {s['font_size']:g} pt · rung `{s['rung']}` · "
        f"laid out and priced in {s['seconds'] * 1000:.0f} ms",
    ]
    if pv.plan is not None:
        used = pv.plan.cost / pv.plan.budget if pv.plan.budget else 0
        extra = f" · {s['chunks']} chunks" if s.get("chunks") else ""
        lines.append(f"budget {s['budget']:,}: {used:.0%} used, limited by "
                     f"{s['limited_by']}{extra}")
    return "  \n".join(lines)
