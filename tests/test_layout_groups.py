"""Pagination rules that come from Glyph's 30-line reportlab paragraphs."""

from __future__ import annotations

import pytest

from glyph_render import RenderConfig
from glyph_render.layout import MARKER, layout

CFG = RenderConfig.preset("glyph-en")


def test_blank_line_ending_a_group_draws_nothing():
    # Source line 29 (0-based) is the last of the first group: a blank there takes no slot.
    lines = [f"line {i}" for i in range(60)]
    lines[29] = ""
    (page,) = layout("\n".join(lines), CFG)
    assert [ln.text for ln in page.lines] == lines[:29] + lines[30:]
    assert [ln.baseline for ln in page.lines] == [25 + 10 * i for i in range(59)]
    assert page.lines[28].block == 0 and page.lines[29].block == 1  # no gap where line 29 was
    lines[29], lines[28] = "line 29", ""  # any other blank line keeps its slot, drawing nothing
    (page,) = layout("\n".join(lines), CFG)
    assert [ln.text for ln in page.lines] == lines
    assert [ln.baseline for ln in page.lines] == [25 + 10 * i for i in range(60)]
    assert page.lines[28].runs == [] and page.lines[29].baseline == 25 + 29 * 10


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
    markers = sum(t.count("\\n") for ln in page.lines for t, style in ln.runs if style == MARKER)
    assert markers == 64 - 2  # every newline but the two group boundaries draws a marker
    assert len(page.lines) < 65 // 2


SIXTY_FIVE = "\n".join(f"l{i}" for i in range(65))  # groups l0-l29, l30-l59, l60-l64


def test_each_group_is_one_placed_paragraph():
    (page,) = layout(SIXTY_FIVE, CFG)
    assert len(page.blocks) == 3
    firsts = [ln.text for i, ln in enumerate(page.lines)
              if i == 0 or ln.block != page.lines[i - 1].block]
    assert firsts == ["l0", "l30", "l60"]


def test_first_line_indent_applies_once_per_30_line_group():
    cfg = CFG.replace(**{"first-line-indent": 20})
    (page,) = layout(SIXTY_FIVE, cfg)
    assert [ln.text for ln in page.lines if ln.x == 16 + 20] == ["l0", "l30", "l60"]
    assert all(ln.x == 16 for ln in page.lines if ln.text not in ("l0", "l30", "l60"))
    # a blank line does not start a paragraph of its own (Glyph joins the lines with <br/>)
    text = "\n".join(["one", "", "two"] + [f"x{i}" for i in range(40)])
    (page,) = layout(text, cfg)
    assert [ln.text for ln in page.lines if ln.x != 16] == ["one", "x27"]  # x27: line 30


@pytest.mark.parametrize(("before", "after", "gap"), [(8, 12, 12), (15, 4, 15), (0, 6, 6)])
def test_space_before_and_after_separate_groups(before, after, gap):
    # reportlab's frame: space after, plus whatever space before exceeds it; none at the top
    cfg = CFG.replace(**{"space-before": before, "space-after": after})
    (page,) = layout(SIXTY_FIVE, cfg)
    at = {ln.text: ln.baseline for ln in page.lines}
    assert at["l0"] == 25 and at["l29"] == 25 + 29 * 10
    assert at["l30"] == at["l29"] + 10 + gap
    assert at["l60"] == at["l59"] + 10 + gap
    assert at["l31"] - at["l30"] == 10  # inside a group the pitch is the leading


def test_a_split_after_a_wrapped_line_opens_the_next_page_with_text():
    # the empty line atop a page comes only from a split right after a <br/>
    text = " ".join(["word"] * 2000)  # one source line wrapping past a page
    pages = list(layout(text, CFG))
    assert len(pages) == 2 and len(pages[0].lines) == 81
    assert all(ln.text.startswith("word word") for p in pages for ln in p.lines)
    assert pages[1].lines[0].baseline == 25
