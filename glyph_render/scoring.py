"""Answer-scoring metrics for accuracy harnesses: LongBench's, MRCR's, and OCR character error.

Re-implemented from their published definitions so a harness needs no ``rouge``,
``fuzzywuzzy`` or ``rapidfuzz``, and so numbers stay comparable with published tables:

* LongBench (THUDM/LongBench ``metrics.py`` / ``eval.py``): ``qa_f1_score``,
  ``rouge_l_score`` (LongBench's ``rouge_score``), ``classification_score``,
  ``retrieval_score``, ``count_score``, ``code_sim_score`` and the ``_zh`` variants. Chinese
  is segmented into words with ``jieba`` as LongBench does (the ``longbench`` extra), so zh
  scores compare with the paper's; ``zh_tokens="char"`` (metrics ``qa_f1_zh_char_score``,
  ``rouge_zh_char_score``) scores per character instead: dictionary-free, but its numbers
  compare only with other per-character numbers.
* MRCR (openai/mrcr's grader): the answer must begin with the random prefix, then
  ``difflib.SequenceMatcher`` ratio of the rest against the gold with the prefix removed.
* ``character_error_rate``: Levenshtein distance over the reference length, with bit-parallel
  edit distance (Myers/Hyyrö on Python integers) so whole pages (10^4 chars) cost milliseconds.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DATASET_METRICS",
    "METRICS",
    "ZH_TOKENS",
    "character_error_rate",
    "check_zh_tokens",
    "classification_score",
    "code_sim_score",
    "count_score",
    "exact_match",
    "f1_tokens",
    "lcs_length",
    "levenshtein",
    "levenshtein_ratio",
    "mrcr_score",
    "normalize_answer",
    "normalize_zh_answer",
    "qa_f1_score",
    "qa_f1_zh_score",
    "retrieval_score",
    "retrieval_zh_score",
    "rouge_l_score",
    "rouge_zh_score",
    "score",
    "zh_words",
]

# ---- normalisation (LongBench's, verbatim in behaviour) ---------------------------------

_PUNCT = frozenset(string.punctuation)
_ZH_PUNCT = frozenset(
    string.punctuation
    + "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～"
    "｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lowercase, drop ASCII punctuation, drop articles, collapse whitespace (SQuAD/LongBench)."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def normalize_zh_answer(s: str) -> str:
    """Lowercase, drop ASCII and CJK punctuation, drop all whitespace (LongBench's zh rule)."""
    s = "".join(ch for ch in s.lower() if ch not in _ZH_PUNCT)
    return "".join(s.split())


# ---- Chinese words --------------------------------------------------------------------------

#: How Chinese answers become tokens: jieba words (LongBench's way) or single characters.
ZH_TOKENS = ("jieba", "char")
_JIEBA_MISSING = ("scoring Chinese as LongBench does segments words with jieba, which is not "
                  "installed: pip install 'glyph-render[longbench]' (or score per character "
                  "with zh_tokens='char')")


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    try:
        import jieba
    except ImportError:
        from .errors import ConfigError

        raise ConfigError(_JIEBA_MISSING) from None
    jieba.setLogLevel(logging.WARNING)  # its dictionary load announces itself on stderr
    return jieba


def check_zh_tokens(zh_tokens: str) -> None:
    """Fail early (before a long run) on an unknown mode, or on ``jieba`` without jieba."""
    if zh_tokens not in ZH_TOKENS:
        raise ValueError(f"zh_tokens must be one of {', '.join(ZH_TOKENS)}, not {zh_tokens!r}")
    if zh_tokens == "jieba":
        _jieba()


def zh_words(text: str, zh_tokens: str = "jieba") -> list[str]:
    """``text`` cut as LongBench cuts it (``jieba.cut(text, cut_all=False)``, HMM on: spaces
    and punctuation are tokens too), or into characters."""
    check_zh_tokens(zh_tokens)
    if zh_tokens == "char":
        return list(text)
    return list(_jieba().cut(text, cut_all=False))


# ---- token F1 ---------------------------------------------------------------------------


def f1_tokens(prediction: Sequence[Hashable], ground_truth: Sequence[Hashable]) -> float:
    """Bag-of-tokens F1: overlap counted with multiplicity (``Counter`` intersection)."""
    same = sum((Counter(prediction) & Counter(ground_truth)).values())
    if same == 0:
        return 0.0
    precision = same / len(prediction)
    recall = same / len(ground_truth)
    return 2 * precision * recall / (precision + recall)


def qa_f1_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """LongBench's English QA F1 over whitespace tokens of the normalised strings."""
    return f1_tokens(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def qa_f1_zh_score(prediction: str, ground_truth: str, *, zh_tokens: str = "jieba",
                   **_: Any) -> float:
    """LongBench's Chinese QA F1: jieba words, each normalised (:func:`normalize_zh_answer`),
    the emptied ones dropped. ``zh_tokens="char"``: one token per character of the normalised
    strings."""
    if zh_tokens == "char":
        check_zh_tokens(zh_tokens)
        return f1_tokens(list(normalize_zh_answer(prediction)),
                         list(normalize_zh_answer(ground_truth)))

    def tokens(text: str) -> list[str]:
        return [t for t in map(normalize_zh_answer, zh_words(text, zh_tokens)) if t]

    return f1_tokens(tokens(prediction), tokens(ground_truth))


def exact_match(prediction: str, ground_truth: str, *, normalize: bool = True, **_: Any) -> float:
    """1.0 when equal after :func:`normalize_answer` (SQuAD EM), or verbatim if not normalising."""
    if normalize:
        return float(normalize_answer(prediction) == normalize_answer(ground_truth))
    return float(prediction == ground_truth)


# ---- ROUGE-L as the ``rouge`` package (pltrdy, 1.0.1) computes it -------------------------


def _lcs_table(x: Sequence[Hashable], y: Sequence[Hashable]) -> np.ndarray:
    """Full LCS DP table, one numpy row at a time.

    Rows are non-decreasing, so ``L[i][j] = max(L[i][j-1], t[j])`` is a running maximum of
    ``t[j] = max(L[i-1][j], L[i-1][j-1] + match)``: ``np.maximum.accumulate`` removes the
    in-row dependency that makes the textbook loop quadratic in Python.
    """
    codes: dict[Hashable, int] = {}
    xs = np.fromiter((codes.setdefault(t, len(codes)) for t in x), dtype=np.int64, count=len(x))
    ys = np.fromiter((codes.setdefault(t, len(codes)) for t in y), dtype=np.int64, count=len(y))
    table = np.zeros((len(x) + 1, len(y) + 1), dtype=np.int32)
    for i in range(1, len(x) + 1):
        prev = table[i - 1]
        t = prev.copy()
        np.maximum(t[1:], prev[:-1] + (ys == xs[i - 1]), out=t[1:])
        np.maximum.accumulate(t, out=table[i])
    return table


def _recon_lcs_words(ref: Sequence[str], hyp: Sequence[str]) -> set[str]:
    """The words of the one LCS that ``rouge``'s backtrack picks (ties step along ``hyp``)."""
    table = _lcs_table(ref, hyp)
    i, j = len(ref), len(hyp)
    words: set[str] = set()
    while i > 0 and j > 0:
        if ref[i - 1] == hyp[j - 1]:
            words.add(ref[i - 1])
            i -= 1
            j -= 1
        elif table[i - 1, j] > table[i, j - 1]:
            i -= 1
        else:
            j -= 1
    return words


def _rouge_sentences(text: str) -> list[list[str]]:
    # rouge.Rouge._get_scores: split on ".", keep non-empty pieces, collapse their whitespace,
    # then words are split on " " (so a piece of only spaces becomes the one word "").
    pieces = [" ".join(p.split()) for p in text.split(".") if len(p) > 0]
    return [p.split(" ") for p in pieces]


def rouge_l_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """LongBench's ``rouge_score``: ``Rouge().get_scores(pred, gold, avg=True)["rouge-l"]["f"]``.

    That is the ``rouge`` package's *summary-level* ROUGE-L with its defaults: sentences split
    on ".", words on spaces, no lowercasing, and ``exclusive=True``, which counts *distinct*
    words: ``m``/``n`` are the numbers of distinct reference/prediction words and the overlap is
    the number of distinct words in the union, over reference sentences r and prediction
    sentences c, of the LCS(r, c) its backtrack reconstructs. F uses beta = 1:
    ``2PR / (P + R + 1e-8)``. An input with no sentence (empty, or only dots) scores 0, as
    LongBench's bare ``except`` makes it. One difference: ``rouge`` recurses once per backtrack
    step, so a sentence pair needing ~1,000 steps raises RecursionError and LongBench scores
    0.0; here such pairs get their true score.
    """
    hyp = _rouge_sentences(prediction)
    ref = _rouge_sentences(ground_truth)
    if not hyp or not ref:
        return 0.0
    m = len({w for s in ref for w in s})
    n = len({w for s in hyp for w in s})
    union: set[str] = set()
    for r in ref:
        for c in hyp:
            union |= _recon_lcs_words(r, c)
    r_lcs = len(union) / m
    p_lcs = len(union) / n
    return 2.0 * (p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8)


def rouge_zh_score(prediction: str, ground_truth: str, *, zh_tokens: str = "jieba",
                   **_: Any) -> float:
    """LongBench's Chinese ROUGE-L: jieba words (or characters) joined by spaces, then
    :func:`rouge_l_score`."""
    return rouge_l_score(" ".join(zh_words(prediction, zh_tokens)),
                         " ".join(zh_words(ground_truth, zh_tokens)))


# ---- classification, retrieval, counting --------------------------------------------------


def classification_score(
    prediction: str, ground_truth: str, *, all_classes: Sequence[str] | None = None, **_: Any
) -> float:
    """LongBench's TREC/LSHT score: 1/k when the gold is among the k class names in the answer.

    Class names found in the prediction that are proper substrings of the gold are dropped
    first (so "location" does not compete with "location: city"). LongBench removes them from
    the list while iterating over it, which skips the name after each removed one; here all
    are removed. Its difflib fallback for "no class mentioned" is dead code (``list != 0`` is
    always true), so such answers score 0, here too.
    """
    if all_classes is None:
        raise ValueError("classification_score needs all_classes (the label set)")
    found = [c for c in all_classes if c in prediction]
    found = [c for c in found if not (c in ground_truth and c != ground_truth)]
    return 1.0 / len(found) if ground_truth in found else 0.0


def _share_equal(prediction: str, target: str) -> float:
    numbers = re.findall(r"\d+", prediction)
    return sum(n == target for n in numbers) / len(numbers) if numbers else 0.0


def count_score(prediction: str, ground_truth: str | int, **_: Any) -> float:
    """Share of the integers in the answer equal to the gold count (LongBench passage_count)."""
    return _share_equal(prediction, str(ground_truth))


def _retrieval(prediction: str, ground_truth: str, pattern: str) -> float:
    m = re.search(pattern, ground_truth)
    if m is None:
        raise ValueError(f"gold {ground_truth!r} does not name a paragraph ({pattern!r})")
    return _share_equal(prediction, m.group(1))


def retrieval_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """Share of the integers in the answer equal to N of the gold's "Paragraph N"."""
    return _retrieval(prediction, ground_truth, r"Paragraph (\d+)")


def retrieval_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """Share of the integers in the answer equal to N of the gold's "段落N"."""
    return _retrieval(prediction, ground_truth, r"段落(\d+)")


# ---- edit distances -----------------------------------------------------------------------


def _bitmasks(pattern: Sequence[Hashable]) -> dict[Hashable, int]:
    masks: dict[Hashable, int] = {}
    for i, c in enumerate(pattern):
        masks[c] = masks.get(c, 0) | (1 << i)
    return masks


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence (strings or token lists), bit-parallel.

    Allison-Dix/Hyyrö: one word-parallel step per element of ``a`` over a ``len(b)``-bit
    Python integer; the zero bits of the final vector count the LCS.
    """
    if not a or not b:
        return 0
    masks = _bitmasks(b)
    full = (1 << len(b)) - 1
    v = full
    for c in a:
        u = v & masks.get(c, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit insert/delete/substitute), Myers' bit-vector algorithm.

    Hyyrö's formulation for global distance: each element of ``a`` updates the vertical
    delta vectors of the DP column over ``b`` in O(len(b)/64) machine words.
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    masks = _bitmasks(b)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    vp, vn, dist = full, 0, m
    for c in a:
        eq = masks.get(c, 0)
        xv = eq | vn
        xh = ((((eq & vp) + vp) & full) ^ vp) | eq
        hp = vn | (~(xh | vp) & full)
        hn = vp & xh
        if hp & top:
            dist += 1
        elif hn & top:
            dist -= 1
        hp = ((hp << 1) | 1) & full
        hn = (hn << 1) & full
        vp = hn | (~(xv | hp) & full)
        vn = hp & xv
    return dist


def levenshtein_ratio(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """``1 - indel_distance / (len(a) + len(b))`` = ``2 * LCS / (len(a) + len(b))``.

    The similarity of ``Levenshtein.ratio`` and ``rapidfuzz.fuzz.ratio`` / 100 (an edit that
    replaces costs 2). Two empty sequences are identical: 1.0.
    """
    total = len(a) + len(b)
    return 1.0 if total == 0 else 2.0 * lcs_length(a, b) / total


def code_sim_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """LongBench's code-completion score: ``fuzz.ratio(first code line, gold) / 100``.

    The first line of the answer that has no "`", "#" or "//" (a fence or a comment) is
    compared; ``fuzz.ratio`` is the Levenshtein ratio in percent rounded to an integer
    (fuzzywuzzy with python-Levenshtein, thefuzz); equal strings score 1, one empty string 0.
    """
    line = ""
    for candidate in prediction.lstrip("\n").split("\n"):
        if "`" not in candidate and "#" not in candidate and "//" not in candidate:
            line = candidate
            break
    if line == ground_truth:
        return 1.0
    if not line or not ground_truth:
        return 0.0
    return round(100 * levenshtein_ratio(line, ground_truth)) / 100


def character_error_rate(hyp: str, ref: str, *, whitespace: str = "keep") -> float:
    """Levenshtein distance from ``hyp`` to ``ref`` over ``len(ref)`` (may exceed 1).

    ``whitespace``: ``"keep"`` compares as given; ``"collapse"`` turns every whitespace run into
    one space and strips the ends (OCR breaks lines where the renderer wrapped them);
    ``"remove"`` deletes all whitespace (CJK, where OCR puts spaces between characters). An
    empty reference gives 0.0 for an empty hypothesis, else 1.0.
    """
    if whitespace == "collapse":
        hyp, ref = " ".join(hyp.split()), " ".join(ref.split())
    elif whitespace == "remove":
        hyp, ref = "".join(hyp.split()), "".join(ref.split())
    elif whitespace != "keep":
        raise ValueError(f"whitespace must be 'keep', 'collapse' or 'remove', not {whitespace!r}")
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(hyp, ref) / len(ref)


# ---- MRCR ---------------------------------------------------------------------------------


def mrcr_score(response: str, answer: str, random_string_to_prepend: str) -> float:
    """openai/mrcr's grade: 0 unless ``response`` starts with the prefix, else the
    ``SequenceMatcher(None, response, answer).ratio()`` with the prefix removed from both.

    ``SequenceMatcher`` keeps its defaults (``autojunk=True``), as the reference grader does, so
    long answers are scored exactly as OpenAI's numbers were.
    """
    if not response.startswith(random_string_to_prepend):
        return 0.0
    response = response.removeprefix(random_string_to_prepend)
    answer = answer.removeprefix(random_string_to_prepend)
    return float(difflib.SequenceMatcher(None, response, answer).ratio())


# ---- dispatch -----------------------------------------------------------------------------

Metric = Callable[..., float]

METRICS: dict[str, Metric] = {
    "qa_f1_score": qa_f1_score,
    "qa_f1_zh_score": qa_f1_zh_score,
    "rouge_score": rouge_l_score,
    "rouge_l_score": rouge_l_score,
    "rouge_zh_score": rouge_zh_score,
    "qa_f1_zh_char_score": functools.partial(qa_f1_zh_score, zh_tokens="char"),
    "rouge_zh_char_score": functools.partial(rouge_zh_score, zh_tokens="char"),
    "classification_score": classification_score,
    "retrieval_score": retrieval_score,
    "retrieval_zh_score": retrieval_zh_score,
    "count_score": count_score,
    "code_sim_score": code_sim_score,
    "exact_match": exact_match,
}

#: LongBench's dataset -> metric table (``eval.py``).
DATASET_METRICS: dict[str, str] = {
    "narrativeqa": "qa_f1_score", "qasper": "qa_f1_score", "multifieldqa_en": "qa_f1_score",
    "multifieldqa_zh": "qa_f1_zh_score", "hotpotqa": "qa_f1_score", "2wikimqa": "qa_f1_score",
    "musique": "qa_f1_score", "dureader": "rouge_zh_score", "gov_report": "rouge_score",
    "qmsum": "rouge_score", "multi_news": "rouge_score", "vcsum": "rouge_zh_score",
    "trec": "classification_score", "triviaqa": "qa_f1_score", "samsum": "rouge_score",
    "lsht": "classification_score", "passage_retrieval_en": "retrieval_score",
    "passage_count": "count_score", "passage_retrieval_zh": "retrieval_zh_score",
    "lcc": "code_sim_score", "repobench-p": "code_sim_score",
}
# Few-shot datasets whose answers LongBench cuts to the first line before scoring.
_FIRST_LINE_DATASETS = frozenset({"trec", "triviaqa", "samsum", "lsht"})


def score(
    prediction: str,
    answers: str | Sequence[str],
    metric: str | Metric,
    *,
    all_classes: Sequence[str] | None = None,
    first_line: bool | None = None,
    zh_tokens: str = "jieba",
) -> float:
    """Best score of ``prediction`` over the gold ``answers``, as LongBench's ``scorer`` does.

    ``metric`` is a name in :data:`METRICS`, a LongBench dataset name (which picks its metric
    and, for trec/triviaqa/samsum/lsht, scores only the answer's first line), or a callable.
    ``zh_tokens`` ("jieba" or "char") tells the built-in Chinese metrics how to cut words.
    """
    if isinstance(answers, str):
        answers = [answers]
    if not answers:
        raise ValueError("score needs at least one gold answer")
    cut = False
    if callable(metric):
        fn = metric
    elif metric in METRICS:
        fn = METRICS[metric]
    elif metric in DATASET_METRICS:
        fn = METRICS[DATASET_METRICS[metric]]
        cut = metric in _FIRST_LINE_DATASETS
    else:
        known = ", ".join(sorted(METRICS))
        raise ValueError(f"unknown metric {metric!r} (metrics: {known}; or a LongBench dataset)")
    if first_line is not None:
        cut = first_line
    if cut:
        prediction = prediction.lstrip("\n").split("\n")[0]
    if zh_tokens not in ZH_TOKENS:
        check_zh_tokens(zh_tokens)  # names the modes
    if zh_tokens != "jieba" and fn in (qa_f1_zh_score, rouge_zh_score):
        fn = functools.partial(fn, zh_tokens=zh_tokens)
    return max(fn(prediction, gold, all_classes=all_classes) for gold in answers)
