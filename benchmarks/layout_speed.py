"""Layout speed: the line breaker's C path (``glyph_render._layoutc``) against the Python path.

The layout stage alone (text -> pages of positioned lines, ``list(layout(text, cfg))``), in
process, both ways on the same text, interleaved so load on the machine hits both alike:

* warm: the word-width memo already holds the text's words (a second render of a text);
* cold: a fresh memo (``metrics_for`` cleared), so every word is measured for the first time,
  as for a text the process has never seen.

Texts: ``render_speed.py``'s 400,000 characters of flowing English prose, a code file and a
CJK text from the corpus (each repeated to ``--chars`` characters). The figure is the minimum
over ``--repeats`` rounds (the least disturbed; the median is printed beside it), in ms per page
and as the C path's speed-up.

    python benchmarks/layout_speed.py --font /path/to/Verdana.ttf
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from render_speed import DEFAULT_CORPUS, flowing_prose  # noqa: E402

from glyph_render import paragraph  # noqa: E402
from glyph_render.config import RenderConfig  # noqa: E402
from glyph_render.layout import layout  # noqa: E402


def repeated(path: Path, chars: int) -> str:
    text = path.read_text(encoding="utf-8-sig")
    return (text * (chars // max(len(text), 1) + 1))[:chars]


def measure(text: str, cfg: RenderConfig, repeats: int) -> dict[str, list[float]]:
    """Seconds per run: {"C warm", "C cold", "Python warm", "Python cold"}."""
    out: dict[str, list[float]] = {}
    pages = 0
    for _ in range(repeats):
        for use_c in (True, False):
            if use_c and paragraph._c is None:
                continue
            paragraph._USE_C = use_c
            side = "C" if use_c else "Python"
            paragraph.metrics_for.cache_clear()
            t = time.perf_counter()
            pages = len(list(layout(text, cfg)))
            out.setdefault(f"{side} cold", []).append(time.perf_counter() - t)
            t = time.perf_counter()
            list(layout(text, cfg))
            out.setdefault(f"{side} warm", []).append(time.perf_counter() - t)
    paragraph._USE_C = True
    out["pages"] = [float(pages)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--chars", type=int, default=400_000, help="the prose's length")
    ap.add_argument("--other-chars", type=int, default=100_000,
                    help="the code and CJK texts' length")
    ap.add_argument("--code", default="code_click_core.py")
    ap.add_argument("--cjk", default="zh_hongloumeng.txt")
    ap.add_argument("--font", default=None, help="e.g. Glyph's Verdana.ttf")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    corpus = Path(args.corpus)
    cfg = RenderConfig.preset("glyph-en")
    if args.font:
        cfg = cfg.replace(font_path=args.font)
    texts = {
        f"flowing prose ({args.chars:,} chars)": flowing_prose(corpus, args.chars),
        f"code: {args.code}": repeated(corpus / args.code, args.other_chars),
        f"CJK: {args.cjk}": repeated(corpus / args.cjk, args.other_chars),
    }
    if paragraph._c is None:
        print("glyph_render._layoutc is not built: Python path only "
              "(python hatch_build.py builds it in place)")
    for name, text in texts.items():
        res = measure(text, cfg, args.repeats)
        pages = int(res.pop("pages")[0])
        print(f"{name}: {pages} pages")
        best = {k: min(v) * 1000 / pages for k, v in res.items()}
        for key in ("warm", "cold"):
            parts = [f"{side} {best[f'{side} {key}']:.2f} ms/page (median "
                     f"{statistics.median(res[f'{side} {key}']) * 1000 / pages:.2f})"
                     for side in ("C", "Python") if f"{side} {key}" in res]
            gain = (f": C {best[f'Python {key}'] / best[f'C {key}']:.1f}x faster"
                    if f"C {key}" in best else "")
            print(f"  {key}: {', '.join(parts)}{gain}")

if __name__ == "__main__":
    main()
