"""Throughput of ``glyph-render batch``: render jobs at 1, 2, ... worker processes, and a qa job.

1. Render-only job over the corpus (the one shipped in the package unless ``--corpus`` or
   ``$GLYPH_CORPUS`` names another; every text cut into items of ``--chars-per-item`` characters,
   taken round-robin across the files so each run mixes English, code, CJK and Cyrillic, and
   round again when the corpus holds less than ``--max-chars``) at 1 and 2 workers, and 4, 8, 16
   where the machine has the cores. Prints items/s, pages/s and the scaling efficiency
   ``speedup(n) / n`` against 1 worker (target: >= 85%). Rates are steady-state (first to last
   record, so pool start-up is left out); the wall time of the whole command is printed beside
   them, and the CPU time the workers spent per page (flat across worker counts: the pipeline
   adds no per-worker overhead, so the wall figures are bounded only by the free cores; the
   1-minute load average shows how many other processes competed for them).
2. A qa job against ``serve-ocr --no-ocr`` (a real server process that answers at once), and
   the share of each item's working time the client spends waiting on the server
   (``client_wait_share`` = request time / (render + encode + request) time, from the records).

Every job runs as the real CLI in a subprocess, the way a user runs it.

    python benchmarks/batch_throughput.py [--workers 1 2 4] [--max-chars 1500000] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render.niah import default_corpus_dir  # noqa: E402

SKIP = {"MANIFEST.tsv", "README.md"}


def corpus_items(corpus: Path, chars_per_item: int, max_chars: int) -> list[dict[str, Any]]:
    """Items of ``chars_per_item`` characters, one from each file in turn; once a file runs
    out it starts again (ids stay unique), until ``max_chars``."""
    texts = {}
    for p in sorted(corpus.iterdir()):
        if p.is_file() and p.name not in SKIP:
            with open(p, encoding="utf-8", newline="") as f:
                texts[p.name] = f.read()
    pieces = {name: [c for c in (t[i:i + chars_per_item]
                                 for i in range(0, len(t), chars_per_item)) if c.strip()]
              for name, t in texts.items()}
    pieces = {name: chunks for name, chunks in pieces.items() if chunks}
    if not pieces:
        sys.exit(f"no texts in {corpus}")
    items, total, k = [], 0, 0
    while total < max_chars:
        for name, chunks in pieces.items():
            if total < max_chars:
                chunk = chunks[k % len(chunks)]
                items.append({"id": f"{name}#{k}", "text": chunk})
                total += len(chunk)
        k += 1
    return items


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def batch(*args: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "glyph_render.cli", "batch", *map(str, args),
                        "--no-progress"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"batch {args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return wall, r


def steady(out: Path) -> dict[str, float]:
    """Items/s and pages/s between the first and the last record (start-up left out)."""
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    recs.sort(key=lambda r: r["time"])
    span = recs[-1]["time"] - recs[0]["time"]
    pages = sum(r.get("pages") or 0 for r in recs[1:])
    total_pages = sum(r.get("pages") or 0 for r in recs)
    cpu = sum((r.get("timings") or {}).get("render_cpu") or 0.0 for r in recs)
    return {"items": len(recs), "pages": total_pages, "items_s": (len(recs) - 1) / span,
            "pages_s": pages / span, "cpu_ms_page": 1000 * cpu / max(total_pages, 1)}


def render_scaling(tmp: Path, workers: list[int], items: list[dict[str, Any]]) -> None:
    src = tmp / "render.jsonl"
    write_jsonl(src, items)
    chars = sum(len(i["text"]) for i in items)
    print(f"render job: {len(items)} items, {chars:,} characters")
    print(f"{'workers':>7} {'items/s':>8} {'pages/s':>8} {'speedup':>8} {'eff.':>6} "
          f"{'wall s':>7} {'cpu ms/page':>12} {'load':>5}")
    base = None
    for n in workers:
        out = tmp / f"render-{n}.jsonl"
        wall, _ = batch("render", src, "-o", out, "--pages-dir", tmp / f"pages-{n}",
                        "--workers", n)
        s = steady(out)
        base = base or s["pages_s"]
        speedup = s["pages_s"] / base
        eff = speedup / n
        print(f"{n:>7} {s['items_s']:>8.2f} {s['pages_s']:>8.1f} {speedup:>8.2f} "
              f"{eff:>6.0%} {wall:>7.1f} {s['cpu_ms_page']:>12.1f} {os.getloadavg()[0]:>5.1f}"
              + ("" if n == 1 else "  ok" if eff >= 0.85 else "  below 85%"))
        shutil.rmtree(tmp / f"pages-{n}", ignore_errors=True)


def qa_wait_share(tmp: Path, corpus: Path, n_items: int, workers: int,
                  concurrency: int) -> None:
    items = corpus_items(corpus, 2_000, 2_000 * n_items)[:n_items]
    for i, it in enumerate(items):
        it["question"] = f"What does part {i} say?"
    src = tmp / "qa.jsonl"
    write_jsonl(src, items)
    srv = subprocess.Popen([sys.executable, "-m", "glyph_render.testing", "--port", "0",
                            "--no-ocr", "-q"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    try:
        assert srv.stdout is not None
        url = re.search(r"listening on (\S+)", srv.stdout.readline().decode()).group(1)
        out = tmp / "qa-out.jsonl"
        wall, _ = batch("qa", src, "-o", out, "--endpoint", url, "--workers", workers,
                        "--concurrency", concurrency)
    finally:
        srv.terminate()
        srv.wait(10)
    summary = json.loads((tmp / "qa-out.summary.json").read_text())
    s = steady(out)
    lat = summary["request_seconds"]
    print(f"\nqa job against serve-ocr --no-ocr: {len(items)} items, {workers} workers, "
          f"concurrency {concurrency}")
    print(f"  {s['items_s']:.1f} items/s steady ({wall:.1f} s wall), request p50 "
          f"{lat['p50'] * 1000:.0f} ms, p90 {lat['p90'] * 1000:.0f} ms")
    print(f"  client waiting on the server: {summary['client_wait_share']:.0%} of each item's "
          "working time (the rest: rendering and PNG/base64 encoding)")


def main() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    default_workers = [n for n in (1, 2, 4, 8, 16) if n <= max(2, cpus or 1)]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=default_workers)
    p.add_argument("--chars-per-item", type=int, default=20_000)
    p.add_argument("--max-chars", type=int, default=1_500_000,
                   help="characters rendered per run (default 1.5 M, about 400 pages)")
    p.add_argument("--qa-items", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--corpus", type=Path, default=default_corpus_dir(),
                   help="corpus folder (default: $GLYPH_CORPUS, else the package's)")
    args = p.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus not found at {args.corpus}")
    print(f"{cpus} CPUs available; load average {os.getloadavg()[0]:.1f} at start; corpus "
          f"{args.corpus}")
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as d:
        tmp = Path(d)
        items = corpus_items(args.corpus, args.chars_per_item, args.max_chars)
        render_scaling(tmp, args.workers, items)
        qa_wait_share(tmp, args.corpus, args.qa_items, max(args.workers), args.concurrency)
    print(f"load average {os.getloadavg()[0]:.1f} at end (other work on the machine skews "
          "the scaling figures)")


if __name__ == "__main__":
    main()
