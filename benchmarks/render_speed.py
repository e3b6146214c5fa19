"""Render speed on one core: glyph-render's stages vs the Glyph project's reportlab pipeline.

Prints, for the English texts of ../shared/corpus at the glyph-en preset: characters laid out
per second; pages per second for layout, raster and PNG encode separately and end to end;
bytes per page; peak memory of a streaming render of a short and a 8x longer document (it
should not grow with length); and, on the same text, the reference approach (reportlab PDF ->
pdftoppm -> RGB PNG, see reference_glyph.py) with the speed ratio. All ratios come from one run.

    python benchmarks/render_speed.py [--chars 150000] [--dpi 72 96] [--no-reference]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from glyph_render import RenderConfig, encode_png, layout, rasterize  # noqa: E402
from glyph_render.render import iter_pages, with_last  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
ENGLISH = [
    "en_adventures_of_sherlock_holmes.txt", "en_alice_in_wonderland.txt",
    "en_art_of_war_giles.txt", "en_frankenstein.txt", "en_pride_and_prejudice.txt",
    "en_war_of_the_worlds.txt",
]


def one_core() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return f"pinned to CPU {min(os.sched_getaffinity(0))}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def load(name: str, chars: int) -> str:
    text = (CORPUS / name).read_text(encoding="utf-8")
    body = text[2000:]  # past the Project Gutenberg header
    return body[:chars] if chars else body


def time_ours(text: str, cfg: RenderConfig) -> dict[str, float]:
    """End to end first (glyph and word caches as cold as this text leaves them), then stages."""
    t4 = time.perf_counter()
    c4 = time.process_time()
    for _ in iter_pages(text, cfg):
        pass
    t5 = time.perf_counter()
    c5 = time.process_time()
    t0 = time.perf_counter()
    pages = list(layout(text, cfg))
    t1 = time.perf_counter()
    images = [rasterize(p, cfg, last=last) for p, last in with_last(iter(pages))]
    t2 = time.perf_counter()
    sizes = [len(encode_png(im, cfg.dpi)) for im in images]
    t3 = time.perf_counter()
    return {"pages": len(pages), "chars": len(text), "layout": t1 - t0, "raster": t2 - t1,
            "encode": t3 - t2, "e2e": t5 - t4, "e2e_cpu": c5 - c4, "bytes": sum(sizes)}


def mem_probe(chars: int) -> int:
    """Child process: stream-render ``chars`` of repeated corpus text; its peak RSS (KiB)."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from glyph_render import RenderConfig\n"
        "from glyph_render.render import iter_pages\n"
        f"t = open({str(CORPUS / ENGLISH[4])!r}, encoding='utf-8').read()\n"
        f"text = (t * ({chars} // len(t) + 1))[:{chars}]\n"
        "n = sum(1 for _ in iter_pages(text, RenderConfig.preset('glyph-en')))\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "print(n, int(hwm.split()[1]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pages, rss = out.stdout.split()
    return int(pages), int(rss)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chars", type=int, default=150_000, help="characters per file (0: all)")
    ap.add_argument("--dpi", type=float, nargs="+", default=[72.0, 96.0])
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    print(f"render_speed: {one_core()}; {len(ENGLISH)} English texts, {args.chars or 'all'} "
          "chars each, preset glyph-en")
    texts = [load(n, args.chars) for n in ENGLISH]
    warm = RenderConfig.preset("glyph-en")
    for dpi in args.dpi:  # build glyph atlases outside the clock, as a long-running job would
        list(iter_pages(texts[0][:20_000], warm.replace(dpi=dpi)))
    for dpi in args.dpi:
        cfg = warm.replace(dpi=dpi)
        tot = {"pages": 0, "chars": 0, "layout": 0.0, "raster": 0.0, "encode": 0.0, "e2e": 0.0,
               "e2e_cpu": 0.0, "bytes": 0}
        for text in texts:
            r = time_ours(text, cfg)
            for k in tot:
                tot[k] += r[k]
        n = tot["pages"]
        print(f"\n== glyph-render @ {dpi:g} DPI: {n} pages, {tot['chars']:,} chars")
        print(f"  layout : {tot['chars'] / tot['layout']:>12,.0f} chars/s  "
              f"{n / tot['layout']:8.1f} pages/s")
        for stage in ("raster", "encode"):
            print(f"  {stage:7}: {n / tot[stage]:8.1f} pages/s  "
                  f"({1000 * tot[stage] / n:.2f} ms/page)")
        print(f"  sum    : {n / (tot['layout'] + tot['raster'] + tot['encode']):8.1f} pages/s")
        print(f"  end-to-end (iter_pages: layout+raster+encode, streaming): "
              f"{n / tot['e2e']:.1f} pages/s wall, {n / tot['e2e_cpu']:.1f} pages/s of CPU "
              f"time ({1000 * tot['e2e_cpu'] / n:.2f} ms/page)")
        print(f"  PNG bytes/page: {tot['bytes'] / n:,.0f}")
        if args.no_reference:
            continue
        try:
            from reference_glyph import time_reference
        except ImportError as exc:
            print(f"  reference skipped: {exc} (pip install '.[bench]')")
            continue
        ref_pages = 0
        ref_t = 0.0
        ref_save = 0.0
        ref_bytes = 0
        ours_only = ("fallback-fonts", "tab-size", "remove-line-breaks")
        ref_cfg = {k: v for k, v in cfg.to_dict().items() if k not in ours_only}
        ref_cfg["dpi"] = int(dpi)
        for text in texts:
            t = time_reference(text, ref_cfg)
            ref_pages += t.pages
            ref_t += t.total("cpu")
            ref_save += t.cpu.get("save", 0.0)
            ref_bytes += t.png_bytes
        ours = n / tot["e2e_cpu"]
        theirs = ref_pages / ref_t
        print(f"  reference (reportlab -> pdftoppm -> RGB PNG), CPU time incl. pdftoppm: "
              f"{ref_pages} pages, {theirs:.1f} pages/s, PNG save "
              f"{1000 * ref_save / ref_pages:.1f} ms/page, {ref_bytes / ref_pages:,.0f} bytes/page")
        print(f"  speed ratio (ours / reference, CPU time, same text): {ours / theirs:.1f}x")
    if not args.no_memory:
        print("\n== peak memory, streaming render (child processes, VmHWM)")
        for chars in (1_000_000, 8_000_000):
            pages, rss = mem_probe(chars)
            print(f"  {chars:>10,} chars -> {pages:5d} pages: peak RSS {rss / 1024:7.1f} MiB "
                  "(text itself: ~{:.0f} MiB as str)".format(chars / 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
