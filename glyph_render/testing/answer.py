"""Answer a question from OCR text by picking the sentences that share the most rare words.

Deterministic and explainable, so a test can plant a needle ("The secret code is 7F3K-92QX.")
and expect it back verbatim: the OCR lines of each page are re-flowed (a sentence wrapped over
two lines becomes one again), split into sentences, and each sentence scores the IDF weights of
the question's content words it contains (exact, or a near miss for long words, which absorbs
OCR slips such as "lantern" read as "lantem"), divided by a gentle length penalty so the
sentence beats the long line around it. Transcription requests get the whole text instead.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ExtractiveAnswer",
    "Match",
    "answer_question",
    "candidates",
    "is_transcription_request",
    "reflow",
    "split_sentences",
]

_TRANSCRIBE = re.compile(
    r"\b(?:transcri(?:be|ption)|ocr|read\s+out|read\s+(?:back\s+|aloud\s+)?(?:all\s+)?"
    r"(?:of\s+)?the\s+text|verbatim|(?:extract|copy|output|return|give\s+me)\s+(?:out\s+)?"
    r"(?:all\s+)?(?:of\s+)?the\s+(?:full\s+|whole\s+|entire\s+)?text|what(?:'s|\s+is)\s+written\s+"
    r"(?:on|in)\s+(?:these|this|the)\s+(?:pages?|images?|documents?))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[0-9A-Za-z\u00C0-\uFFFF]+(?:['’\-][0-9A-Za-z\u00C0-\uFFFF]+)*")
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before a space.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'’”)\]])\s+")
_STARTS = re.compile(r"[\"'‘“(\[]?[A-Z0-9]")
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves tell please say says
    said find give show according based answer question following given provided document
    documents page pages image images text passage context mentioned written write state stated
    exactly word words one"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Match:
    """A candidate sentence: 1-based page number, score and the sentence as OCR read it."""

    page: int
    score: float
    text: str


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The reply text plus how it was found (mode ``transcribe``, ``match`` or ``none``)."""

    text: str
    mode: str
    terms: tuple[str, ...] = ()
    matches: tuple[Match, ...] = ()


def is_transcription_request(question: str) -> bool:
    """True for "transcribe", "OCR", "read out the text", "what is written on these pages"."""
    return bool(_TRANSCRIBE.search(question))


def _ends_sentence(text: str) -> bool:
    return text.rstrip("\"'’”)]").endswith((".", "!", "?", ":"))


def reflow(page_text: str) -> list[str]:
    """Paragraphs of a page: wrapped lines joined.

    A blank line ends a paragraph only after a sentence end: Tesseract (psm 6) also emits blank
    lines inside dense paragraphs, where line gaps vary by a pixel.
    """
    paragraphs: list[str] = []
    current = ""
    for raw in page_text.splitlines():
        line = " ".join(raw.split())
        if not line:
            if current and _ends_sentence(current):
                paragraphs.append(current)
                current = ""
            continue
        if not current:
            current = line
        elif current.endswith("-") and not current.endswith(" -"):
            current += line  # a code or word broken at its hyphen: keep the hyphen, no space
        else:
            current += " " + line
    if current:
        paragraphs.append(current)
    return paragraphs


def split_sentences(page_text: str) -> list[str]:
    """Sentences of a page's OCR text, in reading order."""
    out: list[str] = []
    for paragraph in reflow(page_text):
        out.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip())
    return out


def _complete(sentence: str) -> bool:
    return bool(_STARTS.match(sentence)) and _ends_sentence(sentence) and sentence[-1] != ":"


def candidates(page_text: str) -> list[str]:
    """Re-flowed sentences, plus complete sentences that stand alone on one OCR line.

    OCR cannot tell a wrap from a hard line break, so re-flowing glues a one-line sentence to an
    unfinished line before it ("... had learnt several The secret code is 7F3K-92QX."); the
    line-level sentence is kept too and, being shorter with the same words, wins.
    """
    out = split_sentences(page_text)
    seen = set(out)
    for line in page_text.splitlines():
        for sentence in _SENTENCE_END.split(" ".join(line.split())):
            sentence = sentence.strip()
            if sentence and sentence not in seen and _complete(sentence):
                seen.add(sentence)
                out.append(sentence)
    return out


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text)]


def _terms(question: str) -> list[str]:
    seen: dict[str, None] = {}
    for token in _tokens(question):
        if token not in _STOPWORDS and (len(token) > 1 or token.isdigit()):
            seen.setdefault(token, None)
    return list(seen)


def _near_misses(terms: Sequence[str], vocabulary: set[str]) -> dict[str, dict[str, float]]:
    """For each long term, vocabulary words within OCR-slip distance and their weight (0.7)."""
    out: dict[str, dict[str, float]] = {t: {t: 1.0} for t in terms}
    for term in terms:
        if len(term) < 5 or any(c.isdigit() for c in term):
            continue  # codes and short words must match exactly
        matcher = difflib.SequenceMatcher(None, term, autojunk=False)
        for word in vocabulary:
            if word == term or abs(len(word) - len(term)) > 2 or word[0] != term[0]:
                continue
            matcher.set_seq1(word)
            if matcher.real_quick_ratio() >= 0.8 and matcher.ratio() >= 0.8:
                out[term][word] = 0.7
    return out


def answer_question(question: str, pages: Sequence[str], top_k: int = 1) -> ExtractiveAnswer:
    """Answer ``question`` from the OCR text of ``pages`` (in order); see the module docstring."""
    if not question.strip() or is_transcription_request(question):
        text = "\n\n".join(p.strip() for p in pages if p.strip())
        return ExtractiveAnswer(text or "The pages contain no readable text.", "transcribe")
    sentences = [
        (number, sentence)
        for number, page in enumerate(pages, start=1)
        for sentence in candidates(page)
    ]
    terms = _terms(question)
    if not sentences:
        return ExtractiveAnswer("The pages contain no readable text.", "none", tuple(terms))
    if not terms:
        return ExtractiveAnswer("I could not find anything about that in the pages.", "none")
    token_lists = [_tokens(sentence) for _, sentence in sentences]
    vocabulary = {t for tokens in token_lists for t in tokens}
    variants = _near_misses(terms, vocabulary)
    doc_freq: Counter[str] = Counter()
    for tokens in token_lists:
        present = set(tokens)
        for term in terms:
            if present & variants[term].keys():
                doc_freq[term] += 1
    n = len(sentences)
    idf = {t: math.log(1.0 + n / (1.0 + doc_freq[t])) for t in terms}
    scored: list[tuple[float, int, Match]] = []
    for index, ((number, sentence), tokens) in enumerate(zip(sentences, token_lists, strict=True)):
        present = set(tokens)
        raw = 0.0
        for term in terms:
            weight = max((w for v, w in variants[term].items() if v in present), default=0.0)
            raw += weight * idf[term]
        if raw <= 0:
            continue
        score = raw / (1.0 + 0.01 * len(tokens))
        scored.append((score, index, Match(number, round(score, 3), sentence)))
    if not scored:
        return ExtractiveAnswer("I could not find anything about that in the pages.", "none",
                                tuple(terms))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = scored[: max(1, top_k)]
    in_order = sorted(best, key=lambda item: item[1])
    text = " ".join(match.text for _, _, match in in_order)
    return ExtractiveAnswer(text, "match", tuple(terms), tuple(m for _, _, m in best))
