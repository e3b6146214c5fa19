"""The line breaker's C path (``glyph_render._layoutc``) against the Python path it replaces.

The Python path in paragraph.py / layout.py is the definition (it is checked against reportlab
itself by tests/test_fidelity.py and tests/test_reference_glyph.py); the C module must give the
very same pages, lines, pen positions and source spans, and the same frag words and words used
(which a page split cuts the remainder from), for every input. CI builds the module
(``GLYPH_REQUIRE_ACCEL=1`` fails the run if it is missing).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glyph_render import paragraph
from glyph_render.config import GLYPH_NEWLINE_MARKER, RenderConfig
from glyph_render.fonts import font_chain
from glyph_render.layout import _aligned, _groups, _Markup, _source, layout
from glyph_render.paragraph import Frag, Paragraph, Run, metrics_for, take

try:
    from corpus_data import CORPUS, read_text
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import CORPUS, read_text

layoutc = pytest.importorskip("glyph_render._layoutc", reason="the C module is not built") \
    if os.environ.get("GLYPH_REQUIRE_ACCEL") != "1" else __import__(
        "glyph_render._layoutc", fromlist=["break_kind1"])

BASE = RenderConfig.preset("glyph-en")
VARIANTS = {
    "glyph-en": {},
    "marker": {"newline_markup": GLYPH_NEWLINE_MARKER},
    "justify": {"alignment": "JUSTIFY"},
    "indents": {"first_line_indent": 24.0, "left_indent": 7.5, "right_indent": 13.25},
    "small-page": {"page_size": (300.0, 260.0), "margin_x": 4.0, "margin_y": 17.0,
                   "alignment": "RIGHT"},
    "no-blank": {"split_blank_line": False, "page_size": (420.0, 300.0)},
    "tabs": {"tab_size": 4, "alignment": "CENTER"},
    "one-paragraph": {"remove_line_breaks": True},
}
CORPUS_NAMES = sorted(p.name for p in CORPUS.iterdir()
                      if p.suffix in (".txt", ".md", ".py", ".h", ".rst"))


@contextlib.contextmanager
def python_path() -> Iterator[None]:
    old = paragraph._USE_C
    paragraph._USE_C = False
    try:
        yield
    finally:
        paragraph._USE_C = old


def both(text: str, cfg: RenderConfig) -> tuple[list, list]:
    c_pages = list(layout(text, cfg))
    with python_path():
        py_pages = list(layout(text, cfg))
    return c_pages, py_pages


def assert_same(text: str, cfg: RenderConfig) -> None:
    c_pages, py_pages = both(text, cfg)
    assert len(c_pages) == len(py_pages)
    for c, p in zip(c_pages, py_pages, strict=True):
        assert (c.start, c.end, c.width, c.height, c.missing) == (
            p.start, p.end, p.width, p.height, p.missing)
        assert c.blocks == p.blocks
        assert c.lines == p.lines  # runs, pens (exact floats), word space, spans, widths


def test_the_c_module_is_the_one_the_breaker_uses() -> None:
    assert paragraph._c is layoutc
    assert paragraph._USE_C


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_corpus_pages_are_identical(name: str, variant: str) -> None:
    assert_same(read_text(name), BASE.replace(**VARIANTS[variant]))


def _words_expanded(words: list) -> list:
    """Frag words with runs spelled out word by word (what take() and a split see)."""
    out = []
    with python_path():
        taken = take(words, 0)
    for w in taken:
        if type(w) is Run:
            out.extend(w.word(i) for i in range(w.pos, w.stop))
        else:
            out.append(w)
    return out


def _paragraphs(text: str, cfg: RenderConfig) -> Iterator[list[Frag]]:
    stext, _omap = _source(text, cfg.tab_size)
    markup = _Markup(cfg)
    for bounds in _groups(stext, cfg):
        yield markup.frags(stext, bounds)


def _frags_both(text: str, cfg: RenderConfig) -> list[list[Frag]]:
    c = list(_paragraphs(text, cfg))
    with python_path():
        py = list(_paragraphs(text, cfg))
    assert c == py  # layout._line_frags in C and in Python
    return c


def _compare_breaks(frags: list[Frag], cfg: RenderConfig, widths: list[float]) -> None:
    m = metrics_for(font_chain(cfg.font_chain), cfg.font_size)
    c_words = paragraph.frag_words(frags, m)
    py_words = paragraph._frag_words_py(frags, m)
    assert _words_expanded(c_words) == _words_expanded(py_words)
    assert [type(w) for w in c_words] == [type(w) for w in py_words]
    common = dict(m=m, first_indent=0.0, left_indent=0.0, right_indent=0.0, leading=10.0,
                  cjk=False)
    pc = Paragraph(frags, **common)
    pc._break_kind1(widths)
    pp = Paragraph(frags, **common)
    with python_path():
        pp._break_kind1(widths)
    assert pc.lines == pp.lines
    assert _words_expanded(pc.words_used) == _words_expanded(pp.words_used)
    _compare_takes(pc.words_used)
    # a remainder broken again from its words (rejoin_words: cut words joined again)
    for s in (1, len(pc.lines) // 2):
        if s < len(pc.lines):
            a, b = pc.lines[s].sfw, len(_words_expanded(pc.words_used))
            _compare_takes(take(pc.words_used, a, b))  # bare Runs among the items
            rc = Paragraph(None, words=take(pc.words_used, a, b), **common)
            rp = Paragraph(None, words=take(pp.words_used, a, b), **common)
            rc._break_kind1(widths)
            with python_path():
                rp._break_kind1(widths)
            assert rc.lines == rp.lines
            assert _words_expanded(rc.words_used) == _words_expanded(rp.words_used)


def _compare_takes(words: list) -> None:
    """take() in C and in Python on slices across the record (ends and bounds included)."""
    total = len(_words_expanded(words))
    cuts = sorted({0, 1, total // 3, total // 2, total - 1, total, total + 2})
    for a in cuts:
        for b in [None, *cuts]:
            c = take(words, a, b)
            with python_path():
                p = take(words, a, b)
            assert _words_expanded(c) == _words_expanded(p)
            assert [type(w) for w in c] == [type(w) for w in p]
    assert layoutc.has_cut(words) == any(
        type(w) is not Run and w[2] & (paragraph.SPLIT | paragraph.INJECTED) for w in words)


@pytest.mark.parametrize("name", [n for n in CORPUS_NAMES if not n.startswith(("zh", "ja"))])
def test_corpus_frag_words_and_lines_are_identical(name: str) -> None:
    cfg = BASE.replace(newline_markup=GLYPH_NEWLINE_MARKER)
    for frags in _frags_both(read_text(name)[:20000], cfg):
        if frags:
            _compare_breaks(frags, cfg, [300.0, 410.0])
            _compare_breaks(frags, cfg, [31.0, 17.5])  # most words cut


def test_a_cut_long_word_and_the_split_after_it() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 12
    text = "\n".join([f"a b c {word} d e f g h i j k l m" * 3] * 40)
    for variant in ("glyph-en", "marker", "small-page", "justify"):
        assert_same(text, BASE.replace(**VARIANTS[variant]))


def test_threads_sharing_one_width_memo_get_the_python_pages() -> None:
    # One Metrics (and its C word table) per font and size for the process: threads laying out
    # texts whose words are new to it fill the table at once (width() lets others run).
    names = [n for n in CORPUS_NAMES if n.startswith(("en", "ru", "docs"))][:6]
    texts = [read_text(n) for n in names]
    with python_path():
        expected = [list(layout(t, BASE)) for t in texts]
    paragraph.metrics_for.cache_clear()
    with ThreadPoolExecutor(len(texts)) as pool:
        got = list(pool.map(lambda t: list(layout(t, BASE)), texts))
    for g, e in zip(got, expected, strict=True):
        assert [p.lines for p in g] == [p.lines for p in e]


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_words_measured_in_c_have_metrics_widths(name: str) -> None:
    # A fresh memo: every word of the text is measured by the C path (k * the characters'
    # widths summed left to right, as Metrics.width's sum() does) and memoised.
    cfg = BASE.replace(newline_markup=GLYPH_NEWLINE_MARKER)
    m = paragraph.Metrics(font_chain(cfg.font_chain), cfg.font_size)
    for frags in _paragraphs(read_text(name), cfg):
        paragraph.frag_words(frags, m)
    assert len(m._cache) > 50
    for word, width in m._cache.items():
        assert width == m.k * sum(map(m._char.__getitem__, word)), word


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError):
        layoutc.break_kind1([1, 2], [100.0], 3.0, None)
    with pytest.raises(ValueError):
        layoutc.break_kind1([], [], 3.0, None)
    with pytest.raises(ValueError):
        layoutc.line_frags("abc", 2, 9, False)
    with pytest.raises(TypeError):
        layoutc.frag_words([Frag(0, b"bytes", [0])], {}, len)  # type: ignore[arg-type]


# ---- fuzz -----------------------------------------------------------------------------------

_PIECES = st.sampled_from([
    "word", "the", "a", "Mississippi", "x" * 60, "Lorem-ipsum-dolor-sit-amet" * 4, " ", "  ",
    "   ", "\xa0", "\xa0\xa0", "\t", "\n", "\n\n", "\r\n", "&", "<", ">", "&amp;", "<br/>",
    "\u3000", "\u200b", "\xad", "é", "Ω", "ß", "—", "“quoted”", "1234.5", "\u2009", "\x0b",
])
_TEXTS = st.lists(_PIECES, min_size=1, max_size=300).map("".join)
_CJK_TEXTS = st.lists(st.one_of(_PIECES, st.sampled_from(["文本", "視覺", "。", "、"])),
                      min_size=1, max_size=120).map("".join)
_CFGS = st.fixed_dictionaries({
    "page_size": st.sampled_from([(595.0, 842.0), (120.0, 90.0), (200.0, 140.0),
                                  (70.0, 200.0)]),
    "alignment": st.sampled_from(["LEFT", "JUSTIFY", "CENTER", "RIGHT"]),
    "newline_markup": st.sampled_from(["<br/>", GLYPH_NEWLINE_MARKER,
                                       '<font color="#00FF00">\\n</font>', " | "]),
    "first_line_indent": st.sampled_from([0.0, 9.0, -3.0]),
    "split_blank_line": st.booleans(),
    "tab_size": st.sampled_from([0, 0, 3]),
    "margin_x": st.sampled_from([0.0, 10.0]),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS, _CFGS)
def test_fuzz_pages_are_identical(text: str, over: dict) -> None:
    assert_same(text, BASE.replace(**over))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CJK_TEXTS, _CFGS)
def test_fuzz_cjk_texts_still_lay_out_identically(text: str, over: dict) -> None:
    assert_same(text, BASE.replace(**over))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS, st.sampled_from([[300.0, 300.0], [40.0, 60.0], [12.0, 9.0], [0.5, 500.0]]))
def test_fuzz_frag_words_and_breaks_are_identical(text: str, widths: list[float]) -> None:
    cfg = BASE.replace(newline_markup=GLYPH_NEWLINE_MARKER)
    fresh = paragraph.Metrics(font_chain(cfg.font_chain), cfg.font_size)
    for frags in _frags_both(text, cfg):
        if frags:
            _compare_breaks(frags, cfg, widths)
            paragraph.frag_words(frags, fresh)  # every word new to this memo: measured in C
    for word, width in fresh._cache.items():
        assert width == fresh.k * sum(map(fresh._char.__getitem__, word)), word


_LINE_CHARS = st.sampled_from(list("ab &<> \r\t\n\x00\x85\xa0\u3000\u2028\ufeff\u4e00\u9fff\u4dff"
                                   "\ua000é") + ["\U0001F600", "\ud800"])


@settings(max_examples=500, deadline=None)
@given(st.text(_LINE_CHARS, max_size=12), st.text(_LINE_CHARS, max_size=3))
def test_fuzz_line_checks_are_identical(seg: str, pad: str) -> None:
    text = pad + seg + pad
    assert layoutc.aligned(text, len(pad), len(pad) + len(seg)) == _aligned(seg)
    with python_path():
        expected = paragraph.cjk_trigger(text)
    assert paragraph.cjk_trigger(text) == expected
