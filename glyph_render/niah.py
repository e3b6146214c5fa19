"""Needle-in-a-haystack cases from the local corpus: no downloads, deterministic by seed.

Haystacks are real prose (by default the English books of the corpus shipped in
``glyph_render/data/corpus``) with any header and licence cut off at the offsets MANIFEST.tsv
records (a Project Gutenberg header, an Aozora Bunko colophon), hard line wraps undone
(so pages fill their width the way long documents do) and cut at a sentence boundary to a
length in text tokens. Needles follow RULER's wording ("One of the special magic numbers for
KEY is: VALUE.") and go in at a depth (a fraction of the text) snapped to the nearest sentence
boundary, so they never split a sentence and a reader sees whole sentences around them.

Kinds: ``number`` (7 digits), ``uuid``, ``word``, ``multikey`` (several keys with numbers, one
asked: the others are distractors) and ``multivalue`` (one key, several numbers, all asked).
"""

from __future__ import annotations

import bisect
import csv
import os
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .text_tokens import TextTokenizer, get_tokenizer

__all__ = [
    "KINDS",
    "PACKAGE_CORPUS",
    "NiahCase",
    "default_corpus_dir",
    "insert_needles",
    "load_text",
    "make_cases",
    "make_haystack",
    "read_manifest",
    "score_niah",
    "sentence_boundaries",
]

KINDS = ("number", "uuid", "word", "multikey", "multivalue")

# Keys are adjective-noun pairs (RULER's shape); values of ``word`` needles come from a list
# disjoint from the key nouns, so a key never contains an answer.
_ADJECTIVES = (
    "amber", "ancient", "brisk", "calm", "crimson", "curious", "daring", "dusty", "eager",
    "elegant", "fierce", "fragile", "gentle", "gilded", "hollow", "humble", "icy", "jagged",
    "jolly", "keen", "lavish", "lucky", "mellow", "misty", "nimble", "noble", "obscure", "opal",
    "pale", "placid", "quiet", "rapid", "rustic", "scarlet", "silent", "sleek", "solemn", "stout",
    "swift", "tidy", "vivid", "wary", "woolly", "zesty",
)
_NOUNS = (
    "anchor", "badger", "beacon", "bramble", "canyon", "cellar", "comet", "compass", "falcon",
    "fiddle", "garnet", "glacier", "harbor", "heron", "island", "juniper", "kettle", "lantern",
    "meadow", "mirror", "nettle", "orchard", "otter", "pebble", "quarry", "quiver", "raven",
    "saddle", "spindle", "thimble", "tunnel", "valley", "walrus", "willow", "yarrow", "zephyr",
)
_WORDS = (
    "apricot", "bassoon", "biscuit", "cabbage", "candle", "carousel", "chimney", "cinnamon",
    "clover", "cobweb", "cricket", "dolphin", "dumpling", "emerald", "feather", "flamingo",
    "galaxy", "goblet", "hammock", "harp", "iceberg", "igloo", "jasmine", "kayak", "kiwi",
    "ladder", "lemonade", "lobster", "magnet", "marble", "mango", "mitten", "nutmeg", "octopus",
    "origami", "paddle", "parrot", "peacock", "pepper", "pinecone", "pretzel", "pumpkin", "quilt",
    "radish", "rainbow", "sandal", "scarecrow", "seashell", "sparrow", "squirrel", "teapot",
    "tulip", "umbrella", "velvet", "violin", "waffle", "walnut", "whistle", "yogurt", "zebra",
)

_QUESTION = "What is the special magic {what} for {key} mentioned in the provided text?"
_QUESTION_ALL = (
    "What are all the special magic {what}s for {key} mentioned in the provided text? "
    "List every one."
)
_NEEDLE = "One of the special magic {what}s for {key} is: {value}."


# ---- corpus -------------------------------------------------------------------------------


PACKAGE_CORPUS = Path(__file__).resolve().parent / "data" / "corpus"


def default_corpus_dir() -> Path:
    """``$GLYPH_CORPUS``, else the small corpus shipped in the package (``PACKAGE_CORPUS``:
    excerpts of English, Chinese, Japanese and Russian books, code and docs, with a
    MANIFEST.tsv; its README.md gives sources and licences)."""
    env = os.environ.get("GLYPH_CORPUS")
    if env:
        return Path(env)
    return PACKAGE_CORPUS


def read_manifest(corpus_dir: str | Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file name ({} when the folder has none)."""
    path = Path(corpus_dir) / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


_HEADER = re.compile(r"header[^=;]*= chars \[(\d+),(\d+)\)")
_FOOTER = re.compile(r"footer[^=;]*= chars \[(\d+),end\)")
_TAIL = re.compile(r"(?:colophon from char|trailing PG end line at char) (\d+)")


def _body_span(text: str, notes: str) -> tuple[int, int]:
    """The text proper: after the recorded header, before the footer/colophon/end line."""
    start, end = 0, len(text)
    if m := _HEADER.search(notes):
        start = int(m.group(2))
    for pattern in (_FOOTER, _TAIL):
        if m := pattern.search(notes):
            end = min(end, int(m.group(1)))
    if text.startswith("\ufeff", start):
        start += 1
    return start, end


_WIDE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")
_PARA_BREAK = re.compile(r"\n[ \t\u3000]*\n|\n(?=[ \t\u3000])")


def _unwrap(text: str) -> str:
    """Join hard-wrapped lines into one line per paragraph (blank line or indent = new one).

    Lines join with a space, or with nothing between CJK characters, where a space would be
    a character the source never had.
    """
    paras = []
    for para in _PARA_BREAK.split(text):
        lines = [ln.strip() for ln in para.split("\n") if ln.strip()]
        if not lines:
            continue
        out = lines[0]
        for ln in lines[1:]:
            wide = _WIDE.match(out[-1]) or _WIDE.match(ln[0])
            out += ln if wide else " " + ln
        paras.append(out)
    return "\n".join(paras)


def load_text(path: str | Path, *, body_only: bool = True, unwrap: bool = False) -> str:
    """A corpus file as text: newlines as ``\\n``; with ``body_only`` the MANIFEST's header and
    footer offsets (which index the file read with ``newline=""``) are applied first."""
    p = Path(path)
    with p.open(encoding="utf-8", newline="") as f:
        text = f.read()
    if body_only:
        row = read_manifest(p.parent).get(p.name)
        start, end = _body_span(text, row["notes"] if row else "")
        text = text[start:end]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _unwrap(text) if unwrap else text.strip("\n")


def _corpus_files(corpus: str | Path | Iterable[str | Path] | None, language: str) -> list[Path]:
    if corpus is None:
        corpus = default_corpus_dir()
    if isinstance(corpus, (str, Path)) and Path(corpus).is_dir():
        folder = Path(corpus)
        rows = read_manifest(folder)
        files = sorted(
            folder / name
            for name, row in rows.items()
            if row["kind"].startswith("prose") and row["language/script"].startswith(language)
        )
        if not files:
            raise FileNotFoundError(f"{folder}: no {language!r} prose files in MANIFEST.tsv")
        return files
    if isinstance(corpus, (str, Path)):
        raise FileNotFoundError(
            f"corpus {str(corpus)!r} is not a folder (set GLYPH_CORPUS or pass the files)"
        )
    files = [Path(p) for p in corpus]
    if not files:
        raise ValueError("no corpus files given")
    return files


# ---- sentences ----------------------------------------------------------------------------

# An end mark, closing quotes/brackets, then whitespace (Latin) or nothing (CJK full stops).
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[A-Z0-9\"'\u201c\u2018(\[_])"
    r"|[\u3002\uff01\uff1f\uff0e][\u300d\u300f\u201d\u2019\uff09]*\s*"
    r"|\n\s*"
)
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Messrs|Mme|Mlle|vs|etc|Vol|Ch)\.$")


def sentence_boundaries(text: str) -> list[int]:
    """Offsets where a sentence starts (after the end mark and its spaces), with 0 and len.

    Titles such as "Mr." are not sentence ends; paragraph breaks always are.
    """
    out = [0]
    for m in _SENTENCE_END.finditer(text):
        if m.group()[0] != "\n" and _ABBREV.search(text, max(0, m.start() - 8), m.start()):
            continue
        if m.end() > out[-1] and m.end() < len(text):
            out.append(m.end())
    if len(text) > out[-1]:
        out.append(len(text))
    return out


# ---- haystacks ----------------------------------------------------------------------------


@dataclass
class _Source:
    """Concatenated prose with its sentence starts and estimated prefix token counts."""

    text: str
    bounds: list[int]
    est: list[int]  # estimated tokens of text[:bounds[i]] (sum of per-sentence counts)
    exact: dict[int, int] = field(default_factory=dict)  # measured counts, by bound index


@lru_cache(maxsize=8)
def _source(files: tuple[Path, ...], seed: int, tokenizer: str, min_tokens: int) -> _Source:
    rng = random.Random(f"haystack:{seed}")
    order = list(files)
    rng.shuffle(order)
    tok = get_tokenizer(tokenizer)
    parts: list[str] = []
    tokens = 0
    for i, path in enumerate(order * 8):  # repeat the books if a huge haystack asks for it
        body = load_text(path, unwrap=True)
        if i == 0:  # start the first book at a seeded paragraph, so seeds differ
            starts = [0] + [m.end() for m in re.finditer("\n", body[: len(body) // 2])]
            body = body[rng.choice(starts):]
        parts.append(body)
        tokens += tok.count(body)
        if tokens > min_tokens * 1.1 + 1000:
            break
    text = "\n".join(parts)
    bounds = sentence_boundaries(text)
    est = [0]
    for a, b in zip(bounds, bounds[1:], strict=False):
        est.append(est[-1] + tok.count(text[a:b]))
    return _Source(text, bounds, est)


def _cut(src: _Source, target: int, tok: TextTokenizer) -> str:
    """The prefix ending at the sentence start whose exact token count is nearest ``target``."""
    if target >= src.est[-1]:
        raise ValueError(f"corpus too small for {target} tokens (about {src.est[-1]} available)")

    def exact(k: int) -> int:
        if k not in src.exact:
            src.exact[k] = tok.count(src.text[: src.bounds[k]].rstrip())
        return src.exact[k]

    # Per-sentence sums drift from the real count (merges across the cut points): measure the
    # drift once near the target, re-aim, then walk sentence by sentence to the nearest.
    i = max(1, bisect.bisect_left(src.est, target))
    drift = exact(i) - src.est[i]
    i = min(len(src.est) - 1, max(1, bisect.bisect_left(src.est, target - drift)))
    while True:
        j = i - 1 if exact(i) > target else i + 1
        if not 0 < j < len(src.bounds) or abs(exact(j) - target) >= abs(exact(i) - target):
            break
        i = j
    return src.text[: src.bounds[i]].rstrip()


def make_haystack(
    corpus: str | Path | Iterable[str | Path] | None,
    target_tokens: int,
    tokenizer: str = "cl100k_base",
    seed: int = 0,
    *,
    language: str = "en",
) -> str:
    """Corpus prose cut at a sentence end to about ``target_tokens`` text tokens.

    ``corpus``: a corpus folder (its MANIFEST's ``language`` prose files) or a list of files;
    None for :func:`default_corpus_dir`. The seed picks the book order and the first paragraph.
    """
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be positive, got {target_tokens}")
    files = tuple(_corpus_files(corpus, language))
    src = _source(files, seed, tokenizer, _bucket(target_tokens))
    return _cut(src, target_tokens, get_tokenizer(tokenizer))


def _bucket(tokens: int) -> int:
    # Round the source size up to a power of two so nearby targets share one cached source.
    return 1 << max(12, (tokens - 1).bit_length())


def insert_needles(
    haystack: str, needles: Sequence[str], depth: float | Sequence[float]
) -> tuple[str, list[int]]:
    """Put each needle at its depth (a fraction of ``haystack``'s characters), snapped to the
    nearest sentence start; returns the new text and each needle's offset in it.

    ``depth`` is one fraction for all needles or one per needle. Needles landing on the same
    sentence start keep their given order.
    """
    depths = [float(depth)] * len(needles) if isinstance(depth, (int, float)) else list(depth)
    if len(depths) != len(needles):
        raise ValueError(f"{len(needles)} needles but {len(depths)} depths")
    for d in depths:
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"depth {d!r} is not a fraction in [0, 1]")
    bounds = sentence_boundaries(haystack)
    n = len(haystack)
    spots = []
    for k, d in enumerate(depths):
        want = d * n
        i = bisect.bisect_left(bounds, want)
        near = bounds[max(0, i - 1): i + 1]
        spots.append((min(near, key=lambda b: (abs(b - want), b)), k))
    out = ""
    offsets = [0] * len(needles)
    prev = 0
    for pos, k in sorted(spots):
        out += haystack[prev:pos]
        prev = pos
        if pos == n and out and not out[-1].isspace():
            out += " "  # at the very end: after the last sentence, not glued to it
        offsets[k] = len(out)
        out += needles[k] + (" " if pos < n else "")
    return out + haystack[prev:], offsets


# ---- cases --------------------------------------------------------------------------------


@dataclass
class NiahCase:
    """One prompt: the context with needles in it, the question and the values to find."""

    context: str
    question: str
    answers: list[str]
    needle_offsets: list[int]  # where each needle starts in ``context``; [0] is the asked one
    depth: float
    length: int  # the asked length in text tokens
    kind: str
    tokens: int = 0  # the context's actual text tokens
    needles: list[str] = field(default_factory=list)
    key: str = ""
    seed: int = 0


def _value(kind: str, rng: random.Random) -> str:
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "word":
        return rng.choice(_WORDS)
    return str(rng.randint(1_000_000, 9_999_999))


def _needles_for(kind: str, rng: random.Random, n: int, haystack: str) -> tuple[
        str, str, list[str], list[str]]:
    """(key, question, needle texts with the asked one(s) first, answers)."""
    keys = rng.sample([f"{a}-{b}" for a in _ADJECTIVES for b in _NOUNS], max(1, n))
    what = {"uuid": "uuid", "word": "word"}.get(kind, "number")

    def fresh(used: set[str]) -> str:
        while True:  # a value already in the text (or drawn) would answer for the wrong reason
            v = _value(kind, rng)
            if v not in used and (kind == "word" or v not in haystack):
                used.add(v)
                return v

    used: set[str] = set()
    if kind == "multivalue":
        values = [fresh(used) for _ in range(n)]
        needles = [_NEEDLE.format(what=what, key=keys[0], value=v) for v in values]
        return keys[0], _QUESTION_ALL.format(what=what, key=keys[0]), needles, values
    count = n if kind == "multikey" else 1
    values = [fresh(used) for _ in range(count)]
    needles = [_NEEDLE.format(what=what, key=keys[i], value=v) for i, v in enumerate(values)]
    return keys[0], _QUESTION.format(what=what, key=keys[0]), needles, values[:1]


def make_cases(
    lengths: Iterable[int],
    depths: Iterable[float],
    kinds: Iterable[str] = KINDS,
    seed: int = 0,
    *,
    corpus: str | Path | Iterable[str | Path] | None = None,
    tokenizer: str = "cl100k_base",
    n_needles: int = 4,
    language: str = "en",
) -> list[NiahCase]:
    """One case per (length, depth, kind), in that nesting order, reproducible from ``seed``.

    The asked needle sits at ``depth``; distractor keys (``multikey``) and the other values
    (``multivalue``) at seeded random depths. The haystack is cut short by the needles' own
    tokens so the whole context lands on ``length``.
    """
    lengths, depths, kinds = list(lengths), list(depths), list(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown needle kind {kind!r} (choose from {', '.join(KINDS)})")
    if n_needles < 2 and ("multikey" in kinds or "multivalue" in kinds):
        raise ValueError("multikey/multivalue need n_needles >= 2")
    tok = get_tokenizer(tokenizer)
    files = tuple(_corpus_files(corpus, language))
    cases = []
    for length in lengths:
        src = _source(files, seed, tokenizer, _bucket(length))
        for depth in depths:
            for kind in kinds:
                rng = random.Random(f"needles:{seed}:{length}:{depth}:{kind}")
                key, question, needles, answers = _needles_for(kind, rng, n_needles, src.text)
                reserve = sum(tok.count(" " + nd) for nd in needles)
                haystack = _cut(src, max(1, length - reserve), tok)
                where = [depth] + [rng.random() for _ in needles[1:]]
                context, offsets = insert_needles(haystack, needles, where)
                cases.append(NiahCase(
                    context=context, question=question, answers=answers,
                    needle_offsets=offsets, depth=depth, length=length, kind=kind,
                    tokens=tok.count(context), needles=needles, key=key, seed=seed,
                ))
    return cases


def score_niah(prediction: str, case: NiahCase, *, partial: bool = False) -> float:
    """1.0 when every expected value appears in ``prediction`` (case-insensitive, as a whole
    token: "1234567" does not match inside "12345678"), else 0.0; with ``partial``, the share
    found (RULER's ``string_match_all``)."""
    found = sum(
        re.search(rf"(?<![0-9A-Za-z]){re.escape(a)}(?![0-9A-Za-z])", prediction, re.I) is not None
        for a in case.answers
    )
    if partial:
        return found / len(case.answers)
    return float(found == len(case.answers))
