"""``glyph-render eval`` end to end: the real CLI against ``serve-ocr`` started as a process.

serve-ocr OCRs the pages with Tesseract and answers with the best-matching sentence, so a
planted needle comes back verbatim: the niah run must score high. It answers only from images,
so text-mode runs check the request and the token accounting instead of accuracy. The servers
count text with cl100k_base, the client's tokenizer, so predicted and served prompt tokens
must agree exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from glyph_render.evaluate.longbench_task import (
    DATASET2MAXLEN,
    DATASET2PROMPT,
    image_prompt,
    length_bucket,
    split_template,
)
from glyph_render.evaluate.mrcr_task import length_bin, render_conversation
from glyph_render.evaluate.niah_task import parse_depths, parse_lengths
from glyph_render.evaluate.runner import markdown_table, tokens_label, truncate_middle
from glyph_render.niah import PACKAGE_CORPUS
from glyph_render.scoring import DATASET_METRICS, mrcr_score
from glyph_render.text_tokens import get_tokenizer

CORPUS = PACKAGE_CORPUS
TOK = get_tokenizer("cl100k_base")


try:
    from ocr_server_process import ServeOcr
    from ocr_server_process import serve_ocr as _serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import ServeOcr
    from tests.ocr_server_process import serve_ocr as _serve_ocr


def serve_ocr(tmp: Path, *args: str) -> contextlib.AbstractContextManager[ServeOcr]:
    """serve-ocr counting text with cl100k_base, as the harness's predictions do."""
    return _serve_ocr(tmp, "--tokenizer", "cl100k_base", *args)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeOcr]:
    with serve_ocr(tmp_path_factory.mktemp("serve-ocr")) as srv:
        yield srv


def glyph_eval(*args: Any, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m glyph_render.cli eval ARGS`` as a real process (without ``GLYPH_CORPUS``:
    the default haystacks are the package's corpus)."""
    base = {k: v for k, v in os.environ.items() if k != "GLYPH_CORPUS"}
    return subprocess.run(
        [sys.executable, "-m", "glyph_render.cli", "eval", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**base, "PYTHONIOENCODING": "utf-8", **(env or {})})


def items(out: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (out / "items.jsonl").read_text().splitlines()]


# ---- niah ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_niah_end_to_end_scores_the_grid(server: ServeOcr, tmp_path: Path) -> None:
    out = tmp_path / "niah"
    proc = glyph_eval("niah", "--endpoint", server.url, "--haystack", CORPUS,
                      "--lengths", "1000,2000", "--depths", "0.1,0.5,0.9", "--kinds", "number",
                      "--dpi", 96, "--concurrency", 2, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res == json.loads((out / "results.json").read_text())
    assert res["task"] == "niah" and res["mode"] == "image"
    assert res["items"] == res["ok"] == 6 and res["errors"] == 0 and res["invalid"] == 0
    assert 0.8 <= res["score"] <= 1.0  # needles come back verbatim from Tesseract at 96 DPI
    assert res["lengths"] == [1000, 2000] and res["depths"] == [0.1, 0.5, 0.9]
    cells = {(c["length"], c["depth"]): c for c in res["cells"]}
    assert set(cells) == {(n, d) for n in (1000, 2000) for d in (0.1, 0.5, 0.9)}
    for c in cells.values():
        assert 0.0 <= c["score"] <= 1.0 and c["n"] == 1
        assert c["compression_ratio"] > 1 and c["prompt_tokens_mean"] > 0
    assert set(res["by_length"]) == {"1000", "2000"} and set(res["by_depth"]) == {
        "0.1", "0.5", "0.9"}
    comp = res["compression"]
    assert comp["compression_ratio"] > 1 and comp["dpi"] == [96]
    assert comp["prompt_tokens"] == comp["predicted_prompt_tokens"] > comp["vision_tokens"] > 0
    assert res["files"]["heatmap"] == "heatmap.png"
    recs = items(out)
    assert len(recs) == 6
    for r in recs:
        assert r["status"] == "ok" and r["pages"] >= 1 and r["dpi"] == 96
        assert r["prompt_tokens"] == r["predicted_prompt_tokens"]
        assert r["compression_ratio"] == pytest.approx(r["text_tokens"] / r["vision_tokens"],
                                                       abs=1e-3)
        assert abs(r["context_tokens"] - r["length"]) <= 0.05 * r["length"]
        assert r["question"].endswith("mentioned in the provided text?")
        if r["score"] == 1.0:
            assert r["answers"][0] in r["prediction"]
    with Image.open(out / "heatmap.png") as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 150
    table = (out / "results.md").read_text()
    assert "depth \\ length" in table and "ratio" in table and "prompt tokens" in table


def test_niah_as_text_sends_text_tokens_not_pages(server: ServeOcr, tmp_path: Path) -> None:
    out = tmp_path / "text"
    before = len(server.chat_lines())
    proc = glyph_eval("niah", "--endpoint", server.url, "--lengths", 1000, "--depths", 0.5,
                      "--kinds", "number,word", "--as-text", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "text mode" in proc.stdout and "| depth \\ length" in proc.stdout
    lines = server.chat_lines()[before:]
    assert len(lines) == 2 and all(" pages=0 " in ln for ln in lines)  # no image parts
    res = json.loads((out / "results.json").read_text())
    assert res["mode"] == "text" and res["settings"]["render_configs"] == {}
    assert res["compression"]["compression_ratio"] == 1.0
    assert res["compression"]["vision_tokens"] == 0 and res["compression"]["pages"] == 0
    assert res["files"]["heatmap"] == "heatmap.png"  # drawn in text mode too, for comparison
    for r in items(out):
        assert r["mode"] == "text" and r["pages"] == 0 and r["vision_tokens"] == 0
        assert r["truncated_tokens"] == 0
        # the prompt is the context's text tokens plus the instruction, question and template
        assert r["prompt_tokens"] == r["predicted_prompt_tokens"]
        overhead = r["prompt_tokens"] - r["text_tokens"]
        assert 20 < overhead < 120, overhead


def test_as_text_cuts_the_middle_to_fit_and_never_prints_the_key(tmp_path: Path) -> None:
    with serve_ocr(tmp_path, "--max-model-len", "1500", "--api-key", "right-key-123") as srv:
        out = tmp_path / "cut"
        proc = glyph_eval("niah", "--endpoint", srv.url, "--lengths", "1000,3000",
                          "--depths", 0.5, "--kinds", "number", "--as-text", "--max-tokens",
                          100, "--api-key-env", "EVAL_KEY", "-o", out,
                          env={"EVAL_KEY": "right-key-123"})
        assert proc.returncode == 0, proc.stderr
        recs = {r["length"]: r for r in items(out)}
        assert recs[1000]["truncated_tokens"] == 0
        long = recs[3000]
        assert long["truncated_tokens"] > 1000 and long["prompt_tokens"] + 100 <= 1500
        assert json.loads((out / "results.json").read_text())["compression"][
            "truncated_items"] == 1
        bad = glyph_eval("niah", "--endpoint", srv.url, "--lengths", 1000, "--depths", 0.5,
                         "--kinds", "number", env={"OPENAI_API_KEY": "wrong-key-456"})
        assert bad.returncode == 2
        assert bad.stderr.startswith("glyph-render: error:") and len(
            bad.stderr.strip().splitlines()) == 1
        assert "wrong-key-456" not in bad.stderr + bad.stdout
        assert "right-key-123" not in proc.stderr + proc.stdout


def test_unreachable_endpoint_and_bad_data_fail_in_one_line(tmp_path: Path) -> None:
    proc = glyph_eval("longbench", "--endpoint", "http://127.0.0.1:9",
                      "--data", tmp_path / "missing.jsonl")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    data = tmp_path / "hotpotqa.jsonl"
    data.write_text(json.dumps({"_id": "a", "input": "q?", "context": "Some text.",
                                "answers": ["x"]}) + "\n")
    proc = glyph_eval("longbench", "--endpoint", "http://127.0.0.1:9", "--data", data)
    assert proc.returncode == 2 and "cannot connect" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = glyph_eval("mrcr", "--data", data, "--dpi", 72, "--budget", 1000)
    assert proc.returncode == 2 and "not both" in proc.stderr


# ---- longbench ----------------------------------------------------------------------------

LONGBENCH_ITEMS = [
    {"_id": "hp1", "dataset": "hotpotqa", "language": "en", "length": 60, "all_classes": None,
     "input": "Which city hosts the Glass Lantern Festival?", "answers": ["Valmora"],
     "context": "Passage 1:\nThe river town of Ostrick is known for its bridges and mills. Its "
                "markets open at dawn.\nPassage 2:\nEvery autumn the Glass Lantern Festival is "
                "held in the coastal city of Valmora. Visitors come from far away.\nPassage 3:\n"
                "The mountain village of Keld has a small school and a bakery."},
    {"_id": "tr1", "dataset": "trec", "language": "en", "length": 40,
     "all_classes": ["Abbreviation", "Entity", "Description and abstract concept",
                     "Human being", "Location", "Numeric value"],
     "input": "Question: Where is the Glass Lantern Festival held?\nType:",
     "answers": ["Location"],
     "context": "Question: Where do the herons of Keld nest?\nType: Location\nQuestion: Who "
                "founded the town of Ostrick?\nType: Human being\nQuestion: How many bridges "
                "does Ostrick have?\nType: Numeric value"},
    {"_id": "pc1", "dataset": "passage_count", "language": "en", "length": 9000,
     "all_classes": None, "input": "", "answers": ["2"],
     "context": "Paragraph 1: The heron waded through the shallow pond at dusk.\n\nParagraph 2: "
                "The quarry closed after the winter floods of that year.\n\nParagraph 3: The "
                "heron waded through the shallow pond at dusk."},
]


def test_longbench_scores_each_dataset_with_its_metric(server: ServeOcr, tmp_path: Path) -> None:
    data = tmp_path / "mini.jsonl"
    data.write_text("".join(json.dumps(it) + "\n" for it in LONGBENCH_ITEMS) + '{"_id": 7}\n')
    out = tmp_path / "lb"
    proc = glyph_eval("longbench", "--endpoint", server.url, "--data", data, "--dpi", 96,
                      "-o", out, "--json")
    assert proc.returncode == 1, proc.stderr  # the invalid line is reported, not scored
    res = json.loads(proc.stdout)
    assert res["items"] == 3 and res["ok"] == 3 and res["invalid"] == 1
    ds = res["datasets"]
    assert list(ds) == ["hotpotqa", "trec", "passage_count"]  # LongBench's order
    assert {k: d["metric"] for k, d in ds.items()} == {
        "hotpotqa": "qa_f1_score", "trec": "classification_score",
        "passage_count": "count_score"}
    # The answer sentence is read back from the page: token F1 against "Valmora" is 2/13.
    assert ds["hotpotqa"]["score"] == pytest.approx(2 / 13, abs=1e-4)
    assert res["score"] == res["average"] == pytest.approx(
        sum(d["score"] for d in ds.values()) / 3, abs=1e-4)
    assert res["micro_score"] == pytest.approx(sum(r["score"] for r in items(out)
                                                   if r["status"] == "ok") / 3, abs=1e-4)
    assert set(ds["passage_count"]["by_length"]) == {"8k+"}
    for d in ds.values():
        assert d["n"] == 1 and d["compression_ratio"] > 0 and d["prompt_tokens_mean"] > 0
    recs = {r["id"]: r for r in items(out) if r["status"] == "ok"}
    hp = recs["hp1"]
    assert "Valmora" in hp["prediction"]
    # the instruction and question travel as text, the context only as pages
    assert hp["question"].startswith("Answer the question based on the given passages.")
    assert hp["question"].endswith("Question: Which city hosts the Glass Lantern Festival?"
                                   "\nAnswer:")
    assert "Passage 2" not in hp["question"] and "{context}" not in hp["question"]
    assert recs["pc1"]["question"].endswith("The final answer is:")
    invalid = [r for r in items(out) if r["status"] == "invalid"]
    assert len(invalid) == 1 and invalid[0]["line"] == 4
    assert "| **average**" in (out / "results.md").read_text()


ZH_ITEM = {"_id": "zh1", "dataset": "multifieldqa_zh", "language": "zh", "length": 30,
           "input": "会议在哪里举行？", "answers": ["会议在北京举行"],
           "context": "今年的年会于十月在北京举行，来自各地的代表参加了会议。"}


def test_longbench_zh_tokens_reach_the_scorer(tmp_path: Path) -> None:
    """--zh-tokens picks how Chinese answers are cut: jieba words (LongBench's) or characters;
    the grade of a built item is scoring.score with that mode."""
    from glyph_render.evaluate import build_parser
    from glyph_render.evaluate.longbench_task import build_items
    from glyph_render.evaluate.runner import settings_from_args
    from glyph_render.scoring import score

    data = tmp_path / "zh.jsonl"
    data.write_text(json.dumps(ZH_ITEM, ensure_ascii=False) + "\n", encoding="utf-8")
    pred = "在北京举行的会议"
    got = {}
    for mode in ("jieba", "char"):
        args = build_parser().parse_args(["longbench", "--data", str(data), "--dpi", "72",
                                          "--zh-tokens", mode])
        (item,), invalid = build_items(args, settings_from_args(args))
        assert not invalid
        got[mode] = item.grade(pred)
        assert got[mode] == score(pred, ZH_ITEM["answers"], "qa_f1_zh_score", zh_tokens=mode)
    assert got["jieba"] != got["char"]  # the two cuts give different numbers here
    assert build_parser().parse_args(["longbench", "--data", str(data)]).zh_tokens == "jieba"


def test_longbench_zh_without_jieba_fails_before_any_request(tmp_path: Path) -> None:
    """jieba not importable (a real ImportError: a module of that name that raises it, first
    on the path): a Chinese dataset stops at start-up with the extra to install; --zh-tokens
    char runs without it (and then meets the unreachable endpoint)."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "jieba.py").write_text("raise ImportError('jieba is blocked for this test')\n")
    path = os.pathsep.join(p for p in (str(block), str(Path(__file__).resolve().parents[1]),
                                       os.environ.get("PYTHONPATH")) if p)
    data = tmp_path / "multifieldqa_zh.jsonl"
    data.write_text(json.dumps(ZH_ITEM, ensure_ascii=False) + "\n", encoding="utf-8")
    common = ("longbench", "--endpoint", "http://127.0.0.1:9", "--data", data, "--dpi", 72)
    proc = glyph_eval(*common, env={"PYTHONPATH": path})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "jieba" in proc.stderr and "pip install 'glyph-render[longbench]'" in proc.stderr
    proc = glyph_eval(*common, "--zh-tokens", "char", env={"PYTHONPATH": path})
    assert proc.returncode == 2 and "cannot connect" in proc.stderr
    proc = glyph_eval(*common, "--zh-tokens", "words")
    assert proc.returncode == 2 and "--zh-tokens: invalid choice: 'words'" in proc.stderr


def test_jobs_metric_aliases_mean_jieba_or_char() -> None:
    from glyph_render.jobs.summary import METRIC_ALIASES
    from glyph_render.scoring import METRICS

    pred, gold = "在北京举行的会议", "会议在北京举行"
    for alias, mode in (("f1_zh", "jieba"), ("f1_zh_char", "char"), ("rouge_zh", "jieba"),
                        ("rouge_zh_char", "char")):
        metric = "qa_f1_zh_score" if alias.startswith("f1") else "rouge_zh_score"
        assert METRICS[METRIC_ALIASES[alias]](pred, gold) == METRICS[metric](
            pred, gold, zh_tokens=mode), alias


def test_longbench_prompts_remove_only_the_context() -> None:
    assert set(DATASET2PROMPT) == set(DATASET_METRICS) == set(DATASET2MAXLEN)
    for name, template in DATASET2PROMPT.items():
        head, tail = split_template(template)
        # text mode sends LongBench's own prompt: head + context + tail
        assert head + "CTX" + tail == template.replace("{context}", "CTX")
        prompt = image_prompt(template, "QQQ")
        assert "{context}" not in prompt and "{input}" not in prompt
        assert ("QQQ" in prompt) == ("{input}" in template), name
    assert image_prompt(DATASET2PROMPT["trec"], "Question: Why?\nType:") == (
        "Please determine the type of the question below. Here are some examples of "
        "questions.\n\nQuestion: Why?\nType:")
    assert image_prompt(DATASET2PROMPT["lcc"], "") == (
        "Please complete the code given below.\n\nNext line of code:")
    assert image_prompt("Read the pages. {input}", "Q") == "Read the pages. Q"  # no {context}
    assert [length_bucket(n) for n in (10, 3999, 4000, 8000, "x")] == [
        "0-4k", "0-4k", "4-8k", "8k+", None]


# ---- mrcr ---------------------------------------------------------------------------------

TAPIRS = [
    {"role": "user", "content": "Write a short poem about tapirs."},
    {"role": "assistant", "content": "Tapirs wander through the rain,\nsnouts that sniff the "
                                     "forest lane."},
    {"role": "user", "content": "Write a short poem about otters."},
    {"role": "assistant", "content": "Otters tumble in the stream,\nsleek and bright as any "
                                     "dream."},
    {"role": "user", "content": "Write a short poem about tapirs."},
    {"role": "assistant", "content": "Quiet tapirs in the night,\nstriped calves hidden out "
                                     "of sight."},
    {"role": "user", "content": "Prepend kX9QpL2w to the 2nd (1 indexed) short poem about "
                                "tapirs. Do not include any other text in your response."},
]


def test_render_conversation_blocks() -> None:
    text = render_conversation(TAPIRS[:3])
    assert text == ("User: Write a short poem about tapirs.\nAssistant: Tapirs wander through "
                    "the rain,\nsnouts that sniff the forest lane.\nUser: Write a short poem "
                    "about otters.")
    assert [length_bin(n) for n in (100, 4096, 4097, 9000, 131072)] == [
        "<=4K", "<=4K", "4K-8K", "8K-16K", "64K-128K"]


def test_mrcr_end_to_end(server: ServeOcr, tmp_path: Path) -> None:
    gold = "kX9QpL2w" + TAPIRS[5]["content"]
    entry = {"prompt": json.dumps(TAPIRS), "answer": gold, "random_string_to_prepend":
             "kX9QpL2w", "n_needles": 2, "desired_msg_index": 5, "total_messages": 7}
    data = tmp_path / "mrcr.jsonl"
    data.write_text(json.dumps(entry) + "\n" + json.dumps({**entry, "prompt": TAPIRS,
                                                           "n_needles": 4}) + "\n")
    out = tmp_path / "mrcr"
    before = len(server.chat_lines())
    proc = glyph_eval("mrcr", "--endpoint", server.url, "--data", data, "--dpi", 96, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "| needles" in proc.stdout and "| context tokens" in proc.stdout
    assert all(" pages=1 " in ln for ln in server.chat_lines()[before:])
    res = json.loads((out / "results.json").read_text())
    assert res["task"] == "mrcr" and res["items"] == 2 and res["errors"] == 0
    assert set(res["by_needles"]) == {"2", "4"} and set(res["by_length"]) == {"<=4K"}
    assert 0.0 <= res["score"] <= 1.0 and res["compression"]["compression_ratio"] > 0
    for r in items(out):
        assert r["question"] == TAPIRS[-1]["content"] and r["answers"] == [gold]
        assert r["score"] == pytest.approx(mrcr_score(r["prediction"], gold, "kX9QpL2w"))
        assert r["pages"] == 1 and r["prompt_tokens"] == r["predicted_prompt_tokens"]
        # the conversation went as pages: OCR reads its User:/Assistant: lines back
        assert r["prediction"].startswith(("User:", "Assistant:"))


# ---- helpers ------------------------------------------------------------------------------


def test_lengths_depths_and_labels() -> None:
    assert parse_lengths("2000, 8K,128k,2000") == [2000, 8192, 131072]
    assert parse_depths("0.9,0.1") == [0.1, 0.9] and parse_depths("10,50") == [0.1, 0.5]
    assert [tokens_label(n) for n in (4096, 131072, 2000, 1500, 900)] == [
        "4K", "128K", "2k", "1.5k", "900"]
    assert markdown_table(["a", "bb"], [[1, 22]]).splitlines() == [
        "| a | bb |", "|---|----|", "| 1 | 22 |"]


def test_truncate_middle_keeps_both_ends() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    cut = truncate_middle(text, 500, TOK)
    assert 490 <= TOK.count(cut) <= 500
    assert cut.startswith("word0 word1 ") and cut.endswith(" word2998 word2999")
    assert truncate_middle("short text", 500, TOK) == "short text"
    assert truncate_middle(text, 0, TOK) == ""
