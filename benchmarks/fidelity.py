"""Pixel fidelity against Glyph's own renderer: the same text, config and font, side by side.

The Glyph model learned to read the pages Glyph's ``scripts/word2png_function.py`` draws
(reportlab lays out a PDF, poppler rasterises it). For each corpus text and each config variant
Glyph's tools use, this renders the reference (the original script with ``--original``, else
the re-creation in ``reference_glyph.py``, which ``--original`` also checks page for page) and
glyph-render, and prints per variant:

* pages on each side, and page-break identity: pages whose drawn lines are the same lines;
* size identity: pages of the same pixel size;
* the mean absolute grey difference per page (worst page, and the mean over pages) and the
  largest single-pixel difference;
* ink mass (sum of 255 - grey) of ours over the reference's;
* with ``--ocr``: Tesseract's character error rate on both sides' first pages (upscaled 2x),
  against the source text the page holds.

``--check`` exits 1 unless, in every variant, every page break and size is identical and no page
differs by more than 1 grey level on average.

Fonts: ``--font`` (default: the bundled DejaVu Sans; pass Glyph's Verdana.ttf to measure the
published config) for Latin texts, ``--cjk-font`` (default: a Debian CJK font found by
fontconfig, e.g. ``apt-get install fonts-wqy-microhei``) on both sides for Chinese, as Glyph's
own Chinese font cannot be had here. glyph-render runs with an empty fallback chain, which is
what the reference does for a character the font lacks (.notdef); its default chain draws such
characters from fallback fonts instead (see the README).

Usage::

    python benchmarks/fidelity.py --font path/to/Verdana.ttf --original path/to/word2png_function.py
    python benchmarks/fidelity.py --variants default,dpi96 --files en_alice_in_wonderland.txt
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import reference_glyph as ref  # noqa: E402
from glyph_render.config import GLYPH_NEWLINE_MARKER, RenderConfig  # noqa: E402
from glyph_render.layout import layout  # noqa: E402
from glyph_render.raster import rasterize  # noqa: E402
from glyph_render.scoring import character_error_rate  # noqa: E402

DEFAULT_CORPUS = REPO_ROOT / "glyph_render" / "data" / "corpus"
DEFAULT_FILES = (
    "en_alice_in_wonderland.txt", "en_pride_and_prejudice.txt", "code_click_core.py",
    "ru_pushkin_kapitanskaya_dochka.txt", "zh_hongloumeng.txt",
    "mixed_antd_changelog_zh-CN.md",
)
#: The config variants Glyph's tools use, as Glyph JSON keys over the published config.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "marker": {"newline-markup": GLYPH_NEWLINE_MARKER},
    "justify": {"alignment": "JUSTIFY"},
    "dpi96": {"dpi": 96},
    "dpi120": {"dpi": 120},
    "indent": {"first-line-indent": 12, "left-indent": 6, "right-indent": 6,
               "space-before": 3, "space-after": 2},
    "hscale": {"horizontal-scale": 0.85},
    "colours": {"font-color": "#1B2A4A", "page-bg-color": "#FDF6E3",
                "para-bg-color": "#FDF6E3"},
    "compact": {"newline-markup": GLYPH_NEWLINE_MARKER, "margin-x": 4, "margin-y": 4,
                "font-size": 8, "line-height": 8, "dpi": 96},
}
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
_CJK = re.compile(r"[\u4E00-\u9FFF]")
MAX_MEAN = 1.0  # grey levels, per page


@dataclass
class Side:
    images: list[np.ndarray]
    lines: list[list[str]]  # per page: each drawn line's visible characters


@dataclass
class Result:
    variant: str
    file: str
    ref_pages: int
    our_pages: int
    breaks_same: int = 0
    sizes_same: int = 0
    means: list[float] = field(default_factory=list)
    max_diff: int = 0
    exact: int = 0  # pages identical to the last pixel
    ink_ref: float = 0.0
    ink_ours: float = 0.0
    cer_ref: float | None = None
    cer_ours: float | None = None
    seconds_ref: float = 0.0
    seconds_ours: float = 0.0

    @property
    def ok(self) -> bool:
        n = max(self.ref_pages, self.our_pages)
        return (self.ref_pages == self.our_pages and self.breaks_same == n
                and self.sizes_same == n and max(self.means, default=0.0) <= MAX_MEAN)


def _ink(line: str) -> str:
    return "".join(c for c in line if not (c.isspace() or unicodedata.category(c) == "Zs"))


def find_cjk_font() -> str | None:
    for p in CJK_FONTS:
        if Path(p).is_file():
            return p
    if shutil.which("fc-match"):
        out = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True,
                             text=True, check=False).stdout.strip()
        if out and Path(out).is_file() and "DejaVu" not in out:
            return out
    return None


def glyph_config(variant: dict[str, Any], font: str) -> dict[str, Any]:
    """The published English config (config_en.json) with the variant and the font."""
    cfg = dict(ref.DEFAULT_CONFIG)
    cfg.update(variant)
    cfg["font-path"] = font
    return cfg


def reference_side(text: str, cfg: dict[str, Any], original: Any | None) -> Side:
    lay = ref.reference_layout(text, cfg)
    lines = [[_ink(" ".join(ln.words)) for ln in page] for page in lay.pages]
    if original is None:
        images = ref.postprocess(ref.rasterize(lay.pdf, cfg), cfg)
    else:
        with tempfile.TemporaryDirectory() as d:
            paths = original.text_to_images(text, d, config_dict=dict(cfg), unique_id="fid")
            images = [Image.open(p) for p in paths]
            for im in images:
                im.load()
    return Side([np.asarray(im.convert("RGB")) for im in images], lines)


def our_side(text: str, cfg: dict[str, Any]) -> Side:
    ours = RenderConfig.from_dict({**cfg, "fallback-fonts": []})
    pages = list(layout(text, ours))
    images = [np.asarray(rasterize(p, ours, last=i == len(pages) - 1).convert("RGB"))
              for i, p in enumerate(pages)]
    lines = [[_ink(ln.text) for ln in p.lines] for p in pages]
    return Side(images, lines), pages


def _grey(rgb: np.ndarray) -> np.ndarray:
    v = rgb.astype(np.int64)
    return (v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 0x8000) >> 16


def ocr_cer(image: np.ndarray, truth: str, lang: str) -> float | None:
    if shutil.which("tesseract") is None:
        return None
    im = Image.fromarray(image).convert("L")
    im = im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    # one thread: Tesseract's OpenMP workers spin in the kernel for minutes on CJK pages
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        proc = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "6", "-l", lang],
                              input=buf.getvalue(), capture_output=True, timeout=300,
                              check=False, env=env)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    # OCR breaks lines where the page wrapped them (and spaces CJK out): compare ink only
    return character_error_rate(proc.stdout.decode("utf-8", "replace"), truth,
                                whitespace="remove" if lang != "eng" else "collapse")


def compare(variant: str, name: str, text: str, cfg: dict[str, Any], original: Any | None,
            ocr: bool) -> Result:
    t0 = time.perf_counter()
    r = reference_side(text, cfg, original)
    t1 = time.perf_counter()
    o, pages = our_side(text, cfg)
    t2 = time.perf_counter()
    res = Result(variant, name, len(r.images), len(o.images), seconds_ref=t1 - t0,
                 seconds_ours=t2 - t1)
    for i in range(min(len(r.images), len(o.images))):
        a, b = r.images[i], o.images[i]
        if r.lines[i] == o.lines[i]:
            res.breaks_same += 1
        ga, gb = _grey(a), _grey(b)
        res.ink_ref += float((255 - ga).sum())
        res.ink_ours += float((255 - gb).sum())
        if a.shape == b.shape:
            res.sizes_same += 1
            d = np.abs(ga - gb)
            res.means.append(float(d.mean()))
            worst = int(np.abs(a.astype(int) - b.astype(int)).max())
            res.max_diff = max(res.max_diff, worst)
            res.exact += worst == 0
        else:
            res.means.append(float("inf"))
    if ocr and pages:
        lang = "chi_sim" if _CJK.search(text) else "eng"
        truth = text[pages[0].start:pages[0].end]
        res.cer_ref = ocr_cer(r.images[0], truth, lang)
        res.cer_ours = ocr_cer(o.images[0], truth, lang)
    return res


def load_original(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("glyph_word2png_original", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_recreation(original: Any, texts: dict[str, str], font: str) -> bool:
    """The re-creation must equal the original script, pixel for pixel."""
    ok = True
    for name, text in list(texts.items())[:3]:
        for vname in ("default", "marker", "hscale"):
            cfg = glyph_config(VARIANTS[vname], font)
            with tempfile.TemporaryDirectory() as d:
                paths = original.text_to_images(text, d, config_dict=dict(cfg), unique_id="x")
                a = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
            b = [np.asarray(im) for im in ref.render_reference(text, cfg)]
            same = len(a) == len(b) and all(x.shape == y.shape and (x == y).all()
                                             for x, y in zip(a, b, strict=True))
            print(f"re-creation vs original: {name} {vname}: "
                  f"{'identical' if same else 'DIFFERENT'} ({len(a)} pages)")
            ok &= same
    return ok


def _fmt_cer(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _speed(rs: list[Result]) -> float:
    return sum(r.seconds_ref for r in rs) / max(sum(r.seconds_ours for r in rs), 1e-9)


def report(results: list[Result]) -> None:
    print(f"{'variant':<9} {'file':<34} {'pages':>9} {'breaks':>7} {'sizes':>7} "
          f"{'worst':>7} {'mean':>7} {'max':>4} {'ink':>6} {'CER ref/ours':>13} {'ref s':>6} "
          f"{'ours s':>6}")
    for r in results:
        finite = [m for m in r.means if m != float("inf")]
        worst = max(r.means, default=0.0)
        print(f"{r.variant:<9} {r.file[:34]:<34} {r.ref_pages:>4}/{r.our_pages:<4} "
              f"{r.breaks_same:>7} {r.sizes_same:>7} {worst:>7.3f} "
              f"{(sum(finite) / len(finite) if finite else 0):>7.4f} {r.max_diff:>4} "
              f"{(r.ink_ours / r.ink_ref if r.ink_ref else 1):>6.3f} "
              f"{_fmt_cer(r.cer_ref) + '/' + _fmt_cer(r.cer_ours):>13} {r.seconds_ref:>6.1f} "
              f"{r.seconds_ours:>6.2f}")
    by: dict[str, list[Result]] = {}
    for r in results:
        by.setdefault(r.variant, []).append(r)
    print("\nper variant:")
    for v, rs in by.items():
        pages = sum(max(r.ref_pages, r.our_pages) for r in rs)
        means = [m for r in rs for m in r.means]
        print(f"  {v:<9} {sum(r.our_pages for r in rs)}/{sum(r.ref_pages for r in rs)} pages, "
              f"breaks identical {sum(r.breaks_same for r in rs)}/{pages}, sizes identical "
              f"{sum(r.sizes_same for r in rs)}/{pages}, worst page mean "
              f"{max(means, default=0):.4f}, max pixel diff {max(r.max_diff for r in rs)}, "
              f"pixel-identical pages {sum(r.exact for r in rs)}/{pages}, "
              f"in-process speed {_speed(rs):.0f}x "
              f"{'OK' if all(r.ok for r in rs) else 'MISS'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="folder of texts")
    ap.add_argument("--files", default=",".join(DEFAULT_FILES), help="comma-separated names")
    ap.add_argument("--chars", type=int, default=20_000, help="characters per text (0: all)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--font", default=None, help="Latin font on both sides (e.g. Verdana.ttf)")
    ap.add_argument("--cjk-font", default=None, help="font for Chinese texts on both sides")
    ap.add_argument("--original", default=None,
                    help="path to Glyph's scripts/word2png_function.py: the reference itself")
    ap.add_argument("--ocr", action="store_true", help="Tesseract CER of both sides' page 1")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every page matches")
    args = ap.parse_args(argv)

    from glyph_render.fonts import bundled_font

    font = str(Path(args.font).resolve()) if args.font else bundled_font("DejaVuSans")
    cjk_font = args.cjk_font or find_cjk_font()
    corpus = Path(args.corpus)
    texts: dict[str, str] = {}
    for name in [f for f in args.files.split(",") if f]:
        with open(corpus / name, encoding="utf-8", newline="") as f:
            t = f.read()
        texts[name] = t[: args.chars] if args.chars else t
    original = load_original(args.original) if args.original else None
    print(f"latin font: {font}\ncjk font: {cjk_font}\nreference: "
          f"{args.original or 'benchmarks/reference_glyph.py (re-creation)'}")
    ok = True
    if original is not None:
        ok &= check_recreation(original, texts, font)
    results: list[Result] = []
    for vname in [v for v in args.variants.split(",") if v]:
        for name, text in texts.items():
            f = font
            if _CJK.search(text):
                if cjk_font is None:
                    print(f"skip {name}: no CJK font (apt-get install fonts-wqy-microhei)")
                    continue
                f = cjk_font
            res = compare(vname, name, text, glyph_config(VARIANTS[vname], f), original,
                          args.ocr)
            results.append(res)
            print(f"  {vname} {name}: {res.our_pages}/{res.ref_pages} pages, "
                  f"worst mean {max(res.means, default=0):.4f}", flush=True)
    print()
    report(results)
    ok &= all(r.ok for r in results)
    pages = sum(max(r.ref_pages, r.our_pages) for r in results)
    print(f"\ntotal: {pages} pages, breaks identical {sum(r.breaks_same for r in results)}, "
          f"sizes identical {sum(r.sizes_same for r in results)}, pixel-identical "
          f"{sum(r.exact for r in results)}, worst page mean "
          f"{max((m for r in results for m in r.means), default=0):.4f}")
    print("\nall variants identical in breaks and sizes, <= 1 grey level per page" if ok
          else "\nMISS: see the table")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
