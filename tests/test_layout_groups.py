"""Pagination rules that come from Glyph's 30-line reportlab paragraphs."""

from __future__ import annotations

import pytest

from glyph_render import RenderConfig, layout

CFG = RenderConfig.preset("glyph-en")


def baselines(text: str, cfg: RenderConfig = CFG) -> list[list[float]]:
    return [[ln.baseline for ln in p.lines] for p in layout(text, cfg)]


def test_blank_line_ending_a_group_draws_nothing():
    # Source line 29 (0-based) is the last of the first group: a blank there takes no slot.
    lines = [f"line {i}" for i in range(60)]
    lines[29] = ""
    (page,) = baselines("\n".join(lines))
    assert len(page) == 59
    assert page[28] == 25 + 28 * 10 and page[29] == 25 + 29 * 10  # no gap where line 29 was
    lines[29], lines[28] = "line 29", ""  # any other blank line keeps its slot
    (page,) = baselines("\n".join(lines))
    assert len(page) == 59 and page[28] == 25 + 29 * 10


def long_line(wrapped_lines: int) -> str:
    """A single source line that wraps into exactly ``wrapped_lines`` lines."""
    lo, hi = 1, 5000
    while lo < hi:
        mid = (lo + hi) // 2
        n = sum(len(p.lines) for p in layout(" ".join(["word"] * mid), CFG))
        if n < wrapped_lines:
            lo = mid + 1
        else:
            hi = mid
    text = " ".join(["word"] * lo)
    assert sum(len(p.lines) for p in layout(text, CFG)) == wrapped_lines
    return text


@pytest.fixture(scope="module")
def group0_fills_80_slots() -> list[str]:
    # Group 0: 29 short lines + one line wrapping into 51 -> slots 0..79; group 1 starts on
    # slot 80, the page's last (81 lines of 10 pt fit the 810 pt frame).
    return [f"a{i}" for i in range(29)] + [long_line(51)]


def test_group_that_would_leave_one_line_at_the_foot_moves_whole(group0_fills_80_slots):
    src = group0_fills_80_slots + [f"g{i}" for i in range(30)]
    text = "\n".join(src)
    pages = list(layout(text, CFG))
    assert len(pages[0].lines) == 80  # slot 80 left empty (reportlab's allowOrphans=0)
    assert pages[1].lines[0].start == text.index("g0")
    assert pages[1].start == pages[0].end  # spans still tile
    assert len(pages[1].lines) == 30


def test_a_one_line_group_may_take_the_last_slot(group0_fills_80_slots):
    text = "\n".join(group0_fills_80_slots + ["alone"])
    pages = list(layout(text, CFG))
    assert len(pages) == 1 and len(pages[0].lines) == 81


def test_geometry_only_follows_the_same_rule(group0_fills_80_slots):
    text = "\n".join(group0_fills_80_slots + [f"g{i}" for i in range(30)])
    full = [(p.start, p.end) for p in layout(text, CFG)]
    fast = [(p.start, p.end) for p in layout(text, CFG, geometry_only=True)]
    assert full == fast


def test_marker_mode_breaks_at_group_boundaries():
    cfg = CFG.replace(newline_markup='<font color="#FF0000"> \\n </font>')
    src = "\n".join(f"w{i}" for i in range(65))
    (page,) = list(layout(src, cfg))
    # 65 source lines -> groups 0-29, 30-59, 60-64: each opens a line; markers flow within.
    starts = {ln.start for ln in page.lines}
    assert {0, src.index("w30"), src.index("w60")} <= starts
    markers = sum(1 for ln in page.lines for _x, _t, style in ln.words if style == 1)
    assert markers == 64 - 2  # every newline but the two group boundaries draws a marker
    assert len(page.lines) < 65 // 2
