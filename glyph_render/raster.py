"""Raster: laid-out pages (points) -> pixels at a DPI, as poppler's Splash draws Glyph's PDF.

Glyph's pages were rasterised by ``pdftoppm``: FreeType glyphs with hinting off, placed at
quarter-pixel horizontal phases and whole-pixel baselines, blended into the page with Splash's
integer arithmetic; paragraph backgrounds filled as stroke-adjusted rectangles (edges rounded to
whole pixels) that cover whatever the previous paragraph's descenders left below its last line.
This module repeats all of that, in the same order and the same floating point, so a page comes
out pixel for pixel as the reference's (``benchmarks/fidelity.py`` measures it).

Speed comes from caching each glyph bitmap per font, size, glyph and phase, and from blending a
paragraph's glyphs in a few vectorised numpy passes: glyphs are split into layers (by line and
position parity) inside which no two overlap, so each layer is one gather-blend-scatter.

Page sizes and the auto-crop follow the reference exactly: ``ceil`` of the page size in pixels,
Pillow's resize for ``horizontal-scale``, then the crop on pixels that differ from the top-left
background by more than 5 grey levels, plus ``margin-x``/``margin-y`` *pixels*.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .config import RenderConfig
from .fonts import FontChain, font_chain
from .layout import MARKER, Page
from .pdfnum import pdf_value

PHASES = 4  # Splash's splashFontFraction
_GLYPH_SIZE_LIMIT = 50  # SplashFont::getGlyph: no sub-pixel phases for taller glyph boxes


def _round(x: float) -> int:
    """splashRound."""
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class Device:
    """pdftoppm's page at one DPI: bitmap size and the base transform (CTM)."""

    k: float  # pixels per point
    width: int
    height: int
    ctm4: float
    ctm5: float

    @classmethod
    def for_page(cls, page_w: float, page_h: float, dpi: float) -> Device:
        k = dpi / 72.0
        pg_w = page_w * (dpi / 72.0)
        pg_h = page_h * (dpi / 72.0)
        slice_w = math.ceil(pg_w)
        slice_h = math.ceil(pg_h)
        kk = 72.0 / dpi
        box_x1 = 0.0 + kk * 0
        box_x2 = 0.0 + kk * slice_w
        box_y1 = page_h - kk * (0 + slice_h)
        box_y2 = page_h - kk * 0
        w = int(k * (box_x2 - box_x1) + 0.5)
        h = int(k * (box_y2 - box_y1) + 0.5)
        ctm4 = -k * box_x1
        ctm5 = k * box_y2
        # "1 0 0 1 0 0 cm" at the top of reportlab's page stream
        ctm4 = (0.0 * k + 0.0 * 0.0) + ctm4
        ctm5 = (0.0 * 0.0 + 0.0 * -k) + ctm5
        return cls(k, max(w, 1), max(h, 1), ctm4, ctm5)

    def block(self, ex: float, ey: float) -> tuple[float, float]:
        """(ctm4, ctm5) after ``1 0 0 1 ex ey cm``."""
        k = self.k
        return (ex * k + ey * 0.0) + self.ctm4, (ex * 0.0 + ey * -k) + self.ctm5

    def rect(self, x: float, y: float, w: float, h: float, c4: float, c5: float
             ) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1) a stroke-adjusted ``re f`` fills, before clipping."""
        k = self.k
        xa = x * k + y * 0.0 + c4
        xb = (x + w) * k + y * 0.0 + c4
        ya = x * 0.0 + y * -k + c5
        yb = x * 0.0 + (y + h) * -k + c5
        x0, x1 = _round(min(xa, xb)), _round(max(xa, xb))
        y0, y1 = _round(min(ya, yb)), _round(max(ya, yb))
        if x1 == x0:
            x1 += 1
        if y1 == y0:
            y1 += 1
        return x0, y0, x1, y1


class GlyphAtlas:
    """Glyph bitmaps for one font chain at one text size and DPI, as SplashFTFont makes them.

    Each (font, glyph, phase) gets a small integer id; per id the atlas keeps the non-zero
    pixels' offsets from the pen pixel and their coverage, ready for numpy gathers.
    """

    def __init__(self, chain: FontChain, font_size: float, k: float):
        self.chain = chain
        m = font_size * k  # the text matrix in device pixels
        self.m = m
        self.size = max(1, _round(abs(m)))
        self.fixed = int((m / self.size) * 65536)
        self.ids: dict[tuple[int, int, int], int] = {}
        self.dy: list[np.ndarray] = []
        self.dx: list[np.ndarray] = []
        self.alpha: list[np.ndarray] = []
        self.box: list[tuple[int, int, int, int]] = []  # left, top, w, h from the pen pixel
        self._flat: dict[int, list[np.ndarray]] = {}
        self._fractional: dict[int, bool] = {}

    def fractional(self, face: int) -> bool:
        """Splash drops sub-pixel phases when the font's transformed bbox is over 50 px tall."""
        ok = self._fractional.get(face)
        if ok is None:
            f = self.chain.face(face)
            xmin, ymin, xmax, ymax = f.bbox
            upem = f.units_per_em
            div = 65536 if xmax > 20000 else 1
            m = self.m
            ys = [int((0.0 * bx + m * by) / (div * upem)) for bx in (xmin, xmax)
                  for by in (ymin, ymax)]
            lo, hi = min(ys), max(ys)
            if hi == lo:
                lo, hi = 0, int(1.2 * self.size)
            ok = (hi - lo + 3) <= _GLYPH_SIZE_LIMIT
            self._fractional[face] = ok
        return ok

    def glyph_id(self, face: int, gid: int, phase: int) -> int:
        key = (face, gid, phase)
        i = self.ids.get(key)
        if i is None:
            i = len(self.dy)
            self.ids[key] = i
            arr, left, top = self._render(face, gid, phase)
            if arr is None:
                self.dy.append(np.zeros(0, np.int64))
                self.dx.append(np.zeros(0, np.int64))
                self.alpha.append(np.zeros(0, np.int32))
                self.box.append((0, 0, 0, 0))
            else:
                ys, xs = np.nonzero(arr)
                self.dy.append((ys - top).astype(np.int64))
                self.dx.append((xs + left).astype(np.int64))
                self.alpha.append(arr[ys, xs].astype(np.int32))
                self.box.append((left, -top, arr.shape[1], arr.shape[0]))
            for width, flats in self._flat.items():
                flats.append(self.dy[i] * width + self.dx[i])
        return i

    def flat(self, width: int) -> list[np.ndarray]:
        """Per id, pixel offsets from the pen pixel in a row-major page ``width`` wide."""
        flats = self._flat.get(width)
        if flats is None:
            flats = [dy * width + dx for dy, dx in zip(self.dy, self.dx, strict=True)]
            self._flat[width] = flats
        return flats

    def _render(self, face: int, gid: int, phase: int):
        f = self.chain.face(face)
        if f.color_bitmap:
            return _colour_glyph(f, gid, self.size, self.chain, face)
        import freetype

        ft = f.ft
        ft.set_pixel_sizes(0, self.size)
        ft.set_transform(freetype.Matrix(self.fixed, 0, 0, self.fixed),
                         freetype.Vector(int(phase * 0.25 * 64), 0))
        try:
            ft.load_glyph(gid, freetype.FT_LOAD_NO_BITMAP | freetype.FT_LOAD_NO_HINTING)
            ft.glyph.render(freetype.FT_RENDER_MODE_NORMAL)
        except freetype.FT_Exception:
            return None, 0, 0
        bm = ft.glyph.bitmap
        w, h, pitch = bm.width, bm.rows, bm.pitch
        if w == 0 or h == 0:
            return None, 0, 0
        buf = ctypes.string_at(bm._FT_Bitmap.buffer, abs(pitch) * h)
        arr = np.frombuffer(buf, np.uint8).reshape(h, abs(pitch))[:, :w]
        if pitch < 0:
            arr = arr[::-1]
        return arr.copy(), ft.glyph.bitmap_left, ft.glyph.bitmap_top


def _colour_glyph(f, gid: int, size: int, chain: FontChain, face: int):
    """A colour bitmap glyph (emoji): its strike drawn grey, scaled to one em on the baseline."""
    from PIL import ImageDraw, ImageFont

    ch = next((c for c, hit in chain.lookup.items() if hit[0] == face and hit[1] == gid), None)
    if ch is None:
        return None, 0, 0
    font = ImageFont.truetype(f.path, f.bitmap_size)
    canvas = Image.new("RGBA", (f.bitmap_size * 2, f.bitmap_size * 2), (255, 255, 255, 0))
    try:
        ImageDraw.Draw(canvas).text((0, 0), ch, font=font, embedded_color=True)
    except (OSError, ValueError):
        return None, 0, 0
    bbox = canvas.getbbox()
    if bbox is None:
        return None, 0, 0
    white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, canvas).convert("L").crop(bbox)
    ink = Image.eval(grey, lambda v: 255 - v)
    scale = size / max(ink.width, ink.height) * 0.95
    new = (max(1, round(ink.width * scale)), max(1, round(ink.height * scale)))
    ink = ink.resize(new, Image.Resampling.LANCZOS)
    return np.asarray(ink), 0, ink.height - round(0.12 * size)


_ATLASES: dict[tuple, GlyphAtlas] = {}


def atlas_for(cfg: RenderConfig, dpi: float | None = None) -> GlyphAtlas:
    k = (cfg.dpi if dpi is None else dpi) / 72.0
    size = pdf_value(cfg.font_size)
    key = (cfg.font_chain, size, k)
    a = _ATLASES.get(key)
    if a is None:
        if len(_ATLASES) > 8:
            _ATLASES.clear()
        a = GlyphAtlas(font_chain(cfg.font_chain), size, k)
        _ATLASES[key] = a
    return a


class _CharTable:
    """Per character: atlas face/glyph, PDF advance (as poppler read it) and word-space flag."""

    def __init__(self, chain: FontChain):
        self.chain = chain
        self.cache: dict[str, tuple[int, int, float, bool]] = {}

    def get(self, ch: str) -> tuple[int, int, float, bool]:
        hit = self.cache.get(ch)
        if hit is None:
            face, gid, width = self.chain.resolve(ch)
            if face >= 0 and gid == 0:
                # reportlab sends a character its font lacks as code 0, which the subset maps to
                # U+0000's glyph (.notdef, or an empty .null in some fonts), at that width
                f = self.chain.face(face)
                gid = f.glyph(0)
                width = f.glyph_width(gid)
            # reportlab writes each width with fp_str; poppler reads it and scales by 0.001
            w = pdf_value(width) * 0.001 if face >= 0 else 0.0
            hit = (face, gid, w, ch == " " or ch == "\xa0")
            self.cache[ch] = hit
        return hit


_TABLES: dict[tuple[str, ...], _CharTable] = {}


def _table(cfg: RenderConfig) -> _CharTable:
    t = _TABLES.get(cfg.font_chain)
    if t is None:
        t = _TABLES[cfg.font_chain] = _CharTable(font_chain(cfg.font_chain))
    return t


def _layers_for(n_lines: int) -> int:
    return 2


class _Canvas:
    """The page bitmap: one uint8 plane per channel (1 for grey pages, 3 for colour)."""

    def __init__(self, dev: Device, channels: int, paper: tuple[int, ...]):
        self.dev = dev
        self.channels = channels
        self.planes = [np.full((dev.height, dev.width), paper[c], np.uint8)
                       for c in range(channels)]
        self.touched: list[np.ndarray] = []

    def fill(self, box: tuple[int, int, int, int], colour: tuple[int, ...]) -> None:
        x0, y0, x1, y1 = box
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.dev.width), min(y1, self.dev.height)
        if x0 >= x1 or y0 >= y1:
            return
        for c in range(self.channels):
            self.planes[c][y0:y1, x0:x1] = colour[c]

    def blend(self, idx: np.ndarray, alpha: np.ndarray, colour: tuple[int, ...]) -> None:
        """Splash's pipe for an opaque page: d = ((255 - a) * d + a * c) // 255."""
        inv = 255 - alpha
        for c in range(self.channels):
            flat = self.planes[c].reshape(-1)
            d = flat[idx].astype(np.int32)
            col = colour[c]
            if col:
                flat[idx] = (inv * d + alpha * col) // 255
            else:
                flat[idx] = (inv * d) // 255
        self.touched.append(idx)


def _colour(rgb: tuple[int, int, int], grey: bool) -> tuple[int, ...]:
    return (rgb[0],) if grey else rgb


def rasterize(page: Page, cfg: RenderConfig, *, last: bool = False,
              dpi: float | None = None) -> Image.Image:
    """Draw one page: an 'L' image when every colour is grey, else 'RGB'."""
    d = cfg.dpi if dpi is None else dpi
    dev = Device.for_page(page.width, page.height, d)
    grey = cfg.is_grey
    canvas = _Canvas(dev, 1 if grey else 3, _colour((255, 255, 255), grey))
    page_bg = _colour(cfg.page_bg_color, grey)
    para_bg = _colour(cfg.para_bg_color, grey)
    border = _colour(cfg.para_border_color, grey)
    text_col = _colour(cfg.font_color, grey)
    nl = cfg.newline
    marker_col = _colour(nl.color, grey) if (not nl.line_break and nl.color) else text_col
    # onPage: the page background rectangle
    canvas.fill(dev.rect(0.0, 0.0, page.width, page.height, dev.ctm4, dev.ctm5), page_bg)
    atlas = atlas_for(cfg, d)
    table = _table(cfg)
    fs = page.font_size
    by_block: dict[int, list] = {}
    for ln in page.lines:
        by_block.setdefault(ln.block, []).append(ln)
    bw = cfg.border_width
    for bi, block in enumerate(page.blocks):
        c4, c5 = dev.block(block.ex, block.ey)
        rx, ry, rw, rh = block.rect
        if block.fill:
            canvas.fill(dev.rect(rx, ry, rw, rh, c4, c5), para_bg)
        if block.stroke and bw > 0:
            _stroke_rect(canvas, dev, rx, ry, rw, rh, bw, c4, c5, border)
        lines = by_block.get(bi)
        if lines:
            _draw_lines(canvas, dev, atlas, table, lines, fs, c4, c5, text_col, marker_col)
    img = _image(canvas)
    if cfg.horizontal_scale != 1.0:
        img = img.resize((int(img.width * cfg.horizontal_scale), img.height))
        return _auto_crop(img, cfg, last, None)
    return _auto_crop(img, cfg, last, canvas)


def _stroke_rect(canvas: _Canvas, dev: Device, x: float, y: float, w: float, h: float,
                 lw: float, c4: float, c5: float, colour: tuple[int, ...]) -> None:
    """A stroked rectangle as four edge bands of the line width, stroke-adjusted."""
    half = lw / 2
    for bx, by, bw_, bh in ((x - half, y - half, w + lw, lw), (x - half, y + h - half, w + lw, lw),
                            (x - half, y - half, lw, h + lw), (x + w - half, y - half, lw, h + lw)):
        canvas.fill(dev.rect(bx, by, bw_, bh, c4, c5), colour)


def _draw_lines(canvas: _Canvas, dev: Device, atlas: GlyphAtlas, table: _CharTable,
                lines: list, fs: float, c4: float, c5: float, text_col: tuple[int, ...],
                marker_col: tuple[int, ...]) -> None:
    """Blend one paragraph's glyphs, in layers that never overlap within themselves."""
    k = dev.k
    W, H = dev.width, dev.height
    get = table.get
    frac_ok: dict[int, bool] = {}
    # per glyph instance: id, pen pixel, layer, style
    ids: list[int] = []
    bases: list[int] = []
    layers: list[int] = []
    marks: list[bool] = []
    outside: list[tuple[int, int, int, bool]] = []
    box = atlas.box
    for li, ln in enumerate(lines):
        chars: list[tuple[int, int, float, bool, bool]] = []
        for text, style in ln.runs:
            mark = style == MARKER
            for ch in text:
                face, gid, w, space = get(ch)
                chars.append((face, gid, w, space, mark))
        if not chars:
            continue
        tw = ln.word_space
        adv = np.fromiter(((c[2] * fs + tw) if c[3] else c[2] * fs for c in chars),
                          np.float64, len(chars))
        xs = np.empty(len(chars), np.float64)
        xs[0] = ln.ux
        if len(chars) > 1:
            np.add.accumulate(np.concatenate(([ln.ux], adv[:-1])), out=xs)
        xt = xs * k + c4
        yt = (ln.ux * 0.0 + ln.uy * -k) + c5
        y0 = math.floor(yt)
        x0 = np.floor(xt)
        ph = np.floor((xt - x0) * PHASES).astype(np.int64)
        x0i = x0.astype(np.int64).tolist()
        phl = ph.tolist()
        lp = (li & 1) * 2
        pos = 0
        for j, c in enumerate(chars):
            face = c[0]
            if face < 0 or c[3]:
                continue
            ok = frac_ok.get(face)
            if ok is None:
                ok = frac_ok[face] = atlas.fractional(face)
            gidx = atlas.glyph_id(face, c[1], phl[j] if ok else 0)
            left, top, bw, bh = box[gidx]
            if not bw:
                continue
            px = x0i[j]
            if px + left < 0 or px + left + bw > W or y0 + top < 0 or y0 + top + bh > H:
                outside.append((gidx, px, y0, c[4]))
                continue
            ids.append(gidx)
            bases.append(y0 * W + px)
            layers.append(lp + (pos & 1))
            marks.append(c[4])
            pos += 1
    if ids:
        _blend_layers(canvas, atlas, ids, bases, layers, marks, text_col, marker_col, W)
    for gidx, px, py, mark in outside:
        _blend_clipped(canvas, atlas, gidx, px, py, marker_col if mark else text_col)


def _blend_layers(canvas: _Canvas, atlas: GlyphAtlas, ids: list[int], bases: list[int],
                  layers: list[int], marks: list[bool], text_col: tuple[int, ...],
                  marker_col: tuple[int, ...], W: int) -> None:
    flats = atlas.flat(W)
    alphas = atlas.alpha
    has_marks = any(marks)
    groups: dict[tuple[int, bool], list[int]] = {}
    for i, (lay, mk) in enumerate(zip(layers, marks, strict=True)):
        groups.setdefault((lay, mk and has_marks), []).append(i)
    for (lay, mk), sel in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        gsel = [ids[i] for i in sel]
        offs = [flats[g] for g in gsel]
        counts = np.fromiter((len(o) for o in offs), np.int64, len(offs))
        idx = np.concatenate(offs) + np.repeat(
            np.fromiter((bases[i] for i in sel), np.int64, len(sel)), counts)
        alpha = np.concatenate([alphas[g] for g in gsel])
        canvas.blend(idx, alpha, marker_col if mk else text_col)


def _blend_clipped(canvas: _Canvas, atlas: GlyphAtlas, gidx: int, px: int, py: int,
                   colour: tuple[int, ...]) -> None:
    W, H = canvas.dev.width, canvas.dev.height
    ys = atlas.dy[gidx] + py
    xs = atlas.dx[gidx] + px
    keep = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
    if keep.any():
        canvas.blend(ys[keep] * W + xs[keep], atlas.alpha[gidx][keep], colour)


def _image(canvas: _Canvas) -> Image.Image:
    if canvas.channels == 1:
        return Image.fromarray(canvas.planes[0], "L")
    return Image.fromarray(np.dstack(canvas.planes), "RGB")


def _grey(values: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16."""
    v = values.astype(np.int64)
    return (v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 0x8000) >> 16


def _auto_crop(img: Image.Image, cfg: RenderConfig, last: bool,
               canvas: _Canvas | None) -> Image.Image:
    """The reference's crop, on pixels: right to the last column that differs from the
    top-left background by more than 5 grey levels, plus margin-x pixels; the last page's
    height likewise with margin-y."""
    crop_w = cfg.auto_crop_width
    crop_h = cfg.auto_crop_last_page and last
    if not (crop_w or crop_h):
        return img
    arr = np.asarray(img)
    grey = arr if arr.ndim == 2 else _grey(arr)
    bg = float(np.median(grey[:2, :2]))
    mask = np.abs(grey.astype(np.float64) - bg) > 5
    if crop_w:
        cols = np.flatnonzero(mask.any(axis=0))
        if cols.size:
            right = min(img.width, cols[-1] + 1 + cfg_margin(cfg.margin_x))
            img = img.crop((0, 0, right, img.height))
    if crop_h:
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size:
            lower = min(img.height, rows[-1] + cfg_margin(cfg.margin_y))
            img = img.crop((0, 0, img.width, lower))
    return img


def cfg_margin(v: float) -> int | float:
    """Glyph's JSON margins are integers; a float margin stays a float, as in the reference."""
    return int(v) if float(v).is_integer() else v


def page_pixel_size(page: Page, cfg: RenderConfig, *, last: bool,
                    dpi: float | None = None) -> tuple[int, int]:
    """(width, height) in pixels of ``page`` at ``dpi``: the size the rendered PNG will have."""
    img = rasterize(page, cfg, last=last, dpi=dpi)
    return img.size
