"""What the client itself costs per page, and how many requests it keeps moving.

Against ``glyph-render serve-ocr --no-ocr`` (a real server process that parses the request and
counts tokens but reads no pixels), so the figures are the client's, not a model's:

1. client time per page for one 100-page request, on one core (the process pinned to one CPU):
   CPU seconds of this process (PNG encoding + base64 + building and sending the request +
   reading the reply) divided by pages; the server runs in another process and is not
   counted. Target: <= 5 ms a page. Rasterising is reported apart (it is rendering, not client
   overhead).
2. payload bytes per page (the data URL each page travels as).
3. throughput with 1, 8 and 32 requests in flight (AsyncGlyphClient), each request the same
   100 pages (already PNG-encoded, so this measures transport and request handling).
4. pages already on disk (``ask_images``), sent as base64 data URLs or as ``file://`` URLs the
   server reads itself (``--allowed-local-media-path``, as vLLM): request bytes and latency
   (median wall time of one request, and client CPU) for each.

The pages are English prose from the corpus (the one shipped in the package unless
``--corpus`` or ``$GLYPH_CORPUS`` names another), repeated when it holds too little.

    python benchmarks/client_overhead.py [--pages 100] [--dpi 96] [--requests 32] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from glyph_render import AsyncGlyphClient, GlyphClient, RenderConfig, encode_png, iter_pages
from glyph_render.niah import default_corpus_dir


def corpus_text(corpus: Path, chars: int) -> str:
    names = ["en_pride_and_prejudice.txt", "en_frankenstein.txt", "en_war_of_the_worlds.txt"]
    text = ""
    while len(text) < chars:
        for name in names:
            with open(corpus / name, encoding="utf-8", newline="") as f:
                text += f.read()
            if len(text) >= chars:
                break
    return text[:chars]


def start_server(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "glyph_render.testing", "--port", "0", "--no-ocr", "-q",
         "--max-model-len", "10000000", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    m = re.search(r"listening on (\S+)", proc.stdout.readline().decode())
    if not m:
        proc.kill()
        raise SystemExit("serve-ocr did not start")
    return proc, m.group(1)


def render_pages(corpus: Path, pages: int, dpi: float) -> tuple[list, float]:
    cfg = RenderConfig.preset("glyph-en").replace(dpi=dpi)
    text = corpus_text(corpus, pages * 5_000)
    t0 = time.perf_counter()
    out = []
    for page in iter_pages(text, cfg, encode=False, keep_image=True):
        out.append(page)
        if len(out) == pages:
            break
    return out, time.perf_counter() - t0


def one_core(url: str, pages: list, question: str) -> dict[str, float]:
    """Client CPU per page for one request, PNG encoding included, pinned to one CPU."""
    with GlyphClient(url, tokenizer="bytes", max_tokens=16, encode_workers=1) as c:
        c.model_info()
        c.ask_pages([replace(pages[0])], question)  # warm: connection, imports, caches
        runs = []
        for _ in range(3):
            fresh = [replace(p, png=None) for p in pages]  # encode from pixels each run
            cpu0, wall0 = time.process_time(), time.perf_counter()
            a = c.ask_pages(fresh, question)
            runs.append((time.process_time() - cpu0, time.perf_counter() - wall0, a))
    cpu, wall, a = min(runs, key=lambda r: r[0])
    n = len(pages)
    return {
        "cpu_ms_per_page": 1000 * cpu / n, "wall_ms_per_page": 1000 * wall / n,
        "encode_ms_per_page": 1000 * (a.timings["encode"] or 0) / n,
        "build_ms_per_page": 1000 * (a.timings["build"] or 0) / n,
        "payload_bytes_per_page": a.payload_bytes / n,
        "prompt_tokens": a.usage["prompt_tokens"], "predicted": a.predicted_prompt_tokens,
    }


async def throughput(url: str, pages: list, question: str, inflight: int,
                     requests: int) -> dict[str, float]:
    async with AsyncGlyphClient(url, tokenizer="bytes", max_tokens=16,
                                max_concurrency=inflight) as c:
        await c.ask_pages(pages[:1], question)  # warm
        gate = asyncio.Semaphore(inflight)

        async def one() -> None:
            async with gate:
                await c.ask_pages(pages, question)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - t0
    return {"requests_per_s": requests / wall, "pages_per_s": requests * len(pages) / wall,
            "seconds": wall}


def on_disk(url: str, folder: Path, question: str, runs: int = 5) -> dict[str, dict[str, float]]:
    """One request of every page in ``folder``, base64 vs file://: bytes, median wall, CPU."""
    out: dict[str, dict[str, float]] = {}
    with GlyphClient(url, tokenizer="bytes", max_tokens=16, encode_workers=1) as c:
        c.ask_images(folder, question)  # warm
        for name, local in (("base64", False), ("file://", True)):
            walls, cpus = [], []
            for _ in range(runs):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                a = c.ask_images(folder, question, local_media=local)
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
            out[name] = {"bytes": a.payload_bytes, "wall_ms": 1000 * statistics.median(walls),
                         "cpu_ms": 1000 * statistics.median(cpus),
                         "prompt_tokens": a.usage["prompt_tokens"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--dpi", type=float, default=96.0)
    ap.add_argument("--requests", type=int, default=32,
                    help="requests per throughput level (default 32)")
    ap.add_argument("--corpus", type=Path, default=default_corpus_dir(),
                    help="corpus folder (default: $GLYPH_CORPUS, else the package's)")
    args = ap.parse_args()
    question = "What is the secret code?"
    proc, url = start_server()
    try:
        pages, t_raster = render_pages(args.corpus, args.pages, args.dpi)
        w, h = pages[0].width, pages[0].height
        print(f"{len(pages)} pages at {args.dpi:g} DPI ({w}x{h} px, {pages[0].vision_tokens} "
              f"vision tokens each); rasterising {1000 * t_raster / len(pages):.1f} ms/page "
              "(rendering, not counted below)")
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        try:
            r = one_core(url, pages, question)
        finally:
            os.sched_setaffinity(0, cpus)
        verdict = "ok" if r["cpu_ms_per_page"] <= 5.0 else "OVER the 5 ms target"
        print(f"client time on one core: {r['cpu_ms_per_page']:.2f} ms/page CPU ({verdict}); "
              f"PNG+base64 {r['encode_ms_per_page']:.2f} ms, message build "
              f"{r['build_ms_per_page']:.3f} ms, wall {r['wall_ms_per_page']:.2f} ms/page "
              "incl. the server")
        print(f"payload: {r['payload_bytes_per_page'] / 1024:.1f} KiB/page "
              f"({r['payload_bytes_per_page'] * len(pages) / 2**20:.1f} MiB a request); "
              f"prompt tokens {r['prompt_tokens']:,} (predicted {r['predicted']:,})")
        encoded = [replace(p, png=encode_png(p.image, args.dpi), image=None) for p in pages]
        for inflight in (1, 8, 32):
            n = max(inflight, args.requests if inflight > 1 else max(4, args.requests // 8))
            t = asyncio.run(throughput(url, encoded, question, inflight, n))
            print(f"{inflight:>2} in flight: {t['requests_per_s']:.2f} requests/s, "
                  f"{t['pages_per_s']:.0f} pages/s ({n} requests of {len(pages)} pages in "
                  f"{t['seconds']:.1f} s)")
    finally:
        proc.terminate()
        proc.wait(10)
    with tempfile.TemporaryDirectory(prefix="glyph-pages-") as tmp:
        for p in encoded:
            (Path(tmp) / f"page_{p.number:03d}.png").write_bytes(p.png)
        proc, url = start_server("--allowed-local-media-path", tmp)
        try:
            d = on_disk(url, Path(tmp), question)
        finally:
            proc.terminate()
            proc.wait(10)
    b, f = d["base64"], d["file://"]
    for name, r in d.items():
        print(f"pages on disk as {name:<7}: {r['bytes'] / 2**20:8.3f} MiB a request "
              f"({r['bytes'] / len(pages):,.0f} bytes/page), {r['wall_ms']:.1f} ms a request "
              f"(median), client CPU {r['cpu_ms']:.1f} ms; prompt tokens {r['prompt_tokens']:,}")
    print(f"file:// sends {b['bytes'] / f['bytes']:.0f}x fewer bytes and takes "
          f"{f['wall_ms'] / b['wall_ms']:.2f}x the time of base64")


if __name__ == "__main__":
    main()
