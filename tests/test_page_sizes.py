"""Pages of fractional point sizes (exact A4, A5, B5, odd sizes) at several DPIs, pixel for pixel
as reportlab + poppler draw them.

poppler never sees the configured size: reportlab writes the MediaBox with ``fp_str`` (A4's
841.8897637795277 pt becomes ``841.8898``) and poppler's lexer reads that back into a double of
its own. The bitmap size (``ceil``) and every baseline (``floor`` of the page height's CTM minus
the line's y) hang off that number, so an unrounded height moves whole lines by a pixel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

for _module in ("reportlab", "pdf2image"):
    pytest.importorskip(_module, reason=f"{_module} (the 'bench' extra) is not installed")
if not (shutil.which("pdftoppm") and shutil.which("pdfinfo")):
    pytest.skip("poppler-utils (pdftoppm, pdfinfo) missing", allow_module_level=True)

from reportlab.lib import pagesizes  # noqa: E402

from glyph_render.config import RenderConfig  # noqa: E402
from glyph_render.fonts import bundled_font  # noqa: E402
from glyph_render.layout import layout  # noqa: E402
from glyph_render.raster import page_pixel_size  # noqa: E402
from glyph_render.render import render  # noqa: E402

try:
    from reference_loader import load_reference
except ImportError:  # tests/ imported as a package
    from tests.reference_loader import load_reference

ref = load_reference()
CORPUS = Path(__file__).resolve().parents[1] / "glyph_render" / "data" / "corpus"
DEJAVU = bundled_font("DejaVuSans")

#: Sizes whose MediaBox poppler reads as a different double from the configured one (each failed
#: before the fix at one DPI or more), plus one that survives the round trip as a control.
SIZES = {
    "A4": pagesizes.A4,  # 595.2755905511812 x 841.8897637795277 -> 595.2756 x 841.8898
    "A5": pagesizes.A5,
    "B5": pagesizes.B5,
    "A5-rounded": (419.53, 595.28),  # two decimals, yet not the double poppler's lexer makes
    "just-over": (300.0000001, 400.0000001),  # written as 300 x 400: no extra pixel column/row
    "control": (420.5, 595.3),
}


def text(chars: int) -> str:
    with open(CORPUS / "en_alice_in_wonderland.txt", encoding="utf-8", newline="") as f:
        return f.read()[:chars]


def config(size: tuple[float, float], dpi: int, **over: object) -> dict:
    return {**ref.DEFAULT_CONFIG, "font-path": DEJAVU, "page-size": f"{size[0]!r},{size[1]!r}",
            "dpi": dpi, **over}


def ours(txt: str, cfg: dict) -> list[np.ndarray]:
    result = render(txt, RenderConfig.from_dict({**cfg, "fallback-fonts": []}), keep_image=True)
    return [np.asarray(p.image.convert("RGB")) for p in result.pages]


@pytest.mark.parametrize("dpi", [72, 96, 120])
@pytest.mark.parametrize("name", list(SIZES))
def test_full_pages_are_the_references(name: str, dpi: int) -> None:
    """No crop: the bitmap is the whole MediaBox, text on white, identical to the last pixel."""
    txt = text(2_500)
    cfg = config(SIZES[name], dpi, **{"auto-crop-width": False, "auto-crop-last-page": False})
    want = [np.asarray(im.convert("RGB")) for im in ref.render_reference(txt, cfg)]
    got = ours(txt, cfg)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        assert a.shape == b.shape, (name, dpi, i, a.shape, b.shape)
        rows = np.flatnonzero((a != b).any(axis=(1, 2)))
        assert not len(rows), (name, dpi, i, "rows differ:", rows[:10].tolist())


@pytest.mark.parametrize(("name", "dpi"), [("A4", 72), ("A5", 96), ("B5", 120),
                                           ("just-over", 100)])
def test_cropped_coloured_pages_and_their_predicted_sizes(name: str, dpi: int) -> None:
    """Page background, paragraph boxes, borders and both crops on a fractional page; the crop
    size :func:`page_pixel_size` predicts without a raster is the size drawn."""
    txt = text(2_000)
    cfg = config(SIZES[name], dpi, **{
        "page-bg-color": "#F5F0E0", "para-bg-color": "#E8E8FF", "para-border-color": "#333333",
        "border-width": 1, "border-padding": 2.5, "margin-x": 7.3, "margin-y": 11.7})
    want = [np.asarray(im.convert("RGB")) for im in ref.render_reference(txt, cfg)]
    got = ours(txt, cfg)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        assert a.shape == b.shape, (name, dpi, i, a.shape, b.shape)
        # a handful of channels may differ by one level where glyphs blend over a colour
        assert np.abs(a.astype(int) - b.astype(int)).mean() <= 0.01, (name, dpi, i)
    rcfg = RenderConfig.from_dict({**cfg, "fallback-fonts": []})
    pages = list(layout(txt, rcfg))
    assert len(pages) == len(want)
    for i, (p, a) in enumerate(zip(pages, want, strict=True)):
        w, h = page_pixel_size(p, rcfg, last=i == len(pages) - 1)
        assert (h, w) == a.shape[:2], (name, dpi, i)
