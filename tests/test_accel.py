"""The compiled compositing loop (``glyph_render._accel``) against its definition and the NumPy
path it replaces.

CI builds the module (the wheel's build hook compiles it; ``GLYPH_REQUIRE_ACCEL=1`` fails the
run if it is missing). Pixel equality with the reference renderer is checked in
tests/test_fidelity.py and tests/test_page_sizes.py, which go through the same loop.
"""

from __future__ import annotations

import math
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


# ---- the rest of the C path: lookups, glyph pixels, planes, crop, PNG rows --------------------

RNG = np.random.default_rng(7)


def test_char_ids_look_code_points_up_and_count_the_misses() -> None:
    lut = np.full(100, -1, np.int32)
    lut[[65, 66, 32]] = [0, 1, 2]
    cps = np.array([65, 32, 66, 67, 5000, 65], np.uint32)
    out = np.empty(len(cps), np.int64)
    assert accel.char_ids(cps, lut, out) == 2  # 67 not in the table, 5000 past it
    assert out.tolist() == [0, 2, 1, -1, -1, 0]
    assert accel.char_ids(np.zeros(0, np.uint32), lut, np.empty(0, np.int64)) == 0
    with pytest.raises(ValueError, match="out is shorter"):
        accel.char_ids(cps, lut, np.empty(5, np.int64))
    with pytest.raises(TypeError, match="lut: expected items of 4 bytes"):
        accel.char_ids(cps, lut.astype(np.int64), out)
    with pytest.raises(TypeError, match="out: expected items of 8 bytes"):
        accel.char_ids(cps, lut, np.empty(6, np.int32))


def test_atlas_ids_gather_keys_and_refuse_bad_indices() -> None:
    cids = np.array([3, 0, 2], np.int64)
    table = np.arange(16, dtype=np.int32) * 10
    table[13] = -1
    idx = np.array([0, 2, 1, 0], np.int64)
    phase = np.array([1, 3, 0, 3], np.int64)
    out = np.empty(4, np.int64)
    # keys 3*4+1=13 (-1: a miss), 2*4+3=11, 0*4+0=0, 3*4+3=15
    assert accel.atlas_ids(cids, idx, phase, table, 4, out) == 1
    assert out.tolist() == [-1, 110, 0, 150]
    assert accel.atlas_ids(cids, idx, phase, table[:12], 4, out) == 2  # 13, 15 past the table
    with pytest.raises(ValueError, match="index out of range"):
        accel.atlas_ids(cids, np.array([3], np.int64), np.zeros(1, np.int64), table, 4, out)
    with pytest.raises(ValueError, match="phase out of range"):
        accel.atlas_ids(cids, idx, np.array([0, 0, 4, 0], np.int64), table, 4, out)
    with pytest.raises(ValueError, match="character id out of range"):
        accel.atlas_ids(np.array([-1], np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
                        table, 4, out)
    with pytest.raises(ValueError, match="differ in length"):
        accel.atlas_ids(cids, idx, phase[:3], table, 4, out)
    with pytest.raises(ValueError, match="out is shorter"):
        accel.atlas_ids(cids, idx, phase, table, 4, out[:3])
    with pytest.raises(ValueError, match="phases"):
        accel.atlas_ids(cids, idx, phase, table, 0, out)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_take_equals_numpy_fancy_indexing(dtype: type) -> None:
    src = RNG.integers(0, 200, 50).astype(dtype)
    idx = RNG.integers(0, 50, 80).astype(np.int64)
    out = np.empty(80, dtype)
    accel.take(src, idx, out)
    assert np.array_equal(out, src[idx])
    with pytest.raises(ValueError, match="index out of range"):
        accel.take(src, np.array([50], np.int64), out)
    with pytest.raises(ValueError, match="out is shorter"):
        accel.take(src, idx, out[:10])
    with pytest.raises(TypeError, match="out: expected items"):
        accel.take(src, idx, np.empty(80, np.int32))
    with pytest.raises(TypeError, match="src: expected items of 1 or 8"):
        accel.take(src.astype(np.int32), idx, out)


@pytest.mark.parametrize("flip", [False, True], ids=["top-down", "bottom-up"])
def test_glyph_pixels_equal_numpy_nonzero(flip: bool) -> None:
    """Real glyph bitmaps (and the same rows stored bottom-up, FreeType's negative pitch)."""
    cfg = RenderConfig.preset("glyph-en")
    atlas = raster.GlyphAtlas(raster._table(cfg).chain, 40.0, 1.0)
    face = atlas.chain.face(0)
    for ch in "Ag@W.":
        raw = atlas._bitmap(0, face.glyph(ord(ch)), 1)
        assert raw is not None
        buf, pitch, w, h, left, top = raw
        arr = np.frombuffer(buf, np.uint8).reshape(h, abs(pitch))[:, :w]
        if flip:
            buf, pitch = arr[::-1].tobytes(), -w
        outs = [np.empty(w * h, np.int64) for _ in range(3)]
        n = accel.glyph_pixels(buf, pitch, w, h, left, top, *outs)
        ys, xs = np.nonzero(arr)
        assert n == len(ys) > 0
        assert np.array_equal(outs[0][:n], ys - top) and np.array_equal(outs[1][:n], xs + left)
        assert np.array_equal(outs[2][:n], arr[ys, xs])
    with pytest.raises(ValueError, match="smaller than pitch x rows"):
        accel.glyph_pixels(b"\x01" * 5, 3, 3, 2, 0, 0, *outs)
    with pytest.raises(ValueError, match="within the pitch"):
        accel.glyph_pixels(b"\x01" * 6, 2, 3, 2, 0, 0, *outs)
    with pytest.raises(ValueError, match="outputs shorter"):
        accel.glyph_pixels(b"\x01" * 6, 3, 3, 2, 0, 0, *(o[:5] for o in outs))


def test_flat_offsets_and_blend_tables_equal_their_numpy_definitions() -> None:
    dy, dx = RNG.integers(-20, 20, 300), RNG.integers(-5, 30, 300)
    out = np.empty(300, np.int64)
    accel.flat_offsets(dy, dx, 1234, out)
    assert np.array_equal(out, dy * 1234 + dx)
    with pytest.raises(ValueError, match="differ in length"):
        accel.flat_offsets(dy, dx[:5], 10, out)
    for colour in (0, 1, 127, 128, 200, 255):
        assert accel.blend_table(colour) == raster._blend_table_np(colour).tobytes()
    with pytest.raises(ValueError, match="outside 0..255"):
        accel.blend_table(256)


def test_fill_equals_numpy_slicing_clipped_to_the_plane() -> None:
    for x0, y0, x1, y1 in [(2, 3, 9, 7), (-5, -5, 3, 2), (8, 6, 40, 40), (5, 5, 5, 9),
                           (9, 2, 4, 6), (-9, -9, -1, -1)]:
        plane = np.full((8, 10), 255, np.uint8)
        want = plane.copy()
        want[max(y0, 0):max(min(y1, 8), 0), max(x0, 0):max(min(x1, 10), 0)] = 17
        accel.fill(plane, 10, 8, x0, y0, x1, y1, 17)
        assert np.array_equal(plane, want), (x0, y0, x1, y1)
    with pytest.raises(ValueError, match="plane is smaller"):
        accel.fill(plane, 10, 9, 0, 0, 1, 1, 0)
    with pytest.raises(ValueError, match="value"):
        accel.fill(plane, 10, 8, 0, 0, 1, 1, 300)


def _last_ink_np(arr: np.ndarray, bg: float, axis: int, start: int) -> int:
    found = np.flatnonzero(raster._ink_mask(arr, bg).any(axis=axis))
    found = found[found >= start]
    return int(found[-1]) if found.size else -1


@pytest.mark.parametrize("channels", [1, 3])
def test_last_ink_equals_the_numpy_mask(channels: int) -> None:
    for trial in range(40):
        h, w = int(RNG.integers(1, 30)), int(RNG.integers(1, 30))
        bg = float(RNG.choice([0, 12.5, 128, 250, 255]))
        base = np.full((h, w, channels), int(bg), np.uint8)
        for _ in range(int(RNG.integers(0, 4))):  # a few specks, some faint (not ink)
            y, x = int(RNG.integers(0, h)), int(RNG.integers(0, w))
            base[y, x] = RNG.integers(0, 256, channels)
        arr = base[:, :, 0] if channels == 1 else base
        planes = tuple(np.ascontiguousarray(base[:, :, c]) for c in range(channels))
        hi, lo = math.floor(bg + 5), math.ceil(bg - 5)
        cols = int(RNG.integers(0, w + 1))
        start = int(RNG.integers(0, 5))
        for axis in (0, 1):
            part = arr[:, :cols] if axis == 1 else arr
            got = accel.last_ink(planes, w, cols if axis == 1 else w, h, lo, hi, axis, start)
            assert got == _last_ink_np(part, bg, axis, start), (trial, axis)
    with pytest.raises(ValueError, match="1 or 3 planes"):
        accel.last_ink((planes[0], planes[0]), w, w, h, 0, 255, 0, 0)
    with pytest.raises(ValueError, match="smaller than stride x rows"):
        accel.last_ink(planes, w, w, h + 1, 0, 255, 0, 0)
    with pytest.raises(ValueError, match="axis"):
        accel.last_ink(planes, w, w, h, 0, 255, 2, 0)


@pytest.mark.parametrize("over", [
    {}, {"margin_x": 0, "margin_y": 2.5}, {"font_color": "#1B2A4A", "page_bg_color": "#FDF6E3"},
    {"page_bg_color": "#000000", "font_color": "#FFFFFF"}, {"auto_crop_width": False},
], ids=["grey", "margins", "colour", "dark", "no-width-crop"])
def test_c_crop_equals_the_numpy_crop(over: dict) -> None:
    cfg = RenderConfig.preset("glyph-en").replace(**over)
    pages = list(layout(TEXT[:4000], cfg))
    for i, page in enumerate(pages):
        dev = raster.Device.for_page(page.width, page.height, cfg.dpi)
        canvas = raster._Canvas(dev, 1 if cfg.is_grey else 3, (255,) * (1 if cfg.is_grey else 3))
        atlas, table = raster.atlas_for(cfg), raster._table(cfg)
        raster._paint(canvas, page, cfg, atlas, raster._place_c(page, table, atlas, dev))
        arr = canvas.planes[0] if cfg.is_grey else np.dstack(canvas.planes)
        for last in (False, True):
            assert raster._crop_size_c(canvas.buffers, dev.width, dev.height, cfg, last) == \
                raster._crop_size(arr, cfg, last, None), (i, last)


def test_png_rows_and_encode_equal_the_numpy_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from glyph_render import encode

    src = RNG.integers(0, 256, (7, 13), dtype=np.uint8)
    out = bytearray(7 * 11)
    accel.png_rows(src, 13, 10, 7, out)  # the first 10 bytes of each 13-byte row
    want = np.zeros((7, 11), np.uint8)
    want[:, 1:] = src[:, :10]
    assert bytes(out) == want.tobytes()
    with pytest.raises(ValueError, match="out is smaller"):
        accel.png_rows(src, 13, 10, 7, bytearray(10))
    with pytest.raises(ValueError, match="src is smaller"):
        accel.png_rows(src, 13, 13, 8, bytearray(8 * 14))
    with pytest.raises(ValueError, match="bad row size"):
        accel.png_rows(src, 13, 14, 7, bytearray(7 * 15))
    for img in (Image.fromarray(src, "L"),
                Image.fromarray(RNG.integers(0, 256, (9, 5, 3), dtype=np.uint8), "RGB")):
        fast = encode.encode_png(img, 96)
        monkeypatch.setattr(encode, "_c_png_rows", None)
        assert encode.encode_png(img, 96) == fast
        monkeypatch.undo()
        with Image.open(__import__("io").BytesIO(fast)) as back:
            assert np.array_equal(np.asarray(back), np.asarray(img))


def test_char_table_c_lookup_equals_the_numpy_one() -> None:
    """Both lookups share one table: characters new to it (BMP and astral) get ids the other
    lookup then finds, and one character is one id."""
    cfg = RenderConfig.preset("glyph-en")
    text = "Hello, wörld — ünïcode \U0001F600 and \U00020BB7 again Hello \U0001F600 ∑ 𝔸"
    chain = raster._table(cfg).chain
    for first in ("c", "numpy"):
        table = raster._CharTable(chain)
        a = table.ids_c(text) if first == "c" else table.ids(text)  # every character new
        b = table.ids(text) if first == "c" else table.ids_c(text)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        ids = dict(zip(text, np.asarray(a).tolist(), strict=True))
        assert len(set(ids.values())) == len(ids) == len(table.faces)
        assert [ids[ch] for ch in text[::-1]] == list(table.ids_c(text[::-1]))
    assert list(table.ids_c("")) == []
