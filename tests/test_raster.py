"""Pixels: every config key has its visible effect; scripts draw ink; output is deterministic."""

from __future__ import annotations

import hashlib
import io
import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from glyph_render import Page, RenderConfig, page_pixel_size, rasterize
from glyph_render.fonts import bundled_font, font_chain
from glyph_render.layout import MARKER, TEXT, layout
from glyph_render.render import page_sizes, render

EN = RenderConfig.preset("glyph-en")
# Uncropped pages (pixel coordinates comparable across configs) with lines far enough apart
# that each line's ink is a separate band of rows.
BASE = EN.replace(**{"auto-crop-width": False, "auto-crop-last-page": False})
ROOMY = BASE.replace(**{"line-height": 20})
# At 144 DPI 9 pt stems are wider than a pixel: fully covered pixels take the exact font colour.
SHARP = BASE.replace(dpi=144)

PROSE = (
    "To Sherlock Holmes she is always the woman. I have seldom heard him mention her under any "
    "other name. In his eyes she eclipses and predominates the whole of her sex. It was not that "
    "he felt any emotion akin to love for Irene Adler. All emotions, and that one particularly, "
    "were abhorrent to his cold, precise but admirably balanced mind. He was, I take it, the most "
    "perfect reasoning and observing machine that the world has seen, but as a lover he would "
    "have placed himself in a false position."
)
TWO_PARAS = PROSE + "\n\n" + PROSE


def draw(text: str, cfg: RenderConfig) -> list[tuple[Page, Image.Image]]:
    pages = list(layout(text, cfg))
    return [(p, rasterize(p, cfg, last=i == len(pages) - 1)) for i, p in enumerate(pages)]


def draw1(text: str, cfg: RenderConfig) -> tuple[Page, Image.Image]:
    (out,) = draw(text, cfg)
    return out


def ink(img: Image.Image, bg: tuple[int, int, int] | int = 255) -> np.ndarray:
    """Pixels clearly different from the background."""
    a = np.asarray(img).astype(int)
    if a.ndim == 2:
        bg_v = bg if isinstance(bg, int) else bg[0]
        return np.abs(a - bg_v) > 64
    bg_rgb = (bg, bg, bg) if isinstance(bg, int) else bg
    return np.abs(a - np.array(bg_rgb)).max(axis=2) > 64


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the True pixels, inclusive."""
    ys, xs = np.nonzero(mask)
    assert xs.size, "no ink"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def row_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    rows = mask.any(axis=1)
    runs, y = [], 0
    while y < len(rows):
        if rows[y]:
            s = y
            while y < len(rows) and rows[y]:
                y += 1
            runs.append((s, y))
        else:
            y += 1
    return runs


def faint(img: Image.Image) -> np.ndarray:
    """What Glyph's crop counts as ink: grey differing from the top-left 2x2 median by > 5."""
    a = np.asarray(img.convert("L")).astype(float)
    return np.abs(a - np.median(a[:2, :2])) > 5


def last_index(mask: np.ndarray, axis: int) -> int:
    """Last column (axis 0) or row (axis 1) holding a True pixel."""
    return int(np.nonzero(mask.any(axis=axis))[0][-1])


def text_lines(page: Page):
    """The lines that draw something (blank source lines are empty lines)."""
    return [ln for ln in page.lines if ln.runs]


def line_extents(page: Page, img: Image.Image, cfg: RenderConfig) -> list[tuple[int, int]]:
    """(left, right) ink column of each laid-out line that draws, from the pixels of its band."""
    s = cfg.scale
    m = ink(img, cfg.page_bg_color)
    out = []
    for ln in text_lines(page):
        top = round((ln.baseline - cfg.font_size) * s)
        bottom = round((ln.baseline + 0.3 * cfg.font_size) * s)
        left, _, right, _ = bbox(m[top:bottom])
        out.append((left, right))
    return out


FRAME_LEFT, FRAME_RIGHT = 16, 579  # text frame at glyph-en, 72 DPI: 10 pt margin + 6 pt pad


# --------------------------------------------------------------------------- geometry keys


@pytest.mark.parametrize("dpi", [72, 96, 144, 216])
def test_dpi_scales_the_page_and_the_ink(dpi: int) -> None:
    page, img = draw1("HELLO WORLD", BASE.replace(dpi=dpi))
    s = dpi / 72
    assert img.size == (math.ceil(595 * s), math.ceil(842 * s))
    _, ref = draw1("HELLO WORLD", BASE)
    l0, t0, r0, b0 = bbox(ink(ref))
    left, top, right, bottom = bbox(ink(img))
    assert abs(left - l0 * s) <= 2 * s and abs(top - t0 * s) <= 2 * s
    assert (right - left) == pytest.approx((r0 - l0) * s, rel=0.05)
    assert (bottom - top) == pytest.approx((b0 - t0) * s, rel=0.15)


def test_dpi_scales_cropped_pages_too() -> None:
    # the ink scales with the DPI; the margins Glyph's crop adds are pixels, which do not
    sizes, ink_edges = {}, {}
    for dpi in (72, 144):
        sizes[dpi] = draw1(PROSE, EN.replace(dpi=dpi))[1].size
        whole = faint(draw1(PROSE, BASE.replace(dpi=dpi))[1])
        ink_edges[dpi] = (last_index(whole, 0) + 1, last_index(whole, 1))
        assert sizes[dpi] == (ink_edges[dpi][0] + 10, ink_edges[dpi][1] + 10)
    (r1, b1), (r2, b2) = ink_edges[72], ink_edges[144]
    assert abs(r2 - 2 * r1) <= 2 and abs(b2 - 2 * b1) <= 3


def test_margins_move_the_first_ink_column_and_row() -> None:
    _, a = draw1(PROSE, BASE)
    _, b = draw1(PROSE, BASE.replace(**{"margin-x": 40, "margin-y": 50}))
    la, ta, ra, _ = bbox(ink(a))
    lb, tb, rb, _ = bbox(ink(b))
    assert abs(la - FRAME_LEFT) <= 1
    assert abs((lb - la) - 30) <= 1
    assert abs((tb - ta) - 40) <= 1
    assert rb <= 595 - 40 - 6 + 3  # the right margin holds too


def test_font_size_changes_glyph_height() -> None:
    cfg9 = BASE.replace(dpi=144)
    cfg18 = cfg9.replace(**{"font-size": 18, "line-height": 20})
    h9 = np.ptp(np.nonzero(ink(draw1("HHHH", cfg9)[1]))[0]) + 1
    h18 = np.ptp(np.nonzero(ink(draw1("HHHH", cfg18)[1]))[0]) + 1
    assert h18 / h9 == pytest.approx(2.0, rel=0.08)
    # cap height of DejaVu Sans is 0.729 em
    assert h9 == pytest.approx(0.729 * 9 * 2, abs=2)


@pytest.mark.parametrize("line_height", [10, 14, 25])
def test_line_height_sets_the_line_pitch(line_height: int) -> None:
    _, img = draw1("H\nH\nH\nH\nH", BASE.replace(**{"line-height": line_height}))
    starts = [s for s, _ in row_runs(ink(img))]
    assert len(starts) == 5
    assert set(np.diff(starts).tolist()) == {line_height}


def test_horizontal_scale_scales_width_only() -> None:
    _, ref = draw1(PROSE, BASE)
    for scale in (0.5, 1.5):
        _, img = draw1(PROSE, BASE.replace(**{"horizontal-scale": scale}))
        assert img.size == (int(595 * scale), 842)
        l0, t0, r0, b0 = bbox(ink(ref))
        left, top, right, bottom = bbox(ink(img))
        assert right == pytest.approx(r0 * scale, abs=2)
        assert left == pytest.approx(l0 * scale, abs=2)
        assert (top, bottom) == (t0, b0)


def test_first_line_indent_indents_the_first_line_of_each_30_line_group() -> None:
    # Glyph joins every 30 source lines into one paragraph: the indent opens each group, and a
    # blank line (paragraph break to a reader) starts nothing
    text = "\n".join([PROSE, "", "After a blank line."] + [f"short {i}" for i in range(27)]
                     + [PROSE])
    cfg = ROOMY.replace(**{"first-line-indent": 30})
    page, img = draw1(text, cfg)
    lines = text_lines(page)
    ext = line_extents(page, img, cfg)
    firsts = [i for i, ln in enumerate(lines) if ln.text.startswith("To Sher")]
    assert len(firsts) == 2 and firsts[0] == 0  # source lines 0 and 30
    for i, (left, _) in enumerate(ext):
        expected = FRAME_LEFT + 30 if i in firsts else FRAME_LEFT
        assert abs(left - expected) <= 2, (i, left)


def test_left_and_right_indents_narrow_every_line() -> None:
    cfg = ROOMY.replace(**{"left-indent": 30, "right-indent": 50})
    page, img = draw1(TWO_PARAS, cfg)
    ext = line_extents(page, img, cfg)
    for left, right in ext:
        assert abs(left - (FRAME_LEFT + 30)) <= 2
        assert right <= FRAME_RIGHT - 50 + 3
    assert max(r for _, r in ext) >= FRAME_RIGHT - 50 - 40


def test_space_before_and_after_add_gaps_between_30_line_groups() -> None:
    # 61 source lines: groups a0-a29, b0-b29, c0; descender-free, so one ink band per line
    text = "\n".join([f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)] + ["c0"])

    def band_tops(cfg: RenderConfig) -> list[int]:
        tops = [s for s, _ in row_runs(ink(draw1(text, cfg)[1]))]
        assert len(tops) == 61
        return tops

    plain = band_tops(BASE)
    assert set(np.diff(plain).tolist()) == {10}
    for before, after, gap in ((8, 12, 12), (12, 8, 12), (0, 12, 12), (8, 0, 8)):
        # reportlab's frame: the space after a paragraph, plus what space before exceeds it
        spaced = band_tops(BASE.replace(**{"space-before": before, "space-after": after}))
        assert spaced[0] == plain[0]  # no space before the first paragraph at the frame top
        steps = np.diff(spaced).tolist()
        assert steps[29] == steps[59] == 10 + gap, (before, after)
        assert set(steps[:29] + steps[30:59]) == {10}  # none inside a group


# --------------------------------------------------------------------------- alignment


def _aligned(alignment: str):
    cfg = ROOMY.replace(alignment=alignment)
    page, img = draw1(TWO_PARAS, cfg)
    ext = line_extents(page, img, cfg)
    lines = text_lines(page)
    # a paragraph's last line: ended by a <br/>, or the group's last
    last_of_para = {i for i, ln in enumerate(lines) if ln.forced} | {len(lines) - 1}
    return lines, ext, last_of_para


def test_left_alignment_is_ragged_right() -> None:
    lines, ext, last = _aligned("LEFT")
    assert len(lines) >= 6 and len(last) == 2
    assert all(abs(left - FRAME_LEFT) <= 1 for left, _ in ext)
    wrapped_rights = [r for i, (_, r) in enumerate(ext) if i not in last]
    assert min(wrapped_rights) < FRAME_RIGHT - 8  # ragged


def test_right_alignment_puts_every_line_end_at_the_frame_edge() -> None:
    _, ext, last = _aligned("RIGHT")
    for left, right in ext:
        assert abs(right - FRAME_RIGHT) <= 2, right
        assert left >= FRAME_LEFT - 4  # at most the space-shrink allowance past the edge
    assert all(ext[i][0] > FRAME_LEFT + 50 for i in last)  # short lines sit on the right


def test_center_alignment_centres_every_line() -> None:
    _, ext, last = _aligned("CENTER")
    centre = (FRAME_LEFT + FRAME_RIGHT) / 2
    for left, right in ext:
        assert abs((left + right) / 2 - centre) <= 2
    short = [ext[i] for i in last]
    assert all(left > FRAME_LEFT + 50 for left, _ in short)


def test_justify_stretches_wrapped_lines_but_not_paragraph_ends() -> None:
    _lines, ext, last = _aligned("JUSTIFY")
    _, left_ext, _ = _aligned("LEFT")
    assert len(last) == 2
    for i, (left, right) in enumerate(ext):
        assert abs(left - FRAME_LEFT) <= 1
        if i in last:
            assert right == left_ext[i][1]  # the last line of a paragraph stays as LEFT has it
            assert right < FRAME_RIGHT - 50
        else:
            assert abs(right - FRAME_RIGHT) <= 2, (i, right)


# --------------------------------------------------------------------------- colour keys


def test_default_pages_are_single_channel_black_on_white() -> None:
    _, img = draw1(PROSE, BASE)
    assert img.mode == "L"
    a = np.asarray(img)
    # unhinted 9 px glyphs cover few pixels fully at 72 DPI; at 144 the stems draw pure black
    assert a.min() <= 8 and a.max() == 255 and a[0, 0] == 255
    assert np.asarray(draw1(PROSE, SHARP)[1]).min() == 0


def test_font_color_colours_the_ink_and_makes_rgb() -> None:
    _, img = draw1(PROSE, SHARP.replace(**{"font-color": "#FF0000"}))
    assert img.mode == "RGB"
    a = np.asarray(img).astype(int)
    m = ink(img)
    assert m.sum() > 1000
    assert (a[m][:, 0] >= 250).all()  # every ink pixel keeps full red
    assert ((a[..., 0] == 255) & (a[..., 1] == 0) & (a[..., 2] == 0)).any()
    grey = draw1(PROSE, SHARP.replace(**{"font-color": "#404040"}))[1]
    assert grey.mode == "L" and np.asarray(grey).min() == 0x40


def test_page_bg_color_fills_the_page() -> None:
    grey = draw1(PROSE, BASE.replace(**{"page-bg-color": "#808080"}))[1]
    assert grey.mode == "L"
    assert np.asarray(grey)[0, 0] == 128 and np.asarray(grey)[-1, -1] == 128
    cream = draw1(PROSE, SHARP.replace(**{"page-bg-color": "#FFFFE0"}))[1]
    assert cream.mode == "RGB"
    a = np.asarray(cream)
    assert tuple(a[0, 0]) == (255, 255, 224) and tuple(a[-1, -1]) == (255, 255, 224)
    assert ink(cream, (255, 255, 224)).sum() > 1000
    assert a.reshape(-1, 3).min(axis=0).tolist() == [0, 0, 0]


def test_para_bg_color_paints_a_box_behind_the_paragraph() -> None:
    cfg = BASE.replace(**{"para-bg-color": "#00FF00"})
    page, img = draw1(PROSE, cfg)
    assert img.mode == "RGB"
    a = np.asarray(img)
    green = (a[..., 0] == 0) & (a[..., 1] == 255) & (a[..., 2] == 0)
    left, top, right, bottom = bbox(green)
    assert abs(left - FRAME_LEFT) <= 1 and abs(right - FRAME_RIGHT) <= 1
    text_top, text_bottom = bbox(a.max(axis=2) < 128)[1::2]
    assert top <= text_top - 1 and bottom >= text_bottom - 1
    assert tuple(a[5, 5]) == (255, 255, 255)  # outside the box: page background
    assert not green[bottom + 5:].any()
    plain = np.asarray(draw1(PROSE, BASE)[1])
    assert plain.ndim == 2  # no box at all with the default colour


def test_border_width_draws_a_border_around_the_paragraph() -> None:
    blue = {"para-border-color": "#0000FF"}

    def border(**changes):
        img = draw1(PROSE, BASE.replace(**blue, **changes))[1]
        a = np.asarray(img.convert("RGB")).astype(int)
        return (a[..., 2] > 200) & (a[..., 0] < 60) & (a[..., 1] < 60)

    assert not border(**{"border-width": 0}).any()
    thin = border(**{"border-width": 2})
    left, top, right, bottom = bbox(thin)
    assert abs(left - FRAME_LEFT) <= 1 and abs(right - FRAME_RIGHT) <= 1
    assert thin[top, left:right].all()  # (glyphs touch the frame where it has no padding)
    assert not thin[top + 2, left + 10:right - 10].any()
    padded = border(**{"border-width": 2, "border-padding": 6})
    pl, pt, pr, pb = bbox(padded)
    assert (left - pl, top - pt, pr - right, pb - bottom) == (6, 6, 6, 6)
    # with padding the text no longer touches it: a closed 2 px frame, nothing inside
    assert padded[pt:pb + 1, pl:pl + 2].all() and padded[pt:pb + 1, pr - 1:pr + 1].all()
    assert padded[pt:pt + 2, pl:pr + 1].all() and padded[pb - 1:pb + 1, pl:pr + 1].all()
    assert not padded[pt + 2:pb - 1, pl + 2:pr - 1].any()
    # a stroke is centred on the rectangle's edge: 4 px reach 1 px further out than 2 px
    thick = border(**{"border-width": 4, "border-padding": 6})
    assert bbox(thick) == (pl - 1, pt - 1, pr + 1, pb + 1)
    tl, tt, tr, tb = bbox(thick)
    assert thick[tt:tt + 4, tl:tr + 1].all() and thick[tb - 3:tb + 1, tl:tr + 1].all()
    assert thick[tt:tb + 1, tl:tl + 4].all() and thick[tt:tb + 1, tr - 3:tr + 1].all()
    assert not thick[tt + 4:tb - 3, tl + 4:tr - 3].any()


# --------------------------------------------------------------------------- cropping


@pytest.mark.parametrize(("dpi", "margin"), [(72, 10), (144, 10), (96, 30)])
def test_auto_crop_width_crops_to_the_ink_plus_margin_x_pixels(dpi: int, margin: int) -> None:
    # Glyph's script: keep columns up to the last one differing from the top-left background
    # by more than 5 grey levels, plus margin-x *pixels* (whatever the DPI)
    short = "A short line."
    plain = BASE.replace(dpi=dpi, **{"margin-x": margin})
    uncropped = draw1(short, plain)[1]
    assert uncropped.size == (math.ceil(595 * dpi / 72), math.ceil(842 * dpi / 72))
    cropped = draw1(short, plain.replace(**{"auto-crop-width": True}))[1]
    assert cropped.height == uncropped.height
    assert cropped.width == last_index(faint(uncropped), 0) + 1 + margin
    assert np.array_equal(np.asarray(cropped), np.asarray(uncropped)[:, :cropped.width])


def test_auto_crop_last_page_crops_only_the_last_page() -> None:
    long = ("jumpy quays " * 6 + "\n") * 120  # two pages; descenders on the last line
    cfg = BASE.replace(**{"auto-crop-last-page": True})
    drawn = draw(long, cfg)
    assert len(drawn) == 2
    assert drawn[0][1].size == (595, 842)
    last = drawn[1][1]
    assert last.width == 595 and last.height < 842
    plain_last = draw(long, BASE)[1][1]
    # the last row with ink plus margin-y pixels (the script adds no 1 here)
    assert last.height == last_index(faint(plain_last), 1) + 10
    assert np.array_equal(np.asarray(last), np.asarray(plain_last)[:last.height])
    both = draw(long, EN)  # glyph-en crops both ways
    assert both[0][1].height == 842 and both[0][1].width < 595
    assert both[1][1].size[1] == last.height


def test_page_pixel_size_arithmetic_matches_the_rasters(corpus_text) -> None:
    text = corpus_text("en_alice_in_wonderland.txt")[:12_000]
    for changes in ({}, {"dpi": 96}, {"dpi": 120, "horizontal-scale": 0.7},
                    {"auto-crop-width": False}, {"para-bg-color": "#EEEEEE", "dpi": 50}):
        cfg = EN.replace(**changes)
        pages = list(layout(text, cfg))
        assert len(pages) >= 2
        sizes = page_sizes(pages, cfg)
        for i, p in enumerate(pages):
            img = rasterize(p, cfg, last=i == len(pages) - 1)
            assert img.size == sizes[i] == page_pixel_size(p, cfg, last=i == len(pages) - 1)


# --------------------------------------------------------------------------- newline markup, fonts


def test_newline_markup_br_breaks_lines() -> None:
    text = "line one\nline two\nline three"
    page, img = draw1(text, EN)
    assert len(page.lines) == 3 and img.mode == "L"
    assert len(row_runs(ink(img))) == 3


def test_newline_markup_red_marker_keeps_text_running() -> None:
    text = "line one\nline two\nline three"
    cfg = EN.replace(**{"newline-markup": '<font color="#FF0000"> \\n </font>'})
    page, img = draw1(text, cfg)
    assert len(page.lines) == 1
    assert img.mode == "RGB"
    a = np.asarray(img).astype(int)
    red = (a[..., 0] > 200) & (a[..., 1] < 80) & (a[..., 2] < 80)
    black = (a.max(axis=2) < 80)
    assert red.sum() > 5 and black.sum() > 20
    # the two markers sit between the words, where the layout put them, and only there
    ln = page.lines[0]
    assert [style for _t, style in ln.runs] == [TEXT, MARKER, TEXT, MARKER, TEXT]
    boxes = [pen_span(ln, text_start(ln, i), text_start(ln, i + 1), cfg)
             for i, (_t, style) in enumerate(ln.runs) if style == MARKER]
    cols = np.nonzero(red.any(axis=0))[0]
    for x0, x1 in boxes:
        assert ((cols >= x0) & (cols <= x1)).any()
    inside = np.zeros(len(cols), bool)
    for x0, x1 in boxes:
        inside |= (cols >= x0 - 1) & (cols <= x1 + 1)
    assert inside.all()


def test_a_monospace_font_gives_equal_advances() -> None:
    mono = EN.replace(**{"font-path": bundled_font("DejaVuSansMono")})

    def width(text: str, cfg: RenderConfig) -> int:
        left, _, right, _ = bbox(ink(draw1(text, cfg)[1]))
        return right - left

    assert abs(width("iiiiiiiiii", mono) - width("MMMMMMMMMM", mono)) <= 8
    assert width("MMMMMMMMMM", EN) > 2.5 * width("iiiiiiiiii", EN)
    p_mono, _ = draw1("iiiiiiiiii", mono)
    p_sans, _ = draw1("iiiiiiiiii", EN)
    assert p_mono.lines[0].width == pytest.approx(10 * 0.602 * 9, abs=0.1)
    assert p_sans.lines[0].width < p_mono.lines[0].width / 2


# --------------------------------------------------------------------------- scripts and symbols


def text_start(ln, run: int) -> int:
    """Index in ``ln.text`` where run number ``run`` starts."""
    return sum(len(t) for t, _s in ln.runs[:run])


def pen_span(ln, a: int, b: int, cfg: RenderConfig) -> tuple[int, int]:
    """Pixel columns [x0, x1] that characters a..b of an unstretched line advance over: the
    pen moves by each character's advance, in the order of the text (no bidi reordering)."""
    chain = font_chain(cfg.font_chain)
    k = cfg.font_size / 1000 * cfg.scale
    x = ln.x * cfg.scale
    return (math.floor(x + chain.width(ln.text[:a]) * k),
            math.ceil(x + chain.width(ln.text[:b]) * k))


def word_ink(page: Page, img: Image.Image, cfg: RenderConfig) -> list[int]:
    """Ink pixels in the box of each space-separated word of the first line, from the pen."""
    ln = page.lines[0]
    assert ln.word_space == 0
    s = cfg.scale
    band = ink(img)[round((ln.baseline - cfg.font_size) * s):round((ln.baseline + 3) * s)]
    out = []
    for m in re.finditer(r"\S+", ln.text):
        x0, x1 = pen_span(ln, m.start(), m.end(), cfg)
        out.append(int(band[:, x0:x1].sum()))
    return out


@pytest.mark.parametrize(
    "text",
    ["مرحبا بالعالم", "שלום עולם", "עברית and English", "الدرس 12 (ب)"],
    ids=["arabic", "hebrew", "hebrew-latin", "arabic-digits"],
)
def test_rtl_text_renders_ink_in_logical_order(text: str) -> None:
    # reportlab draws right-to-left text as stored, first character leftmost, unshaped: each
    # word's ink lies where the pen reaches it in that order
    page, img = draw1(text, EN)
    assert page.missing == 0
    assert page.lines[0].text == text
    counts = word_ink(page, img, EN)
    assert len(counts) == len(text.split())
    assert all(c > 10 for c in counts), counts


@pytest.mark.parametrize(("first", "rest"),
                         [("\u05d0", "\u05d1\u05d2"), ("\u0628", "\u0633\u0645")],
                         ids=["hebrew", "arabic"])
def test_rtl_text_is_drawn_left_to_right_unshaped(first: str, rest: str) -> None:
    # The first character of the text is the leftmost glyph, and an Arabic letter keeps its
    # isolated form where shaping would join it (initial beh is a small tooth, isolated beh a
    # wide bowl): the pixels left of the second character's pen position are those of the
    # first character drawn alone.
    page, whole = draw1(first + rest, SHARP)
    _, alone = draw1(first, SHARP)
    x0, x1 = pen_span(page.lines[0], 0, 1, SHARP)
    assert ink(alone)[:, :x0].sum() == 0 and ink(alone)[:, x0:x1].sum() > 10
    assert np.array_equal(np.asarray(whole)[:, :x1 - 1], np.asarray(alone)[:, :x1 - 1])
    # (had the line been reordered right to left, the last character would stand there)
    _, last_first = draw1(rest[-1], SHARP)
    assert not np.array_equal(np.asarray(last_first)[:, :x1 - 1], np.asarray(alone)[:, :x1 - 1])


@pytest.mark.parametrize("text", ["مرحبا", "שלום"], ids=["arabic", "hebrew"])
def test_rtl_words_draw_with_the_fallback_font_that_has_them(text: str) -> None:
    # glyph-zh's primary font (Droid Sans Fallback) has no Arabic/Hebrew; the layout measures
    # those letters in the fallback DejaVu Sans, so they must be drawn from it too, exactly as
    # glyph-en (whose primary font is DejaVu Sans) draws them, not as .notdef boxes.
    zh = RenderConfig.preset("glyph-zh").replace(dpi=144)
    en = EN.replace(dpi=144)
    pz, iz = draw1(text, zh)
    pe, ie = draw1(text, en)
    assert pz.missing == pe.missing == 0
    assert pz.lines[0].text == pe.lines[0].text == text
    mz, me = ink(iz), ink(ie)
    h, w = min(mz.shape[0], me.shape[0]), min(mz.shape[1], me.shape[1])
    mz, me = mz[:h, :w], me[:h, :w]
    overlap = (mz & me).sum() / max(1, (mz | me).sum())
    assert overlap > 0.8, f"only {overlap:.0%} of the ink agrees"


@pytest.mark.parametrize(
    ("preset", "one", "other"),
    [
        ("glyph-en", "שלום 中文", "שלום 木木"),  # CJK inside a Hebrew line
        ("glyph-en", "مرحبا 中文", "مرحبا 木木"),  # ... inside an Arabic line
        ("glyph-zh", "שלום", "עולם"),  # Hebrew with a primary font that has none
        ("glyph-zh", "سلام", "كتاب"),  # Arabic likewise
    ],
    ids=["cjk-in-hebrew-line", "cjk-in-arabic-line", "hebrew-glyph-zh", "arabic-glyph-zh"],
)
def test_different_characters_in_rtl_lines_draw_differently(preset: str, one: str,
                                                            other: str) -> None:
    # Every character here is in some bundled font (missing == 0), so none may be drawn as the
    # same .notdef box: two texts that differ only in those characters must differ in pixels.
    cfg = RenderConfig.preset(preset).replace(**{"auto-crop-width": False})
    (p1, a), (p2, b) = draw1(one, cfg), draw1(other, cfg)
    assert p1.missing == p2.missing == 0
    same = np.array_equal(np.asarray(a), np.asarray(b))
    assert not same, f"{one!r} and {other!r} draw the same pixels (.notdef boxes?)"


def test_an_empty_fallback_chain_draws_notdef_boxes_as_the_reference() -> None:
    # fallback-fonts [] is Glyph's own renderer: what DejaVu Sans lacks draws its .notdef, a
    # hollow box, so different Han characters draw the same pixels
    bare = SHARP.replace(**{"fallback-fonts": []})
    (pa, a), (_pb, b) = draw1("\u4e2d", bare), draw1("\u6728", bare)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert pa.lines[0].width == pytest.approx(0.6 * 9, abs=0.01)  # DejaVu's .notdef advance
    assert pa.missing == 1  # drawn, but as .notdef: the report still counts it
    box = ink(a)
    left, top, right, bottom = bbox(box)
    assert box[top, left + 1:right].all() and box[top + 1:bottom, right].all()
    assert not box[top + 2:bottom - 1, left + 2:right - 1].any()
    # the default chain draws them from Droid Sans Fallback: two different glyphs
    assert not np.array_equal(np.asarray(draw1("\u4e2d", SHARP)[1]),
                              np.asarray(draw1("\u6728", SHARP)[1]))


def test_rtl_lines_keep_the_red_newline_marker() -> None:
    cfg = SHARP.replace(**{"newline-markup": '<font color="#FF0000"> \\n </font>'})
    for text in ("hello\nworld", "שלום\nעולם"):
        page, img = draw1(text, cfg)
        one, two = text.split("\n")
        assert page.lines[0].runs == [(one, TEXT), (" \\n ", MARKER), (two, TEXT)]
        a = np.asarray(img).astype(int)
        red = (a[..., 0] > 200) & (a[..., 1] < 80) & (a[..., 2] < 80)
        assert red.sum() > 20, text


def test_justify_stretches_wrapped_rtl_lines() -> None:
    hebrew = " ".join(["שלום", "עולם", "ספר", "מילה", "ארוכה", "בית", "ילד"] * 30)
    cfg = ROOMY.replace(alignment="JUSTIFY")
    page, img = draw1(hebrew, cfg)
    ext = line_extents(page, img, cfg)
    assert len(ext) >= 4
    for ln, (left, right) in zip(page.lines[:-1], ext[:-1], strict=True):
        assert not ln.forced
        assert abs(left - FRAME_LEFT) <= 2 and abs(right - FRAME_RIGHT) <= 2, (left, right)
    assert ext[-1][1] < FRAME_RIGHT - 50


@pytest.mark.parametrize("text", ["😀", "👍🏽", "🇨🇳", "👨‍👩‍👧", "I ❤ Unicode 🎉"])
def test_emoji_render_ink(text: str) -> None:
    page, img = draw1(text, EN)
    assert page.missing == 0
    assert ink(img).sum() > 15


def test_a_character_no_font_has_is_counted_and_drawn_where_it_sits() -> None:
    text = "before \ue4c2 after"
    page, img = draw1(text, EN)
    assert page.missing == 1
    assert page.lines[0].text == text
    assert word_ink(page, img, EN)[1] > 10
    # a replacement is drawn, not nothing: the page differs from one without it
    spaced = draw1("before   after", EN)[1]
    assert not np.array_equal(np.asarray(img)[:, :100], np.asarray(spaced)[:, :100])


def test_cjk_and_kana_draw_with_the_fallback_font() -> None:
    page, img = draw1("漢字 かな カナ", EN)
    assert page.missing == 0
    counts = word_ink(page, img, EN)
    assert len(counts) == 3 and all(c > 20 for c in counts), counts


CONTROL_SOUP = "".join(chr(c) for c in range(1, 32)) + "\x7f" + "".join(
    chr(c) for c in range(0x80, 0xA0))


@pytest.mark.parametrize(
    "text",
    [
        "plain " + CONTROL_SOUP + " text",
        "lone \ud800 high and \udfff low and \ud83d half an emoji",  # json.loads makes them
        "bidi \u202eoverride\u202c and \u2066isolate\u2069 zero\u200bwidth \ufeffbom",
        "\x00 NUL inside",
    ],
    ids=["controls", "surrogates", "format-chars", "nul"],
)
def test_control_characters_and_lone_surrogates_never_crash(text: str) -> None:
    res = render(text, EN)
    assert len(res.pages) == 1
    assert res.pages[0].png.startswith(b"\x89PNG")
    img = Image.open(io.BytesIO(res.pages[0].png))
    assert ink(img.convert("L")).sum() > 50
    assert res.missing == sum(1 for ch in text if 0xD800 <= ord(ch) <= 0xDFFF)


@pytest.mark.parametrize("sep", ["\x1c", "\x1d", "\x1e", "\x85", "\u2029"],
                         ids=["FS", "GS", "RS", "NEL", "PS"])
def test_rtl_words_with_bidi_paragraph_separators_never_crash(sep: str) -> None:
    # blns-style input: a Hebrew/Arabic word glued to a control character that the bidi
    # algorithm treats as a paragraph separator.
    res = render(f"שלום{sep}עולם and مرحبا{sep}", EN)
    assert len(res.pages) == 1


RASTER_PIECES = st.one_of(
    st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "中", "，", "😀", "👍🏽", "א", "ש", "ا",
                     "\x00", "\x1b", "\x1e", "\x85", "\u200d", "\u202e", "\ue4c2", "\ud800",
                     "W", "g", "\u0301"]),
    st.characters(codec=None),
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(RASTER_PIECES, min_size=1, max_size=120).map("".join),
       dpi=st.sampled_from([36, 72, 144]))
def test_random_text_always_rasterizes(text: str, dpi: int) -> None:
    cfg = EN.replace(dpi=dpi)
    pages = list(layout(text, cfg))
    for i, p in enumerate(pages):
        img = rasterize(p, cfg, last=i == len(pages) - 1)
        assert img.size == page_pixel_size(p, cfg, last=i == len(pages) - 1)


# --------------------------------------------------------------------------- determinism

MIXED = ("Determinism check: Latin, 中文，日本語のかな, Кириллица, עברית, العربية, emoji 😀👍🏽, "
         "private \ue4c2, tabs\tand  double  spaces.\n\n") * 40
MIXED_CFG = {"dpi": 96, "font-color": "#202080", "para-bg-color": "#F4F4F4",
             "newline-markup": '<font color="#FF0000"> \\n </font>'}


def _hashes(text: str, cfg: RenderConfig) -> list[str]:
    return [hashlib.sha256(p.png).hexdigest() for p in render(text, cfg).pages]


def test_same_input_gives_byte_identical_pngs_twice_and_in_a_fresh_process() -> None:
    cfg = EN.replace(**MIXED_CFG)
    first = _hashes(MIXED, cfg)
    assert len(first) >= 1
    # the glyph caches are warm now; the bytes must not depend on that
    assert _hashes(MIXED, cfg) == first
    script = textwrap.dedent(f"""
        import hashlib
        from glyph_render import RenderConfig, render
        cfg = RenderConfig.preset("glyph-en").replace(**{MIXED_CFG!r})
        for p in render({MIXED!r}, cfg).pages:
            print(hashlib.sha256(p.png).hexdigest())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == first


def test_pages_render_concurrently_from_threads() -> None:
    # what AsyncGlyphClient (asyncio.to_thread), eval --concurrency and bench serve do: price
    # and raster pages from several threads; each DPI builds a new glyph atlas. Rounds of 16
    # threads, in a child process, since the failure may be a crash (shared FreeType faces,
    # atlases and char tables once segfaulted, corrupted the heap or raised IndexError).
    script = textwrap.dedent("""
        import sys, threading
        from glyph_render.config import RenderConfig
        from glyph_render.layout import layout
        from glyph_render.raster import rasterize
        from glyph_render.render import page_sizes
        cfg = RenderConfig.preset("glyph-en")
        pages = list(layout(("The quick brown fox jumps over the lazy dog. " * 40 + "\\n") * 10,
                            cfg))
        errors = []
        def work(dpi):
            try:
                sizes = page_sizes(pages, cfg, dpi=dpi)
                img = rasterize(pages[-1], cfg, last=True, dpi=dpi)
                assert img.size == sizes[-1], (img.size, sizes[-1])
            except Exception as exc:
                errors.append(repr(exc))
        for r in range(8):
            threads = [threading.Thread(target=work, args=(40 + 16 * r + i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                sys.exit(errors[0])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, (out.returncode, out.stderr[-500:])


def test_png_bytes_decode_to_the_rasterized_pixels() -> None:
    cfg = EN.replace(**MIXED_CFG)
    res = render(MIXED[:2000], cfg, keep_image=True)
    for p in res.pages:
        decoded = Image.open(io.BytesIO(p.png))
        decoded.load()
        assert decoded.mode == p.image.mode
        assert np.array_equal(np.asarray(decoded), np.asarray(p.image))
        assert round(decoded.info["dpi"][0]) == 96


def test_crop_planned_when_the_rightmost_outline_draws_no_ink() -> None:
    """U+FE0F in Droid Sans Fallback has an outline reaching far right but covers no pixel:
    the planner must walk on to the glyph that does draw (it left the page uncropped, 595 px
    planned for a 33 px page; found by benchmarks/fuzz.py)."""
    from glyph_render.render import page_sizes

    cfg = RenderConfig.preset("glyph-en").replace(
        font_path="DroidSansFallbackFull", fallback_fonts=["DejaVuSans"], font_size=12,
        line_height=12)
    text = "a\ufe0f"
    planned = page_sizes(list(layout(text, cfg)), cfg)
    drawn = [(p.width, p.height) for p in render(text, cfg).pages]
    assert planned == drawn
    assert drawn[0][0] < 100
