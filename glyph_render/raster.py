"""Raster: laid-out pages (points) -> pixels at a DPI.

Pillow's ``ImageDraw.text`` rasterises every glyph afresh (~8.5 us a character, ~70 ms a page), so
this stage keeps an atlas instead: each glyph is rasterised once per font, size and quarter-pixel
phase, composed into whole words once per word and phase, and a page is a few thousand
``numpy.maximum`` blits of cached word masks into an ink plane, coloured at the end by a lookup
table. Glyphs sit at their unkerned design advances, exactly where the layout measured them.

The page's pixel size is arithmetic on the layout (see :func:`pixel_size`), never a scan of the
pixels, so the vision-token cost of any DPI is known without rastering.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .config import RenderConfig
from .fonts import REPLACEMENT, FontChain, font_chain
from .layout import MARKER, Page

PHASES = 4  # sub-pixel positions per pixel


def page_pixel_size(page: Page, cfg: RenderConfig, *, last: bool,
                    dpi: float | None = None) -> tuple[int, int]:
    """(width, height) in pixels of ``page`` at ``dpi`` (default: the config's).

    Mirrors the reference: the page is rasterised at ``ceil(points x dpi / 72)``, scaled
    horizontally, then cropped to its ink plus one margin (the height only on the ``last`` page).
    Ink extents come from the layout, so this is pure arithmetic.
    """
    s = (cfg.dpi if dpi is None else dpi) / 72.0
    full_w = math.ceil(page.width * s - 1e-9)
    full_h = math.ceil(page.height * s - 1e-9)
    w = int(full_w * cfg.horizontal_scale) if cfg.horizontal_scale != 1.0 else full_w
    h = full_h
    has_ink = page.content_right > 0
    if cfg.auto_crop_width and has_ink:
        right = math.ceil(page.content_right * s * cfg.horizontal_scale)
        w = max(1, min(w, right + round(cfg.margin_x * s)))
    if cfg.auto_crop_last_page and last and has_ink:
        bottom = math.ceil(page.content_bottom * s)
        h = max(1, min(h, bottom + round(cfg.margin_y * s)))
    return w, h


@dataclass
class _Mask:
    arr: np.ndarray  # uint8 coverage
    dx: int  # left edge relative to the pen's integer x
    dy: int  # top edge relative to the baseline row


_EMPTY = _Mask(np.zeros((0, 0), np.uint8), 0, 0)


class GlyphAtlas:
    """Glyph and word coverage masks for one font chain at one pixel size.

    Built per (fonts, size) and reused across pages and documents of the same config.
    """

    def __init__(self, chain: FontChain, px_size: float):
        self.chain = chain
        self.px = px_size
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._glyphs: dict[tuple[str, int], _Mask] = {}
        self._words: dict[tuple[str, int], _Mask] = {}
        self._raqm: dict[int, ImageFont.FreeTypeFont] = {}

    # -- single glyphs --------------------------------------------------------------------
    def _font(self, face: int) -> ImageFont.FreeTypeFont:
        f = self._fonts.get(face)
        if f is None:
            info = self.chain.face(face)
            size = info.bitmap_size if info.color_bitmap else max(1, round(self.px * 64)) / 64
            f = ImageFont.truetype(info.path, size, layout_engine=ImageFont.Layout.BASIC)
            self._fonts[face] = f
        return f

    def glyph(self, ch: str, phase: int) -> _Mask:
        key = (ch, phase)
        m = self._glyphs.get(key)
        if m is None:
            m = self._render_glyph(ch, phase)
            self._glyphs[key] = m
        return m

    def _render_glyph(self, ch: str, phase: int) -> _Mask:
        face, adv = self.chain.resolve(ch)
        if face == -1:
            return _EMPTY
        if face == -2:
            if self.chain.replacement_face < 0:
                return self._box(adv)
            face, ch = self.chain.replacement_face, REPLACEMENT
        info = self.chain.face(face)
        font = self._font(face)
        if info.color_bitmap:
            return self._color_glyph(font, ch, adv)
        pad = int(self.px) + 4
        width = int(adv * self.px) + 3 * pad
        height = int(self.px * 2.5) + 2 * pad
        base = int(self.px * 1.6) + pad
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).text(
            (pad + phase / PHASES, base), ch, fill=255, font=font, anchor="ls"
        )
        bbox = canvas.getbbox()
        if bbox is None:
            return _EMPTY
        arr = np.asarray(canvas.crop(bbox))
        return _Mask(arr, bbox[0] - pad, bbox[1] - base)

    def _color_glyph(self, font: ImageFont.FreeTypeFont, ch: str, adv: float) -> _Mask:
        """Colour bitmap emoji: drawn at the strike size, turned to grey ink, scaled down."""
        size = font.size
        canvas = Image.new("RGBA", (int(size * 1.5), int(size * 1.5)), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text((0, 0), ch, font=font, embedded_color=True)
        bbox = canvas.getbbox()
        if bbox is None:
            return _EMPTY
        white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
        grey = Image.alpha_composite(white, canvas).convert("L").crop(bbox)
        ink = Image.eval(grey, lambda v: 255 - v)
        # Fit the advance width and one em of height; sit on the baseline, dipping like a
        # descender.
        scale = min(adv * self.px / ink.width, self.px / ink.height) * 0.95
        new = (max(1, round(ink.width * scale)), max(1, round(ink.height * scale)))
        ink = ink.resize(new, Image.Resampling.LANCZOS)
        return _Mask(np.asarray(ink), 0, -ink.height + round(0.12 * self.px))

    def _box(self, adv: float) -> _Mask:
        w = max(2, round(adv * self.px * 0.8))
        h = max(3, round(self.px * 0.7))
        arr = np.zeros((h, w), np.uint8)
        arr[0, :] = arr[-1, :] = arr[:, 0] = arr[:, -1] = 255
        return _Mask(arr, 0, -h)

    # -- words ----------------------------------------------------------------------------
    def word(self, text: str, phase: int) -> _Mask:
        key = (text, phase)
        m = self._words.get(key)
        if m is None:
            m = self._compose(text, phase)
            if len(self._words) < 200_000:
                self._words[key] = m
        return m

    def _compose(self, text: str, phase: int) -> _Mask:
        if not text.isascii() and _RTL.search(text):
            return self.shaped(text, phase)
        return self._compose_glyphs(text, phase)

    def _compose_glyphs(self, text: str, phase: int) -> _Mask:
        """One word's mask from cached glyph masks at their quarter-pixel pen positions.

        Hot on documents with a fresh vocabulary, so bounds are gathered in the same pass.
        """
        placed: list[tuple[int, int, np.ndarray]] = []  # (x, y, mask) relative to the pen
        lookup = self.chain._lookup
        glyphs = self._glyphs
        scale = self.px * PHASES
        q = float(phase)  # pen in quarter pixels
        left = top = 1 << 30
        right = bottom = -(1 << 30)
        for ch in text:
            hit = lookup.get(ch) or self.chain.resolve(ch)
            if hit[0] != -1 and ch != " ":
                qi = round(q)
                g = glyphs.get((ch, qi % PHASES)) or self.glyph(ch, qi % PHASES)
                arr = g.arr
                if arr.size:
                    x = qi // PHASES + g.dx
                    h, w = arr.shape
                    placed.append((x, g.dy, arr))
                    left = min(left, x)
                    right = max(right, x + w)
                    top = min(top, g.dy)
                    bottom = max(bottom, g.dy + h)
            q += hit[1] * scale
        if not placed:
            return _EMPTY
        if len(placed) == 1:
            x, y, arr = placed[0]
            return _Mask(arr, x, y)
        out = np.zeros((bottom - top, right - left), np.uint8)
        for x, y, arr in placed:
            h, w = arr.shape
            view = out[y - top:y - top + h, x - left:x - left + w]
            np.maximum(view, arr, out=view)
        return _Mask(out, left, top)

    def shaped(self, text: str, phase: int) -> _Mask:
        """A right-to-left word, shaped by raqm in the font that has its script.

        Controls and separators are dropped first (raqm refuses some of them); without raqm,
        or if shaping fails, the word is drawn glyph by glyph, unshaped.
        """
        clean = "".join(c for c in text if unicodedata.category(c) not in _NO_SHAPE)
        face = next((f for c in clean if unicodedata.bidirectional(c) in ("R", "AL")
                     for f in [self.chain.resolve(c)[0]] if f >= 0), 0)
        font = self._raqm.get(face)
        if font is None and ImageFont.core.HAVE_RAQM:
            font = ImageFont.truetype(self.chain.paths[face], self.px,
                                      layout_engine=ImageFont.Layout.RAQM)
            self._raqm[face] = font
        if font is None or not clean:
            return self._compose_glyphs(text, phase)
        pad = int(self.px) + 4
        width = int(self.chain.width(clean) * self.px * 1.5) + 3 * pad
        height = int(self.px * 2.5) + 2 * pad
        base = int(self.px * 1.6) + pad
        canvas = Image.new("L", (width, height), 0)
        try:
            ImageDraw.Draw(canvas).text((pad + phase / PHASES, base), clean, fill=255,
                                        font=font, anchor="ls", direction="rtl")
        except (RuntimeError, OSError, ValueError):
            return self._compose_glyphs(text, phase)
        bbox = canvas.getbbox()
        if bbox is None:
            return _EMPTY
        return _Mask(np.asarray(canvas.crop(bbox)), bbox[0] - pad, bbox[1] - base)


_NO_SHAPE = ("Cc", "Zl", "Zp")
_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]|[\U00010800-\U00010fff]")


def _is_rtl_line(words: list[tuple[float, str, int]]) -> bool:
    return any(not t.isascii() and _RTL.search(t) for _x, t, _s in words)


def _direction(text: str) -> int:
    """+1 left-to-right, -1 right-to-left, 0 neutral (digits, punctuation): first strong char."""
    for c in text:
        d = unicodedata.bidirectional(c)
        if d == "L":
            return 1
        if d in ("R", "AL"):
            return -1
    return 0


def visual_order(words: list[tuple[float, str, int]], advances: list[float],
                 drawn: list[float], space: float) -> list[tuple[float, str, int]]:
    """Reorder a mixed-direction line's words for display (the bidi algorithm at word level).

    Runs of right-to-left words read right to left; the line's direction (its first strong
    word) decides the order of the runs. ``advances`` are the layout's widths, ``drawn`` the
    drawn ones (shaped Arabic is narrower than its isolated forms). Gaps are one ``space``, or,
    when the layout stretched the line (justified), spread evenly over its logical extent.
    """
    dirs = [_direction(t) for _x, t, _s in words]
    base = next((d for d in dirs if d), 1)
    runs: list[list[int]] = []
    run_dir: list[int] = []
    for i, d in enumerate(dirs):
        d = d or (run_dir[-1] if run_dir else base)
        if run_dir and run_dir[-1] == d:
            runs[-1].append(i)
        else:
            runs.append([i])
            run_dir.append(d)
    order: list[int] = []
    for run, d in (zip(reversed(runs), reversed(run_dir), strict=True) if base < 0
                   else zip(runs, run_dir, strict=True)):
        order.extend(reversed(run) if d < 0 else run)
    left = words[0][0]
    gap = space
    n = len(words)
    if n > 1 and any(b[0] - a[0] - w > space * 1.05
                     for a, b, w in zip(words, words[1:], advances, strict=False)):
        gap = (words[-1][0] + advances[-1] - left - sum(drawn)) / (n - 1)
    out = []
    x = left
    for i in order:
        out.append((x, words[i][1], words[i][2]))
        x += drawn[i] + gap
    return out


_ATLASES: dict[tuple[tuple[str, ...], float], GlyphAtlas] = {}


def atlas_for(cfg: RenderConfig) -> GlyphAtlas:
    px = cfg.font_size * cfg.scale
    key = (cfg.font_chain, round(px * 64) / 64)
    a = _ATLASES.get(key)
    if a is None:
        if len(_ATLASES) > 8:
            _ATLASES.clear()
        a = GlyphAtlas(font_chain(cfg.font_chain), px)
        _ATLASES[key] = a
    return a


def _blit(plane: np.ndarray, m: _Mask, x: int, y: int) -> None:
    h, w = m.arr.shape
    x0, y0 = x + m.dx, y + m.dy
    x1, y1 = x0 + w, y0 + h
    H, W = plane.shape
    if x0 >= 0 and y0 >= 0 and x1 <= W and y1 <= H:
        view = plane[y0:y1, x0:x1]
        np.maximum(view, m.arr, out=view)
        return
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    view = plane[cy0:cy1, cx0:cx1]
    np.maximum(view, m.arr[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], out=view)


def _lut(bg: int, fg: int) -> bytes:
    return bytes(round(bg + (fg - bg) * i / 255) for i in range(256))


def rasterize(page: Page, cfg: RenderConfig, *, last: bool = False) -> Image.Image:
    """Draw one page: an 'L' image when every colour is grey, else 'RGB'."""
    s = cfg.scale
    atlas = atlas_for(cfg)
    full_w = math.ceil(page.width * s - 1e-9)
    full_h = math.ceil(page.height * s - 1e-9)
    ink = np.zeros((full_h, full_w), np.uint8)
    nl = cfg.newline
    marker_ink = None
    if not nl.line_break and nl.color is not None and nl.color != cfg.font_color:
        marker_ink = np.zeros_like(ink)
    for line in page.lines:
        y = round(line.baseline * s)
        words = line.words
        if _is_rtl_line(words):
            advances = [atlas.chain.width(t) * cfg.font_size for _x, t, _s in words]
            drawn = list(advances)
            for i, (_x, t, _s) in enumerate(words):
                if not t.isascii() and _RTL.search(t):
                    m = atlas.word(t, 0)
                    drawn[i] = (m.dx + m.arr.shape[1]) / s if m.arr.size else 0.0
            words = visual_order(words, advances, drawn,
                                 atlas.chain.advance(" ") * cfg.font_size)
        for x_pt, text, style in words:
            q = round(x_pt * s * PHASES)  # pen in quarter pixels
            ix = q // PHASES
            m = atlas.word(text, q % PHASES)
            if m.arr.size:
                _blit(marker_ink if (style == MARKER and marker_ink is not None) else ink,
                      m, ix, y)
    img = _colour(page, cfg, ink, marker_ink, full_w, full_h)
    if cfg.horizontal_scale != 1.0:
        img = img.resize((int(full_w * cfg.horizontal_scale), full_h))
    w, h = page_pixel_size(page, cfg, last=last)
    if (w, h) != img.size:
        img = img.crop((0, 0, w, h))
    return img


def _colour(page: Page, cfg: RenderConfig, ink: np.ndarray, marker_ink: np.ndarray | None,
            w: int, h: int) -> Image.Image:
    s = cfg.scale
    grey = cfg.is_grey
    mode = "L" if grey else "RGB"
    ink_img = Image.fromarray(ink, "L")
    if not page.boxes and marker_ink is None:
        if grey:
            return ink_img.point(_lut(cfg.page_bg_color[0], cfg.font_color[0]))
        pairs = zip(cfg.page_bg_color, cfg.font_color, strict=True)
        bands = [ink_img.point(_lut(b, f)) for b, f in pairs]
        return Image.merge("RGB", bands)
    colour = (lambda c: c[0]) if grey else (lambda c: c)
    base = Image.new(mode, (w, h), colour(cfg.page_bg_color))
    if page.boxes:
        draw = ImageDraw.Draw(base)
        for b in page.boxes:
            box = (round(b.left * s), round(b.top * s), round(b.right * s) - 1,
                   round(b.bottom * s) - 1)
            fill = colour(cfg.para_bg_color) if cfg.para_bg_color != cfg.page_bg_color else None
            outline = colour(cfg.para_border_color) if cfg.border_width > 0 else None
            draw.rectangle(box, fill=fill, outline=outline,
                           width=max(1, round(cfg.border_width * s)) if outline else 0)
    base.paste(Image.new(mode, (w, h), colour(cfg.font_color)), (0, 0), ink_img)
    if marker_ink is not None:
        mc = cfg.newline.color or cfg.font_color
        base.paste(Image.new(mode, (w, h), colour(mc)), (0, 0), Image.fromarray(marker_ink, "L"))
    return base
