"""Layout invariants on real corpus texts, CJK line breaking, and properties on random text."""

from __future__ import annotations

import functools
import itertools
import re
import subprocess
import sys
import unicodedata

import pytest
from fontTools.ttLib import TTFont
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glyph_render import Page, RenderConfig
from glyph_render.config import FRAME_PADDING, frame_height, frame_width
from glyph_render.layout import TEXT, layout

try:
    from corpus_data import bulk
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import bulk

EN = RenderConfig.preset("glyph-en")
ZH = RenderConfig.preset("glyph-zh")
NARROW = RenderConfig.from_dict({"page-size": "120,90", "margin-x": 5, "margin-y": 5})
#: Glyph's script wraps the whole text CJK-style (per character, reportlab's breakLinesCJK) when
#: it holds one character of U+4E00-U+9FFF.
GLYPH_CJK = re.compile("[\u4e00-\u9fff]")
#: reportlab.lib.textsplit.ALL_CANNOT_START: what CJK wrapping keeps off a line's start (it
#: holds the ASCII ",!?" but not the full-width "，！？", so those may start a line).
CJK_CANNOT_START = (
    "!',.:;?!\")]\u3001\u3002\u300d\u300f\u3011\u3015\uff3d\u3011\uff09\u3005\u2015\u3041\u3043"
    "\u3045\u3047\u3049\u3063\u3083\u3085\u3087\u308e\u30a1\u30a3\u30a5\u30a7\u30a9\u30c3\u30e3"
    "\u30e5\u30e7\u30ee\u30fc\u30f5\u30f6\u309b\u309c\u30fb\u30fd\u30fe\u309d\u309e\u2015\u2010"
    "\xb0\u2032\u2033\u2103\uffe0\uff05\u2030"
)
PREFIX = 120_000  # characters per corpus file at most (the excerpts are shorter): ~80 pages in all

CORPUS_CASES = [
    ("en_adventures_of_sherlock_holmes.txt", "glyph-en"),
    ("en_pride_and_prejudice.txt", "glyph-en"),
    ("ru_pushkin_kapitanskaya_dochka.txt", "glyph-en"),
    ("code_stb_image.h", "glyph-en"),
    ("code_click_core.py", "glyph-en"),
    ("docs_ytdlp_README.md", "glyph-en"),
    ("mixed_antd_changelog_zh-CN.md", "glyph-en"),
    ("mixed_blns_naughty_strings.txt", "glyph-en"),
    ("zh_hongloumeng.txt", "glyph-zh"),
    ("zh_luxun_zhaohua_xishi.txt", "glyph-zh"),
    ("ja_natsume_kokoro.txt", "glyph-zh"),
    ("ja_natsume_kokoro.txt", "glyph-en"),
]


# --------------------------------------------------------------------------- independent metrics


class Advances:
    """Design advances read straight from the font files with fontTools (not glyph_render).

    In reportlab's units: a character's width is its hmtx advance per em. The first font of the
    chain that maps the character draws it (a no-break space is the space); one that none maps
    takes no room when it is invisible, else the chain's U+FFFD; with a single font it takes
    that font's .notdef (glyph 0), as reportlab measures it.
    """

    def __init__(self, paths: tuple[str, ...]):
        self.cache: dict[str, float] = {}
        self.tables: list[tuple[dict[int, str], dict[str, tuple[int, int]], int, bool,
                                str]] = []
        for p in paths:
            f = TTFont(p, lazy=True)
            self.tables.append((f.getBestCmap(), f["hmtx"].metrics, f["head"].unitsPerEm,
                                "CBDT" in f, f.getGlyphOrder()[0]))

    def em(self, ch: str) -> float:
        hit = self.cache.get(ch)
        if hit is None:
            hit = self.cache[ch] = self._em(ch)
        return hit

    def _em(self, ch: str) -> float:
        cp = 0x20 if ch == "\xa0" else ord(ch)
        invisible = unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        if not 0xD800 <= cp <= 0xDFFF:
            for i, (cmap, hmtx, upem, colour, _notdef) in enumerate(self.tables):
                if cp in cmap and not (i and colour and invisible):
                    return hmtx[cmap[cp]][0] / upem
        if len(self.tables) == 1:
            _cmap, hmtx, upem, _colour, notdef = self.tables[0]
            return hmtx[notdef][0] / upem
        return 0.0 if invisible else self.em("\ufffd")

    def width(self, text: str, size: float) -> float:
        return sum(self.em(ch) for ch in text) * size


@functools.lru_cache(maxsize=8)
def advances_for(chain: tuple[str, ...]) -> Advances:
    return Advances(chain)


def lay(text: str, cfg: RenderConfig) -> list[Page]:
    return list(layout(text, cfg))


def assert_tiles(pages: list[Page], text: str) -> None:
    assert pages, "layout produced no page"
    assert pages[0].start == 0
    for a, b in itertools.pairwise(pages):
        assert a.end == b.start, (a.number, a.end, b.start)
    assert pages[-1].end == len(text)
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))


def assert_lines_cover_text(pages: list[Page], text: str) -> None:
    """Line spans increase, do not overlap, sit in their page, and hold every visible char.

    A line that draws nothing (a blank source line, or the empty line reportlab opens a page
    with after splitting a paragraph at a ``<br/>``) has an empty span where it sits.
    """
    covered = bytearray(len(text))
    prev_end = 0
    for p in pages:
        for ln in p.lines:
            assert p.start <= ln.start <= ln.end <= p.end, (p.number, p.start, p.end, ln)
            if ln.text.strip():
                assert ln.start < ln.end, ln
            assert ln.start >= prev_end, f"[{ln.start},{ln.end}) overlaps a line ending {prev_end}"
            prev_end = ln.end
            covered[ln.start:ln.end] = b"\1" * (ln.end - ln.start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and visible(ch)]
    assert not lost, [(i, text[i]) for i in lost[:10]]


def visible(text: str) -> str:
    """The characters that must be drawn: no whitespace (it collapses or becomes a gap) and no
    soft hyphen or zero-width space (Glyph deletes both before laying out)."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "\xad\u200b")


def drawn_text(ln) -> str:
    """What a line draws in the text colour (the newline marker left out)."""
    return "".join(t for t, style in ln.runs if style == TEXT)


# --------------------------------------------------------------------------- corpus invariants


@pytest.fixture(scope="module")
def corpus_layouts(corpus_text) -> dict[tuple[str, str], tuple[str, list[Page]]]:
    out = {}
    for name, preset in CORPUS_CASES:
        text = corpus_text(name)[:PREFIX]
        out[name, preset] = (text, lay(text, RenderConfig.preset(preset)))
    return out


CASE_IDS = [f"{n}-{p}" for n, p in CORPUS_CASES]


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_spans_tile_the_text(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    assert_tiles(pages, text)
    assert sum(p.chars for p in pages) == len(text)


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_lines_draw_every_visible_character_once_in_order(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    drawn = "".join(visible(drawn_text(ln)) for p in pages for ln in p.lines)
    assert drawn == visible(text)


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_line_spans_cover_every_visible_character_once(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    assert_lines_cover_text(pages, text)
    for p in pages:
        for ln in p.lines:
            assert visible(drawn_text(ln)) == visible(text[ln.start:ln.end]), ln


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_no_line_is_wider_than_the_frame_plus_space_shrink(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    cfg = RenderConfig.preset(case[1])
    assert frame_width(cfg) == 563.0
    adv = advances_for(cfg.font_chain)
    space = adv.width(" ", cfg.font_size)
    left = cfg.margin_x + FRAME_PADDING
    cjk = GLYPH_CJK.search(text) is not None
    checked = 0
    for p in pages:
        for ln in p.lines:
            assert ln.x == left  # LEFT alignment, no indents
            # Extent measured independently from what the line draws.
            drawn = ln.text.rstrip(" ")
            width = adv.width(drawn, cfg.font_size)
            if cjk:
                # reportlab's CJK wrapping shrinks no space, but lets one character that its
                # Japanese rules keep off a line's start hang past the edge; its line width
                # counts the spaces it strips off the line's ends
                allowed = 563.0 + 1e-6
                if drawn and drawn[-1] in CJK_CANNOT_START:
                    allowed += adv.width(drawn[-1], cfg.font_size)
                assert width <= ln.width + 1e-6, (p.number, drawn)
            else:
                allowed = 563.0 + 0.05 * space * drawn.count(" ") + 1e-6
                assert ln.width == pytest.approx(width, abs=1e-6), (p.number, drawn)
            assert width <= allowed, (p.number, drawn, width)
            checked += 1
    assert checked > 200  # every excerpt lays out to 225-800 lines


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_pages_hold_at_most_81_lines_on_a_10pt_grid(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    for p in pages:
        assert len(p.lines) <= 81
        assert p.width == 595.0 and p.height == 842.0
        # one slot per line from the frame top (margin 10 + frame pad 6 + size 9), no gaps:
        # a blank line takes its slot, an empty line opens a page split after a <br/>
        assert [ln.baseline for ln in p.lines] == [25.0 + 10.0 * i for i in range(len(p.lines))]


def test_dense_text_fills_pages_with_exactly_81_lines() -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    pages = lay(text, EN)
    # 30-line groups split at a page end right after a <br/>: reportlab opens the next page
    # with an empty line, so pages 2 and 3 hold 80 and 39 source lines (81 + 80 + 39 = 200)
    assert [len(p.lines) for p in pages] == [81, 81, 40]
    first = pages[0].lines
    assert first[0].baseline == 25.0
    assert first[-1].baseline == 825.0
    assert [ln.baseline - first[0].baseline for ln in first] == [10.0 * i for i in range(81)]
    assert first[-1].text == "line 80"
    top = pages[1].lines[:2]
    assert top[0].runs == [] and top[0].start == top[0].end == pages[1].start
    assert top[1].text == "line 81" and top[1].baseline == 35.0
    assert pages[1].start == text.index("line 81\n") - 1  # the newline the empty line stands for
    assert [ln.text for ln in pages[2].lines[:2]] == ["", "line 161"]


def test_split_blank_line_false_drops_the_empty_line_atop_a_split() -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    pages = lay(text, EN.replace(**{"split-blank-line": False}))
    assert [len(p.lines) for p in pages] == [81, 81, 38]
    assert [p.lines[0].text for p in pages] == ["line 0", "line 81", "line 162"]
    assert all(ln.runs for p in pages for ln in p.lines)
    assert_tiles(pages, text)
    assert_lines_cover_text(pages, text)


def test_corpus_with_long_prose_reaches_81_lines(corpus_layouts) -> None:
    _, pages = corpus_layouts["zh_hongloumeng.txt", "glyph-zh"]
    assert max(len(p.lines) for p in pages) == 81


def test_layout_is_lazy(corpus_text) -> None:
    text = bulk(corpus_text("en_frankenstein.txt"), 450_000)
    it = layout(text, EN)
    first = next(it)
    assert first.number == 1 and 0 < first.end < len(text) // 50


def test_the_package_exports_the_functions_whatever_was_imported_first() -> None:
    script = ("import glyph_render.raster, glyph_render.cli\n"  # import layout and render first
              "from glyph_render import layout, render, compress\n"
              "print(callable(layout), callable(render), callable(compress))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["True", "True", "True"]


def test_missing_characters_are_counted_on_the_corpus(corpus_text) -> None:
    text = corpus_text("zh_luxun_zhaohua_xishi.txt")
    assert text.count("\ue4c2") == 61
    pages = lay(text, ZH)
    assert sum(p.missing for p in pages) == 61
    for p in pages:
        assert p.missing == text[p.start:p.end].count("\ue4c2")


# --------------------------------------------------------------------------- line breaking rules


def test_a_line_breaks_at_the_last_space_that_fits() -> None:
    adv = advances_for(EN.font_chain)
    words = [f"w{i:03d}" for i in range(400)]
    text = " ".join(words)
    pages = lay(text, EN)
    lines = [ln for p in pages for ln in p.lines]
    assert len(lines) > 3
    for a, b in itertools.pairwise(lines):
        # the next word would not have fitted on this line (greedy breaking)
        first_of_next = text[b.start:b.end].split(" ")[0]
        with_next = text[a.start:a.end] + " " + first_of_next
        shrink = 0.05 * adv.width(" ", 9) * with_next.count(" ")
        assert adv.width(with_next, 9) > 563 + shrink, with_next
        assert text[a.end] == " " and b.start == a.end + 1


def test_runs_of_spaces_do_not_break_and_keep_their_width() -> None:
    adv = advances_for(EN.font_chain)
    text = "    indented    code    line"
    (page,) = lay(text, EN)
    (line,) = page.lines
    assert line.start == 0 and line.end == len(text)
    # Glyph turns every space of a run of 2+ into &nbsp;: drawn, as wide as a space
    assert line.text == text.replace(" ", "\xa0")
    assert line.width == pytest.approx(adv.width(text, 9), abs=1e-6)


@pytest.mark.parametrize(
    ("text", "drawn"),
    [
        ("a\tb", "a b"),  # a tab is whitespace to reportlab: one space
        ("a\t\tb", "a b"),
        ("a\u3000b", "a b"),  # so is the ideographic space
        ("a \u2028\x0b b", "a b"),
        ("a\tb  c", "a b\xa0\xa0c"),  # only plain spaces make &nbsp; runs
        (" lead and trail\t", "lead and trail"),  # a paragraph's ends are stripped ...
        ("  lead  ", "\xa0\xa0lead\xa0\xa0"),  # ... but &nbsp; is no whitespace to reportlab
        ("x\r\ny", "x"),  # a CRLF's CR is whitespace at the line's end
    ],
)
def test_whitespace_collapses_as_reportlab_collapses_it(text: str, drawn: str) -> None:
    pages = lay(text, EN)
    assert pages[0].lines[0].text == drawn
    assert_lines_cover_text(pages, text)


def test_a_word_longer_than_the_line_is_split_by_character() -> None:
    adv = advances_for(EN.font_chain)
    text = "start " + "x" * 400 + " end"
    pages = lay(text, EN)
    lines = [ln for p in pages for ln in p.lines]
    assert len(lines) >= 3
    assert_lines_cover_text(pages, text)
    for ln in lines:
        assert ln.width <= 563 + 1e-6
    # reportlab cuts the word where the line is full: "start " and the first piece share a
    # line, each cut piece fills its line to within one "x", and no piece is lost
    x = adv.width("x", 9)
    assert lines[0].text.startswith("start x")
    for ln in lines[:-1]:
        assert 563 - x < ln.width
    assert "".join(ln.text for ln in lines) == "start " + "x" * 400 + " end"


def test_an_empty_fallback_chain_measures_what_the_font_lacks_as_notdef() -> None:
    bare = EN.replace(**{"fallback-fonts": []})
    assert bare.font_chain == EN.font_chain[:1]
    adv = advances_for(bare.font_chain)
    text = "a \u4e2d\u6587 b"  # DejaVu Sans has no Han: reportlab measures .notdef for each
    (page,) = lay(text, bare)
    assert page.lines[0].width == pytest.approx(adv.width(text, 9), abs=1e-6)
    (page,) = lay(text, EN)  # the default chain measures them in Droid Sans Fallback
    assert page.lines[0].width == pytest.approx(advances_for(EN.font_chain).width(text, 9))
    assert adv.em("\u4e2d") != advances_for(EN.font_chain).em("\u4e2d")


def test_blank_lines_take_a_line_of_height() -> None:
    (page,) = lay("one\n\n\ntwo", EN)
    assert [ln.baseline for ln in page.lines] == [25.0, 35.0, 45.0, 55.0]
    assert [ln.text for ln in page.lines] == ["one", "", "", "two"]
    assert [(ln.start, ln.end) for ln in page.lines[1:3]] == [(4, 4), (5, 5)]


def test_only_newlines_break_lines_as_in_glyph() -> None:
    # Glyph splits the text on "\n" alone: a CRLF breaks (its CR collapses into the line),
    # a lone CR is whitespace like any other
    for nl in ("\n", "\r\n"):
        text = f"alpha{nl}beta{nl}gamma"
        (page,) = lay(text, EN)
        assert [text[ln.start:ln.end] for ln in page.lines] == ["alpha", "beta", "gamma"]
    text = "alpha\rbeta\rgamma"
    (page,) = lay(text, EN)
    assert [ln.text for ln in page.lines] == ["alpha beta gamma"]
    assert (page.lines[0].start, page.lines[0].end) == (0, len(text))


def test_tabs_collapse_by_default_and_expand_with_tab_size() -> None:
    text = "def f():\n\treturn 1\n\t\tx\ty"
    assert EN.tab_size == 0
    (page,) = lay(text, EN)
    assert [ln.text for ln in page.lines] == ["def f():", "return 1", "x y"]
    (page,) = lay(text, EN.replace(**{"tab-size": 4}))
    # expanded to the next multiple of 4 columns, as non-breaking spaces (a run of 2+)
    assert [ln.text for ln in page.lines] == [
        "def f():", "\xa0" * 4 + "return 1", "\xa0" * 8 + "x\xa0\xa0\xa0y"]
    assert [(ln.start, ln.end) for ln in page.lines] == [(0, 8), (9, 18), (19, len(text))]


@pytest.mark.parametrize(
    ("text", "cfg"),
    [
        ("\t" + "中" * 150, EN),  # a tab-indented Chinese paragraph longer than a line
        ("\t" + "a" * 300, EN),  # a tab-indented long token (base64, URL) longer than a line
        ("x\tabc" + "中文" * 80, EN),
        ("\t" + "中" * 120, NARROW),  # ... and longer than a page
        ("\t" + "中" * 150, EN.replace(**{"tab-size": 4})),  # tabs expanded
        ("\t" + "a" * 300, EN.replace(**{"tab-size": 4})),
        ("x\tabc" + "中文" * 80, EN.replace(**{"tab-size": 4})),
        # the spaces reportlab appends to each line of a split CJK paragraph's remainder
        # (once gave lines [60, 71) then [70, 81))
        ("\t" + "中" * 120, NARROW.replace(**{"tab-size": 4})),
    ],
    ids=["tab-cjk", "tab-long-word", "inner-tab-cjk", "tab-cjk-across-pages",
         "tab4-cjk", "tab4-long-word", "tab4-inner-tab-cjk", "tab4-cjk-across-pages"],
)
def test_tabbed_words_keep_honest_line_spans(text: str, cfg: RenderConfig) -> None:
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    assert_lines_cover_text(pages, text)  # spans increase and do not overlap
    for p in pages:
        for ln in p.lines:
            assert visible(ln.text) == visible(text[ln.start:ln.end]), (ln.start, ln.end)


# --------------------------------------------------------------------------- CJK


KEPT_OFF = "。、）」』】"  # closing punctuation in reportlab's cannot-start list
NOT_KEPT_OFF = "，！？》"  # closing punctuation it leaves out: greedy wrapping may start a line


def _cjk_lines(text: str, cfg: RenderConfig = ZH):
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    assert_lines_cover_text(pages, text)
    return [ln for p in pages for ln in p.lines]


def _per_line(cfg: RenderConfig) -> int:
    return int(563 // advances_for(cfg.font_chain).width("中", 9))


def test_cjk_text_without_spaces_breaks_between_characters() -> None:
    text = "天地玄黄宇宙洪荒日月盈昃辰宿列张" * 20
    lines = _cjk_lines(text)
    assert len(lines) >= 4
    assert "".join(text[ln.start:ln.end] for ln in lines) == text
    assert "".join(ln.text for ln in lines) == text
    cjk_advance = advances_for(ZH.font_chain).width("天", 9)
    for ln in lines[:-1]:
        assert 563 - cjk_advance < ln.width <= 563  # filled to within one character


@pytest.mark.parametrize("cfg", [ZH, EN], ids=["glyph-zh", "glyph-en"])
@pytest.mark.parametrize("punct", list(KEPT_OFF))
def test_closing_punctuation_reportlab_keeps_off_a_line_start_hangs(punct: str,
                                                                    cfg: RenderConfig) -> None:
    per_line = _per_line(cfg)
    # Greedy filling would put the punctuation exactly at the start of the second line:
    # reportlab lets it hang past the edge on the first instead.
    text = "中" * per_line + punct + "中" * 30
    lines = _cjk_lines(text, cfg)
    assert len(lines) == 2
    assert lines[0].text == "中" * per_line + punct
    assert lines[0].width > 563
    assert lines[1].start == per_line + 1


@pytest.mark.parametrize("cfg", [ZH, EN], ids=["glyph-zh", "glyph-en"])
@pytest.mark.parametrize("punct", list(NOT_KEPT_OFF))
def test_full_width_punctuation_outside_reportlabs_list_may_start_a_line(
        punct: str, cfg: RenderConfig) -> None:
    per_line = _per_line(cfg)
    text = "中" * per_line + punct + "中" * 30
    lines = _cjk_lines(text, cfg)
    assert [ln.text for ln in lines] == ["中" * per_line, punct + "中" * 30]


def test_an_opening_bracket_may_end_a_line() -> None:
    # reportlab's CJK wrapping has no cannot-end rule (textsplit's ALL_CANNOT_END is unused)
    per_line = _per_line(ZH)
    text = "中" * (per_line - 1) + "「" + "中" * 30
    lines = _cjk_lines(text)
    assert lines[0].text.endswith("中「")
    assert text[lines[1].start] == "中"


def test_latin_word_inside_cjk_moves_whole_to_the_next_line() -> None:
    per_line = _per_line(ZH)
    text = "中" * (per_line - 1) + "Hello" + "中" * 20  # "Hello" would straddle the edge
    lines = _cjk_lines(text)
    assert lines[0].text == "中" * (per_line - 1)
    assert lines[1].text.startswith("Hello中")


def test_wrapped_chinese_corpus_lines_never_start_with_kept_off_punctuation(corpus_text) -> None:
    # The source is hard-wrapped (its own lines may start with '，'); joining the lines makes
    # the layout do the wrapping, which is what the rule is about.
    text = bulk(corpus_text("zh_hongloumeng.txt").replace("\n", ""), 60_000)
    wrapped = starts = 0
    prev = None
    for p in lay(text, ZH):
        for ln in p.lines:
            if prev is not None and not prev.forced and ln.text:
                wrapped += 1
                assert ln.text[0] not in CJK_CANNOT_START, ln.text[:10]
                starts += ln.text[0] in NOT_KEPT_OFF
            prev = ln
    assert wrapped > 500
    assert starts > 0  # while a full-width comma does start some lines, as in reportlab


# --------------------------------------------------------------------------- random text

ODD = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\x00", "\x07", "\x0b", "\x0c", "\x1b",
    "\x1e", "\x7f", "\x85", "\xa0", "\xad", "\u200b", "\u200d", "\u2028", "\u2029", "\u202e",
    "\ufeff", "\ue4c2", "\U0010fffd", "\ud800", "\udfff", "\ud83d", "\u0301", "中", "文", "，",
    "。", "（", "）", "「", "」", "あ", "ア", "한", "😀", "👍🏽", "🇨🇳", "א", "ש", "ا", "ب",
    "W", "i", "a", "-", "/",
]
_piece = st.one_of(
    st.sampled_from(ODD),
    st.characters(codec=None),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
TEXTS = st.one_of(
    st.lists(_piece, max_size=300).map("".join),
    st.lists(st.lists(_piece, min_size=1, max_size=80).map("".join), max_size=25).map(" ".join),
)
CONFIGS = st.sampled_from([EN, ZH, NARROW, EN.replace(alignment="JUSTIFY", **{
    "newline-markup": '<font color="#FF0000"> \\n </font>', "first-line-indent": 20}),
    NARROW.replace(**{"tab-size": 4, "split-blank-line": False, "fallback-fonts": []})])
RANDOM = settings(max_examples=200, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])


@RANDOM
@given(text=TEXTS, cfg=CONFIGS)
def test_random_text_never_crashes_tiles_and_draws_every_visible_character_once(
        text: str, cfg: RenderConfig) -> None:
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    drawn = []
    for p in pages:
        assert p.missing >= 0
        assert len(p.lines) <= int(frame_height(cfg) / cfg.line_height)  # 81 on A4
        drawn.extend(visible(drawn_text(ln)) for ln in p.lines)
    # what the lines draw, read in order, is the text's visible characters, each once
    assert "".join(drawn) == visible(text)


@RANDOM
@given(text=TEXTS, cfg=CONFIGS)
def test_random_text_lines_draw_exactly_their_span(text: str, cfg: RenderConfig) -> None:
    pages = lay(text, cfg)
    prev_end = 0
    for p in pages:
        for ln in p.lines:
            assert p.start <= ln.start <= ln.end <= p.end
            assert ln.start >= prev_end
            prev_end = ln.end
            assert visible(drawn_text(ln)) == visible(text[ln.start:ln.end])


# Regressions: where reportlab strips or collapses whitespace, line spans once drifted.


@pytest.mark.parametrize("text", [" hello world", " hello\nworld", " 中文"])
def test_line_spans_skip_a_stripped_leading_space(text: str) -> None:
    lines = [ln for p in lay(text, EN) for ln in p.lines]
    assert text[lines[0].start:lines[0].end] == text.split("\n")[0][1:]


def test_line_spans_of_a_whitespace_line_in_cjk_mode_stay_in_order() -> None:
    lines = [ln for p in lay("中\n\u3000\n", EN) for ln in p.lines]  # once (0, 1) twice
    assert lines[1].start >= lines[0].end


def test_line_spans_of_a_split_cjk_paragraph_stay_in_the_text() -> None:
    text = "\n" * 6 + " 中  "  # the group splits after 6 lines; once gave a line [7, 11)
    pages = lay(text, NARROW)
    assert all(ln.end <= p.end <= len(text) for p in pages for ln in p.lines)


@pytest.mark.parametrize("ch", ["\u4dff", "\u4e00", "\u4fff", "\u5000", "\u9fff", "\ua000",
                                "\u3000", "\u2019", "\ud800", "\U00020000", "\uff01", "x"])
def test_cjk_trigger_matches_glyphs_pattern_at_its_edges(ch: str) -> None:
    from glyph_render.paragraph import cjk_trigger

    for text in (ch, f"plain {ch} text", "caf\u00e9 " + ch):
        assert cjk_trigger(text) is (GLYPH_CJK.search(text) is not None), repr(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x2000, max_codepoint=0xAFFF), max_size=40))
def test_cjk_trigger_equals_the_character_class(text: str) -> None:
    from glyph_render.config import _cjk, detect_preset
    from glyph_render.paragraph import cjk_trigger

    assert cjk_trigger(text) is (GLYPH_CJK.search(text) is not None)
    # detect_preset's UTF-8 shortcut never hides a CJK character from its count
    cjk, letters = len(_cjk().findall(text)), len(re.findall(r"[^\W\d_]", text))
    want = "glyph-zh" if cjk and cjk * 4 >= letters - cjk else "glyph-en"
    assert detect_preset(text) == want
