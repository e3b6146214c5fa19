"""Raster: laid-out pages (points) -> pixels at a DPI, as poppler's Splash draws Glyph's PDF.

Glyph's pages were rasterised by ``pdftoppm``: FreeType glyphs with hinting off, placed at
quarter-pixel horizontal phases and whole-pixel baselines, blended into the page with Splash's
integer arithmetic; paragraph backgrounds filled as stroke-adjusted rectangles (edges rounded to
whole pixels) that cover whatever the previous paragraph's descenders left below its last line.
This module repeats all of that, in the same order and the same floating point, so a page comes
out pixel for pixel as the reference's (``benchmarks/fidelity.py`` measures it).

Speed comes from caching each glyph bitmap per font, size, glyph and phase, and from blending a
paragraph's glyphs in one pass of C (``_accel.c``, built with the package: one glyph after
another, as Splash does; the pen's walk along each line is C too). Without the compiled
module a NumPy path blends them in layers (by line and position parity) inside which no two
glyphs overlap, each layer one gather-blend-scatter: the same pixels except where glyphs
overlap, off by a level or so there.

With the compiled module a page is drawn without NumPy: the planes, the character table, the
atlas's packed glyph tables and the placements are ``bytearray``/``array.array`` buffers the C
code reads, and NumPy (a tenth of a short render's time just to import) is imported only by the
fallback and by size prediction (``page_pixel_size``), which view those same buffers
(``np.frombuffer``, no copies).

Page sizes and the auto-crop follow the reference exactly: ``ceil`` of the page size in pixels,
Pillow's resize for ``horizontal-scale``, then the crop on pixels that differ from the top-left
background by more than 5 grey levels, plus ``margin-x``/``margin-y`` *pixels*.
"""

from __future__ import annotations

import ctypes
import functools
import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from PIL import Image

from .config import MAX_ASPECT, MAX_PAGE_PIXELS, RenderConfig
from .errors import ConfigError
from .fonts import FT_LOCK, FontChain, font_chain
from .layout import MARKER, Page
from .pdfnum import pdf_value

try:  # the compiled page loops; optional (a NumPy path does the same work)
    from ._accel import atlas_ids as _c_atlas_ids
    from ._accel import blend as _c_blend
    from ._accel import blend_table as _c_blend_table
    from ._accel import char_ids as _c_char_ids
    from ._accel import fill as _c_fill
    from ._accel import flat_offsets as _c_flat_offsets
    from ._accel import glyph_pixels as _c_glyph_pixels
    from ._accel import last_ink as _c_last_ink
    from ._accel import place as _c_place
    from ._accel import take as _c_take
except ImportError:  # pragma: no cover - depends on the build
    _c_blend = _c_place = _c_atlas_ids = _c_blend_table = _c_char_ids = _c_fill = None
    _c_flat_offsets = _c_glyph_pixels = _c_last_ink = _c_take = None

if TYPE_CHECKING:
    import numpy as np
else:
    class _LazyNumpy:
        """numpy, imported on first use (the fallback's, size prediction's): the C path never
        reads it. The first attribute read puts the module itself in ``np``'s place."""

        def __getattr__(self, name: str) -> Any:
            import numpy

            globals()["np"] = numpy
            return getattr(numpy, name)

    np = _LazyNumpy()

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
    page_w: float  # the MediaBox as poppler read it
    page_h: float

    @classmethod
    @functools.lru_cache(maxsize=256)
    def for_page(cls, page_w: float, page_h: float, dpi: float) -> Device:
        if not (isinstance(dpi, (int, float)) and 0 < dpi < math.inf):
            raise ConfigError(f"dpi: {dpi!r} must be a finite number greater than 0")
        if (page_w * dpi / 72.0) * (page_h * dpi / 72.0) > MAX_PAGE_PIXELS:
            raise ConfigError(f"dpi: {dpi:g} makes a {page_w:g}x{page_h:g} pt page over "
                              f"Pillow's limit of {MAX_PAGE_PIXELS:,} pixels")
        # poppler sizes the page from the MediaBox reportlab wrote with fp_str: exact A4's
        # 841.8897637795277 pt arrives as 841.8898, and every baseline hangs off that height
        page_w, page_h = pdf_value(page_w), pdf_value(page_h)
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
        return cls(k, max(w, 1), max(h, 1), ctm4, ctm5, page_w, page_h)

    def page_box(self) -> tuple[int, int, int, int]:
        """Pixel box of the page background, ``0 0 w h re f`` (w, h written as the MediaBox)."""
        return self.rect(0.0, 0.0, self.page_w, self.page_h, self.ctm4, self.ctm5)

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

    Each (font, glyph, phase) gets a small integer id. All bitmaps' non-zero pixels live in
    packed tables (row and column offsets from the pen pixel, coverage; int64 ``array``s the C
    loops read, NumPy views of them for the fallback), so a page gathers the pixels of
    thousands of glyphs in one pass.
    """

    def __init__(self, chain: FontChain, font_size: float, k: float):
        self.chain = chain
        m = font_size * k  # the text matrix in device pixels
        self.m = m
        self.size = max(1, _round(abs(m)))
        self.fixed = int((m / self.size) * 65536)
        self.ids: dict[tuple[int, int, int], int] = {}
        self._dy: list[array] = []
        self._dx: list[array] = []
        self._alpha: list[array] = []
        self._views: tuple[list, list, list] = ([], [], [])  # NumPy views of the three lists
        self.box: list[tuple[int, int, int, int]] = []  # left, top, w, h from the pen pixel
        self._fractional: dict[int, bool] = {}
        self._ink: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
        self._packed: tuple[array, ...] | None = None
        self._flat_cache: dict = {}
        #: per char id of the char table x 4 phases: atlas id, -1 until made (grown by copy,
        #: never in place: NumPy views of an older one stay valid)
        self.char_ids = array("i")
        self.nbytes = 0  # about what the bitmaps hold here (``atlas_for`` bounds the total)

    # -- one glyph ------------------------------------------------------------------------
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
            with FT_LOCK:
                return self._new_glyph(key)
        return i

    def _new_glyph(self, key: tuple[int, int, int]) -> int:
        face, gid, phase = key
        i = self.ids.get(key)
        if i is None:
            i = len(self._dy)
            raw = self._bitmap(face, gid, phase)
            if raw is None:
                dy, dx, alpha = array("q"), array("q"), array("q")
                self.box.append((0, 0, 0, 0))
            else:
                buf, pitch, w, h, left, top = raw
                dy, dx, alpha = _glyph_pixels(buf, pitch, w, h, left, top)
                self.nbytes += _BYTES_PER_PIXEL * len(dy)
                self.box.append((left, -top, w, h))
            self._dy.append(dy)
            self._dx.append(dx)
            self._alpha.append(alpha)
            self._packed = None
            self.ids[key] = i  # published last: a reader finds the glyph complete
        return i

    def _np_views(self, which: int) -> list[np.ndarray]:
        """NumPy views of one of the per-glyph lists (dy, dx, alpha), made as glyphs come."""
        src, got = (self._dy, self._dx, self._alpha)[which], self._views[which]
        if len(got) < len(src):
            with FT_LOCK:
                got.extend(np.frombuffer(a, np.int64) for a in src[len(got):])
        return got

    @property
    def dy(self) -> list[np.ndarray]:
        return self._np_views(0)

    @property
    def dx(self) -> list[np.ndarray]:
        return self._np_views(1)

    @property
    def alpha(self) -> list[np.ndarray]:
        return self._np_views(2)

    def ink_rows(self, gi: int, threshold: int) -> tuple[tuple[int, int], ...]:
        """(row, rightmost column) of each row holding coverage >= threshold, from the pen."""
        key = (gi, threshold)
        rows = self._ink.get(key)
        if rows is None:
            best: dict[int, int] = {}
            for y, x, a in zip(self._dy[gi], self._dx[gi], self._alpha[gi], strict=True):
                if a >= threshold and x > best.get(y, -(1 << 30)):
                    best[y] = x
            rows = tuple(sorted(best.items()))
            self._ink[key] = rows
        return rows

    def ink_span(self, gi: int, threshold: int) -> tuple[int, int, int, int] | None:
        """Of ``ink_rows``: first and last row, and the least and greatest rightmost column;
        None when no pixel reaches ``threshold``."""
        key = (gi, threshold, "span")
        span = self._ink.get(key)
        if span is None:
            rows = self.ink_rows(gi, threshold)
            cols = [c for _r, c in rows]
            span = (rows[0][0], rows[-1][0], min(cols), max(cols)) if rows else ()
            self._ink[key] = span
        return span or None

    def flat(self, width: int) -> array | np.ndarray:
        """Per packed pixel: its offset from the pen pixel in a page ``width`` wide."""
        packed = self.packed()
        key = ("flat", width)
        hit = self._flat_cache.get(key)
        if hit is None or hit[0] is not packed:
            dy, dx = packed[0], packed[1]
            if _c_flat_offsets is not None:
                flat: array | np.ndarray = array("q", bytes(8 * len(dy)))
                _c_flat_offsets(dy, dx, width, flat)
            else:
                flat = np.frombuffer(dy, np.int64) * width + np.frombuffer(dx, np.int64)
            hit = (packed, flat)
            self._flat_cache[key] = hit
        return hit[1]

    def packed_flat(self, width: int) -> tuple[tuple[array, ...], array | np.ndarray]:
        """``packed()`` and ``flat(width)`` of one and the same moment (threads add glyphs)."""
        packed = self._packed
        hit = self._flat_cache.get(("flat", width))
        if packed is not None and hit is not None and hit[0] is packed:
            return packed, hit[1]
        with FT_LOCK:
            return self.packed(), self.flat(width)

    def packed(self) -> tuple[array, ...]:
        """(dy, dx, alpha, start, count, left, top, width, height) over all ids (int64)."""
        packed = self._packed
        if packed is not None:
            return packed
        with FT_LOCK:
            return self._pack()

    def packed_np(self, packed: tuple[array, ...]) -> tuple[np.ndarray, ...]:
        """NumPy views of ``packed`` (a ``packed()``), and last the coverage shifted left 8
        bits (the NumPy blend's table row)."""
        hit = self._flat_cache.get("np")
        if hit is None or hit[0] is not packed:
            views = tuple(np.frombuffer(a, np.int64) for a in packed)
            hit = (packed, (*views, (views[2] << 8).astype(np.intp)))
            self._flat_cache["np"] = hit
        return hit[1]

    def _pack(self) -> tuple[array, ...]:
        if self._packed is None:
            counts = array("q", [len(a) for a in self._dy])
            starts = array("q", accumulate(counts[:-1], initial=0)) if counts else array("q")
            self._packed = (
                _joined(self._dy), _joined(self._dx), _joined(self._alpha), starts, counts,
                *(array("q", [b[c] for b in self.box]) for c in range(4)))
        return self._packed

    def _bitmap(self, face: int, gid: int, phase: int
                ) -> tuple[bytes, int, int, int, int, int] | None:
        """The glyph's bitmap as (bytes, pitch, width, rows, left, top); None if it has none.
        A negative pitch means FreeType's rows run bottom-up."""
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
            return None
        bm = ft.glyph.bitmap
        w, h, pitch = bm.width, bm.rows, bm.pitch
        if w == 0 or h == 0:
            return None
        buf = ctypes.string_at(bm._FT_Bitmap.buffer, abs(pitch) * h)
        return buf, pitch, w, h, ft.glyph.bitmap_left, ft.glyph.bitmap_top

    def _render(self, face: int, gid: int, phase: int) -> tuple[np.ndarray | None, int, int]:
        """The glyph's bitmap as a (rows, width) uint8 array, left and top; (None, 0, 0) if it
        has none (``benchmarks/glyph_raster.py`` compares these with Pillow's)."""
        raw = self._bitmap(face, gid, phase)
        if raw is None:
            return None, 0, 0
        buf, pitch, w, h, left, top = raw
        return _bitmap_array(buf, pitch, w, h).copy(), left, top

    # -- characters, vectorised -----------------------------------------------------------
    def ids_for(self, table: _CharTable, cids: np.ndarray, phases: np.ndarray) -> np.ndarray:
        """Atlas ids of (character id, phase) pairs; new glyphs are rendered on the way."""
        keys = cids * PHASES + phases
        char_ids = np.frombuffer(self.char_ids, np.int32)
        if len(char_ids) >= len(table.faces) * PHASES:
            out = char_ids[keys]
            if not (out < 0).any():
                return out
        with FT_LOCK:
            return self._ids_locked(table, keys)

    def _ids_locked(self, table: _CharTable, keys: np.ndarray) -> np.ndarray:
        self._grow(len(table.faces) * PHASES)
        char_ids = np.frombuffer(self.char_ids, np.int32)
        out = char_ids[keys]
        miss = out < 0
        if miss.any():
            self._make(table, keys[miss].tolist())
            out = char_ids[keys]
        return out

    def ids_c(self, table: _CharTable, cids: array, index: array, phase: array) -> array:
        """``ids_for`` of the characters ``cids[index]`` at ``phase``, in C (int64 ``array``s)."""
        n = len(index)
        out = array("q", bytes(8 * n))
        if _c_atlas_ids(cids, index, phase, self.char_ids, PHASES, out):
            with FT_LOCK:
                self._grow(len(table.faces) * PHASES)
                self._make(table, [cids[index[j]] * PHASES + phase[j] for j in _misses(out)])
                _c_atlas_ids(cids, index, phase, self.char_ids, PHASES, out)
        return out

    def _grow(self, need: int) -> None:
        """``char_ids`` long enough for ``need`` keys (a new array: views of the old stay)."""
        have = len(self.char_ids)
        if have < need:
            grown = array("i", self.char_ids)
            grown.extend(array("i", [-1]) * (max(need, 2 * have) - have))
            self.char_ids = grown

    def _make(self, table: _CharTable, keys: list[int]) -> None:
        """Make the glyphs of missing (character id x PHASES + phase) keys (lock held)."""
        for key in sorted(set(keys)):
            cid, ph = divmod(key, PHASES)
            face = table.faces[cid]
            if face < 0 or self.char_ids[key] >= 0:
                continue
            if not self.fractional(face):
                ph = 0
            self.char_ids[key] = self.glyph_id(face, table.gids[cid], ph)


def _misses(out: array) -> list[int]:
    """Positions of the -1 entries of a lookup's output (found by ``array.index``, in C)."""
    found: list[int] = []
    i = -1
    try:
        while True:
            i = out.index(-1, i + 1)
            found.append(i)
    except ValueError:
        return found


def _joined(parts: list[array]) -> array:
    """int64 ``array``s one after another, as one."""
    out = array("q")
    out.frombytes(b"".join(parts))
    return out


def _bitmap_array(buf: bytes, pitch: int, w: int, h: int) -> np.ndarray:
    """A bitmap's bytes as a (rows, width) uint8 array, top row first (a view)."""
    arr = np.frombuffer(buf, np.uint8).reshape(h, abs(pitch))[:, :w]
    return arr[::-1] if pitch < 0 else arr


def _glyph_pixels(buf: bytes, pitch: int, w: int, h: int, left: int, top: int
                  ) -> tuple[array, array, array]:
    """A bitmap's non-zero pixels in row order: row and column from the pen pixel, coverage."""
    if _c_glyph_pixels is not None:
        outs = tuple(array("q", bytes(8 * w * h)) for _ in range(3))
        n = _c_glyph_pixels(buf, pitch, w, h, left, top, *outs)
        for o in outs:
            del o[n:]
        return outs
    arr = _bitmap_array(buf, pitch, w, h)
    ys, xs = np.nonzero(arr)
    return tuple(array("q", v.astype(np.int64).tobytes())  # type: ignore[return-value]
                 for v in (ys - top, xs + left, arr[ys, xs]))


def _colour_glyph(f, gid: int, size: int, chain: FontChain, face: int
                  ) -> tuple[bytes, int, int, int, int, int] | None:
    """A colour bitmap glyph (emoji): its strike drawn grey, scaled to one em on the baseline."""
    from PIL import ImageDraw, ImageFont

    ch = next((c for c, hit in chain.lookup.items() if hit[0] == face and hit[1] == gid), None)
    if ch is None:
        return None
    font = ImageFont.truetype(f.path, f.bitmap_size)
    canvas = Image.new("RGBA", (f.bitmap_size * 2, f.bitmap_size * 2), (255, 255, 255, 0))
    try:
        ImageDraw.Draw(canvas).text((0, 0), ch, font=font, embedded_color=True)
    except (OSError, ValueError):
        return None
    bbox = canvas.getbbox()
    if bbox is None:
        return None
    white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, canvas).convert("L").crop(bbox)
    ink = Image.eval(grey, lambda v: 255 - v)
    scale = size / max(ink.width, ink.height) * 0.95
    new = (max(1, round(ink.width * scale)), max(1, round(ink.height * scale)))
    ink = ink.resize(new, Image.Resampling.LANCZOS)
    return ink.tobytes(), ink.width, ink.width, ink.height, 0, ink.height - round(0.12 * size)


_ATLASES: dict[tuple, GlyphAtlas] = {}
#: per bitmap pixel kept: offsets and coverage as int64 (24 bytes), again packed, and the
#: flat offsets of a page width or two
_BYTES_PER_PIXEL = 64
#: what the atlases may hold together before the least recently made go (huge fonts at
#: high DPIs in a long-lived process: a server, a batch, the fuzz benchmark)
ATLAS_BYTES = 256 << 20


def atlas_for(cfg: RenderConfig, dpi: float | None = None) -> GlyphAtlas:
    """The glyph atlas of ``cfg``'s fonts and size at ``dpi``, shared (up to 17 of them, and
    ``ATLAS_BYTES`` together; one grown past that starts afresh, at a page boundary, as
    callers ask per page)."""
    k = (cfg.dpi if dpi is None else dpi) / 72.0
    size = pdf_value(cfg.font_size)
    key = (cfg.font_chain, size, k)
    a = _ATLASES.get(key)
    if a is None or a.nbytes > ATLAS_BYTES:
        with FT_LOCK:
            a = _ATLASES.get(key)
            if a is None or a.nbytes > ATLAS_BYTES:
                _ATLASES.pop(key, None)
                if len(_ATLASES) > 16:
                    _ATLASES.clear()
                total = sum(x.nbytes for x in _ATLASES.values())
                while _ATLASES and total > ATLAS_BYTES // 2:  # room for the new one to grow
                    total -= _ATLASES.pop(next(iter(_ATLASES))).nbytes
                a = _ATLASES[key] = GlyphAtlas(font_chain(cfg.font_chain), size, k)
    return a


class _CharTable:
    """Characters -> small ids, and per id what poppler uses: font, glyph, advance, word space.

    Advances are the PDF's widths as poppler read them (reportlab wrote each with fp_str).
    Code points map through a dense table (an int32 ``array``: C reads it, NumPy views it), so
    a page's text converts in one pass.
    """

    BMP = 0x10000

    def __init__(self, chain: FontChain):
        self.chain = chain
        self.faces: list[int] = []
        self.gids: list[int] = []
        self.widths: list[float] = []
        self.spaces: list[bool] = []
        self.lut = array("i", [-1]) * self.BMP
        self.astral: dict[int, int] = {}
        self._buffers: tuple[array, bytes, bytes] | None = None

    def _add(self, cp: int) -> int:
        ch = chr(cp)
        face, gid, width = self.chain.resolve(ch)
        if face >= 0 and gid == 0:
            # reportlab sends a character its font lacks as code 0, which the subset maps to
            # U+0000's glyph (.notdef, or an empty .null in some fonts), at that width
            f = self.chain.face(face)
            gid = f.glyph(0)
            width = f.glyph_width(gid)
        cid = len(self.faces)
        self.faces.append(face)
        self.gids.append(gid)
        self.widths.append(pdf_value(width) * 0.001 if face >= 0 else 0.0)
        self.spaces.append(ch == " " or ch == "\xa0")
        self._buffers = None
        return cid

    def _add_all(self, cps: Iterable[int]) -> None:
        """Give the code points not in the table yet their ids (in order: ids follow it)."""
        with FT_LOCK:
            for cp in sorted(set(cps)):
                if cp < self.BMP:
                    if self.lut[cp] < 0:
                        self.lut[cp] = self._add(cp)
                elif cp not in self.astral:
                    self.astral[cp] = self._add(cp)

    def ids(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        if not len(cps):
            return np.zeros(0, np.int64)
        lut = np.frombuffer(self.lut, np.int32)
        if cps.max() < self.BMP:
            out = lut[cps]
            miss = out < 0
            if miss.any():
                self._add_all(cps[miss].tolist())
                out = lut[cps]
            return out.astype(np.int64)
        with FT_LOCK:
            return self._ids_astral(cps)

    def ids_c(self, text: str) -> array:
        """``ids`` in C: an int64 ``array``."""
        cps = memoryview(text.encode("utf-32-le", "surrogatepass")).cast("I")
        n = len(cps)
        out = array("q", bytes(8 * n))
        if _c_char_ids(cps, self.lut, out):
            self._add_all(cps[i] for i in _misses(out))
            if _c_char_ids(cps, self.lut, out):  # those past the BMP (the dense table)
                astral = self.astral
                for i in _misses(out):
                    out[i] = astral[cps[i]]
        return out

    def _ids_astral(self, cps: np.ndarray) -> np.ndarray:
        out = np.empty(len(cps), np.int64)
        for i, cp in enumerate(cps.tolist()):
            if cp < self.BMP:
                cid = int(self.lut[cp])
                if cid < 0:
                    cid = self.lut[cp] = self._add(cp)
            else:
                cid = self.astral.get(cp, -1)
                if cid < 0:
                    cid = self.astral[cp] = self._add(cp)
            out[i] = cid
        return out

    def buffers(self) -> tuple[array, bytes, bytes]:
        """(advance per id: float64 ``array``, is-space per id, drawable per id: 0/1 bytes)."""
        bufs = self._buffers
        if bufs is None:
            with FT_LOCK:
                n = len(self.faces)  # the lists grow together, under the lock
                spaces = self.spaces[:n]
                bufs = (array("d", self.widths[:n]), bytes(spaces),
                        bytes(f >= 0 and not s for f, s in zip(self.faces[:n], spaces,
                                                                strict=True)))
                self._buffers = bufs
        return bufs

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``buffers()`` as NumPy arrays (views): float64, bool, bool."""
        widths, spaces, drawable = self.buffers()
        return (np.frombuffer(widths, np.float64), np.frombuffer(spaces, bool),
                np.frombuffer(drawable, bool))


_TABLES: dict[tuple[str, ...], _CharTable] = {}


def _table(cfg: RenderConfig) -> _CharTable:
    t = _TABLES.get(cfg.font_chain)
    if t is None:
        with FT_LOCK:
            t = _TABLES.get(cfg.font_chain)
            if t is None:
                t = _TABLES[cfg.font_chain] = _CharTable(font_chain(cfg.font_chain))
    return t


@dataclass
class _PageGlyphs:
    """A page's characters in drawing order: ids, marker flags, pen x, line and block."""

    cids: np.ndarray
    marker: np.ndarray
    x: np.ndarray  # pen x in text space
    line: np.ndarray  # line index of each character
    starts: list[int]  # first character of each line


def _page_runs(page: Page) -> tuple[str, bytes | None, list[int]]:
    """A page's characters in drawing order: its text, marker flags (0/1 bytes; None: no
    marker) and the number of characters on each line."""
    texts: list[str] = []
    lengths: list[int] = []
    any_marker = False
    for ln in page.lines:
        n = 0
        for t, style in ln.runs:
            texts.append(t)
            n += len(t)
            if style == MARKER:
                any_marker = True
        lengths.append(n)
    marker = None
    if any_marker:
        marker = b"".join((b"\1" if style == MARKER else b"\0") * len(t)
                          for ln in page.lines for t, style in ln.runs)
    return "".join(texts), marker, lengths


def _page_text(page: Page, table: _CharTable) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """``_page_runs`` with the text as character ids and the flags as bools (NumPy)."""
    text, marker, lengths = _page_runs(page)
    return table.ids(text), None if marker is None else np.frombuffer(marker, bool), lengths


def _page_glyphs(page: Page, table: _CharTable) -> _PageGlyphs:
    cids, marker, lengths = _page_text(page, table)
    widths, spaces, _draw = table.arrays()
    total = len(cids)
    if marker is None:
        marker = np.zeros(total, bool)
    fs = page.font_size
    adv = widths[cids] * fs
    n_lines = len(lengths)
    line_of = np.repeat(np.arange(n_lines, dtype=np.int64), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if n_lines else \
        np.zeros(0, np.int64)
    tws = np.array([ln.word_space for ln in page.lines], np.float64)
    if tws.any():
        sp = spaces[cids]
        adv[sp] = adv[sp] + tws[line_of[sp]]
    # poppler: curX += w * fontSize (+ Tw for a space), one character at a time from each
    # line's start. One row per line, accumulated along the row: sequential, as poppler adds.
    col = np.arange(total, dtype=np.int64) - starts[line_of] if total else line_of
    grid = np.zeros((n_lines, (max(lengths) if lengths else 0) + 1), np.float64)
    grid[:, 0] = [ln.ux for ln in page.lines]
    grid[line_of, col + 1] = adv
    np.add.accumulate(grid, axis=1, out=grid)
    x = grid[line_of, col]
    return _PageGlyphs(cids, marker, x, line_of, starts.tolist())


class _Canvas:
    """The page bitmap: one uint8 plane per channel (1 for grey pages, 3 for colour), each a
    ``bytearray`` of height x width (``planes``: NumPy views of them, for the fallback)."""

    def __init__(self, dev: Device, channels: int, paper: tuple[int, ...]):
        self.dev = dev
        self.channels = channels
        n = dev.width * dev.height
        self.buffers = [bytearray((paper[c],)) * n for c in range(channels)]
        self._planes: list[np.ndarray] | None = None

    @property
    def planes(self) -> list[np.ndarray]:
        if self._planes is None:
            h, w = self.dev.height, self.dev.width
            self._planes = [np.frombuffer(b, np.uint8).reshape(h, w) for b in self.buffers]
        return self._planes

    def fill(self, box: tuple[int, int, int, int], colour: tuple[int, ...]) -> None:
        W, H = self.dev.width, self.dev.height
        if _c_fill is not None:
            for c in range(self.channels):
                _c_fill(self.buffers[c], W, H, *box, colour[c])
            return
        x0, y0, x1, y1 = box
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, W), min(y1, H)
        if x0 >= x1 or y0 >= y1:
            return
        for c in range(self.channels):
            self.planes[c][y0:y1, x0:x1] = colour[c]

    def blend(self, idx: np.ndarray, alpha8: np.ndarray, colour: tuple[int, ...]) -> None:
        """Splash's pipe for an opaque page: d = ((255 - a) * d + a * c) // 255.

        ``alpha8`` is the coverage shifted left 8 bits: with the pixel in the low byte it
        indexes a table of that formula. ``idx`` must not repeat (a repeated pixel would be
        blended once).
        """
        for c in range(self.channels):
            flat = self.planes[c].reshape(-1)
            table = np.frombuffer(_blend_table(colour[c]), np.uint8)
            flat[idx] = table[alpha8 + flat[idx]]


@functools.lru_cache(maxsize=64)
def _blend_table(colour: int) -> bytes:
    """((255 - a) * d + a * colour) // 255 for every coverage a (high byte) and pixel d."""
    if _c_blend_table is not None:
        return _c_blend_table(colour)
    return _blend_table_np(colour).tobytes()


def _blend_table_np(colour: int) -> np.ndarray:
    """``_blend_table`` by its definition, in NumPy (what the C one is tested against)."""
    a = np.arange(256, dtype=np.int64)[:, None]
    d = np.arange(256, dtype=np.int64)[None, :]
    return (((255 - a) * d + a * colour) // 255).astype(np.uint8).reshape(-1)


def _colour(rgb: tuple[int, int, int], grey: bool) -> tuple[int, ...]:
    return (rgb[0],) if grey else rgb


def _c_path() -> bool:
    """Whether pages are drawn by the compiled module (tests turn ``_USE_C`` off)."""
    return _c_place is not None and _USE_C


def rasterize(page: Page, cfg: RenderConfig, *, last: bool = False,
              dpi: float | None = None) -> Image.Image:
    """Draw one page: an 'L' image when every colour is grey, else 'RGB'."""
    d = cfg.dpi if dpi is None else dpi
    dev = Device.for_page(page.width, page.height, d)
    grey = cfg.is_grey
    canvas = _Canvas(dev, 1 if grey else 3, _colour((255, 255, 255), grey))
    atlas = atlas_for(cfg, d)
    table = _table(cfg)
    use_c = _c_path()
    if use_c:
        placed = _place_c(page, table, atlas, dev)
    else:
        placed = _place(page, _page_glyphs(page, table), table, atlas, dev)
    _paint(canvas, page, cfg, atlas, placed)
    W, H = dev.width, dev.height
    if cfg.horizontal_scale != 1.0:
        img = _image(canvas.buffers, W, H, W, H)
        img = img.resize((max(1, int(img.width * cfg.horizontal_scale)), img.height))
        if use_c:
            bands = [img] if img.mode == "L" else list(img.split())
            w, h = _crop_size_c([b.tobytes() for b in bands], img.width, img.height, cfg, last)
        else:
            w, h = _crop_size(np.asarray(img), cfg, last, None)
        return img if (w, h) == img.size else img.crop((0, 0, w, h))
    if use_c:  # the C scan reads from the edges in: no estimate needed
        w, h = _crop_size_c(canvas.buffers, W, H, cfg, last)
        return _image(canvas.buffers, W, H, w, h)
    estimate = None
    if (cfg.para_bg_color == cfg.page_bg_color and cfg.border_width <= 0 and placed is not None
            and _grey_px(cfg.page_bg_color) >= 250):
        # only glyphs can be ink: their boxes bound the crop (the page rectangle's uncovered
        # edge is paper white, ink only under a non-white page background)
        estimate = _glyph_extent(atlas, placed)
    planes = canvas.planes
    w, h = _crop_size(planes[0] if len(planes) == 1 else np.dstack(planes), cfg, last,
                      estimate)
    return _image(canvas.buffers, W, H, w, h)


def _paint(canvas: _Canvas, page: Page, cfg: RenderConfig, atlas: GlyphAtlas,
           placed: _Placed | None) -> None:
    """Everything a page draws, in poppler's order: the page background (onPage), then per
    paragraph its fill, its border and its glyphs. Size prediction paints a subset of glyphs
    through this too, so both see the same pixels."""
    grey = canvas.channels == 1
    dev = canvas.dev
    text_col = _colour(cfg.font_color, grey)
    nl = cfg.newline
    marker_col = _colour(nl.color, grey) if (not nl.line_break and nl.color) else text_col
    para_bg = _colour(cfg.para_bg_color, grey)
    border = _colour(cfg.para_border_color, grey)
    canvas.fill(dev.page_box(), _colour(cfg.page_bg_color, grey))
    bw = cfg.border_width
    line_block = [ln.block for ln in page.lines]
    for bi, block in enumerate(page.blocks):
        c4, c5 = dev.block(block.ex, block.ey)
        rx, ry, rw, rh = block.rect
        if block.fill:
            canvas.fill(dev.rect(rx, ry, rw, rh, c4, c5), para_bg)
        if block.stroke and bw > 0:
            _stroke_rect(canvas, dev, rx, ry, rw, rh, bw, c4, c5, border)
        lines = [i for i, b in enumerate(line_block) if b == bi]
        if lines and placed is not None:
            _blend_block(canvas, atlas, placed, lines[0], lines[-1] + 1, text_col, marker_col)


def _glyph_extent(atlas: GlyphAtlas, p: _Placed) -> tuple[int, int]:
    """Right and bottom pixel of the placed glyphs' bitmaps (an upper bound of their ink)."""
    _dy, _dx, _a, _s, count, left, top, bw, bh, _a8 = atlas.packed_np(atlas.packed())
    ids = p.ids[count[p.ids] > 0]
    if not len(ids):
        return -1, -1
    sel = count[p.ids] > 0
    return (int((p.px[sel] + left[ids] + bw[ids]).max()) - 1,
            int((p.py[sel] + top[ids] + bh[ids]).max()) - 1)


@dataclass
class _Placed:
    """Every drawable glyph of a page: atlas id, pen pixel, layer, colour, line. NumPy arrays
    from ``_place``; from ``_place_c``, int64 ``array``s and a 0/1 ``bytearray`` marker."""

    ids: np.ndarray | array
    px: np.ndarray | array
    py: np.ndarray | array
    layer: np.ndarray | None  # the NumPy blend's layers (None on the C path)
    marker: np.ndarray | bytearray
    line: np.ndarray | array


def _line_arrays(page: Page) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line: its block, and its pen (ux, uy) in text space."""
    lines = page.lines
    n = len(lines)
    return (np.fromiter((ln.block for ln in lines), np.int64, n),
            np.fromiter((ln.ux for ln in lines), np.float64, n),
            np.fromiter((ln.uy for ln in lines), np.float64, n))


def _block_arrays(page: Page) -> tuple[np.ndarray, ...]:
    """Per block: its origin (ex, ey), its rectangle's y and height, and whether it fills."""
    bs = page.blocks
    return (np.array([b.ex for b in bs], np.float64), np.array([b.ey for b in bs], np.float64),
            np.array([b.rect[1] for b in bs], np.float64),
            np.array([b.rect[3] for b in bs], np.float64), np.array([b.fill for b in bs], bool))


def _line_pixels(page: Page, dev: Device,
                  arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per line: the x offset (c4) of its block and its baseline row, in poppler's arithmetic
    (``arrays``: the page's ``_line_arrays``, when kept)."""
    of, ux, uy = _line_arrays(page) if arrays is None else arrays
    blocks = np.array([dev.block(b.ex, b.ey) for b in page.blocks], np.float64).reshape(-1, 2)
    # elementwise, the same float arithmetic as poppler's, one line at a time
    ys = np.floor((ux * 0.0 + uy * -dev.k) + blocks[of, 1]).astype(np.int64)
    return blocks[of, 0], ys


def _pens(xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pen pixel columns and quarter-pixel phases of device x positions."""
    x0 = np.floor(xt)
    return x0, np.floor((xt - x0) * PHASES).astype(np.int64)


def _place(page: Page, g: _PageGlyphs, table: _CharTable, atlas: GlyphAtlas,
           dev: Device, only: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
           | None = None) -> _Placed | None:
    """Device pixels and phases of a page's glyphs, in poppler's arithmetic. ``only`` (size
    prediction) keeps, from their pen pixels (x, baseline row) and character ids, the glyphs
    to place; the kept ones keep the layers they have among all."""
    if not len(g.cids):
        return None
    _w, _s, drawable = table.arrays()
    keep = drawable[g.cids]
    if not keep.any():
        return None
    c4s, ys = _line_pixels(page, dev)
    line = g.line[keep]
    x0, phase = _pens(g.x[keep] * dev.k + c4s[line])
    # layers: line parity x position parity among the line's glyphs, so no two glyphs of one
    # layer overlap (neighbours on a line, or adjacent lines, go to different layers)
    order = np.arange(len(line), dtype=np.int64)
    first = np.searchsorted(line, line, side="left")
    pos = order - first
    layer = (line & 1) * 2 + (pos & 1)
    cids, marker = g.cids[keep], g.marker[keep]
    if only is not None:
        sel = only(x0, ys[line], cids)
        line, x0, phase, layer, cids, marker = (
            a[sel] for a in (line, x0, phase, layer, cids, marker))
    ids = atlas.ids_for(table, cids, phase)
    return _Placed(ids.astype(np.int64), x0.astype(np.int64), ys[line], layer, marker, line)


_USE_C = True  # tests turn it off to compare the NumPy path


def _line_pixels_c(page: Page, dev: Device) -> tuple[array, array]:
    """``_line_pixels`` in plain Python (the same float operations, line by line), as the
    ``array``s the C placement reads."""
    k = dev.k
    blocks = [dev.block(b.ex, b.ey) for b in page.blocks]
    lines = page.lines
    return (array("d", [blocks[ln.block][0] for ln in lines]),
            array("q", [math.floor((ln.ux * 0.0 + ln.uy * -k) + blocks[ln.block][1])
                        for ln in lines]))


def _place_c(page: Page, table: _CharTable, atlas: GlyphAtlas, dev: Device) -> _Placed | None:
    """``_place`` with the pen walk in C: the same pixels and phases, one pass, no NumPy."""
    text, marker, lengths = _page_runs(page)
    cids = table.ids_c(text)
    total = len(cids)
    if not total:
        return None
    widths, spaces, drawable = table.buffers()
    lines = page.lines
    c4s, ys = _line_pixels_c(page, dev)
    outs = [array("q", bytes(8 * total)) for _ in range(4)]
    n = _c_place(cids, array("q", lengths), array("d", [ln.ux for ln in lines]),
                 array("d", [ln.word_space for ln in lines]), c4s, widths, spaces, drawable,
                 float(page.font_size), dev.k, *outs)
    if not n:
        return None
    for o in outs:
        del o[n:]
    idx, line, px, phase = outs
    ids = atlas.ids_c(table, cids, idx, phase)
    py = array("q", bytes(8 * n))
    _c_take(ys, line, py)
    marks = bytearray(n)
    if marker is not None:
        _c_take(marker, idx, marks)
    return _Placed(ids, px, py, None, marks, line)


def _blend_block(canvas: _Canvas, atlas: GlyphAtlas, p: _Placed, lo_line: int, hi_line: int,
                 text_col: tuple[int, ...], marker_col: tuple[int, ...]) -> None:
    """Blend one paragraph's glyphs: in C one after another, else layer by layer (gather,
    blend, scatter)."""
    a = bisect_left(p.line, lo_line)  # lines ascend
    b = bisect_left(p.line, hi_line, a)
    if a >= b:
        return
    W, H = canvas.dev.width, canvas.dev.height
    if _c_blend is not None and _USE_C:
        packed, flat = atlas.packed_flat(W)
        dy, dx, alpha, start, count, left, top, bw, bh = packed
        ids, px, py, marker = (memoryview(v)[a:b] for v in (p.ids, p.px, p.py, p.marker))
        for c, plane in enumerate(canvas.buffers):
            _c_blend(plane, W, H, ids, px, py, marker, start, count, left, top, bw, bh, dy, dx,
                     flat, alpha, _blend_table(text_col[c]), _blend_table(marker_col[c]))
        return
    packed, flat = atlas.packed_flat(W)
    _dy, _dx, _alpha, start, count, left, top, bw, bh, alpha8 = atlas.packed_np(packed)
    flat = np.asarray(flat)
    ids = p.ids[a:b]
    px = p.px[a:b]
    py = p.py[a:b]
    gl, gt = left[ids], top[ids]
    inside = (px + gl >= 0) & (px + gl + bw[ids] <= W) & (py + gt >= 0) & (py + gt + bh[ids] <= H)
    layer = p.layer[a:b]
    marker = p.marker[a:b]
    has_marker = bool(marker.any())
    for mk in ((False, True) if has_marker else (False,)):
        for lay in range(4):
            sel = (layer == lay) & inside
            if has_marker:
                sel &= marker == mk
            if not sel.any():
                continue
            sid = ids[sel]
            cnt = count[sid]
            total = int(cnt.sum())
            if not total:
                continue
            # a ragged gather: every pixel of every selected glyph
            offs = np.cumsum(cnt) - cnt
            rep_start = np.repeat(start[sid] - offs, cnt)
            pix = np.arange(total, dtype=np.int64) + rep_start
            base = np.repeat(py[sel] * W + px[sel], cnt)
            canvas.blend(flat[pix] + base, alpha8[pix], marker_col if mk else text_col)
    out = ~inside
    if out.any():
        for j in np.flatnonzero(out).tolist():
            gi = int(ids[j])
            rows = atlas.dy[gi] + int(py[j])
            cols = atlas.dx[gi] + int(px[j])
            ok = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            if ok.any():
                canvas.blend(rows[ok] * W + cols[ok], (atlas.alpha[gi][ok] << 8).astype(np.intp),
                             marker_col if marker[j] else text_col)


def _border_boxes(dev: Device, x: float, y: float, w: float, h: float, lw: float, c4: float,
                  c5: float) -> list[tuple[int, int, int, int]]:
    """A stroked rectangle as four edge bands of the line width, each stroke-adjusted."""
    half = lw / 2
    return [dev.rect(bx, by, bw_, bh, c4, c5) for bx, by, bw_, bh in (
        (x - half, y - half, w + lw, lw), (x - half, y + h - half, w + lw, lw),
        (x - half, y - half, lw, h + lw), (x + w - half, y - half, lw, h + lw))]


def _stroke_rect(canvas: _Canvas, dev: Device, x: float, y: float, w: float, h: float,
                 lw: float, c4: float, c5: float, colour: tuple[int, ...]) -> None:
    for box in _border_boxes(dev, x, y, w, h, lw, c4, c5):
        canvas.fill(box, colour)


def _image(planes: list[bytearray], W: int, H: int, w: int, h: int) -> Image.Image:
    """The top-left w x h pixels of planes H x W as an image: 'L' maps the plane itself
    (read-only; Pillow copies it on a first write) or, cropped, copies the kept part (so a
    kept page holds no more than its pixels); 'RGB' merges the three into a new image."""
    bands = [Image.frombuffer("L", (w, h), pl, "raw", "L", W, 1) for pl in planes]
    if len(bands) == 3:
        return Image.merge("RGB", bands)
    return bands[0] if (w, h) == (W, H) else bands[0].copy()


def _grey(values: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (in int32: at most
    255 * 65536 + 0x8000, well inside it)."""
    r, g, b = (values[..., c].astype(np.int32) for c in range(3))
    r *= 19595
    g *= 38470
    b *= 7471
    r += g
    r += b
    r += 0x8000
    r >>= 16
    return r


def _ink_mask(arr: np.ndarray, bg: float) -> np.ndarray:
    """Pixels whose grey differs from ``bg`` (a whole or half level) by more than 5 levels,
    compared as integers: a grey ``g`` is ink when ``g > floor(bg + 5)`` or ``g < ceil(bg - 5)``."""
    grey = arr if arr.ndim == 2 else _grey(arr)
    hi, lo = math.floor(bg + 5), math.ceil(bg - 5)
    if hi >= 255:
        return grey < lo if lo > 0 else np.zeros(grey.shape, bool)
    return (grey > hi) | (grey < lo) if lo > 0 else grey > hi


def _crop_size(arr: np.ndarray, cfg: RenderConfig, last: bool,
               estimate: tuple[int, int] | None) -> tuple[int, int]:
    """The reference's crop, on pixels: right to the last column that differs from the
    top-left background by more than 5 grey levels, plus margin-x pixels; the last page's
    height likewise with margin-y (Pillow's crop rounds a fractional edge). An estimate of the
    edges narrows the scan to a few columns (rows); the pixels have the last word."""
    h, w = full_h, full_w = arr.shape[:2]
    crop_w = cfg.auto_crop_width
    crop_h = cfg.auto_crop_last_page and last
    if not (crop_w or crop_h):
        return w, h
    bg = _corner_bg(arr)
    est_r, est_b = estimate if estimate is not None else (-1, -1)
    if crop_w:
        right = _last_ink(arr, bg, est_r, axis=0)
        if right >= 0:
            w = int(round(min(w, right + 1 + cfg_margin(cfg.margin_x))))
            arr = arr[:, :w]
    if crop_h:
        bottom = _last_ink(arr, bg, est_b, axis=1)
        if bottom >= 0:
            h = int(round(min(h, bottom + cfg_margin(cfg.margin_y))))
    return _keep_aspect(w, h, full_w, full_h)


def _corner_bg(arr: np.ndarray) -> float:
    """The crop's background: the median grey of the top-left 2x2 pixels (numpy's median)."""
    corner = arr[:2, :2]
    corner = corner if corner.ndim == 2 else _grey(corner)
    return _median([int(v) for v in corner.reshape(-1)])


def _median(vals: list[int]) -> float:
    vals = sorted(vals)
    return (vals[(len(vals) - 1) // 2] + vals[len(vals) // 2]) / 2


def _crop_size_c(planes: list, W: int, H: int, cfg: RenderConfig, last: bool
                 ) -> tuple[int, int]:
    """``_crop_size`` on planes (H x W bytes each: grey, or R, G, B) with the scan in C, from
    the edges in (so no estimate is needed): the same rules, the same sizes."""
    crop_w = cfg.auto_crop_width
    crop_h = cfg.auto_crop_last_page and last
    if not (crop_w or crop_h):
        return W, H
    corner = [y * W + x for y in range(min(2, H)) for x in range(min(2, W))]
    if len(planes) == 1:
        bg = _median([planes[0][i] for i in corner])
    else:
        bg = _median([_grey_px(tuple(pl[i] for pl in planes)) for i in corner])
    hi, lo = math.floor(bg + 5), math.ceil(bg - 5)  # ink: grey above hi or below lo
    w, h = W, H
    if crop_w:
        right = _c_last_ink(tuple(planes), W, W, H, lo, hi, 0, 0)
        if right >= 0:
            w = int(round(min(w, right + 1 + cfg_margin(cfg.margin_x))))
    if crop_h:
        cols = len(range(W)[:w])  # the columns ``arr[:, :w]`` keeps, as NumPy slices
        bottom = _c_last_ink(tuple(planes), W, cols, H, lo, hi, 1, 0)
        if bottom >= 0:
            h = int(round(min(h, bottom + cfg_margin(cfg.margin_y))))
    return _keep_aspect(w, h, W, H)


def _keep_aspect(w: int, h: int, full_w: int, full_h: int) -> tuple[int, int]:
    """Our one departure from the reference's crop: never crop a page to nothing, nor past the
    aspect ratio vision models take (a one-line last page of a wide page would be refused by
    the model's processor): keep enough of the background, up to the uncropped page."""
    w, h = max(1, min(w, full_w)), max(1, min(h, full_h))
    if w > MAX_ASPECT * h:
        h = min(full_h, max(h, math.ceil(w / MAX_ASPECT)))
    elif h > MAX_ASPECT * w:
        w = min(full_w, max(w, math.ceil(h / MAX_ASPECT)))
    return w, h


def _last_ink(arr: np.ndarray, bg: float, estimate: int, *, axis: int) -> int:
    """Index of the last column (axis 0) or row (axis 1) holding ink; -1 if none."""
    n = arr.shape[1] if axis == 0 else arr.shape[0]
    if estimate >= 8:
        lo = estimate - 8
        slab = arr[:, lo:] if axis == 0 else arr[lo:]
        found = np.flatnonzero(_ink_mask(slab, bg).any(axis=axis))
        if found.size:  # the slab reaches the edge, so its last ink is the page's
            return lo + int(found[-1])
    found = np.flatnonzero(_ink_mask(arr, bg).any(axis=axis))
    return int(found[-1]) if found.size and n else -1


def cfg_margin(v: float) -> int | float:
    """Glyph's JSON margins are integers; a float margin stays a float, as in the reference."""
    return int(v) if float(v).is_integer() else v


@dataclass
class _InkCandidates:
    """The few glyphs that can decide a page's crop, chosen once per layout (no DPI).

    Each entry: (face, gid, pen x in text space, line, block). A glyph is a candidate for the
    right edge when its outline reaches within 1 pt of the page's rightmost outline; for the
    bottom, every glyph of the last two inked lines.
    """

    right: list[tuple[int, int, float, object, int]]
    bottom: list[tuple[int, int, float, object, int]]
    glyphs: _PageGlyphs  # the page's characters (no DPI), for the exact painting
    drawn: np.ndarray  # indices of those drawn (not spaces, in a font)
    drawn_box: np.ndarray  # per drawn glyph: its font's box in em (``_face_box``)
    drawn_line: np.ndarray  # per drawn glyph: its line
    drawn_x: np.ndarray  # per drawn glyph: its pen x in text space
    line_arrays: tuple[np.ndarray, np.ndarray, np.ndarray]  # ``_line_arrays``
    block_arrays: tuple[np.ndarray, ...]  # per block: ex, ey, rect y, rect h, fill
    reach_y: tuple[float, float]  # the drawn glyphs' fonts: most em above, below the pen
    reach_x: float  # ... and right of it
    #: per drawn glyph: how far right (down) its box may reach, in points from the page's
    #: origin (no DPI: a first, loose choice of the glyphs near an edge)
    reach_pt: tuple[np.ndarray, np.ndarray]
    block_last: dict[int, object]  # each block's last line (the next block's fill cuts it)
    #: every drawable glyph as (bound, face, gid, x, line, block), by its right bound in points,
    #: rightmost first: for a page whose rightmost outlines draw no ink at some DPI (a glyph
    #: whose outline covers no pixel centre, a faint colour under the ink threshold)
    more: Callable[[], Iterator[tuple[float, int, int, float, object, int]]] | None = None


def _face_box(chain: FontChain) -> np.ndarray:
    """Per face of the chain: (left, bottom, right, top) in em, from its pen, that no glyph's
    bitmap passes: the font's bounding box, widened to at least 0..1 em across and -0.3..1 em
    up (a colour glyph's em square; and in case a font's box understates it)."""
    box = _BOXES.get(chain.paths)
    if box is None:
        out = []
        for i in range(len(chain.paths)):
            f = chain.face(i)
            upem = f.units_per_em or 1
            x0, y0, x1, y1 = (v / upem for v in f.bbox) if f.units_per_em else (0, 0, 1, 1)
            out.append((min(0.0, x0), min(-0.3, y0), max(1.0, x1), max(1.0, y1)))
        box = _BOXES[chain.paths] = np.array(out, np.float64).reshape(-1, 4)
    return box


def _face_reach(chain: FontChain, n: int) -> np.ndarray:
    """Per face of the chain: how far right of its pen (in em) any glyph's outline can reach."""
    return _face_box(chain)[:n, 2]


_BOXES: dict[tuple[str, ...], np.ndarray] = {}


def _outline_right(face, gid: int) -> float:
    """Right edge of a glyph's outline in em (unscaled, unhinted), memoised on the face."""
    cache = face.__dict__.setdefault("_xmax", {})
    v = cache.get(gid)
    if v is None:
        import freetype

        try:
            with FT_LOCK:
                face.ft.load_glyph(gid, freetype.FT_LOAD_NO_SCALE | freetype.FT_LOAD_NO_HINTING)
                m = face.ft.glyph.metrics
                v = (m.horiBearingX + m.width) / face.units_per_em
        except freetype.FT_Exception:
            v = 0.0
        cache[gid] = v
    return v


def _candidates(page: Page, cfg: RenderConfig) -> _InkCandidates:
    cached = page.ink
    if isinstance(cached, _InkCandidates):
        return cached
    table = _table(cfg)
    chain = table.chain
    fs = page.font_size
    g = _page_glyphs(page, table)
    _w, _s, drawable = table.arrays()
    faces, gids = table.faces, table.gids
    lines = page.lines
    n_lines = len(lines)
    ends = g.starts[1:] + [len(g.cids)]

    def glyphs_of(i: int):
        for j in range(g.starts[i], ends[i]):
            cid = int(g.cids[j])
            if drawable[cid]:
                yield faces[cid], gids[cid], float(g.x[j])

    # The rightmost outline: a glyph's right edge lies within its font's bounding box of its pen
    # x, so glyphs are measured exactly in order of that bound until it falls 1 pt short.
    right: list = []
    keep = np.flatnonzero(drawable[g.cids]) if len(g.cids) else np.zeros(0, np.int64)
    if len(keep):
        reach = _face_reach(chain, len(chain.paths))
        cface = np.asarray(faces, np.int64)[g.cids[keep]]
        bound = g.x[keep] + fs * reach[cface]
        best = -math.inf
        found: list = []
        order = np.argsort(-bound, kind="stable").tolist()  # rightmost bound first
        for k in order:
            if bound[k] < best - 1.0:
                break
            j = int(keep[k])
            cid = int(g.cids[j])
            face, gid, x = faces[cid], gids[cid], float(g.x[j])
            r = x + _outline_right(chain.face(face), gid) * fs
            found.append((r, face, gid, x, int(g.line[j])))
            best = max(best, r)
        right = [(face, gid, x, lines[i], lines[i].block) for r, face, gid, x, i in found
                 if r >= best - 1.0]

        def more() -> Iterator[tuple[float, int, int, float, object, int]]:
            for k in order:
                j = int(keep[k])
                cid = int(g.cids[j])
                ln = lines[int(g.line[j])]
                yield float(bound[k]), faces[cid], gids[cid], float(g.x[j]), ln, ln.block
    bottom: list = []
    inked = [i for i in range(n_lines) if any(t.strip() for t, _s in lines[i].runs)]
    for i in inked[-2:]:
        bottom.extend((face, gid, x, lines[i], lines[i].block) for face, gid, x in glyphs_of(i))
    block_last: dict[int, object] = {}
    for ln in lines:
        block_last[ln.block] = ln
    box = _drawn_boxes(chain, faces, gids, g.cids[keep])
    ink = _InkCandidates(right, bottom, g, keep, box, g.line[keep], g.x[keep],
                         _line_arrays(page), _block_arrays(page),
                         (float(box[:, 3].max()), float(box[:, 1].min())) if len(keep) else
                         (0.0, 0.0), float(box[:, 2].max()) if len(keep) else 0.0,
                         _reach_points(page, g, keep, box), block_last,
                         more if len(keep) else None)
    page.ink = ink
    return ink


def _drawn_boxes(chain: FontChain, faces: list[int], gids: list[int], cids: np.ndarray
                 ) -> np.ndarray:
    """Per glyph: (left, bottom, right, top) in em from its pen that its bitmap stays within
    (give or take a pixel): its font's box (``_face_box``), the right its own outline's edge
    (tighter: fewer glyphs to look at near a page's right edge) but for colour glyphs."""
    if not len(cids):
        return np.zeros((0, 4))
    box = _face_box(chain)[np.asarray(faces, np.int64)[cids]]
    rights = _RIGHTS.get(chain.paths)
    if rights is None or len(rights) < len(faces):  # per character id, as the table grows
        grown = np.full(len(faces), np.nan)
        if rights is not None:
            grown[:len(rights)] = rights
        rights = _RIGHTS[chain.paths] = grown
    got = rights[cids]
    if np.isnan(got).any():
        for cid in np.unique(cids[np.isnan(got)]).tolist():
            f = chain.face(faces[cid])
            rights[cid] = np.inf if f.color_bitmap else _outline_right(f, gids[cid])
        got = rights[cids]
    box[:, 2] = np.where(np.isinf(got), box[:, 2], got)  # (box: a copy, by fancy index)
    return box


_RIGHTS: dict[tuple[str, ...], np.ndarray] = {}


def _reach_points(page: Page, g: _PageGlyphs, keep: np.ndarray, box: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``_InkCandidates.reach_pt``: a glyph's pixel x is about (x + block's ex) * k plus the
    page's ctm4, its baseline row about -(uy + block's ey) * k plus ctm5."""
    of = np.fromiter((ln.block for ln in page.lines), np.int64, len(page.lines))
    ex = np.array([b.ex for b in page.blocks] or [0.0], np.float64)
    ey = np.array([b.ey for b in page.blocks] or [0.0], np.float64)
    uy = np.fromiter((ln.uy for ln in page.lines), np.float64, len(page.lines))
    line = g.line[keep]
    fs = page.font_size
    return (g.x[keep] + ex[of[line]] + box[:, 2] * fs,
            -(uy[line] + ey[of[line]]) - box[:, 1] * fs)


@functools.lru_cache(maxsize=256)
def _ink_threshold(under: tuple[int, int, int], fg: tuple[int, int, int], bg: float) -> int:
    """Smallest coverage at which a glyph pixel drawn over ``under`` counts as ink (256: never)."""
    for a in range(1, 256):
        v = tuple(((255 - a) * u + a * f) // 255 for u, f in zip(under, fg, strict=True))
        if abs(_grey_px(v) - bg) > 5:
            return a
    return 256


def _grey_px(rgb: tuple[int, ...]) -> int:
    r, g, b = rgb
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def page_pixel_size(page: Page, cfg: RenderConfig, *, last: bool,
                    dpi: float | None = None) -> tuple[int, int]:
    """(width, height) in pixels of ``page`` at ``dpi``: the size its PNG will have.

    Exactly the raster's (a plan priced under it could pass its budget), without drawing
    the page as a rule, so a budget search can price many DPIs: the crop's edges estimated
    from a handful of cached glyph bitmaps (``_ink_extent``), then checked on the glyph
    pixels past them (``_estimate_holds``: one text colour over one background, the common
    case); where that cannot vouch for them, the glyphs that can reach the edges are painted
    as the raster paints them and the edges read off those pixels (``_painted_crop``).
    ``horizontal-scale`` (a bicubic resize before the crop) is rastered whole.
    """
    d = cfg.dpi if dpi is None else dpi
    if cfg.horizontal_scale != 1.0 and (cfg.auto_crop_width or (
            cfg.auto_crop_last_page and last)):
        return rasterize(page, cfg, last=last, dpi=d).size
    dev = Device.for_page(page.width, page.height, d)
    W, H = dev.width, dev.height
    if cfg.horizontal_scale != 1.0:
        W = max(1, int(W * cfg.horizontal_scale))
    crop_w = cfg.auto_crop_width
    crop_h = cfg.auto_crop_last_page and last
    if not (crop_w or crop_h):
        return W, H
    est_right, est_bottom = _ink_extent(page, cfg, dev, want_bottom=crop_h)
    if _estimate_holds(page, cfg, dev, est_right if crop_w else W, est_bottom if crop_h else H):
        w, h = W, H
        if crop_w:
            w = min(W, int(round(min(W, est_right + 1 + cfg_margin(cfg.margin_x)))))
        if crop_h:
            h = min(H, int(round(min(H, est_bottom + cfg_margin(cfg.margin_y)))))
        return _keep_aspect(w, h, W, H)
    # the estimate is near the truth, but glyphs that overlap, colours over other colours and
    # the corner's own ink move it a pixel or so: paint the glyphs that can reach the estimated
    # edges (and the corner) for the exact pixels there; from the top-left when it overshot
    x_from = max(0, est_right - _SLACK) if crop_w else W
    y_from = max(0, est_bottom - _SLACK) if crop_h else H
    got = _painted_crop(page, cfg, dev, x_from, y_from)
    if got is None:
        got = _painted_crop(page, cfg, dev, 0 if crop_w else W, 0 if crop_h else H)
        assert got is not None
    return got


_SLACK = 8  # pixels left of (above) the estimated edge painted exactly


def _glyph_bounds(cfg: RenderConfig, atlas: GlyphAtlas
                  ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """(left, top, right, bottom) pixels no glyph's bitmap passes, from pen pixels (x,
    baseline row) and character ids: the fonts' boxes with 2 pixels to spare."""
    table = _table(cfg)
    box = _face_box(table.chain)
    faces = np.asarray(table.faces, np.int64)
    s = max(abs(atlas.m), atlas.size)

    def bounds(x: np.ndarray, y: np.ndarray, cids: np.ndarray) -> tuple[np.ndarray, ...]:
        b = box[faces[cids]]
        return (x + b[:, 0] * s - 2, y - b[:, 3] * s - 2, x + b[:, 2] * s + 2,
                y - b[:, 1] * s + 2)
    return bounds


def _estimate_holds(page: Page, cfg: RenderConfig, dev: Device, right: int, bottom: int
                    ) -> bool:
    """Whether ``_ink_extent``'s edges are certainly the raster's (the common case), checked
    without painting: glyphs of one colour over one background (the page's; the paper's
    too where it shows) that is the corner's (no glyph near the corner), ink at the edges,
    and past them only glyph pixels that, each alone (no two glyphs share one), stay under
    the ink threshold. Ink found stays ink as glyphs of one colour blend over it (each
    channel only moves toward the glyph colour, all the same way), so the edges are exact."""
    W, H = dev.width, dev.height
    bg_col, fg = cfg.page_bg_color, cfg.font_color
    nl = cfg.newline
    marker = nl.color if (not nl.line_break and nl.color) else fg
    if (right < 0 or bottom < 0 or marker != fg or cfg.para_bg_color != bg_col
            or (cfg.border_width > 0 and any(b.stroke for b in page.blocks))):
        return False  # (a later paragraph's border could cover ink, as fills do)
    if not (all(f <= b for f, b in zip(fg, bg_col, strict=True))
            or all(f >= b for f, b in zip(fg, bg_col, strict=True))):
        return False
    x0, y0, x1, y1 = dev.page_box()
    if (x0 > 0 or y0 > 0 or x1 < W or y1 < H) and bg_col != (255, 255, 255):
        return False  # paper shows at an edge, in another colour
    atlas = atlas_for(cfg, dev.k * 72.0)
    table = _table(cfg)
    cands = _candidates(page, cfg)
    g, idx = cands.glyphs, cands.drawn
    if not len(idx):
        return True
    c4s, ys = _line_pixels(page, dev, cands.line_arrays)
    box = cands.drawn_box  # per drawn glyph, its font's box in em
    s = max(abs(atlas.m), atlas.size)
    line = cands.drawn_line
    top, low = cands.reach_y  # the most any font of the page reaches above, below (em)
    if ys.min() - top * s - 2 <= 1:  # a first line may reach the corner: its glyphs tell
        near = ys[line] - box[:, 3] * s - 2 <= 1
        xt = g.x[idx[near]] * dev.k + c4s[line[near]]
        if (xt + box[near, 0] * s - 2 <= 1).any():
            return False  # a glyph may be in the corner, moving the background
    # the glyphs that may reach past the edges: first by bounds in points (loose by the font
    # size's rounding), then in pixels
    k, (r_pt, d_pt) = dev.k, cands.reach_pt
    slack = 3 + max(cands.reach_x, -low)  # px: the size rounded up (1 px an em at most)
    near = r_pt > (right - slack - dev.ctm4) / k
    if ys.max() - low * s + 2 > bottom:
        near |= d_pt > (bottom - slack - dev.ctm5) / k
    some = np.flatnonzero(near)
    line = line[some]
    xt = cands.drawn_x[some] * k + c4s[line]
    sel = (xt + box[some, 2] * s + 2 > right) | (ys[line] - box[some, 1] * s + 2 > bottom)
    if not sel.any():
        return True
    y = ys[line[sel]]
    x0, phase = _pens(xt[sel])
    ids = atlas.ids_for(table, g.cids[idx[some[sel]]], phase).astype(np.int64)
    # their pixels, glyph by glyph (packing the atlas would cost more: it grows as DPIs vary)
    il = ids.tolist()
    cnt = np.fromiter((len(atlas.dy[i]) for i in il), np.int64, len(il))
    rows = np.concatenate([atlas.dy[i] for i in il]) + np.repeat(y, cnt)
    cols = np.concatenate([atlas.dx[i] for i in il]) + np.repeat(x0.astype(np.int64), cnt)
    a = np.concatenate([atlas.alpha[i] for i in il])
    on = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    thr = _ink_threshold(bg_col, fg, _grey_px(bg_col))
    # the edges' own ink: a glyph pixel there, inked alone, that no later paragraph's fill
    # covers (the estimate counts ink past the page's right edge as at it, for one)
    of = cands.line_arrays[0]
    inked = on & (a >= thr) & (rows < np.repeat(_fill_cuts(cands, dev)[of[line[sel]]], cnt))
    if right < W and not (inked & (cols == right)).any():
        return False
    if bottom < H and not (inked & (rows == bottom)).any():
        return False
    past = on & ((cols > right) | (rows > bottom))
    if not past.any():
        return True
    if int(a[past].max()) >= thr:
        return False
    at = rows[past] * W + cols[past]
    return len(np.unique(at)) == len(at)


def _fill_cuts(cands: _InkCandidates, dev: Device) -> np.ndarray:
    """Per block: the first pixel row a later block's fill covers (``dev.height`` if none),
    as ``dev.rect`` rounds it (the same float operations, elementwise)."""
    ex, ey, ry, rh, fill = cands.block_arrays
    k = dev.k
    c5 = (ex * 0.0 + ey * -k) + dev.ctm5
    ya = ex * 0.0 + ry * -k + c5  # x * 0.0 is 0.0 for any finite x
    yb = ex * 0.0 + (ry + rh) * -k + c5
    top = np.where(fill, np.floor(np.minimum(ya, yb) + 0.5), dev.height)
    later = np.minimum.accumulate(top[::-1])[::-1]  # the least top from each block on
    return np.append(later[1:], dev.height).astype(np.int64)


def _painted_crop(page: Page, cfg: RenderConfig, dev: Device, x_from: int, y_from: int
                  ) -> tuple[int, int] | None:
    """The crop of ``page``, painting only the glyphs whose bitmaps can reach column
    ``x_from`` or beyond, row ``y_from`` or below, or the top-left 2x2 pixels (whose median
    is the crop's background): those pixels are then the raster's own. None when the page's
    last ink may lie left of ``x_from`` (above ``y_from``), which were not painted."""
    W, H = dev.width, dev.height
    table = _table(cfg)
    atlas = atlas_for(cfg, dev.k * 72.0)
    cands = _candidates(page, cfg)
    bounds = _glyph_bounds(cfg, atlas)

    def only(x: np.ndarray, y: np.ndarray, cids: np.ndarray) -> np.ndarray:
        left, top, right, bottom = bounds(x, y, cids)
        return (right >= x_from) | (bottom >= y_from) | ((left <= 1) & (top <= 1))

    canvas = _Canvas(dev, 1 if cfg.is_grey else 3, _colour((255, 255, 255), cfg.is_grey))
    _paint(canvas, page, cfg, atlas, _place(page, cands.glyphs, table, atlas, dev, only))
    planes = canvas.planes

    def part(rows: slice, cols: slice) -> np.ndarray:  # no copy of the whole page
        return planes[0][rows, cols] if len(planes) == 1 else np.dstack(
            [pl[rows, cols] for pl in planes])

    bg = _corner_bg(part(slice(0, 2), slice(0, 2)))
    w, h = W, H
    if x_from < W:
        right = _last_inked(lambda a, b: part(slice(None), slice(a, b)), x_from, W, bg, 0)
        if right >= 0:
            w = int(round(min(W, right + 1 + cfg_margin(cfg.margin_x))))
        elif x_from > 0:
            return None
    if y_from < H:
        bottom = _last_inked(lambda a, b: part(slice(a, b), slice(0, w)), y_from, H, bg, 1)
        if bottom >= 0:
            h = int(round(min(H, bottom + cfg_margin(cfg.margin_y))))
        elif y_from > 0:
            return None
    return _keep_aspect(w, h, W, H)


def _last_inked(part: Callable[[int, int], np.ndarray], lo: int, hi: int, bg: float,
                axis: int) -> int:
    """The last column (axis 0) or row (axis 1) in [lo, hi) holding ink, -1 if none: read
    back from ``hi`` in growing bands (ink lies near the edge as a rule)."""
    end, step = hi, 32
    while end > lo:
        start = max(lo, end - step)
        found = np.flatnonzero(_ink_mask(part(start, end), bg).any(axis=axis))
        if found.size:
            return start + int(found[-1])
        end, step = start, step * 2
    return -1


def _ink_extent(page: Page, cfg: RenderConfig, dev: Device, *, want_bottom: bool
                ) -> tuple[int, int]:
    """Rightmost and lowest pixel that will differ from the top-left colour by over 5 levels."""
    W, H = dev.width, dev.height
    paper = (255, 255, 255)
    page_box = dev.page_box()
    boxes = []
    for b in page.blocks:
        c4, c5 = dev.block(b.ex, b.ey)
        boxes.append((dev.rect(*b.rect, c4, c5), c4, c5))
    # the colour of the top-left 2x2 pixels
    corner = []
    for yy in (0, 1):
        for xx in (0, 1):
            col = paper
            if page_box[0] <= xx < page_box[2] and page_box[1] <= yy < page_box[3]:
                col = cfg.page_bg_color
            for (x0, y0, x1, y1), _c4, _c5 in boxes:
                if x0 <= xx < x1 and y0 <= yy < y1:
                    col = cfg.para_bg_color
            corner.append(_grey_px(col))
    corner.sort()
    bg = (corner[1] + corner[2]) / 2  # numpy's median of four
    right = bottom = -1

    def ink(col: tuple[int, int, int]) -> bool:
        return abs(_grey_px(col) - bg) > 5

    if ink(paper):
        x0, y0, x1, y1 = page_box
        if x0 > 0 or x1 < W or y0 > 0 or y1 < H:
            # pixels the page background never covers stay paper white
            if x1 < W:
                right = W - 1
                bottom = max(bottom, H - 1) if y0 < H else bottom
            if y1 < H:
                bottom = H - 1
                right = max(right, W - 1)
    if ink(cfg.page_bg_color):
        x0, y0, x1, y1 = page_box
        if x1 > x0 and y1 > y0:
            right = max(right, min(x1, W) - 1)
            bottom = max(bottom, min(y1, H) - 1)
    if ink(cfg.para_bg_color):
        for (x0, y0, x1, y1), _c4, _c5 in boxes:
            if min(x1, W) > max(x0, 0) and min(y1, H) > max(y0, 0):
                right = max(right, min(x1, W) - 1)
                bottom = max(bottom, min(y1, H) - 1)
    if cfg.border_width > 0 and ink(cfg.para_border_color):
        for b, (_box, c4, c5) in zip(page.blocks, boxes, strict=True):
            for x0, y0, x1, y1 in _border_boxes(dev, *b.rect, cfg.border_width, c4, c5):
                if min(x1, W) > max(x0, 0) and min(y1, H) > max(y0, 0):
                    right = max(right, min(x1, W) - 1)
                    bottom = max(bottom, min(y1, H) - 1)
    cands = _candidates(page, cfg)
    atlas = atlas_for(cfg, dev.k * 72.0)
    nl = cfg.newline
    marker = nl.color if (not nl.line_break and nl.color) else cfg.font_color
    thr = min(_ink_threshold(cfg.para_bg_color, cfg.font_color, bg),
              _ink_threshold(cfg.para_bg_color, marker, bg),
              _ink_threshold(cfg.page_bg_color, cfg.font_color, bg))
    if thr > 255:
        return right, bottom
    cut_rows: dict[int, int] = {}
    for bi in range(len(page.blocks) - 1):
        cut_rows[bi] = max(boxes[bi + 1][0][1], 0)  # the next block's rectangle covers below

    def place(face: int, gid: int, x: float, ln, bi: int):
        c4, c5 = boxes[bi][1], boxes[bi][2]
        xt = x * dev.k + c4
        yt = (ln.ux * 0.0 + ln.uy * -dev.k) + c5
        x0 = math.floor(xt)
        phase = math.floor((xt - x0) * PHASES) if atlas.fractional(face) else 0
        return atlas.glyph_id(face, gid, phase), x0, math.floor(yt)

    block_last = cands.block_last

    def rightmost(face: int, gid: int, x: float, ln, bi: int, right: int) -> tuple[int, bool]:
        """The right edge so far, with this glyph's ink; and whether the glyph has ink."""
        gi, x0, y0 = place(face, gid, x, ln, bi)
        span = atlas.ink_span(gi, thr)
        if span is None:
            return right, False
        limit = min(H, cut_rows.get(bi, 1 << 30) if block_last.get(bi) is ln else H)
        if y0 + span[0] >= 0 and y0 + span[1] < limit:  # every inked row is on the page
            col = x0 + span[3]
            if col > right:
                right = min(col, W - 1) if col >= 0 else right
            return right, True
        for dy, dx in atlas.ink_rows(gi, thr):
            row, col = y0 + dy, x0 + dx
            if 0 <= row < limit and col > right:
                right = min(col, W - 1) if col >= 0 else right
        return right, True

    inked = False
    for face, gid, x, ln, bi in cands.right:
        right, has = rightmost(face, gid, x, ln, bi, right)
        inked |= has
    if not inked and cands.more is not None:
        # none of the outline-rightmost glyphs drew ink here: walk on, rightmost bound first,
        # until no glyph can reach past the ink found
        for bound, face, gid, x, ln, bi in cands.more():
            if right >= 0 and math.floor(bound * dev.k + boxes[bi][1]) + 1 < right:
                break
            right, _has = rightmost(face, gid, x, ln, bi, right)
    if want_bottom:
        for face, gid, x, ln, bi in cands.bottom:
            gi, x0, y0 = place(face, gid, x, ln, bi)
            if x0 + atlas.box[gi][0] >= W:
                continue
            span = atlas.ink_span(gi, thr)
            if span is None:
                continue
            limit = min(H, cut_rows.get(bi, 1 << 30) if block_last.get(bi) is ln else H)
            if x0 + span[2] >= 0 and y0 + span[1] < limit:  # every inked row counts
                bottom = max(bottom, y0 + span[1])
                continue
            for dy, dx in atlas.ink_rows(gi, thr):
                row = y0 + dy
                if bottom < row < limit and x0 + dx >= 0:
                    bottom = row
    return right, bottom
