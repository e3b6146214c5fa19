"""How soon the web demo shows a document: request to preview, over HTTP, on one core.

Starts the real ``glyph-render ui`` pinned to one core (``taskset -c 0``; the benchmark's own
client runs beside it) and calls its ``render`` endpoint with Gradio's client, as the page does,
then fetches the page images the answer names: the time until the figures (pages, text and
vision tokens, ratio) and the first window of page images are in hand. Each request sends a
document the server has not seen (a number planted at its head), after one warm-up request
(tiktoken's tables, Gradio's first call). Target: <= 1 s for 100,000 characters.

Then, "rendering never blocks other users": the same request timed while another user's long
document (``--long-chars``, default 2 M characters) is being rendered by the same server.

    python benchmarks/ui_preview.py [--chars 100000] [--repeat 5] [--long-chars 2000000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from glyph_render.niah import default_corpus_dir  # noqa: E402


def english_text(chars: int) -> str:
    """The corpus's English prose, repeated to ``chars`` characters (LF line ends, as a
    browser's text field sends them)."""
    parts = [p.read_text(encoding="utf-8") for p in sorted(default_corpus_dir().glob("en_*.txt"))]
    base = "\n\n".join(parts).replace("\r\n", "\n")
    return (base * (chars // len(base) + 1))[:chars]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(core: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "glyph_render.cli", "ui", "--port", str(port)]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", core, *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.search(r"running on (http://\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"ui_preview: glyph-render ui did not start: {line!r}")
    return proc, m.group(1)


class Previewer:
    """One user: Gradio's client calling the page's ``render`` endpoint."""

    def __init__(self, url: str) -> None:
        import httpx
        from gradio_client import Client

        self.url = url
        self.client = Client(url, verbose=False, download_files=False,
                             analytics_enabled=False)
        self.http = httpx.Client(timeout=600)

    def preview(self, text: str) -> tuple[float, str, int]:
        """(seconds, figures text, images fetched) for one document."""
        t0 = time.perf_counter()
        out = self.client.predict(text, None, "utf-8", "auto", "auto", "", 0, 0,
                                  api_name="/render")
        gallery, figures = out[0], out[1]
        images = 0
        for item in gallery or []:
            url = _image_url(item)
            if url:
                self.http.get(url).raise_for_status()
                images += 1
        return time.perf_counter() - t0, str(figures), images


def _image_url(item: Any) -> str | None:
    image = item.get("image") if isinstance(item, dict) else None
    if isinstance(image, dict):
        return image.get("url")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--long-chars", type=int, default=2_000_000,
                    help="the other user's document while the small one is timed (0: skip)")
    ap.add_argument("--core", default="0", help="CPU the server is pinned to ('' for none)")
    args = ap.parse_args(argv)
    proc, url = start_ui(args.core or None)
    try:
        user = Previewer(url)
        base = english_text(args.chars)
        user.preview(f"warm-up\n{base[:20_000]}")
        times = []
        for k in range(args.repeat):
            seconds, figures, images = user.preview(f"{k}\n{base}"[:args.chars])
            times.append(seconds)
        med = statistics.median(times)
        print(f"ui_preview: {args.chars:,} characters, request -> figures + {images} page "
              f"images, server on core {args.core or 'any'}: median {med:.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)}); target <= 1 s: "
              f"{'met' if med <= 1.0 else 'MISSED'}")
        print(f"ui_preview: figures: {figures.splitlines()[0]}")
        if args.long_chars:
            other = Previewer(url)
            long_text = english_text(args.long_chars)
            done = threading.Event()
            box: dict[str, float] = {}

            def long_user() -> None:
                box["long"] = other.preview(f"long\n{long_text}")[0]
                done.set()

            threading.Thread(target=long_user, daemon=True).start()
            time.sleep(0.5)  # the long render is under way
            during = []
            while not during or (not done.is_set() and len(during) < args.repeat):
                during.append(user.preview(f"during {len(during)}\n{base}"[:args.chars])[0])
            done.wait()
            print(f"ui_preview: while another user's {args.long_chars:,} characters rendered "
                  f"({box['long']:.1f} s): the {args.chars:,}-character preview took median "
                  f"{statistics.median(during):.3f} s (n={len(during)})")
    finally:
        proc.terminate()
        proc.wait(15)
    breakdown(english_text(args.chars), args.core, args.repeat)
    return 0


def breakdown(text: str, core: str | None, repeat: int) -> None:
    """Where the time goes, in this process (pinned like the server): the preview's layout and
    pricing, then drawing and encoding the first window of pages."""
    from glyph_render.ui.preview import WINDOW, Settings, draw_pages, make_preview

    if core and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(core)})
    shutil.rmtree(make_preview(text[:5_000], Settings()).folder)  # tokenizer tables, fonts
    plan, draw = [], []
    for k in range(repeat):
        t0 = time.perf_counter()
        pv = make_preview(f"{k}\n{text}"[:len(text)], Settings())
        t1 = time.perf_counter()
        draw_pages(pv, 0, WINDOW)
        plan.append(t1 - t0)
        draw.append(time.perf_counter() - t1)
        shutil.rmtree(pv.folder, ignore_errors=True)
    print(f"ui_preview: in process: layout + pricing + text tokens "
          f"{statistics.median(plan) * 1000:.0f} ms, drawing + PNG of {WINDOW} pages "
          f"{statistics.median(draw) * 1000:.0f} ms (medians of {repeat})")


if __name__ == "__main__":
    sys.exit(main())
