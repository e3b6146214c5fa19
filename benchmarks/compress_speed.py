"""Budget planning speed on one core, and the compression each corpus file reaches.

Targets (issue: token budgets): a plan for a 4-million-character document in under 5 s, and for
a 100K-character one in under 50 ms (both cut from the corpus's English texts, repeated to
length). Then, for every file of the corpus with the default config (preset auto), the text
tokens (cl100k_base), vision tokens and ratio at 72, 96 and 120 DPI — from one layout per file,
priced by arithmetic. The corpus is the one shipped in the package unless ``--corpus`` (or
``$GLYPH_CORPUS``) names another, e.g. the full texts it excerpts.

    python benchmarks/compress_speed.py [--repeats 5] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render import (  # noqa: E402
    RenderConfig,
    detect_preset,
    get_tokenizer,
    image_tokens,
    layout,
    page_sizes,
)
from glyph_render.compress import compress  # noqa: E402
from glyph_render.niah import default_corpus_dir  # noqa: E402


def read(path: Path) -> str:
    return path.open(encoding="utf-8", newline="").read()


def timed(fn, repeats: int) -> tuple[float, object]:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--corpus", type=Path, default=default_corpus_dir(),
                    help="corpus folder (default: $GLYPH_CORPUS, else the package's)")
    args = ap.parse_args(argv)
    corpus = args.corpus
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = "pinned to one CPU"
    except (AttributeError, OSError):
        pinned = "not pinned"
    english = "".join(read(p) for p in sorted(corpus.glob("en_*")))
    big = (english * (4_000_000 // len(english) + 1))[:4_000_000]
    small = big[50_000:150_000]
    tok = get_tokenizer("cl100k_base")
    tok.count("warm up")
    compress(small[:5000], 1000)  # fonts and tokenizer loaded outside the clock
    print(f"compress_speed: {pinned}; medians of {args.repeats} runs")
    for label, text, budgets, target in (
        ("100K chars", small, (8_000, 15_000, 40_000), 0.050),
        ("4M chars", big, (150_000, 250_000, 400_000), 5.0),
    ):
        n_tok = tok.count(text)
        for budget in budgets:
            reps = args.repeats if len(text) < 1_000_000 else max(1, args.repeats // 2)
            secs, plan = timed(lambda t=text, b=budget: compress(t, b), reps)
            ok = "OK" if secs < target else "OVER TARGET"
            print(f"  {label:>10} ({n_tok:,} text tokens), budget {budget:>7,}: {secs * 1000:8.1f} "
                  f"ms  [{ok} < {target * 1000:g} ms]  -> {plan.vision_tokens:,} vision tokens, "
                  f"{plan.dpi:g} DPI, rungs tried {len(plan.rungs)}, limited by {plan.limited_by}, "
                  f"ratio {plan.ratio:.2f}")
    print("\nCompression per corpus file (default config, preset auto; ratio = cl100k text "
          "tokens / GLM-4.1V vision tokens)")
    print(f"  {'file':42} {'chars':>9} {'text tok':>9} {'pages':>5} " + " ".join(
        f"{'vis@' + str(d):>9} {'ratio':>6}" for d in (72, 96, 120)))
    for p in sorted(corpus.iterdir()):
        name = p.name
        if not p.is_file() or name in ("MANIFEST.tsv", "README.md"):
            continue
        text = read(p)
        cfg = RenderConfig.preset(detect_preset(text))
        pages = list(layout(text, cfg, geometry_only=True))
        tt = tok.count(text)
        cells = []
        for dpi in (72, 96, 120):
            vt = sum(image_tokens(w, h) for w, h in page_sizes(pages, cfg, dpi=dpi))
            cells.append(f"{vt:>9,} {tt / vt:>6.2f}")
        print(f"  {name:42} {len(text):>9,} {tt:>9,} {len(pages):>5} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
