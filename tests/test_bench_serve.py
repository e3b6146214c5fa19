"""``glyph-render bench serve`` against real serve-ocr processes (``--no-ocr``: fast, and the
token accounting is the client's own), plus its workload and figure arithmetic."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from glyph_render.serving.bench_report import RequestRecord, Run, format_result
from glyph_render.serving.bench_serve import main as bench_main
from glyph_render.serving.bench_workload import arrivals, documents, load_corpus

try:
    from test_doctor import serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.test_doctor import serve_ocr

REPO = Path(__file__).resolve().parents[1]
CHARS = (600, 3000)
PROMPTS = 5


@pytest.fixture(scope="module")
def bench(run_cli, tmp_path_factory) -> tuple[str, dict, Path]:
    """One benchmark run, both arms, two lengths: (stdout, the JSON, the PNG's path)."""
    out = tmp_path_factory.mktemp("bench")
    with serve_ocr("--no-ocr", "--reasoning-parser", "glm45", "--chunk-delay", "0.002") as url:
        proc = run_cli(["bench", "serve", "--endpoint", url, "--input-chars",
                        ",".join(map(str, CHARS)), "--output-len", "48", "--num-prompts",
                        str(PROMPTS), "--max-concurrency", "2", "--request-rate", "40",
                        "--tokenizer", "bytes", "--seed", "3", "--json", out / "bench.json",
                        "--plot", out / "bench.png"], cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads((out / "bench.json").read_text()), out / "bench.png"


def _table_value(block: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(\S+)$", block, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{block}"
    return match.group(1)


def test_report_has_a_seed_layout_block_per_arm_and_length(bench):
    stdout, data, _ = bench
    blocks = re.findall(r"=+ Serving Benchmark Result =+\n.*?\n={50}", stdout, re.DOTALL)
    assert len(blocks) == 2 * len(CHARS)
    runs = {(r["arm"], r["input_chars"]): r["summary"] for r in data["runs"]}
    for block in blocks:
        arm, chars = _table_value(block, "Arm:"), int(_table_value(block, "Document length "
                                                                   "(chars):"))
        s = runs[(arm, chars)]
        assert int(_table_value(block, "Successful requests:")) == PROMPTS
        assert int(_table_value(block, "Total input tokens:")) == s["total_input_tokens"]
        assert int(_table_value(block, "Total input vision tokens:")) == \
            s["total_input_vision_tokens"]
        assert float(_table_value(block, "Mean TTFT (ms):")) == pytest.approx(
            s["mean_ttft_ms"], abs=0.01)
        for label in ("Benchmark duration (s):", "Request throughput (req/s):",
                      "Median E2E Latency (ms):", "P99 TTFT (ms):", "Mean TPOT (ms):",
                      "P99 ITL (ms):", "Max ITL (ms):"):
            assert float(_table_value(block, label)) >= 0
        for rule in ("End-to-End Latency", "Time to First Token",
                     "Time per Output Token (excl. 1st token)", "Inter-Token Latency"):
            assert f"{rule:-^50}" in block
    assert "Text vs pages" in stdout


def test_figures_are_sane_and_add_up(bench):
    _, data, _ = bench
    assert data["settings"]["num_prompts"] == PROMPTS
    assert {(r["arm"], r["input_chars"]) for r in data["runs"]} == {
        (a, c) for a in ("text", "pages") for c in CHARS}
    for run in data["runs"]:
        s, reqs = run["summary"], run["requests"]
        assert s["successful_requests"] == PROMPTS == len(reqs)
        assert s["failed_requests"] == 0
        assert s["total_input_tokens"] == sum(r["prompt_tokens"] for r in reqs)
        assert s["total_input_tokens"] == s["total_input_text_tokens"] + \
            s["total_input_vision_tokens"]
        assert s["total_generated_tokens"] == sum(r["completion_tokens"] for r in reqs) > 0
        assert s["request_throughput"] == pytest.approx(PROMPTS / s["duration_s"])
        assert s["duration_s"] >= max(r["start"] + r["e2e"] for r in reqs) - 1e-6
        assert 1 <= s["peak_concurrent_requests"] <= 2  # --max-concurrency 2
        assert s["mean_ttft_ms"] <= s["mean_e2e_ms"]
        assert s["median_itl_ms"] > 0 and s["max_itl_ms"] >= s["p99_itl_ms"]
        for r in reqs:
            assert r["ok"] and r["error"] is None and r["chars"] == run["input_chars"]
            assert 0 < r["ttft"] <= r["e2e"]
            assert r["chunk_times"] == sorted(r["chunk_times"])
            assert r["ttft"] == pytest.approx(r["chunk_times"][0], abs=1e-5)
            assert len(r["itl"]) == len(r["chunk_times"]) - 1 > 0
            if run["arm"] == "pages":
                assert r["pages"] >= 1 and r["vision_tokens"] > 0
                assert r["prompt_tokens"] == r["predicted_prompt_tokens"]  # same arithmetic
                assert r["render_seconds"] > 0
            else:
                assert r["pages"] == 0 and r["vision_tokens"] == 0
        assert s["total_input_vision_tokens"] == sum(r["vision_tokens"] for r in reqs)


def test_same_documents_both_arms_and_pages_cost_less(bench):
    _, data, _ = bench
    runs = {(r["arm"], r["input_chars"]): r for r in data["runs"]}
    for chars in CHARS:
        text, pages = runs[("text", chars)], runs[("pages", chars)]
        assert [r["source"] for r in text["requests"]] == [r["source"] for r in pages["requests"]]
        assert len({r["source"] for r in text["requests"]}) == PROMPTS  # one document each
    big = CHARS[-1]
    assert runs[("pages", big)]["summary"]["total_input_tokens"] < \
        runs[("text", big)]["summary"]["total_input_tokens"] / 2
    starts = [r["start"] for r in runs[("text", big)]["requests"]]
    assert max(starts) > 0  # Poisson arrivals at 40/s, not all at once


def test_plot_is_a_png(bench):
    _, _, png = bench
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert img.width > 1000 and img.height > 300
        img.verify()


def test_failures_are_counted_not_fatal(run_cli, tmp_path):
    """The text arm overflows a small context; the same documents as pages fit."""
    with serve_ocr("--no-ocr", "--max-model-len", "1500") as url:
        proc = run_cli(["bench", "serve", "--endpoint", url, "--input-chars", "3000",
                        "--output-len", "8", "--num-prompts", "3", "--tokenizer", "bytes",
                        "--warmup", "0", "--generated", "--json", tmp_path / "b.json", "-q"],
                       cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    runs = {r["arm"]: r for r in json.loads((tmp_path / "b.json").read_text())["runs"]}
    text, pages = runs["text"]["summary"], runs["pages"]["summary"]
    assert (text["successful_requests"], text["failed_requests"]) == (0, 3)
    assert "maximum context length" in text["first_error"]
    assert pages["successful_requests"] == 3
    assert "3 request(s) failed; the first:" in proc.stdout
    assert runs["pages"]["requests"][0]["source"] == "generated"


@pytest.mark.parametrize("args", [["--arms", "video"], ["--request-rate", "0"],
                                  ["--input-chars", "10,x"], ["--num-prompts", "0"],
                                  ["--json", "/no/such/folder/out.json"]])
def test_bad_options_exit_2(capsys, args):
    argv = ["serve", "--endpoint", "http://127.0.0.1:9/v1", "--generated", *args]
    try:
        code = bench_main(argv)
    except SystemExit as exc:  # argparse's own exit for a malformed value
        code = exc.code
    assert code == 2
    assert "error" in capsys.readouterr().err


# --- workload and figures, no server ----------------------------------------------------------


def test_documents_are_exact_slices_and_reproducible(corpus_dir):
    corpus = load_corpus(corpus_dir)
    assert corpus and all(name.startswith("en_") and "\r\n" not in text
                          for name, text in corpus)
    docs = documents(5000, 4, random.Random(7), corpus)
    assert [len(d.text) for d in docs] == [5000] * 4
    again = documents(5000, 4, random.Random(7), corpus)
    assert docs == again
    texts = dict(corpus)
    for d in docs:
        name, offset = d.source.rsplit("@", 1)
        assert texts[name][int(offset):int(offset) + 5000] == d.text
    generated = documents(777, 2, random.Random(1))
    assert [len(d.text) for d in generated] == [777, 777]
    assert generated[0].source == "generated" and generated[0].text != generated[1].text


def test_arrivals_poisson_and_inf():
    assert arrivals(4, math.inf, random.Random(0)) == [0.0] * 4
    times = arrivals(4000, 20.0, random.Random(0))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times[0] == 0.0 and min(gaps) >= 0
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 20, rel=0.08)


def test_summary_arithmetic():
    recs = [
        RequestRecord(0, "a", 10, True, start=0.0, e2e=1.0, ttft=0.2,
                      chunk_times=[0.2, 0.6, 1.0], prompt_tokens=100, completion_tokens=5,
                      vision_tokens=60, pages=1),
        RequestRecord(1, "b", 10, True, start=0.5, e2e=1.0, ttft=0.4,
                      chunk_times=[0.4, 1.0], prompt_tokens=120, completion_tokens=3,
                      vision_tokens=80, pages=2),
        RequestRecord(2, "c", 10, False, start=0.6, e2e=0.1, error="boom"),
    ]
    run = Run("pages", 10, "http://x/v1", "m", math.inf, 2, 2.0, recs)
    s = run.summary()
    assert (s["successful_requests"], s["failed_requests"]) == (2, 1)
    assert (s["total_input_tokens"], s["total_input_vision_tokens"],
            s["total_input_text_tokens"]) == (220, 140, 80)
    assert s["request_throughput"] == 1.0 and s["output_throughput"] == 4.0
    assert s["mean_ttft_ms"] == pytest.approx(300.0)
    assert s["mean_tpot_ms"] == pytest.approx((0.8 / 4 + 0.6 / 2) / 2 * 1000)
    assert s["max_itl_ms"] == pytest.approx(600.0)
    assert s["peak_concurrent_requests"] == 3
    assert s["concurrency"] == pytest.approx(1.0)
    assert s["first_error"] == "boom"
    table = format_result(run)
    assert "Successful requests:                     2" in table
    assert "Pages per request (mean):                1.50" in table
