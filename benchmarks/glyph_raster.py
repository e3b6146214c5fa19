"""Which library rasterises glyphs the way poppler does: the benchmark that chose freetype-py.

Poppler (Splash) draws each glyph with FreeType, hinting off, at one of four quarter-pixel
horizontal phases. Candidates:

* freetype-py (``FT_LOAD_NO_HINTING``, the phase as an outline translation, what
  ``raster.GlyphAtlas`` does): pages from it equal pdftoppm's pixel for pixel
  (``benchmarks/fidelity.py``), so it is the yardstick here;
* Pillow's ``ImageFont`` (``getmask2`` with the phase as ``start``): Pillow exposes no load
  flags, so its glyphs are hinted.

For every printable ASCII glyph at each phase this prints the mean absolute coverage difference
from the yardstick, the ink ratio, the share of fully black pixels, and the time per glyph render
of each library (cold; the atlas caches every glyph per font, size and phase afterwards).

    python benchmarks/glyph_raster.py [--font Verdana.ttf] [--px 9 12 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render.fonts import bundled_font, font_chain  # noqa: E402
from glyph_render.raster import GlyphAtlas  # noqa: E402

CHARS = [chr(c) for c in range(33, 127)]


def ours(font: str, px: int) -> tuple[dict, float]:
    chain = font_chain((font,))
    atlas = GlyphAtlas(chain, px, 1.0)
    face = chain.face(0)
    out = {}
    t = time.perf_counter()
    for ch in CHARS:
        for phase in range(4):
            out[ch, phase] = atlas._render(0, face.glyph(ord(ch)), phase)
    return out, (time.perf_counter() - t) / (len(CHARS) * 4)


def pillow(font: str, px: int) -> tuple[dict, float]:
    from PIL import ImageFont

    f = ImageFont.truetype(font, px, layout_engine=ImageFont.Layout.BASIC)
    out = {}
    t = time.perf_counter()
    for ch in CHARS:
        for phase in range(4):
            mask, offset = f.getmask2(ch, "L", start=(phase / 4, 0), anchor="ls")
            arr = np.asarray(mask, np.uint8).reshape(mask.size[1], mask.size[0])
            out[ch, phase] = (arr, offset[0], -offset[1])
    return out, (time.perf_counter() - t) / (len(CHARS) * 4)


def place(glyph: tuple, size: int = 64) -> np.ndarray:
    """A glyph bitmap on a canvas, its pen at (16, 40)."""
    canvas = np.zeros((size, size), np.int32)
    arr, left, top = glyph
    if arr is None or not arr.size:
        return canvas
    y0, x0 = 40 - top, 16 + left
    canvas[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
    return canvas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--font", default=None, help="font file (default: bundled DejaVu Sans)")
    ap.add_argument("--px", type=int, nargs="+", default=[9, 12, 15])
    args = ap.parse_args(argv)
    font = args.font or bundled_font("DejaVuSans")
    print(f"glyph_raster: {font}, printable ASCII x 4 phases")
    for px in args.px:
        ref, t_ref = ours(font, px)
        pil, t_pil = pillow(font, px)
        diffs, ink_ref, ink_pil, black_ref, black_pil = [], 0, 0, 0, 0
        for key in ref:
            a, b = place(ref[key]), place(pil[key])
            diffs.append(np.abs(a - b).sum() / max(1, (a > 0).sum()))
            ink_ref += a.sum()
            ink_pil += b.sum()
            black_ref += (a == 255).sum()
            black_pil += (b == 255).sum()
        print(f"  {px:2d} px/em: freetype-py unhinted {t_ref * 1e6:6.1f} us/glyph "
              f"(the pages' yardstick); Pillow {t_pil * 1e6:6.1f} us/glyph, mean |diff| "
              f"{np.mean(diffs):5.1f} per ink pixel, ink {ink_pil / ink_ref:.3f}x, fully black "
              f"pixels {black_pil / max(black_ref, 1):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
