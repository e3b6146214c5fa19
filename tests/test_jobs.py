"""``glyph-render batch`` (glyph_render.jobs): inputs, names, records, resume, faults, modes.

Endpoints are ``serve-ocr`` started as real processes (``python -m glyph_render.testing``) and
jobs run as real CLI processes, killed with a real SIGKILL. The one simulated fault is a torn
last line: a kill -9 almost never lands inside the single ``write`` of a record, so the test
appends half a record by hand, as a crash mid-``write`` (or a power cut) would leave it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glyph_render.files import RecordWriter
from glyph_render.jobs.inputs import BadLine, Item, iter_entries
from glyph_render.jobs.naming import HASH_CHARS, PREFIX_CHARS, item_dir, safe_name
from glyph_render.jobs.records import compact, latest_records, scan_output
from glyph_render.jobs.summary import score_answer, summary_path

HOSTILE_IDS: list[Any] = [
    "../x", "../../etc/passwd", "/etc/passwd", "", ".", "..", "a/b\\c", "x" * 5000,
    "nul\x00byte", "CON", "con.txt", "LPT1", "aux", "Doc", "doc", "日本語の文書", "emoji 🎉",
    "   ", "\ud800lone surrogate", 17, "17", -3, "C:\\Windows\\x", "trailing. ",
]


# --- helpers: real processes -------------------------------------------------------------------


def batch_cmd() -> list[str]:
    """``glyph-render batch`` once the dispatcher registers it, else the package's own entry."""
    from glyph_render import cli

    if "batch" in getattr(cli, "SUBCOMMANDS", {}):
        return [sys.executable, "-m", "glyph_render.cli", "batch"]
    return [sys.executable, "-m", "glyph_render.jobs"]


def run_batch(*args: Any, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*batch_cmd(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


try:
    from ocr_server_process import ServeOcr, serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import ServeOcr, serve_ocr


@pytest.fixture(scope="module")
def mtmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def fast(mtmp: Path) -> Iterator[ServeOcr]:
    """No OCR: answers at once, so a job measures the client and the scheduler."""
    with serve_ocr(mtmp, "--no-ocr") as srv:
        yield srv


@pytest.fixture(scope="module")
def fast2(mtmp: Path) -> Iterator[ServeOcr]:
    with serve_ocr(mtmp, "--no-ocr") as srv:
        yield srv


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with open(path, "wb") as f:
        for r in rows:
            line = r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
            try:
                f.write(line.encode("utf-8") + b"\n")
            except UnicodeEncodeError:  # a lone surrogate: only JSON's \\u escape can carry it
                f.write(json.dumps(r).encode("ascii") + b"\n")
    return path


def qa_rows(n: int, prefix: str = "doc") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}",
             "context": f"Record {i}. The secret code for item {i} is K{i * 7919}. "
                        "The lantern glowed over the quiet harbour.",
             "question": f"What is the secret code for item {i}?",
             "answers": [f"K{i * 7919}"]} for i in range(n)]


def read_records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def one_per_id(records: list[dict[str, Any]]) -> Counter[str]:
    counts = Counter(json.dumps(r["id"]) for r in records if r["status"] != "invalid")
    assert all(c == 1 for c in counts.values()), [k for k, c in counts.items() if c > 1]
    return counts


# --- names -------------------------------------------------------------------------------------

SAFE = re.compile(r"^[^\W][\w-]*-[0-9a-f]{" + str(HASH_CHARS) + "}$")
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                    *(f"lpt{i}" for i in range(10))}


def check_name(raw_id: Any, root: Path) -> str:
    name = safe_name(raw_id)
    assert SAFE.match(name), name
    assert "\x00" not in name and "/" not in name and "\\" not in name and "." not in name
    assert len(name.encode("utf-8")) <= 3 * PREFIX_CHARS + 1 + HASH_CHARS < 255
    assert name.split(".")[0].lower() not in WINDOWS_RESERVED
    assert item_dir(root, raw_id).parent == root.resolve()
    assert safe_name(raw_id) == name  # deterministic
    return name


def test_hostile_ids_get_safe_distinct_names(tmp_path: Path) -> None:
    names = [check_name(i, tmp_path) for i in HOSTILE_IDS]
    assert len(set(names)) == len(names)
    assert len({n.lower() for n in names}) == len(names)  # case-insensitive disks too
    assert safe_name("chapter-1").startswith("chapter-1-")  # readable when it can be


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=300), st.integers()), min_size=2, max_size=8,
                unique_by=lambda x: json.dumps(x)))
def test_distinct_ids_never_share_a_name(ids: list[Any]) -> None:
    root = Path("/tmp/glyph-jobs-root")
    names = [check_name(i, root) for i in ids]
    assert len({n.lower() for n in names}) == len(ids)


# --- inputs ------------------------------------------------------------------------------------


def test_bad_lines_become_entries_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("Text from a file.", encoding="utf-8")
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "context": "alpha", "question": "q?"},            # 1 ok
        "{not json",                                                   # 2
        {"context": "no id", "question": "q?"},                        # 3
        {"id": "b", "question": "q?"},                                 # 4 no text
        {"id": "a", "context": "again", "question": "q?"},            # 5 duplicate
        "",                                                            # 6 blank: skipped
        {"unique_id": 7, "text": "glyph style", "question": "q?"},    # 7 ok, int id
        {"_id": "lb", "context": "longbench", "input": "q?", "answers": ["x"],
         "dataset": "hotpotqa"},                                       # 8 ok, LongBench keys
        {"id": "c", "context": "no question"},                         # 9 (qa needs one)
        ["a", "list"],                                                 # 10
        {"id": True, "context": "bool id", "question": "q"},           # 11
        {"id": "p", "path": "doc.txt", "question": "q?"},             # 12 ok, relative path
        {"id": "e", "context": "   ", "question": "q?"},              # 13 empty text
        {"id": "cfg", "context": "x", "question": "q", "config": "dpi=96"},  # 14
    ])
    entries = list(iter_entries(src, "qa"))
    bad = {e.line: e for e in entries if isinstance(e, BadLine)}
    good = {e.line: e for e in entries if isinstance(e, Item)}
    assert sorted(good) == [1, 7, 8, 12]
    assert sorted(bad) == [2, 3, 4, 5, 9, 10, 11, 13, 14]
    assert all(f"line {n}:" in b.message for n, b in bad.items())
    assert bad[5].error_type == "DuplicateId" and bad[5].id == "a"
    assert good[7].id == 7 and good[8].question == "q?" and good[8].answers == ["x"]
    assert good[8].extra == {"dataset": "hotpotqa"}
    assert good[12].path == str(tmp_path / "doc.txt")
    # without qa, a missing question is fine
    assert 9 not in {e.line for e in iter_entries(src, "render") if isinstance(e, BadLine)}


def test_folder_input(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c.md", "skip.json"):  # documents: .txt, .md, .pdf, ...
        (tmp_path / name).write_text(f"text of {name}", encoding="utf-8")
    items = list(iter_entries(tmp_path, "qa", default_question="What?"))
    assert [(i.id, i.line, i.question) for i in items] == [("a", 1, "What?"), ("b", 2, "What?"),
                                                           ("c.md", 3, "What?")]


def test_glyph_json_list_is_read_element_by_element(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Glyph's batch files (word2png_function.batch_process_to_images) are one JSON list,
    # json.dump'ed on one line: every entry is numbered by its place in the list.
    import glyph_render.jobs.inputs as inputs

    monkeypatch.setattr(inputs, "_CHUNK", 5)  # elements and UTF-8 characters cut by chunks
    rows: list[Any] = [
        {"unique_id": "g1", "context": "héllo wörld 你好 " * 40, "config": {"dpi": 72}},
        {"unique_id": "g2", "context": "second", "question": "q?", "answers": ["x"]},
        7,                                                        # 3 not an object
        {"unique_id": "g1", "context": "again"},                  # 4 duplicate
        {"unique_id": "g5", "context": "  "},                     # 5 empty
        {"unique_id": 6, "context": "int id 12345"},
    ]
    src = tmp_path / "glyph.json"
    src.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    entries = list(iter_entries(src, "render"))
    good = {e.line: e for e in entries if isinstance(e, Item)}
    bad = {e.line: e for e in entries if isinstance(e, BadLine)}
    assert sorted(good) == [1, 2, 6] and sorted(bad) == [3, 4, 5]
    assert all(f"entry {n}:" in b.message for n, b in bad.items())
    assert bad[4].error_type == "DuplicateId"
    assert good[1].text == rows[0]["context"] and good[1].config == {"dpi": 72}
    assert good[6].id == 6 and good[2].answers == ["x"]
    # a Ray task re-reads its element from the offset alone (pretty-printed list too)
    src.write_text("\ufeff" + json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    for e in iter_entries(src, "render"):
        if isinstance(e, Item):
            slim = Item(id=e.id, line=e.line, offset=e.offset, source_file=e.source_file)
            assert inputs.load_text(slim) == e.text
    assert inputs.count_entries(src) == len(rows)


def test_broken_json_list_records_where_it_breaks(tmp_path: Path) -> None:
    src = tmp_path / "broken.json"
    src.write_text('[{"unique_id": "a", "context": "x"},\n {"unique_id": "b" "context": "y"},'
                   ' {"unique_id": "c", "context": "z"}]', encoding="utf-8")
    entries = list(iter_entries(src, "render"))
    assert [type(e).__name__ for e in entries] == ["Item", "BadLine"]
    assert entries[1].line == 2 and "line 2: invalid JSON" in entries[1].message
    assert "not read" in entries[1].message
    src.write_text('[{"unique_id": "a", "context": "x"}', encoding="utf-8")
    assert "not closed" in list(iter_entries(src, "render"))[-1].message


def test_batch_renders_glyph_json_list(tmp_path: Path) -> None:
    rows = [{"unique_id": "g1", "context": "Hello world. " * 300,
             "config": {"page-size": "595,842", "dpi": 72, "font-color": "#333333"}},
            {"unique_id": "g2", "context": "Second doc. " * 100}, ["not", "an", "object"]]
    src = tmp_path / "glyph.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = run_batch("render", src, "-o", out, "--workers", "0")
    assert proc.returncode == 1, proc.stderr  # one invalid entry
    recs = {r["line"]: r for r in read_records(out)}
    assert recs[1]["id"] == "g1" and recs[1]["status"] == "ok" and recs[1]["dpi"] == 72
    assert recs[2]["status"] == "ok"
    assert recs[3]["status"] == "invalid" and "entry 3: expected a JSON object" in \
        recs[3]["error"]["message"]
    assert sorted(p.name for p in Path(recs[1]["render"]["dir"]).glob("page_*.png"))


# --- records -----------------------------------------------------------------------------------


def test_torn_tail_is_cut_and_newest_record_wins(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with RecordWriter(out) as w:
        w.write({"id": "a", "status": "error", "error": {"type": "ServerError"}})
        w.write({"id": "b", "status": "ok"})
        w.write({"id": None, "line": 9, "status": "invalid"})
        w.write({"id": "a", "status": "ok"})  # a retried failure
    with open(out, "ab") as f:
        f.write(b'{"id": "c", "status": "o')  # a torn write
    state = scan_output(out)
    assert state.truncated_bytes == len(b'{"id": "c", "status": "o')
    assert out.read_bytes().endswith(b"\n")
    assert state.latest == {'"a"': "ok", '"b"': "ok", "#line:9": "invalid"}
    assert state.superseded == 1 and state.needs_compaction
    assert [r["id"] for r in latest_records(out)] == ["b", None, "a"]
    assert compact(out) == 1
    assert [(r["id"], r["status"]) for r in read_records(out)] == [
        ("b", "ok"), (None, "invalid"), ("a", "ok")]


def test_corrupt_middle_line_is_ignored_then_compacted(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": 1, "status": "ok"}\n\x00\x00\x00garbage\n{"id": 2, "status": "ok"}\n')
    state = scan_output(out)
    assert state.corrupt_lines == [2] and set(state.latest) == {"1", "2"}
    compact(out)
    assert [r["id"] for r in read_records(out)] == [1, 2]


def test_one_writer_per_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with RecordWriter(out), pytest.raises(Exception, match="another glyph-render batch job"):
        RecordWriter(out)


def test_score_metric_choice() -> None:
    item = Item(id=1, line=1, text="t", answers=["Paris"])
    assert score_answer("paris", item) == {"metric": "qa_f1_score", "value": 1.0}
    item.metric = "em"
    assert score_answer("The Paris", item)["metric"] == "exact_match"
    item.metric = "rouge"
    assert score_answer("Paris", item)["metric"] == "rouge_l_score"
    item.metric, item.extra = None, {"dataset": "gov_report"}
    assert score_answer("Paris", item)["metric"] == "gov_report"
    assert score_answer("x", Item(id=2, line=1, text="t")) is None


# --- jobs as real processes --------------------------------------------------------------------


def test_plan_and_render_with_hostile_ids(tmp_path: Path) -> None:
    rows = [{"id": i, "text": f"Document {n}: " + "lorem ipsum dolor sit amet " * 40}
            for n, i in enumerate(HOSTILE_IDS)]
    rows.append({"id": "tuned", "text": "Small type.", "config": {"font-size": 7,
                                                                  "line-height": 8}})
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "plan.jsonl"
    r = run_batch("plan", src, "-o", out, "--workers", "0", "--tokenizer", "bytes")
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert sorted(map(json.dumps, (x["id"] for x in recs))) == sorted(
        map(json.dumps, HOSTILE_IDS + ["tuned"]))
    for rec in recs:
        assert rec["status"] == "ok" and rec["pages"] >= 1
        assert rec["compression_ratio"] == pytest.approx(
            rec["text_tokens"] / rec["vision_tokens"], abs=1e-3)
    tuned = next(x for x in recs if x["id"] == "tuned")
    assert tuned["plan"]["config"]["font-size"] == 7 and tuned["config_label"] != "default"

    pages = tmp_path / "pages"
    out = tmp_path / "render.jsonl"
    r = run_batch("render", src, "-o", out, "--pages-dir", pages, "--workers", "2")
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    one_per_id(recs)
    dirs = {Path(x["render"]["dir"]) for x in recs}
    assert len(dirs) == len(recs)  # distinct ids, distinct folders
    assert {d.parent for d in dirs} == {pages.resolve()}
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.is_relative_to(pages) or p.parent == tmp_path for p in written)
    for rec in recs:
        manifest = json.loads(Path(rec["render"]["manifest"]).read_text(encoding="utf-8"))
        assert manifest["id"] == rec["id"] and manifest["page_count"] == rec["pages"]
        assert all((Path(rec["render"]["dir"]) / f).is_file() for f in rec["render"]["files"])
    assert json.loads(summary_path(out).read_text())["ok"] == len(rows)


def test_qa_200_items_two_endpoints(tmp_path: Path, fast: ServeOcr, fast2: ServeOcr) -> None:
    rows = qa_rows(200)
    rows[5]["id"] = 5  # ids come back unchanged, types included
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    r = run_batch("qa", src, "-o", out, "--endpoint", fast.url, "--endpoint", fast2.url,
                  "--workers", "0", "--concurrency", "8", "--tokenizer", "bytes")
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert len(recs) == 200 and len(one_per_id(recs)) == 200
    assert {json.dumps(x["id"]) for x in recs} == {json.dumps(x["id"]) for x in rows}
    rec = next(x for x in recs if x["id"] == 5)
    assert rec["status"] == "ok" and rec["answer"] and rec["usage"]["prompt_tokens"] > 0
    assert rec["predicted_prompt_tokens"] == rec["usage"]["prompt_tokens"]  # same arithmetic
    assert rec["score"]["metric"] == "qa_f1_score" and rec["error"] is None
    assert set(rec["timings"]) >= {"render", "request", "total"}
    summary = json.loads(summary_path(out).read_text())
    assert summary["ok"] == 200 and summary["prompt_token_mismatches"] == 0
    assert "qa_f1_score" in summary["accuracy"] and 0 < summary["client_wait_share"] <= 1
    calls = summary["run"]["endpoints"]
    assert len(calls) == 2 and min(calls.values()) >= 40, calls  # both share the load
    assert fast.chat_requests() + fast2.chat_requests() >= 200
    assert "200 ok" in r.stdout
    print(f"200-item qa job: {elapsed:.1f} s wall")


def test_kill_9_mid_run_then_resume(tmp_path: Path) -> None:
    with serve_ocr(tmp_path, "--no-ocr", "--delay", "0.05") as srv:
        rows = qa_rows(120)
        src = write_jsonl(tmp_path / "in.jsonl", rows)
        out = tmp_path / "out.jsonl"
        args = ["qa", src, "-o", out, "--endpoint", srv.url, "--workers", "2",
                "--concurrency", "3", "--tokenizer", "bytes"]
        proc = subprocess.Popen([*batch_cmd(), *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 15:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed = read_records(out)  # a kill between writes leaves whole lines only
        assert 15 <= len(landed) < 120
        one_per_id(landed)
        with open(out, "ab") as f:  # simulated: a crash inside write() (see module docstring)
            f.write(b'{"id": "doc-119", "line": 120, "mode": "qa", "sta')
        time.sleep(0.5)  # requests the killed job left in flight finish and are logged
        before = srv.chat_requests()
        r = run_batch(*args)
        assert r.returncode == 0, r.stderr
        recs = read_records(out)
        assert len(recs) == 120 and len(one_per_id(recs)) == 120
        assert all(x["status"] == "ok" for x in recs)
        run = json.loads(summary_path(out).read_text())["run"]
        assert run["skipped"] == len(landed) and run["processed"] == 120 - len(landed)
        assert run["torn_tail_bytes_cut"] > 0
        assert srv.chat_requests() - before == 120 - len(landed)  # finished ids not re-asked
        # a third run has nothing left to do
        r = run_batch(*args)
        assert r.returncode == 0 and read_records(out) == recs
        assert json.loads(summary_path(out).read_text())["run"]["processed"] == 0


def test_faults_recorded_then_retry_failed_fixes_them(tmp_path: Path, fast: ServeOcr) -> None:
    rows = qa_rows(40)
    src = write_jsonl(tmp_path / "in.jsonl", rows + ["{broken"])
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr", "--fail-500", "0.25", "--drop-connection", "0.15",
                   "--seed", "11") as flaky:
        r = run_batch("qa", src, "-o", out, "--endpoint", flaky.url, "--retries", "0",
                      "--workers", "0", "--concurrency", "4")
    assert r.returncode == 1, r.stderr  # some items failed; the job went on
    recs = read_records(out)
    one_per_id(recs)
    assert len(recs) == 41
    failed = [x for x in recs if x["status"] == "error"]
    assert failed and len(failed) < 40
    assert {x["error"]["type"] for x in failed} <= {"ServerError"}
    assert all(x["error"]["stage"] == "request" and x["error"]["message"] for x in failed)
    invalid = [x for x in recs if x["status"] == "invalid"]
    assert len(invalid) == 1 and invalid[0]["line"] == 41
    summary = json.loads(summary_path(out).read_text())
    assert summary["error_types"]["ServerError"] == len(failed)

    # without --retry-failed the failures stay (nothing is redone)
    r = run_batch("qa", src, "-o", out, "--endpoint", fast.url, "--workers", "0")
    assert r.returncode == 1 and json.loads(summary_path(out).read_text())["run"][
        "processed"] == 0

    r = run_batch("qa", src, "-o", out, "--endpoint", fast.url, "--workers", "0",
                  "--retry-failed")
    assert r.returncode == 1, r.stderr  # the invalid line is still invalid
    recs = read_records(out)
    assert len(recs) == 41 and len(one_per_id(recs)) == 40  # compacted: one line per id
    assert all(x["status"] == "ok" for x in recs if x["status"] != "invalid")
    run = json.loads(summary_path(out).read_text())["run"]
    assert run["retried"] == len(failed) + 1 and run["compacted_lines"] == len(failed) + 1


def test_api_key_never_printed(tmp_path: Path) -> None:
    key = "sk-glyph-SECRET-4242"
    src = write_jsonl(tmp_path / "in.jsonl", qa_rows(6))
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr", "--api-key", key) as srv:
        good = run_batch("qa", src, "-o", out, "--endpoint", srv.url, "--workers", "0",
                         env={"OPENAI_API_KEY": key})
        bad = run_batch("qa", src, "-o", tmp_path / "bad.jsonl", "--endpoint", srv.url,
                        "--workers", "0", "--api-key-env", "MY_KEY",
                        env={"MY_KEY": "sk-wrong-777"})
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 2 and "401" in bad.stderr and "$MY_KEY" in bad.stderr
    seen = good.stdout + good.stderr + bad.stdout + bad.stderr
    seen += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                    and not p.name.startswith("serve-ocr"))
    assert key not in seen and "sk-wrong-777" not in seen


def test_ocr_mode_scores_cer_per_config(tmp_path: Path) -> None:
    text = ("The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor "
            "jugs. How vexingly quick daft zebras jump!")
    rows = []
    for name, cfg in (("dpi-96", {"dpi": 96}), ("dpi-40", {"dpi": 40})):
        for k in range(2):
            rows.append({"id": f"{name}-{k}", "text": f"Sample {k}. {text}",
                         "config": cfg, "config_name": name})
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--ocr-workers", "1") as srv:
        r = run_batch("ocr", src, "-o", out, "--endpoint", srv.url, "--workers", "0",
                      "--concurrency", "2", "--max-tokens", "2000")
    assert r.returncode == 0, r.stderr
    recs = {x["id"]: x for x in read_records(out)}
    sharp = recs["dpi-96-0"]
    assert sharp["ocr"]["pages"][0]["start"] == 0
    assert sharp["ocr"]["pages"][-1]["end"] == len(rows[0]["text"])
    assert sharp["ocr"]["cer"] < 0.1, sharp["ocr"]
    assert "quick brown fox" in sharp["ocr"]["pages"][0]["transcript"]
    cer = json.loads(summary_path(out).read_text())["cer_by_config"]
    assert set(cer) == {"dpi-96", "dpi-40"}
    assert cer["dpi-96"]["pages"]["count"] == 2
    assert cer["dpi-96"]["pages"]["mean"] <= cer["dpi-40"]["pages"]["mean"]
    assert "CER [dpi-96]" in r.stdout


def test_failing_endpoint_fails_over(tmp_path: Path, fast: ServeOcr) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", qa_rows(20))
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr", "--fail-500", "@1+") as broken:
        r = run_batch("qa", src, "-o", out, "--endpoint", broken.url, "--endpoint", fast.url,
                      "--retries", "0", "--workers", "0", "--concurrency", "2",
                      "--balance", "round-robin")
        assert broken.chat_requests() >= 5  # it got its turns, and failed them
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert len(recs) == 20 and all(x["status"] == "ok" for x in recs)
    assert {x["endpoint"] for x in recs} == {fast.url}


def test_job_level_errors(tmp_path: Path) -> None:
    from glyph_render.errors import GlyphRenderError, InputError
    from glyph_render.jobs import main

    with pytest.raises(InputError, match="no such file"):
        main(["plan", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")])
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Some text."}])
    out = str(tmp_path / "o.jsonl")
    assert main(["plan", str(src), "-o", out, "--workers", "0", "--no-progress"]) == 0
    with pytest.raises(GlyphRenderError, match="records of a 'plan' job"):
        main(["render", str(src), "-o", out, "--workers", "0"])
    with pytest.raises(GlyphRenderError, match="--dpi or --budget"):
        main(["plan", str(src), "-o", out, "--dpi", "96", "--budget", "3000"])
    with pytest.raises(GlyphRenderError, match="needs --endpoint"):
        main(["qa", str(src), "-o", str(tmp_path / "q.jsonl")])


def test_qa_too_big_for_the_context_is_fitted_by_the_client(tmp_path: Path) -> None:
    long_text = "The harbour lantern burned all night. " * 800  # 4 pages, ~2,500 tokens at 72 DPI
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "long", "context": long_text, "question": "What burned all night?"},
        {"id": "short", "context": "A short note.", "question": "What is this?"}])
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr", "--max-model-len", "2000") as srv:
        r = run_batch("qa", src, "-o", out, "--endpoint", srv.url, "--workers", "0",
                      "--max-tokens", "100", "--tokenizer", "bytes")
    assert r.returncode == 0, r.stderr
    recs = {x["id"]: x for x in read_records(out)}
    assert recs["long"]["fitted"] is True and recs["long"]["status"] == "ok"
    assert recs["long"]["vision_tokens"] < 2000 < recs["long"]["text_tokens"]
    assert "fitted" not in recs["short"]
