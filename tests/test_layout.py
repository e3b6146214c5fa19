"""Layout invariants on real corpus texts, CJK line breaking, and properties on random text."""

from __future__ import annotations

import functools
import itertools
import unicodedata

import pytest
from fontTools.ttLib import TTFont
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glyph_render import Page, RenderConfig, layout
from glyph_render.config import FRAME_PADDING, frame_width

try:
    from corpus_data import bulk
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import bulk

EN = RenderConfig.preset("glyph-en")
ZH = RenderConfig.preset("glyph-zh")
NARROW = RenderConfig.from_dict({"page-size": "120,90", "margin-x": 5, "margin-y": 5})
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
    """Design advances read straight from the font files with fontTools (not glyph_render)."""

    def __init__(self, paths: tuple[str, ...]):
        self.cache: dict[str, float] = {}
        self.tables: list[tuple[dict[int, str], dict[str, tuple[int, int]], int]] = []
        for p in paths:
            f = TTFont(p, lazy=True)
            self.tables.append((f.getBestCmap(), f["hmtx"].metrics, f["head"].unitsPerEm))

    def em(self, ch: str) -> float:
        hit = self.cache.get(ch)
        if hit is None:
            hit = self.cache[ch] = self._em(ch)
        return hit

    def _em(self, ch: str) -> float:
        cp = ord(ch)
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return 0.0
        if not 0xD800 <= cp <= 0xDFFF:
            for cmap, hmtx, upem in self.tables:
                if cp in cmap:
                    return hmtx[cmap[cp]][0] / upem
        return self.em("\ufffd")

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
    """Line spans increase, do not overlap, sit in their page, and hold every visible char."""
    covered = bytearray(len(text))
    prev_end = 0
    for p in pages:
        for ln in p.lines:
            assert p.start <= ln.start < ln.end <= p.end, (p.number, p.start, p.end, ln)
            assert ln.start >= prev_end, f"[{ln.start},{ln.end}) overlaps a line ending {prev_end}"
            prev_end = ln.end
            covered[ln.start:ln.end] = b"\1" * (ln.end - ln.start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, [(i, text[i]) for i in lost[:10]]


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
def test_corpus_lines_cover_every_visible_character_once(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    assert_lines_cover_text(pages, text)


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_no_line_is_wider_than_the_frame_plus_space_shrink(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    cfg = RenderConfig.preset(case[1])
    assert frame_width(cfg) == 563.0
    adv = advances_for(cfg.font_chain)
    space = adv.width(" ", cfg.font_size)
    left = cfg.margin_x + FRAME_PADDING
    checked = 0
    for p in pages:
        for ln in p.lines:
            # Extent measured independently from the words actually drawn.
            right = max(x + adv.width(t, cfg.font_size) for x, t, _ in ln.words)
            allowed = 563.0 + 0.05 * space * text[ln.start:ln.end].count(" ") + 1e-6
            assert right - left <= allowed, (p.number, text[ln.start:ln.end], right - left)
            assert ln.width == pytest.approx(right - ln.words[0][0], abs=1e-6)
            assert ln.words[0][0] == left  # LEFT alignment, no indents
            checked += 1
    assert checked > 200  # every excerpt lays out to 225-800 lines


@pytest.mark.parametrize("case", CORPUS_CASES, ids=CASE_IDS)
def test_corpus_pages_hold_at_most_81_lines_on_a_10pt_grid(case, corpus_layouts) -> None:
    text, pages = corpus_layouts[case]
    for p in pages:
        assert len(p.lines) <= 81
        assert p.width == 595.0 and p.height == 842.0
        for ln in p.lines:
            assert 25.0 <= ln.baseline <= 825.0
            assert (ln.baseline - 25.0) % 10.0 == pytest.approx(0.0, abs=1e-9)
        baselines = [ln.baseline for ln in p.lines]
        assert baselines == sorted(set(baselines))
        if p.lines and text[p.start] not in "\r\n":
            assert p.lines[0].baseline == 25.0, p.number  # margin 10 + frame pad 6 + size 9


def test_dense_text_fills_pages_with_exactly_81_lines() -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    pages = lay(text, EN)
    assert [len(p.lines) for p in pages] == [81, 81, 38]
    first = pages[0].lines
    assert first[0].baseline == 25.0
    assert first[-1].baseline == 825.0
    assert [ln.baseline - first[0].baseline for ln in first] == [10.0 * i for i in range(81)]
    assert pages[1].start == text.index("line 81\n")


def test_corpus_with_long_prose_reaches_81_lines(corpus_layouts) -> None:
    _, pages = corpus_layouts["zh_hongloumeng.txt", "glyph-zh"]
    assert max(len(p.lines) for p in pages) == 81


def test_layout_is_lazy(corpus_text) -> None:
    text = bulk(corpus_text("en_frankenstein.txt"), 450_000)
    it = layout(text, EN)
    first = next(it)
    assert first.number == 1 and 0 < first.end < len(text) // 50


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
    assert line.width == pytest.approx(adv.width(text, 9), abs=1e-6)


def test_a_word_longer_than_the_line_is_split_by_character() -> None:
    text = "start " + "x" * 400 + " end"
    pages = lay(text, EN)
    lines = [ln for p in pages for ln in p.lines]
    assert len(lines) >= 3
    assert_lines_cover_text(pages, text)
    for ln in lines:
        assert ln.width <= 563 + 1e-6


def test_blank_lines_take_a_line_of_height() -> None:
    (page,) = lay("one\n\n\ntwo", EN)
    assert [ln.baseline for ln in page.lines] == [25.0, 55.0]


def test_crlf_and_cr_are_line_breaks() -> None:
    for nl in ("\n", "\r\n", "\r"):
        text = f"alpha{nl}beta{nl}gamma"
        (page,) = lay(text, EN)
        assert [text[ln.start:ln.end] for ln in page.lines] == ["alpha", "beta", "gamma"]


@pytest.mark.parametrize(
    ("text", "cfg"),
    [
        ("\t" + "中" * 150, EN),  # a tab-indented Chinese paragraph longer than a line
        ("\t" + "a" * 300, EN),  # a tab-indented long token (base64, URL) longer than a line
        ("x\tabc" + "中文" * 80, EN),
        ("\t" + "中" * 120, NARROW),  # ... and longer than a page
    ],
    ids=["tab-cjk", "tab-long-word", "inner-tab-cjk", "tab-cjk-across-pages"],
)
def test_tab_expanded_words_keep_honest_line_spans(text: str, cfg: RenderConfig) -> None:
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    assert_lines_cover_text(pages, text)  # spans increase and do not overlap
    for p in pages:
        for ln in p.lines:
            drawn = "".join(ch for _, t, _ in ln.words for ch in t if not ch.isspace())
            source = "".join(ch for ch in text[ln.start:ln.end] if not ch.isspace())
            assert drawn == source, (ln.start, ln.end)


# --------------------------------------------------------------------------- CJK


CLOSING = "，。、！？）」』】》"


def _cjk_lines(text: str, cfg: RenderConfig = ZH):
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    assert_lines_cover_text(pages, text)
    return [ln for p in pages for ln in p.lines]


def test_cjk_text_without_spaces_breaks_between_characters() -> None:
    text = "天地玄黄宇宙洪荒日月盈昃辰宿列张" * 20
    lines = _cjk_lines(text)
    assert len(lines) >= 4
    assert "".join(text[ln.start:ln.end] for ln in lines) == text
    cjk_advance = advances_for(ZH.font_chain).width("天", 9)
    for ln in lines[:-1]:
        assert 563 - cjk_advance < ln.width <= 563  # filled to within one character


@pytest.mark.parametrize("cfg", [ZH, EN], ids=["glyph-zh", "glyph-en"])
@pytest.mark.parametrize("punct", list(CLOSING))
def test_closing_punctuation_never_starts_a_line(punct: str, cfg: RenderConfig) -> None:
    adv = advances_for(cfg.font_chain)
    per_line = int(563 // adv.width("中", 9))
    # Greedy filling would put the punctuation exactly at the start of the second line.
    text = "中" * per_line + punct + "中" * 30
    lines = _cjk_lines(text, cfg)
    assert len(lines) == 2
    for ln in lines:
        assert text[ln.start] not in CLOSING
    assert text[lines[1].start:lines[1].start + 2] == "中" + punct


def test_opening_bracket_never_ends_a_line() -> None:
    adv = advances_for(ZH.font_chain)
    per_line = int(563 // adv.width("中", 9))
    text = "中" * (per_line - 1) + "「" + "中" * 30
    lines = _cjk_lines(text)
    assert text[lines[0].end - 1] != "「"
    assert text[lines[1].start] == "「"


def test_latin_word_inside_cjk_is_not_split() -> None:
    adv = advances_for(ZH.font_chain)
    per_line = int(563 // adv.width("中", 9))
    text = "中" * (per_line - 3) + "Hello" + "中" * 20
    lines = _cjk_lines(text)
    assert any("Hello" in text[ln.start:ln.end] for ln in lines)


def test_wrapped_chinese_corpus_lines_never_start_with_closing_punctuation(corpus_text) -> None:
    # The source is hard-wrapped (its own lines may start with '，'); joining the lines makes
    # the layout do the wrapping, which is what the rule is about.
    text = bulk(corpus_text("zh_hongloumeng.txt").replace("\n", ""), 60_000)
    wrapped = 0
    prev = None
    for p in lay(text, ZH):
        for ln in p.lines:
            if prev is not None and not prev.forced:
                wrapped += 1
                assert text[ln.start] not in CLOSING, text[ln.start:ln.start + 10]
                assert text[prev.end - 1] not in "（「『【《“", text[prev.end - 10:prev.end]
            prev = ln
    assert wrapped > 500


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
    "newline-markup": '<font color="#FF0000"> \\n </font>', "first-line-indent": 20})])


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, cfg=CONFIGS)
def test_random_text_never_crashes_and_tiles(text: str, cfg: RenderConfig) -> None:
    pages = lay(text, cfg)
    assert_tiles(pages, text)
    covered = bytearray(len(text))
    for p in pages:
        assert p.missing >= 0
        for ln in p.lines:
            assert p.start <= ln.start <= ln.end <= p.end
            covered[ln.start:ln.end] = b"\1" * (ln.end - ln.start)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, cfg=CONFIGS)
def test_random_text_lines_draw_exactly_their_span(text: str, cfg: RenderConfig) -> None:
    prev_end = 0
    for p in lay(text, cfg):
        for ln in p.lines:
            assert ln.start >= prev_end
            prev_end = ln.end
            drawn = "".join(ch for _, t, style in ln.words if style == 0 for ch in t
                            if not ch.isspace())
            source = "".join(ch for ch in text[ln.start:ln.end] if not ch.isspace())
            assert drawn == source
