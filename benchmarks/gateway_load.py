"""Load on ``glyph-render gateway``: what it adds to each request, and how many it keeps moving.

Two real processes: ``serve-ocr --no-ocr`` (parses the request, counts tokens, reads no pixels,
so the figures are the gateway's, not a model's) and the gateway in front of it. N clients
(asyncio, one connection each) send chat requests holding a long document plus a question, for
a fixed time, in three phases:

* ``direct``: the same requests with the pages already rendered, straight to serve-ocr: the
  baseline the gateway's latency is compared with;
* ``repeated``: text through the gateway, drawn from a small set of documents, so after the
  first round they come from the page cache (a chat over a few files, many agents on one
  corpus);
* ``unique``: every request a document never seen (each one's text differs), so every one is
  rendered: the worst case.

Printed per phase: requests/s, errors, latency p50/p99, the latency the gateway adds over
``direct`` (p50/p99, per request and per page), the page cache's hit rate, and render CPU per
page (the render workers' CPU seconds, from the gateway's /metrics, over pages rendered). The
clients, the gateway and serve-ocr share this machine's cores.

    python benchmarks/gateway_load.py [--concurrency 8] [--seconds 20] [--chars 20000]
        [--documents 8] [--render-workers N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from glyph_render import RenderConfig, render
from glyph_render.niah import default_corpus_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client_overhead import corpus_text  # noqa: E402 - the benchmarks' shared corpus reader

QUESTION = "Which characters appear in this part of the text?"
MODEL = "zai-org/Glyph"


def start(cmd: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    m = re.search(r"listening on (\S+)", proc.stdout.readline().decode())
    if not m:
        proc.kill()
        raise SystemExit(f"{' '.join(cmd[:3])} did not start")
    return proc, m.group(1).removesuffix("/v1")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def phase(url: str, bodies: list[dict], concurrency: int, seconds: float,
                unique: bool) -> dict:
    """Send ``bodies`` round-robin from ``concurrency`` clients for ``seconds``."""
    latencies: list[float] = []
    pages: list[int] = []
    hits = misses = errors = 0
    rendered_pages = 0
    counter = 0
    # Clients made before the clock starts (each builds an SSL context, slow on a busy machine).
    clients = [httpx.AsyncClient(base_url=url, timeout=120) for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal hits, misses, errors, rendered_pages, counter
        async with clients[k] as http:
            while time.perf_counter() < deadline:
                counter += 1
                body = bodies[counter % len(bodies)]
                if unique:  # a new document: the same text with its own first line
                    text = body["messages"][0]["content"]
                    body = {**body, "messages": [{"role": "user",
                                                  "content": f"Request {counter}.\n{text}"}]}
                t0 = time.perf_counter()
                r = await http.post("/v1/chat/completions", json=body)
                took = time.perf_counter() - t0
                if r.status_code != 200:
                    errors += 1
                    continue
                latencies.append(took)
                glyph = (r.json().get("usage") or {}).get("glyph")
                if glyph:
                    pages.append(glyph["pages"])
                    hits += glyph["cache_hits"]
                    misses += glyph["cache_misses"]
                    rendered_pages += glyph["pages"] if glyph["cache_misses"] else 0
                else:
                    pages.append(sum(p.get("type") == "image_url"
                                     for p in body["messages"][0]["content"]))

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / wall,
            "latencies": latencies, "pages": statistics.mean(pages) if pages else 0.0,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
            "rendered_pages": rendered_pages}


def render_cpu(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    m = re.search(r"^glyph_gateway_render_cpu_seconds_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chars", type=int, default=20_000, help="characters per document")
    ap.add_argument("--documents", type=int, default=8, help="documents in the repeated set")
    ap.add_argument("--render-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    corpus = args.corpus or Path(os.environ.get("GLYPH_CORPUS") or default_corpus_dir())
    text = corpus_text(corpus, args.chars * args.documents)
    docs = [text[i * args.chars:(i + 1) * args.chars] for i in range(args.documents)]
    texts = [{"model": MODEL, "max_tokens": 64,
              "messages": [{"role": "user", "content": f"{d}\n\n{QUESTION}"}]} for d in docs]
    cfg = RenderConfig.preset("glyph-en")
    direct = []
    for d in docs:  # the pages the gateway sends for these documents (same config)
        urls = ["data:image/png;base64," + base64.b64encode(p.png or b"").decode()
                for p in render(d, cfg).pages]
        content = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
        content.append({"type": "text", "text": f"\n\n{QUESTION}"})
        direct.append({"model": MODEL, "max_tokens": 64,
                       "messages": [{"role": "user", "content": content}]})

    upstream, up_url = start([sys.executable, "-m", "glyph_render.testing", "--port", "0",
                              "--no-ocr", "-q", "--max-model-len", "1000000"])
    gw, gw_url = start([sys.executable, "-m", "glyph_render.gateway", "--upstream", up_url,
                        "--port", "0", "-q", "--render-workers", str(args.render_workers),
                        "--max-concurrency", str(max(64, 2 * args.concurrency))])
    try:
        time.sleep(2)  # the render workers start
        results = {"direct": asyncio.run(phase(up_url, direct, args.concurrency, args.seconds,
                                               False))}
        for name, unique in (("repeated", False), ("unique", True)):
            cpu0 = render_cpu(gw_url)
            res = asyncio.run(phase(gw_url, texts, args.concurrency, args.seconds, unique))
            res["cpu"] = render_cpu(gw_url) - cpu0
            results[name] = res
    finally:
        for proc in (gw, upstream):
            proc.terminate()
            proc.wait(15)

    base = results["direct"]["latencies"]
    print(f"gateway_load: {args.concurrency} clients, {args.seconds:g} s per phase, "
          f"{args.chars:,}-character documents ({results['direct']['pages']:.1f} pages each at "
          f"72 DPI), {args.render_workers} render workers, {os.cpu_count()} cores shared by "
          "clients, gateway and serve-ocr")
    head = ("phase", "requests", "req/s", "errors", "p50 ms", "p99 ms", "added p50 ms",
            "added p99 ms", "added/page p50 ms", "cache hits", "render CPU/page ms")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, r in results.items():
        lat = r["latencies"]
        p50, p99 = pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3
        if name == "direct":
            added = ("-", "-", "-")
        else:
            a50, a99 = p50 - pct(base, 0.5) * 1e3, p99 - pct(base, 0.99) * 1e3
            added = (f"{a50:.0f}", f"{a99:.0f}", f"{a50 / max(r['pages'], 1):.1f}")
        hit = "-" if r["hit_rate"] is None else f"{100 * r['hit_rate']:.0f}%"
        cpu = (f"{1e3 * r['cpu'] / r['rendered_pages']:.1f}" if r.get("rendered_pages")
               else "-")
        print(f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['errors']} | {p50:.0f} | "
              f"{p99:.0f} | {' | '.join(added)} | {hit} | {cpu} |")


if __name__ == "__main__":
    main()
