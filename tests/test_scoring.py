"""Scoring metrics against hand-worked examples (the arithmetic is in the comments)."""

from __future__ import annotations

import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glyph_render.scoring import (
    DATASET_METRICS,
    METRICS,
    character_error_rate,
    check_zh_tokens,
    classification_score,
    code_sim_score,
    count_score,
    exact_match,
    lcs_length,
    levenshtein,
    levenshtein_ratio,
    mrcr_score,
    normalize_answer,
    normalize_zh_answer,
    qa_f1_score,
    qa_f1_zh_score,
    retrieval_score,
    retrieval_zh_score,
    rouge_l_score,
    rouge_zh_score,
    score,
    zh_words,
)


def test_normalisation():
    # lower -> drop punctuation -> drop articles -> collapse whitespace
    assert normalize_answer("The  U.S.A.,\tan Ally!") == "usa ally"
    # zh: punctuation (ASCII and CJK) and all whitespace go; case folds
    assert normalize_zh_answer("北京 是「首都」。OK") == "北京是首都ok"


def test_qa_f1_hand_worked():
    # pred "cat sat on mat" (4 tokens), gold "cat sat" (2): overlap 2
    # P = 2/4, R = 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert qa_f1_score("The cat sat on the mat.", "A cat sat.") == pytest.approx(2 / 3)
    # overlap counts multiplicity: pred [paris, paris, london], gold [paris] -> overlap 1
    # P = 1/3, R = 1, F1 = (2/3) / (4/3) = 0.5
    assert qa_f1_score("Paris Paris London", "paris") == pytest.approx(0.5)
    assert qa_f1_score("Berlin", "Paris") == 0.0
    assert qa_f1_score("", "Paris") == 0.0
    # articles alone normalise to nothing: no tokens, no overlap
    assert qa_f1_score("the", "a") == 0.0


def test_qa_f1_zh_per_character():
    # pred 北京是首都 (5 chars after dropping 。), gold 首都北京 (4): overlap 4
    # P = 4/5, R = 4/4, F1 = 2 * 0.8 / 1.8 = 8/9
    assert qa_f1_zh_score("北京是首都。", "首都北京", zh_tokens="char") == pytest.approx(8 / 9)
    assert qa_f1_zh_score("上海", "北京", zh_tokens="char") == 0.0
    assert METRICS["qa_f1_zh_char_score"]("北京是首都。", "首都北京") == pytest.approx(8 / 9)


def test_qa_f1_zh_with_jieba_words_as_longbench():
    # jieba: 北京/是/中国/的/首都/。 -> normalised, 。 emptied and dropped: 5 words;
    # gold 中国/的/首都 (3): overlap 3 -> P = 3/5, R = 1, F1 = 1.2 / 1.6 = 0.75
    assert qa_f1_zh_score("北京是中国的首都。", "中国的首都") == pytest.approx(0.75)
    # jieba keeps 首都北京 one word, so it shares nothing with 北京/是/首都 (per character: 8/9)
    assert qa_f1_zh_score("北京是首都。", "首都北京") == 0.0
    # one word 北京大学 shares no word with 北京 (per character it would score 2/3)
    assert qa_f1_zh_score("北京大学", "北京") == 0.0
    assert qa_f1_zh_score("北京大学", "北京", zh_tokens="char") == pytest.approx(2 / 3)


def test_rouge_l_single_sentence():
    # one sentence each (no "."); rouge counts DISTINCT words (exclusive=True)
    # ref  the cat is  on the mat -> {the, cat, is, on, mat}: m = 5
    # hyp  the cat sat on the mat -> {the, cat, sat, on, mat}: n = 5
    # LCS = the cat on the mat -> distinct {the, cat, on, mat} = 4
    # R = P = 4/5, F = 2PR/(P+R+1e-8) = 0.8
    assert rouge_l_score("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.8)


def test_rouge_l_summary_level_union():
    # The ROUGE note's example: ref r = w1 w2 w3 w4 w5; hyp sentences c1 = w1 w2 w6 w7 w8 and
    # c2 = w1 w3 w8 w9 w5. LCS(r,c1) = w1 w2, LCS(r,c2) = w1 w3 w5; union {w1,w2,w3,w5} = 4.
    # m = 5 distinct ref words, n = 8 distinct hyp words (w1 w2 w6 w7 w8 w3 w9 w5)
    # R = 4/5, P = 4/8, F = 2 * 0.4 / 1.3 = 8/13
    got = rouge_l_score("w1 w2 w6 w7 w8. w1 w3 w8 w9 w5", "w1 w2 w3 w4 w5")
    assert got == pytest.approx(8 / 13)


def test_rouge_l_quirks_kept():
    # no lowercasing: "Cat" and "cat" are different words
    assert rouge_l_score("Cat", "cat") == 0.0
    # nothing but dots: no sentence -> rouge raises, LongBench scores 0
    assert rouge_l_score("...", "the cat") == 0.0
    assert rouge_l_score("", "the cat") == 0.0
    # a trailing ". " leaves a sentence of spaces, i.e. the word "": ref words {a, b, ""}, m = 3;
    # hyp {a, b}, n = 2; overlap {a, b} = 2 -> R = 2/3, P = 1, F = (4/3) / (5/3) = 0.8
    assert rouge_l_score("a b.", "a b. ") == pytest.approx(0.8)


def test_rouge_zh_per_character():
    # ref 我 爱 上 海 (m = 4), hyp 我 爱 北 京 (n = 4), LCS 我 爱 = 2 -> P = R = 0.5, F = 0.5
    assert rouge_zh_score("我爱北京", "我爱上海", zh_tokens="char") == pytest.approx(0.5)
    assert METRICS["rouge_zh_char_score"]("我爱北京", "我爱上海") == pytest.approx(0.5)


def test_rouge_zh_with_jieba_words_as_longbench():
    # jieba: hyp 我/爱/北京/天安门 (n = 4), ref 我/爱/北京 (m = 3), LCS 3 words
    # R = 1, P = 3/4, F = 2 * 0.75 / 1.75 = 6/7 (per character: 8/11)
    assert rouge_zh_score("我爱北京天安门", "我爱北京") == pytest.approx(6 / 7)
    assert rouge_zh_score("我爱北京天安门", "我爱北京", zh_tokens="char") == pytest.approx(8 / 11)
    # ref 我/爱/上海 (m = 3), hyp 我/爱/北京 (n = 3), LCS 2 -> F = 2/3
    assert rouge_zh_score("我爱北京", "我爱上海") == pytest.approx(2 / 3)


def test_zh_tokens_through_score_and_dataset_names():
    # multifieldqa_zh is qa_f1_zh_score, dureader and vcsum rouge_zh_score (LongBench's eval.py)
    assert score("北京大学", ["北京"], "multifieldqa_zh") == 0.0
    assert score("北京大学", ["北京"], "multifieldqa_zh", zh_tokens="char") == pytest.approx(2 / 3)
    assert score("我爱北京天安门", "我爱北京", "dureader") == pytest.approx(6 / 7)
    assert score("我爱北京天安门", "我爱北京", "vcsum", zh_tokens="char") == pytest.approx(8 / 11)
    with pytest.raises(ValueError, match="zh_tokens must be one of jieba, char"):
        score("a", "a", "qa_f1_score", zh_tokens="words")
    assert zh_words("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    assert zh_words("北京", "char") == ["北", "京"]
    check_zh_tokens("jieba")  # jieba is installed (the longbench extra)


def _longbench_rouge_zh(prediction: str, ground_truth: str) -> float:
    """LongBench's ``rouge_zh_score`` as its metrics.py writes it: jieba, then ``rouge``."""
    import jieba
    from rouge import Rouge

    pred = " ".join(jieba.cut(prediction, cut_all=False))
    gold = " ".join(jieba.cut(ground_truth, cut_all=False))
    try:
        return Rouge().get_scores([pred], [gold], avg=True)["rouge-l"]["f"]
    except Exception:  # LongBench's bare except: an empty side scores 0
        return 0.0


def test_rouge_zh_equals_longbench_on_real_chinese():
    """Our ROUGE-L on jieba words against the ``rouge`` package LongBench calls."""
    import random
    from pathlib import Path

    import glyph_render

    corpus = Path(glyph_render.__file__).parent / "data" / "corpus"
    text = (corpus / "zh_luxun_zhaohua_xishi.txt").read_text(encoding="utf-8")
    sentences = [s.strip() for s in text.replace("\n", "").split("。") if 4 <= len(s.strip()) <= 60]
    rng = random.Random(7)
    for _ in range(60):
        a, b = rng.sample(sentences, 2)
        pred = a + "。" + b if rng.random() < 0.5 else a
        gold = b[: len(b) // 2] + a[len(a) // 3:]
        assert rouge_zh_score(pred, gold) == pytest.approx(_longbench_rouge_zh(pred, gold),
                                                           abs=1e-9), (pred, gold)


def test_classification():
    classes = ["City", "Country", "Other location", "location"]
    # both "City" and "Country" named, gold among them -> 1/2
    assert classification_score("City, Country", "City", all_classes=classes) == 0.5
    # "location" is a proper substring of the gold "Other location": dropped -> 1/1
    assert classification_score("Other location", "Other location", all_classes=classes) == 1.0
    # gold not named -> 0 (LongBench's difflib fallback never runs)
    assert classification_score("Mountain", "City", all_classes=classes) == 0.0
    with pytest.raises(ValueError, match="all_classes"):
        classification_score("City", "City")


def test_retrieval_and_count():
    # numbers [3, 7], gold paragraph 7 -> 1 of 2
    assert retrieval_score("Paragraph 3 and Paragraph 7", "Paragraph 7") == 0.5
    assert retrieval_score("It is paragraph 7.", "Paragraph 7") == 1.0
    assert retrieval_score("I do not know", "Paragraph 7") == 0.0
    assert retrieval_zh_score("答案是段落5", "段落5") == 1.0
    with pytest.raises(ValueError, match="paragraph"):
        retrieval_score("7", "seven")
    # numbers [12, 30], gold 12 -> 1 of 2
    assert count_score("There are 12 unique paragraphs out of 30", "12") == 0.5
    assert count_score("12", 12) == 1.0
    assert count_score("twelve", "12") == 0.0


def test_code_sim():
    # first line without ` # // is "return x + 1" (12 chars) vs "return x+1" (10):
    # LCS = 10, ratio = 2*10/22 = 90.9% -> fuzz.ratio rounds to 91 -> 0.91
    assert code_sim_score("```python\nreturn x + 1\n```", "return x+1") == 0.91
    # a comment line is skipped, the code line matches exactly
    assert code_sim_score("# add one\nreturn y", "return y") == 1.0
    # only fences/comments: the compared line is "" -> 0
    assert code_sim_score("```\n// nothing\n```", "return y") == 0.0


def test_exact_match():
    assert exact_match("The Answer!", "answer") == 1.0
    assert exact_match("The Answer!", "answer", normalize=False) == 0.0
    assert exact_match("answers", "answer") == 0.0


def test_score_takes_the_best_gold_and_dataset_rules():
    assert score("Paris", ["London", "Paris"], "qa_f1_score") == 1.0
    assert score("Paris", "London", "qa_f1_score") == 0.0
    classes = ["City", "Country"]
    # trec: LongBench scores only the first line -> "City" alone -> 1.0
    assert score("City\nCountry", ["City"], "trec", all_classes=classes) == 1.0
    # the bare metric sees both lines: two classes named -> 1/2
    assert score("City\nCountry", ["City"], "classification_score", all_classes=classes) == 0.5
    assert score("x", ["x"], lambda p, g, **_: float(p == g)) == 1.0
    with pytest.raises(ValueError, match="unknown metric"):
        score("x", ["x"], "bleu")
    with pytest.raises(ValueError, match="gold"):
        score("x", [], "qa_f1_score")
    assert set(DATASET_METRICS.values()) <= set(METRICS)


def test_mrcr():
    prefix = "aB3x9"
    assert mrcr_score(prefix + "Hello world", prefix + "Hello world", prefix) == 1.0
    # no prefix (or not at the very start) -> 0, however good the rest
    assert mrcr_score("Hello world", prefix + "Hello world", prefix) == 0.0
    assert mrcr_score(" " + prefix + "Hello world", prefix + "Hello world", prefix) == 0.0
    # prefix stripped from both: "Hello" vs "Hello world": 5 matching chars,
    # ratio = 2*5 / (5 + 11) = 0.625
    assert mrcr_score(prefix + "Hello", prefix + "Hello world", prefix) == pytest.approx(0.625)


def test_cer_hand_worked():
    # kitten -> sitting: k->s, e->i substituted, g inserted = 3 edits over 6 ref chars
    assert character_error_rate("sitting", "kitten") == pytest.approx(3 / 6)
    assert character_error_rate("kiten", "kitten") == pytest.approx(1 / 6)  # one deletion
    assert character_error_rate("kitttten", "kitten") == pytest.approx(2 / 6)  # two insertions
    # insertions can push CER over 1
    assert character_error_rate("abcabc", "ab") == pytest.approx(4 / 2)
    # whitespace: a doubled space (1 deletion) and a newline for a space (1 substitution)
    assert character_error_rate("the  cat\nsat", "the cat sat") == pytest.approx(2 / 11)
    assert character_error_rate("the  cat\nsat ", "the cat sat", whitespace="collapse") == 0.0
    assert character_error_rate("日 本 語", "日本語", whitespace="remove") == 0.0
    assert character_error_rate("", "") == 0.0
    assert character_error_rate("x", "") == 1.0
    with pytest.raises(ValueError, match="whitespace"):
        character_error_rate("a", "a", whitespace="squash")


def _dp(a: str, b: str, sub: int) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (sub if ca != cb else 0)))
        prev = cur
    return prev[-1]


texts = st.text(alphabet="abcé😀 \n", max_size=70)


@given(texts, texts)
@settings(max_examples=300, deadline=None)
def test_bit_parallel_distances_match_the_textbook_dp(a, b):
    assert levenshtein(a, b) == _dp(a, b, 1)
    assert levenshtein(a, b) == levenshtein(b, a)
    # indel distance (substitution = delete + insert) = len(a) + len(b) - 2 LCS
    assert lcs_length(a, b) * 2 == len(a) + len(b) - _dp(a, b, 2)
    total = len(a) + len(b)
    assert levenshtein_ratio(a, b) == pytest.approx(1 - _dp(a, b, 2) / total if total else 1.0)


def test_lcs_and_levenshtein_on_token_lists():
    assert lcs_length(["the", "cat", "sat"], ["the", "sat"]) == 2
    assert levenshtein(["a", "b"], ["a", "c", "b"]) == 1


def test_cer_is_fast_on_page_length_strings():
    # A dense page holds ~10,000 characters; the quadratic DP in Python takes minutes there.
    ref = ("It is a truth universally acknowledged, that a single man in possession of a good "
           "fortune, must be in want of a wife. ") * 90
    hyp = ref.replace("e", "c", 200).replace("ss", "s")
    t0 = time.perf_counter()
    cer = character_error_rate(hyp, ref)
    assert time.perf_counter() - t0 < 2.0
    # 200 substitutions, plus one deletion for each "ss" (2 per sentence x 90)
    assert cer == pytest.approx((200 + 180) / len(ref))


def test_missing_jieba_is_one_line_naming_the_extra(monkeypatch):
    # The test environment has jieba; hiding it from import is the only way to meet its absence.
    from glyph_render import scoring
    from glyph_render.errors import ConfigError

    monkeypatch.setitem(sys.modules, "jieba", None)
    scoring._jieba.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"glyph-render\[longbench\]") as exc:
            rouge_zh_score("我爱北京", "我爱上海")
        assert "\n" not in str(exc.value)
        assert rouge_zh_score("我爱北京", "我爱上海", zh_tokens="char") == pytest.approx(0.5)
    finally:
        scoring._jieba.cache_clear()
