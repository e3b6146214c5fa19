"""Needle-in-a-haystack generator: real corpus haystacks, needles where they were asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from glyph_render.niah import (
    KINDS,
    PACKAGE_CORPUS,
    NiahCase,
    default_corpus_dir,
    insert_needles,
    load_text,
    make_cases,
    make_haystack,
    read_manifest,
    score_niah,
    sentence_boundaries,
)
from glyph_render.text_tokens import get_tokenizer

CORPUS = PACKAGE_CORPUS
TOK = get_tokenizer("cl100k_base")


def test_sentence_boundaries():
    text = 'Mr. Darcy came. He left! "Did she?" Yes.\nNext para'
    b = sentence_boundaries(text)
    starts = [text[i:i + 4] for i in b[1:-1]]
    assert starts == ["He l", '"Did', "Yes.", "Next"]  # not after "Mr."
    assert b[0] == 0 and b[-1] == len(text)
    zh = "他來了。她走了！真的嗎？"
    assert sentence_boundaries(zh) == [0, 4, 8, len(zh)]


def test_the_package_corpus_is_the_default(monkeypatch):
    monkeypatch.delenv("GLYPH_CORPUS", raising=False)
    assert default_corpus_dir() == CORPUS
    assert make_haystack(None, 1_000, seed=5) == make_haystack(CORPUS, 1_000, seed=5)
    monkeypatch.setenv("GLYPH_CORPUS", "/elsewhere/corpus")
    assert default_corpus_dir() == Path("/elsewhere/corpus")


BOILERPLATE_HEAD = "\ufeffThe eBook of a Book\r\n\r\n*** START OF THE BOOK ***\r\n\r\n"
BOILERPLATE_TAIL = "\r\n*** END OF THE BOOK ***\r\n\r\nA licence, two lines\r\nof it.\r\n"


def test_load_text_cuts_the_boilerplate_the_manifest_records(tmp_path):
    # a Project Gutenberg file as found: BOM, header, CRLF text, footer; offsets in MANIFEST
    body = (CORPUS / "en_pride_and_prejudice.txt").open(encoding="utf-8", newline="").read()
    raw = BOILERPLATE_HEAD + body.removeprefix("\ufeff") + BOILERPLATE_TAIL
    start, end = len(BOILERPLATE_HEAD), len(raw) - len(BOILERPLATE_TAIL) + 2
    (tmp_path / "en_book.txt").write_bytes(raw.encode())
    (tmp_path / "MANIFEST.tsv").write_text(
        "file\tkind\tlanguage/script\tnotes\n"
        f"en_book.txt\tprose\ten / Latin\tstarts with UTF-8 BOM; PG header = chars [0,{start}) "
        f"(through the START line); PG footer/license = chars [{end},end) (from the END line)\n",
        encoding="utf-8")
    text = load_text(tmp_path / "en_book.txt")
    assert "*** START OF" not in text and "*** END OF" not in text and "licence" not in text
    assert "\r" not in text and not text.startswith("\ufeff")
    assert "It is a truth universally acknowledged" in text
    assert text == load_text(CORPUS / "en_pride_and_prejudice.txt")  # the same words, no more


def test_load_text_reads_the_package_corpus():
    pride = load_text(CORPUS / "en_pride_and_prejudice.txt")
    assert "\r" not in pride and not pride.startswith("\ufeff")
    assert pride.startswith("PRIDE AND PREJUDICE")
    # unwrapping joins the hard-wrapped lines of a paragraph into one line
    flat = load_text(CORPUS / "en_pride_and_prejudice.txt", unwrap=True)
    line = next(ln for ln in flat.split("\n") if ln.startswith("It is a truth universally"))
    assert "a single man in possession of a good fortune, must be in want of a wife." in line
    # CJK lines join without inventing spaces
    ja = load_text(CORPUS / "ja_natsume_kokoro.txt", unwrap=True)
    assert "私《わたくし》はその人を常に先生と呼んでいた。" in ja
    # Aozora Bunko's header (notation legend) and colophon are kept in the file, cut here
    raw = (CORPUS / "ja_natsume_kokoro.txt").read_text(encoding="utf-8")
    assert "【テキスト中に現れる記号について】" in raw and "底本：" in raw
    assert "【テキスト中に現れる記号について】" not in ja and "底本" not in ja


def test_haystacks_come_from_the_english_prose():
    rows = read_manifest(CORPUS)
    prose = sorted(n for n, r in rows.items() if r["kind"].startswith("prose")
                   and r["language/script"].startswith("en"))
    assert prose == sorted(p.name for p in CORPUS.glob("en_*.txt")) and len(prose) == 6
    assert sum(TOK.count(load_text(CORPUS / n, unwrap=True)) for n in prose) > 40_000


@pytest.mark.parametrize("target", [4_000, 16_000, 128_000])
def test_haystack_length_within_2_percent(target):
    hay = make_haystack(CORPUS, target, seed=3)
    assert abs(TOK.count(hay) - target) <= 0.02 * target
    assert hay[-1] in '.!?"\'\u201d\u2019)]_'  # cut at a sentence end


def test_haystack_deterministic_by_seed():
    a = make_haystack(CORPUS, 4_000, seed=1)
    assert make_haystack(CORPUS, 4_000, seed=1) == a
    assert make_haystack(CORPUS, 4_000, seed=2) != a
    files = sorted(CORPUS.glob("en_*.txt"))[:2]
    assert make_haystack(files, 4_000, seed=1) == make_haystack(files, 4_000, seed=1)


def _assert_at_depth(haystack: str, offset: int, depth: float) -> None:
    """``offset`` is the sentence start nearest the depth point: within a sentence of it."""
    bounds = sentence_boundaries(haystack)
    want = depth * len(haystack)
    assert offset in bounds
    i = bounds.index(offset)
    assert bounds[max(0, i - 1)] <= want <= bounds[min(len(bounds) - 1, i + 1)]
    assert all(abs(b - want) >= abs(offset - want) for b in bounds)


@pytest.mark.parametrize("depth", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_insert_needle_at_depth(depth):
    hay = make_haystack(CORPUS, 4_000, seed=0)
    needle = "One of the special magic numbers for calm-otter is: 1234567."
    text, (off,) = insert_needles(hay, [needle], depth)
    assert text[off:off + len(needle)] == needle
    # taking the needle (and the one space inserted with it) out gives the haystack back
    if off < len(hay):
        assert text[:off] + text[off + len(needle) + 1:] == hay
    else:
        assert text == hay + " " + needle
    _assert_at_depth(hay, min(off, len(hay)), depth)


def test_insert_several_needles_keeps_offsets_and_order():
    hay = make_haystack(CORPUS, 4_000, seed=0)
    needles = ["Needle A.", "Needle B.", "Needle C."]
    text, offs = insert_needles(hay, needles, [0.8, 0.2, 0.2])
    for nd, off in zip(needles, offs, strict=True):
        assert text[off:off + len(nd)] == nd
    assert offs[1] < offs[2] < offs[0]  # B and C share a spot and keep their given order
    with pytest.raises(ValueError, match="depths"):
        insert_needles(hay, needles, [0.5])
    with pytest.raises(ValueError, match="fraction"):
        insert_needles(hay, ["x"], 1.5)


@pytest.fixture(scope="module")
def cases() -> list[NiahCase]:
    return make_cases([4_000, 32_000], [0.0, 0.25, 0.5, 1.0], KINDS, seed=7, corpus=CORPUS,
                      n_needles=4)


def test_case_grid_and_lengths(cases):
    assert len(cases) == 2 * 4 * len(KINDS)
    assert [(c.length, c.depth, c.kind) for c in cases[:6]] == [
        (4_000, 0.0, k) for k in KINDS] + [(4_000, 0.25, "number")]
    for c in cases:
        assert c.tokens == TOK.count(c.context)
        assert abs(c.tokens - c.length) <= 0.02 * c.length, (c.kind, c.length, c.tokens)
        for nd, off in zip(c.needles, c.needle_offsets, strict=True):
            assert c.context[off:off + len(nd)] == nd
        for a in c.answers:
            assert a not in c.question


def test_asked_needle_sits_at_its_depth(cases):
    for c in (c for c in cases if c.kind in ("number", "uuid", "word")):
        (nd,), (off,) = c.needles, c.needle_offsets
        end = off + len(nd)
        hay = c.context[:off] + c.context[end + 1:] if end < len(c.context) \
            else c.context[:off].rstrip()
        _assert_at_depth(hay, min(off, len(hay)), c.depth)


def test_multikey_and_multivalue_shapes(cases):
    mk = next(c for c in cases if c.kind == "multikey")
    keys = [nd.split(" for ")[1].split(" is: ")[0] for nd in mk.needles]
    values = [nd.split(" is: ")[1].rstrip(".") for nd in mk.needles]
    assert len(mk.needles) == 4 and len(set(keys)) == 4 and len(set(values)) == 4
    assert mk.key == keys[0] and mk.key in mk.question
    assert all(k not in mk.question for k in keys[1:])
    assert mk.answers == [values[0]]

    mv = next(c for c in cases if c.kind == "multivalue")
    assert len(mv.needles) == 4 and len(mv.answers) == 4 and len(set(mv.answers)) == 4
    assert all(f"for {mv.key} is: {v}." in mv.context for v in mv.answers)
    assert "all" in mv.question and mv.key in mv.question

    uu = next(c for c in cases if c.kind == "uuid")
    assert len(uu.answers[0]) == 36 and uu.answers[0].count("-") == 4


def test_cases_deterministic_by_seed():
    a = make_cases([4_000], [0.5], ["number", "multivalue"], seed=11, corpus=CORPUS)
    b = make_cases([4_000], [0.5], ["number", "multivalue"], seed=11, corpus=CORPUS)
    c = make_cases([4_000], [0.5], ["number", "multivalue"], seed=12, corpus=CORPUS)
    assert [x.context for x in a] == [x.context for x in b]
    assert [x.answers for x in a] == [x.answers for x in b]
    assert [x.answers for x in a] != [x.answers for x in c]
    with pytest.raises(ValueError, match="kind"):
        make_cases([4_000], [0.5], ["haystack"], corpus=CORPUS)


def test_score_niah(cases):
    mv = next(c for c in cases if c.kind == "multivalue")
    assert score_niah("The numbers are " + ", ".join(mv.answers), mv) == 1.0
    assert score_niah("The numbers are " + ", ".join(mv.answers[:3]), mv) == 0.0
    assert score_niah(" ".join(mv.answers[:3]), mv, partial=True) == 0.75
    num = next(c for c in cases if c.kind == "number")
    assert score_niah(f"It is {num.answers[0]}.", num) == 1.0
    assert score_niah(f"It is {num.answers[0]}9.", num) == 0.0  # not inside a longer number
    uu = next(c for c in cases if c.kind == "uuid")
    assert score_niah(uu.answers[0].upper(), uu) == 1.0
    assert score_niah("nothing", uu) == 0.0
