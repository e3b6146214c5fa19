"""Hardening (issue 12): inputs that crashed become typed errors or render, budgets hold, and
the edges a seeded bug slipped past (a budget fast path off by one, a truncated pHYs) are pinned."""

from __future__ import annotations

import io
import math
import struct
from importlib.resources import files

import pytest
from PIL import Image

from glyph_render import (
    BudgetError,
    ConfigError,
    GlyphRenderError,
    RenderConfig,
    encode_png,
    image_tokens,
    page_pixel_size,
    rasterize,
)
from glyph_render.compress import compress
from glyph_render.config import MAX_ASPECT
from glyph_render.layout import layout
from glyph_render.render import render

try:
    from corpus_data import read_text
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import read_text

EN = RenderConfig.preset("glyph-en")
ALICE = read_text("en_alice_in_wonderland.txt")[1000:13_000]


# --- crashes that became renders or typed errors ---------------------------------------------

@pytest.mark.parametrize("fallbacks", [None, []])
def test_bitmap_only_primary_font_draws_what_it_lacks(fallbacks):
    """A colour-bitmap font (no outlines) as the primary font, on text it lacks (U+FBE0):
    drawn from the fallbacks (or as missing), never FreeType's 'invalid pixel size'."""
    changes = {"font_path": "NotoColorEmoji"}
    if fallbacks is not None:
        changes["fallback_fonts"] = fallbacks
    cfg = EN.replace(**changes)
    for dpi in (10, 72, 120):
        res = render("a\ufbe0b \U0001F600 \u05d0\u05d1 \u4e2d", cfg.replace(dpi=dpi))
        assert len(res.pages) == 1 and res.pages[0].png
        assert res.missing >= 1  # U+FBE0 is in no bundled font


def test_tiny_page_with_small_horizontal_scale_renders():
    cfg = RenderConfig(page_size=(40, 60), dpi=10, font_size=16, line_height=16, margin_x=3.2,
                       margin_y=0, horizontal_scale=0.1)
    res = render("x", cfg)
    (page,) = res.pages
    assert page.width >= 1 and page.height >= 1
    assert (page.width, page.height) == page_pixel_size(next(iter(layout("x", cfg))), cfg,
                                                        last=True)


def test_thin_last_page_is_cropped_no_further_than_the_aspect_limit():
    """A one-line last page of a very wide page used to crop to 4167x16 px, which the vision
    processor refuses (past 200:1). The crop now keeps a band of background."""
    cfg = EN.replace(page_size=(4200, 600), margin_y=0, auto_crop_width=False)
    text = "word " * 120  # one line, 15 px tall as the reference crops it
    pages = list(layout(text, cfg))
    img = rasterize(pages[-1], cfg, last=True)
    w, h = img.size
    assert w == 4200 and h == math.ceil(w / MAX_ASPECT)
    assert page_pixel_size(pages[-1], cfg, last=True) == (w, h)
    assert image_tokens(w, h) > 0  # the model's rule takes it
    # the reference's own crop is still what a page within the limit gets
    two = list(layout("word " * 300, cfg))[-1]
    assert 21 < rasterize(two, cfg, last=True).size[1] < 600


def test_page_past_the_aspect_limit_is_refused_up_front():
    with pytest.raises(ConfigError, match="aspect ratio"):
        EN.replace(page_size=(4500, 22), margin_y=0)
    with pytest.raises(ConfigError, match="aspect ratio"):
        RenderConfig(page_size=(60, 14_000))
    with pytest.raises(ConfigError, match="horizontal-scale 0.5"):
        RenderConfig(page_size=(120, 14_000), horizontal_scale=0.5)
    RenderConfig(page_size=(120, 14_000))  # 1:117 without the squeeze


@pytest.mark.parametrize("data", [
    {"dpi": 10 ** 400}, {"font-size": 10 ** 400}, {"page-size": [10 ** 400, 842]},
    {"margin-x": -(10 ** 400)}, {"tab-size": 10 ** 5000}, {"dpi": "1e999"},
    {"font-color": 10 ** 5000},
])
def test_huge_numbers_in_a_config_are_config_errors(data):
    with pytest.raises(ConfigError) as err:
        RenderConfig.from_dict(data)
    assert len(str(err.value)) < 200 and "\n" not in str(err.value)


@pytest.mark.parametrize("data", [
    {"border-padding": 1e308}, {"margin-x": 1e300}, {"space-after": 20_000},
    {"page-size": [20_000, 842]}, {"font-size": 1e200, "line-height": 1e200},
])
def test_lengths_past_any_page_are_config_errors(data):
    """1e308 pt of border padding is finite, but doubled it overflowed to inf in layout."""
    with pytest.raises(ConfigError, match="14,400 pt"):
        RenderConfig.from_dict(data)


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"dpi": ' + "9" * 5000 + "}",
                                 '{"dpi": 1' + "0" * 400 + "}"])
def test_hostile_config_files_are_config_errors(tmp_path, raw):
    path = tmp_path / "config.json"
    path.write_text(raw)
    with pytest.raises(ConfigError, match="config.json|dpi"):
        RenderConfig.from_json(path)


@pytest.mark.parametrize("kwargs", [
    {"page_size": "595,842"}, {"page_size": (595,)}, {"page_size": (float("nan"), 5)},
    {"font_color": "red"}, {"tab_size": "4"}, {"font_path": 5}, {"fallback_fonts": "x"},
    {"dpi": 10 ** 400}, {"dpi": float("inf")},
])
def test_a_config_built_directly_checks_its_types(kwargs):
    with pytest.raises(ConfigError):
        RenderConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"max_dpi": float("nan")}, {"max_dpi": float("inf")}, {"max_dpi": -1}, {"max_dpi": 0},
    {"min_px_per_em": float("inf")}, {"min_px_per_em": float("nan")},
    {"min_px_per_em": 10 ** 400}, {"per_image_tokens": -1},
])
def test_compress_refuses_non_finite_dpi_arguments(kwargs):
    with pytest.raises(BudgetError, match=next(iter(kwargs))):
        compress("hello world " * 50, 2_000, **kwargs)


@pytest.mark.parametrize("dpi", [float("nan"), float("inf"), -1.0, 0.0, 1e9])
def test_raster_refuses_impossible_dpi(dpi):
    page = next(iter(layout("hello", EN)))
    with pytest.raises(ConfigError, match="dpi"):
        rasterize(page, EN, dpi=dpi)
    with pytest.raises(ConfigError, match="dpi"):
        page_pixel_size(page, EN, last=True, dpi=dpi)


# --- the budget is a guarantee -----------------------------------------------------------------

def _sample() -> str:
    return (files("glyph_render") / "data" / "sample.txt").read_text(encoding="utf-8")


def test_split_never_holds_a_chunk_over_budget():
    """The issue's case: with a 420x595 pt page one page's text laid out alone took two pages
    (252 tokens against 250) and was reported as fitting."""
    text = _sample() * 3
    cfg = EN.replace(page_size=(420, 595))
    plan = compress(text, 250, config=cfg, overflow="split")
    assert plan.limited_by == "split"
    assert plan.chunks[0].start == 0 and plan.chunks[-1].end == len(text)
    for a, b in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert a.end == b.start
    for c in plan.chunks:
        assert 0 < c.vision_tokens <= 250
    for c in plan.chunks[:6]:  # rendered alone, each really costs what the plan says
        res = render(text[c.start:c.end], plan.config)
        assert res.vision_tokens == c.vision_tokens


def test_split_says_when_not_even_one_page_fits():
    with pytest.raises(BudgetError, match="one page"):
        compress(ALICE, 40, overflow="split")


def test_a_low_starting_dpi_does_not_hide_a_plan():
    """The ladder's smaller-font rungs are tried at their own floor DPI: the base config's
    DPI (10 here, under one pixel for 7 pt text) must not stop the search."""
    low = EN.replace(dpi=10)
    want = compress(ALICE, 2_500, config=EN)
    got = compress(ALICE, 2_500, config=low)
    assert got.cost <= 2_500
    assert (got.dpi, got.config.font_size, got.cost) == (want.dpi, want.config.font_size,
                                                         want.cost)
    split = compress(_sample() * 3, 500, config=low, overflow="split")
    assert all(c.vision_tokens <= 500 for c in split.chunks)


@pytest.mark.parametrize("max_dpi", [96.0, 120.0])
def test_budget_one_under_the_ceiling_cost_gives_a_plan_under_it(max_dpi):
    """A fast path that accepted ``cost <= budget + 1`` at the DPI ceiling would return the
    ceiling's plan, one token over."""
    top = compress(ALICE, 10 ** 9, max_dpi=max_dpi)
    assert top.limited_by == "legibility" and top.dpi == max_dpi
    at = compress(ALICE, top.cost, max_dpi=max_dpi)
    assert at.dpi == max_dpi and at.cost == top.cost
    under = compress(ALICE, top.cost - 1, max_dpi=max_dpi)
    assert under.cost <= top.cost - 1
    assert under.dpi < max_dpi


# --- PNG pHYs --------------------------------------------------------------------------------

def _phys(png: bytes) -> tuple[int, int, int]:
    i = png.index(b"pHYs")
    return struct.unpack(">IIB", png[i + 4:i + 13])


@pytest.mark.parametrize("dpi", [72, 96, 120, 300])
def test_phys_round_trips_the_dpi(dpi):
    png = encode_png(Image.new("L", (20, 10), 255), dpi)
    x, y, unit = _phys(png)
    assert unit == 1 and x == y
    # the nearest whole number of pixels per metre (truncating writes 72 DPI as 71.98)
    assert x == math.floor(dpi / 0.0254 + 0.5)
    assert abs(x * 0.0254 - dpi) <= 0.0254 / 2
    read = Image.open(io.BytesIO(png)).info["dpi"]
    assert round(read[0], 1) == round(read[1], 1) == dpi


def test_rendered_pages_carry_their_dpi():
    res = render("hello", EN.replace(dpi=96))
    assert _phys(res.pages[0].png)[0] == 3780


def test_every_error_above_is_a_glyph_render_error():
    for exc in (ConfigError, BudgetError):
        assert issubclass(exc, GlyphRenderError)
