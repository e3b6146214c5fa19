"""The compiled compositing loop (``glyph_render._accel``) against its definition and the NumPy
path it replaces.

CI builds the module (the wheel's build hook compiles it; ``GLYPH_REQUIRE_ACCEL=1`` fails the
run if it is missing). Pixel equality with the reference renderer is checked in
tests/test_fidelity.py and tests/test_page_sizes.py, which go through the same loop.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from glyph_render import raster
from glyph_render.config import RenderConfig
from glyph_render.layout import layout

accel = pytest.importorskip("glyph_render._accel", reason="the C module is not built") \
    if os.environ.get("GLYPH_REQUIRE_ACCEL") != "1" else __import__(
        "glyph_render._accel", fromlist=["blend"])

TEXT = ("The quick brown fox jumps over the lazy dog; tight kerning: AVAWAYTo Ty fi ff. " * 40
        + "\n" + "Wide: WWWWWWWWWWWWWWWW MMMMMMMMMMMMMMMM\n") * 6


def _pages(cfg: RenderConfig, use_c: bool) -> list[np.ndarray]:
    old = raster._USE_C
    raster._USE_C = use_c
    try:
        pages = list(layout(TEXT, cfg))
        return [np.asarray(raster.rasterize(p, cfg, last=i == len(pages) - 1))
                for i, p in enumerate(pages)]
    finally:
        raster._USE_C = old


def test_the_c_module_is_the_one_rasterize_uses() -> None:
    assert raster._c_blend is accel.blend


@pytest.mark.parametrize("over", [
    {}, {"font_color": "#1B2A4A", "page_bg_color": "#FDF6E3", "para_bg_color": "#EEE8D5"},
    {"newline_markup": "<font color=\"#FF0000\"> \\n </font>"},
], ids=["grey", "colour", "marker"])
def test_c_and_numpy_paths_agree_where_no_glyphs_overlap(over: dict) -> None:
    # 72 DPI Verdana 9 pt: neighbouring glyphs' bitmaps touch at most, never overlap in ink
    cfg = RenderConfig.preset("glyph-en").replace(**over)
    c, py = _pages(cfg, True), _pages(cfg, False)
    assert len(c) == len(py)
    for a, b in zip(c, py, strict=True):
        assert a.shape == b.shape
        diff = np.abs(a.astype(int) - b.astype(int))
        # overlapping bitmaps (kerned pairs) may round differently in the layered NumPy order
        assert diff.mean() < 0.01 and int(diff.max()) <= 3


def test_overlapping_glyphs_blend_in_drawing_order() -> None:
    """Two glyphs on one pixel: the second blends over the first's result (Splash's order)."""
    plane = np.full((4, 4), 200, np.uint8)
    table = raster._blend_table(0)
    zeros = np.zeros(2, np.int64)
    # glyph 0: one pixel of coverage 100; glyph 1: coverage 70, both at (1, 2)
    start = np.array([0, 1], np.int64)
    count = np.array([1, 1], np.int64)
    box = np.array([0, 0], np.int64), np.array([0, 0], np.int64), np.ones(2, np.int64), \
        np.ones(2, np.int64)
    dy, dx = zeros.copy(), zeros.copy()
    alpha = np.array([100, 70], np.int64)
    flat = dy * 4 + dx
    ids = np.array([0, 1], np.int64)
    accel.blend(plane, 4, 4, ids, np.array([2, 2], np.int64), np.array([1, 1], np.int64),
                np.zeros(2, np.uint8), start, count, *box, dy, dx, flat, alpha, table, table)
    once = ((255 - 100) * 200) // 255
    assert plane[1, 2] == ((255 - 70) * once) // 255 == 87
    assert (plane == 200).sum() == 15  # nothing else touched
    # the other order gives another value: order matters, so the loop must keep it
    assert ((255 - 100) * (((255 - 70) * 200) // 255)) // 255 == 88


def test_pixels_off_the_plane_are_skipped_and_marker_picks_its_table() -> None:
    plane = np.full((3, 3), 255, np.uint8)
    text, mark = raster._blend_table(0), raster._blend_table(128)
    n = 9  # a 3x3 glyph of full coverage, its box from the pen
    dy = np.repeat(np.arange(3, dtype=np.int64), 3)
    dx = np.tile(np.arange(3, dtype=np.int64), 3)
    args = (np.array([0], np.int64), np.array([n], np.int64), np.array([0], np.int64),
            np.array([0], np.int64), np.array([3], np.int64), np.array([3], np.int64),
            dy, dx, dy * 3 + dx, np.full(n, 255, np.int64), text, mark)
    # pen at (2, 2): only the glyph's top-left pixel lands on the plane
    accel.blend(plane, 3, 3, np.array([0], np.int64), np.array([2], np.int64),
                np.array([2], np.int64), np.array([1], np.uint8), *args)
    assert plane[2, 2] == 128 and (plane == 255).sum() == 8
    # pen at (-2, -2): only the glyph's bottom-right pixel, in the text colour
    accel.blend(plane, 3, 3, np.array([0], np.int64), np.array([-2], np.int64),
                np.array([-2], np.int64), np.array([0], np.uint8), *args)
    assert plane[0, 0] == 0 and (plane == 255).sum() == 7


def test_bad_arguments_are_refused_not_written_past() -> None:
    plane = np.full((2, 2), 255, np.uint8)
    t = raster._blend_table(0)
    one = np.zeros(1, np.int64)
    good = dict(ids=one, px=one, py=one, marker=np.zeros(1, np.uint8), start=one,
                count=np.ones(1, np.int64), left=one, top=one, bw=np.ones(1, np.int64),
                bh=np.ones(1, np.int64), dy=one, dx=one, flat=one,
                alpha=np.full(1, 255, np.int64))

    def call(**over: object) -> None:
        a = {**good, **over}
        accel.blend(over.get("plane", plane), 2, over.get("h", 2), a["ids"], a["px"], a["py"],
                    a["marker"], a["start"], a["count"], a["left"], a["top"], a["bw"], a["bh"],
                    a["dy"], a["dx"], a["flat"], a["alpha"], over.get("table", t), t)

    with pytest.raises(ValueError, match="plane is smaller"):
        call(h=3)
    with pytest.raises(ValueError, match="glyph id out of range"):
        call(ids=np.array([5], np.int64))
    with pytest.raises(ValueError, match="glyph pixels out of range"):
        call(count=np.array([7], np.int64))
    with pytest.raises(ValueError, match="differ in length"):
        call(px=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="65536"):
        call(table=t[:10])
    with pytest.raises(TypeError, match="ids: expected items of 8 bytes"):
        call(ids=np.zeros(1, np.int32))
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        call(plane=np.full((2, 2), 255, np.uint8)[:, ::-1])
    ro = np.full((2, 2), 255, np.uint8)
    ro.flags.writeable = False
    with pytest.raises((BufferError, ValueError)):
        call(plane=ro)
    assert (plane == 255).all()  # the refused calls wrote nothing


def test_pages_rasterised_in_threads_equal_the_serial_ones() -> None:
    """The loop runs without the GIL: threads rendering pages at once must not interfere."""
    cfg = RenderConfig.preset("glyph-en")
    pages = list(layout(TEXT * 3, cfg))
    serial = [np.asarray(raster.rasterize(p, cfg)) for p in pages]
    out: list[np.ndarray | None] = [None] * len(pages)

    def work(i: int) -> None:
        out[i] = np.asarray(raster.rasterize(pages[i], cfg))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pages))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, out, strict=True):
        assert b is not None and np.array_equal(a, b)


@pytest.mark.parametrize("over", [{}, {"alignment": "JUSTIFY"}, {"dpi": 96},
                                  {"first_line_indent": 12, "left_indent": 6}],
                         ids=["left", "justify", "dpi96", "indent"])
def test_c_placement_equals_the_numpy_walk(over: dict) -> None:
    """Pen positions, pixels and phases from C equal the NumPy walk's on every glyph."""
    cfg = RenderConfig.preset("glyph-en").replace(**over)
    atlas, table = raster.atlas_for(cfg), raster._table(cfg)
    for page in layout(TEXT, cfg):
        dev = raster.Device.for_page(page.width, page.height, cfg.dpi)
        c = raster._place_c(page, table, atlas, dev)
        py = raster._place(page, raster._page_glyphs(page, table), table, atlas, dev)
        assert c is not None and py is not None
        for name in ("ids", "px", "py", "marker", "line"):
            assert np.array_equal(getattr(c, name), getattr(py, name)), name


def test_placement_refuses_inconsistent_arguments() -> None:
    f8 = np.zeros(1, np.float64)
    tables = (np.ones(2, np.float64), np.zeros(2, np.uint8), np.ones(2, np.uint8))
    outs = [np.empty(3, np.int64) for _ in range(4)]

    def call(cids: np.ndarray, lens: np.ndarray, out: list | None = None) -> int:
        return accel.place(cids, lens, f8, f8, f8, *tables, 9.0, 1.0, *(out or outs))

    assert call(np.array([0, 1, 0], np.int64), np.array([3], np.int64)) == 3
    assert outs[2].tolist() == [0, 9, 18]  # the pen advances 1 em of 9 pt per character
    with pytest.raises(ValueError, match="do not add up"):
        call(np.array([0, 1, 0], np.int64), np.array([2], np.int64))
    with pytest.raises(ValueError, match="exceed"):
        call(np.array([0, 1, 0], np.int64), np.array([4], np.int64))
    with pytest.raises(ValueError, match="character id out of range"):
        call(np.array([0, 7, 0], np.int64), np.array([3], np.int64))
    with pytest.raises(ValueError, match="outputs shorter"):
        call(np.zeros(5, np.int64), np.array([5], np.int64))
