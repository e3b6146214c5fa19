"""Pages equal to Glyph's own renderer's, pixel for pixel.

The reference is the re-creation of Glyph's ``word2png_function.py`` in
``benchmarks/reference_glyph.py`` (real reportlab, real poppler ``pdftoppm``), which
``benchmarks/fidelity.py --original`` checks page for page against the original script. Both sides
get the same text, config and font file (the bundled DejaVu Sans; Droid Sans Fallback for
Chinese, which has no Latin glyphs, so the reference draws .notdef there and so do we with an
empty fallback chain). Texts are excerpts of the shipped corpus plus constructed edge cases:
page splits right after a <br/>, 30-line group boundaries, long words, entities, tabs, CRLF.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("reportlab", reason="reportlab (the 'bench' extra) is not installed")
pytest.importorskip("pdf2image", reason="pdf2image (the 'bench' extra) is not installed")
if not (shutil.which("pdftoppm") and shutil.which("pdfinfo")):
    pytest.skip("poppler-utils (pdftoppm, pdfinfo) missing", allow_module_level=True)

from glyph_render import raster  # noqa: E402
from glyph_render.config import GLYPH_NEWLINE_MARKER, RenderConfig  # noqa: E402
from glyph_render.fonts import bundled_font  # noqa: E402
from glyph_render.layout import layout  # noqa: E402
from glyph_render.raster import page_pixel_size, rasterize  # noqa: E402
from glyph_render.render import render  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "glyph_render" / "data" / "corpus"


try:
    from reference_loader import load_reference
except ImportError:  # tests/ imported as a package
    from tests.reference_loader import load_reference

ref = load_reference()


def corpus(name: str, start: int, chars: int) -> str:
    with open(CORPUS / name, encoding="utf-8", newline="") as f:
        return f.read()[start:start + chars]


def glyph_config(font: str, **over) -> dict:
    cfg = dict(ref.DEFAULT_CONFIG)
    cfg["font-path"] = font
    cfg.update({k.replace("_", "-"): v for k, v in over.items()})
    return cfg


def assert_same_pages(text: str, cfg: dict) -> None:
    want = [np.asarray(im) for im in ref.render_reference(text, cfg)]
    ours_cfg = RenderConfig.from_dict({**cfg, "fallback-fonts": []})
    result = render(text, ours_cfg, keep_image=True)
    got = [np.asarray(p.image.convert("RGB")) for p in result.pages]
    assert len(got) == len(want), (len(got), len(want))
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        diff = np.abs(a.astype(int) - b.astype(int))
        if raster._c_blend is not None:  # glyphs blended one after another, as Splash does
            assert int(diff.max()) == 0, (i, diff.mean(), int(diff.max()))
        else:  # the NumPy path's layers may blend overlapping glyphs in another order
            assert diff.mean() <= 0.01, (i, diff.mean(), int(diff.max()))


DEJAVU = bundled_font("DejaVuSans")
MONO = bundled_font("DejaVuSansMono")
DROID = bundled_font("DroidSansFallbackFull")

# Page 1 of a group split right after a <br/>: the reference opens page 2 with an empty line.
SPLIT_AFTER_BR = "\n".join(
    (f"line {i} " + "lorem ipsum " * (i % 7)).strip() for i in range(200))
EDGE = ("Tabs\tcollapse\t\tlike  spaces;   runs stay.\r\nCRLF line\r\n"
        "Entities & <tags> > ok\n" + "A" * 400 + "\n" + "word " * 300
        + "\n\n\n" + "\xa0raw nbsp\xa0glue\n" + "x\u00ady\u200bz\n" + "end")


@pytest.mark.parametrize(("name", "start"), [
    ("en_alice_in_wonderland.txt", 0), ("code_click_core.py", 2000),
    ("ru_pushkin_kapitanskaya_dochka.txt", 1000),
])
def test_corpus_pages_match_the_reference(name: str, start: int) -> None:
    assert_same_pages(corpus(name, start, 12_000), glyph_config(DEJAVU))


@pytest.mark.parametrize("variant", [
    {"dpi": 96}, {"dpi": 120}, {"newline_markup": GLYPH_NEWLINE_MARKER},
    {"alignment": "JUSTIFY"}, {"alignment": "CENTER"}, {"alignment": "RIGHT"},
    {"first_line_indent": 12, "left_indent": 6, "right_indent": 6, "space_before": 3,
     "space_after": 2},
    {"horizontal_scale": 0.85},
    {"font_color": "#1B2A4A", "page_bg_color": "#FDF6E3", "para_bg_color": "#FDF6E3"},
    {"margin_x": 4, "margin_y": 4, "font_size": 8, "line_height": 8, "dpi": 63},
], ids=lambda v: ",".join(f"{k}={v[k]}" for k in v))
def test_variants_match_the_reference(variant: dict) -> None:
    assert_same_pages(corpus("en_frankenstein.txt", 0, 9_000), glyph_config(DEJAVU, **variant))


def test_page_split_after_a_line_break_and_edge_cases_match() -> None:
    assert_same_pages(SPLIT_AFTER_BR, glyph_config(DEJAVU))
    assert_same_pages(EDGE, glyph_config(MONO))
    assert_same_pages(EDGE, glyph_config(DEJAVU, newline_markup=GLYPH_NEWLINE_MARKER,
                                         alignment="JUSTIFY"))


def test_chinese_wraps_per_character_as_the_reference() -> None:
    text = corpus("zh_hongloumeng.txt", 0, 6_000)
    assert_same_pages(text, glyph_config(DROID))
    assert_same_pages(text, glyph_config(DROID, newline_markup=GLYPH_NEWLINE_MARKER, dpi=96))


def test_the_reference_opens_a_page_with_an_empty_line_and_the_opt_out_drops_it() -> None:
    cfg = RenderConfig.from_dict({**glyph_config(DEJAVU), "fallback-fonts": []})
    pages = list(layout(SPLIT_AFTER_BR, cfg))
    assert pages[1].lines[0].text == ""  # reportlab's empty line after the split
    no_blank = list(layout(SPLIT_AFTER_BR, cfg.replace(split_blank_line=False)))
    assert no_blank[1].lines[0].text != ""
    assert [ln.text for ln in no_blank[1].lines[:5]] == [
        ln.text for ln in pages[1].lines[1:6]]


def test_exact_page_size_arithmetic_equals_the_raster() -> None:
    text = corpus("en_frankenstein.txt", 0, 20_000)
    for over in ({}, {"dpi": 96}, {"dpi": 57.5, "newline_markup": GLYPH_NEWLINE_MARKER},
                 {"page_bg_color": "#EEEEEE", "border_width": 1,
                  "para_border_color": "#888888", "dpi": 110}):
        cfg = RenderConfig.from_dict({**glyph_config(DEJAVU), **over})
        pages = list(layout(text, cfg))
        for i, p in enumerate(pages):
            last = i == len(pages) - 1
            assert page_pixel_size(p, cfg, last=last) == rasterize(p, cfg, last=last).size
