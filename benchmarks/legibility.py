"""How small can glyphs get? Tesseract's character error rate on rendered pages vs pixels per em.

The compressor (glyph_render/compress.py) never draws text below ``DEFAULT_MIN_PX_PER_EM``
pixels per em (font size in pt x DPI / 72). This measures where legibility breaks down so that
floor rests on data: real corpus prose is rendered at each (DPI, font size), each page is read
back by Tesseract and compared with the page's source span ``text[page.start:page.end]``.

Tesseract is a weak proxy for a VLM: its failures are not Glyph's (on CJK it misreads even
large type). The curve's shape (where errors start to climb) is what counts.

Comparison rules, applied to OCR output and reference alike: NFKC (full-width punctuation that
Tesseract writes as ASCII, ligatures), typographic quotes and dashes folded to ASCII, whitespace
collapsed (Latin, Cyrillic) or removed (CJK, where Tesseract puts spaces between characters).
Pages are upscaled (Lanczos) before OCR so an em is ``OCR_EM_PX`` = 21 pixels (``--ocr-scale
auto``). Measured on 9 pt English pages (two books, mean CER): at 5/6/7/8/9/10 px/em, auto gave
27.7/21.5/5.7/5.2/2.0/1.1%, fixed 2x 46.5/26.2/7.6/6.3/2.2/1.0%, fixed 3x 27.0/21.9/5.7/6.1/2.9/
1.0%, and em -> 27 px 30.7/23.4/6.9/5.6/2.9/1.0%. Samples are the first page of text from
paragraph starts spread over the middle of each book (no front matter).

Result (Tesseract 5.3, DejaVu Sans / Droid Sans Fallback, pages drawn as Glyph's renderer
draws them: unhinted FreeType glyphs at quarter-pixel phases): CER depends on px/em alone, not
on the font size (7 and 9 pt agree within a point). English/Russian median CER, 3 pages each:
17/19% at 5.5 px/em, 9/11% at 6, 7/7% at 6.25, 4/7% at 6.5, 3/6% at 6.75, 2/4% at 7.0, 1.4/1.3%
at 7.5, 0.9/0.2% at 8, 0.6/0.1% at 9. So 7.0 px/em stays the floor: the first size under 5% for
both scripts (English alone would allow 6.5), ~1 px/em above the 10% cliff. The unhinted pages
read better than the hinted ones this floor was first set on (then ~5% at 7 px/em, 20/36% at 6).
CJK needs more: zh (chi_tra) 72% at 7 px/em, 52% at 8, 23% at 9, 17% at 10, 9% at 12, 7% at 14;
ja 31% at 7, 17% at 8, 15% at 9, 8% at 11, 4% at 14. The knee lies between 8 and 9 px/em, so the
CJK floor stays 9.

    # the grids behind the floor (2 cores: ~5 and ~2 minutes)
    python benchmarks/legibility.py --scripts en,ru --font-size 7,9 --pages 3 \
        --px-per-em 5.5,6,6.25,6.5,6.75,7,7.5,8,9 --plot knee.png --json knee.json
    python benchmarks/legibility.py --scripts zh,ja --font-size 9 --pages 2 --chars 3000 \
        --px-per-em 7,8,9,10,11,12,14 --plot cjk.png
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render.compress import DEFAULT_MIN_PX_PER_EM  # noqa: E402
from glyph_render.config import RenderConfig  # noqa: E402
from glyph_render.niah import default_corpus_dir, load_text  # noqa: E402
from glyph_render.render import iter_pages  # noqa: E402
from glyph_render.scoring import character_error_rate  # noqa: E402

DISCLAIMER = (
    "NOTE: Tesseract is a weak proxy for a VLM: its errors (worst on CJK, where its models are\n"
    "weak even on large type) are not Glyph's. Read the absolute CER as indicative only and\n"
    "the knee of the curve (where errors start to climb) as the signal."
)
OCR_EM_PX = 21.0  # auto upscale target: pixels per em that Tesseract reads best


@dataclass(frozen=True)
class Script:
    """A writing system to test: books to sample, the preset, Tesseract's language."""

    name: str
    files: tuple[str, ...]
    preset: str
    lang: str
    package: str  # Debian package with the language data
    whitespace: str  # how CER treats whitespace


SCRIPTS = {
    "en": Script("en", ("en_pride_and_prejudice.txt", "en_adventures_of_sherlock_holmes.txt",
                        "en_frankenstein.txt"), "glyph-en", "eng", "tesseract-ocr-eng", "collapse"),
    "ru": Script("ru", ("ru_pushkin_kapitanskaya_dochka.txt",), "glyph-en", "rus",
                 "tesseract-ocr-rus", "collapse"),
    "zh": Script("zh", ("zh_hongloumeng.txt",), "glyph-zh", "chi_tra", "tesseract-ocr-chi-tra",
                 "remove"),
    "ja": Script("ja", ("ja_natsume_kokoro.txt",), "glyph-zh", "jpn", "tesseract-ocr-jpn",
                 "remove"),
}

_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
})


def fold(text: str) -> str:
    """NFKC plus ASCII quotes/dashes: code-point choices that are not legibility errors."""
    return unicodedata.normalize("NFKC", text).translate(_FOLD)


@dataclass
class Sample:
    script: str
    font_size: float
    dpi: float
    px_per_em: float
    file: str
    start: int
    chars: int
    width: int
    height: int
    scale: float
    cer: float = math.nan
    seconds: float = 0.0


def ocr(image: Image.Image, scale: float, lang: str) -> str:
    """``tesseract stdin stdout --psm 6``: one uniform block, which dense pages are."""
    gray = image.convert("L")
    if scale != 1.0:
        size = (round(gray.width * scale), round(gray.height * scale))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    gray.save(buf, format="PNG", compress_level=1)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one core per page; pages run in parallel
    proc = subprocess.run(
        ["tesseract", "stdin", "stdout", "--psm", "6", "-l", lang],
        input=buf.getvalue(), capture_output=True, env=env, timeout=600, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tesseract failed: {proc.stderr.decode('utf-8', 'replace')[-300:]}")
    return proc.stdout.decode("utf-8", "replace")


def tesseract_langs() -> set[str]:
    if shutil.which("tesseract") is None:
        return set()
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True,
                         check=False).stdout
    return {line.strip() for line in out.splitlines()[1:] if line.strip()}


def sample_starts(text: str, n: int) -> list[int]:
    """``n`` paragraph starts spread over the middle of the book (skipping front matter)."""
    starts = []
    for k in range(n):
        at = int(len(text) * (0.2 + 0.6 * (k + 0.5) / n))
        nl = text.find("\n", at)
        starts.append(nl + 1 if 0 <= nl < len(text) - 1 else at)
    return starts


def _floor(points: list[tuple[float, float]], limit: float) -> float | None:
    """Smallest px/em at and above which every measured setting's CER is within ``limit``."""
    ok = None
    for pxem, cer in sorted(points, reverse=True):
        if cer > limit:
            break
        ok = pxem
    return ok


def _fmt_floor(v: float | None) -> str:
    return "none measured" if v is None else f">= {v:.2f} px/em"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scripts", default="en,ru,zh,ja", help="from: " + ", ".join(SCRIPTS))
    ap.add_argument("--dpi", default="40,48,56,64,72,96,120,144")
    ap.add_argument("--px-per-em", default=None,
                    help="sweep these px/em instead of --dpi (DPI = px/em x 72 / font size)")
    ap.add_argument("--font-size", default="7,9,11")
    ap.add_argument("--pages", type=int, default=2, help="sample pages per setting and script")
    ap.add_argument("--chars", type=int, default=None,
                    help="source characters per sample (default: a full page)")
    ap.add_argument("--ocr-scale", default="auto",
                    help=f"upscale before OCR: 'auto' (1 em -> {OCR_EM_PX:g} px) or a factor")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--corpus", type=Path, default=default_corpus_dir())
    ap.add_argument("--plot", type=Path, help="write CER vs px/em to this PNG")
    ap.add_argument("--json", type=Path, help="write every sample to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="one stderr line per page read")
    args = ap.parse_args(argv)

    sizes = [float(x) for x in args.font_size.split(",")]
    if args.px_per_em:
        ems = [float(x) for x in args.px_per_em.split(",")]
        dpis_for = {fs: [round(e * 72 / fs, 4) for e in ems] for fs in sizes}
    else:
        dpis_for = {fs: [float(x) for x in args.dpi.split(",")] for fs in sizes}
    names = [s.strip() for s in args.scripts.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown scripts {unknown} (choose from {', '.join(SCRIPTS)})")
    fixed_scale = None if args.ocr_scale == "auto" else float(args.ocr_scale)

    langs = tesseract_langs()
    if not langs:
        print("tesseract not found: apt-get install tesseract-ocr tesseract-ocr-eng",
              file=sys.stderr)
        return 2
    scripts = []
    for n in names:
        s = SCRIPTS[n]
        if s.lang in langs:
            scripts.append(s)
        else:
            print(f"SKIPPED {n}: Tesseract has no '{s.lang}' data (apt-get install {s.package})",
                  file=sys.stderr)
    if not scripts:
        return 2

    print(DISCLAIMER)
    print(f"tesseract --psm 6; upscale: {args.ocr_scale}; pages per setting: {args.pages}; "
          f"chars per sample: {args.chars or 'full page'}\n")

    t0 = time.perf_counter()
    samples: list[Sample] = []
    pending: list[tuple[Sample, Future[str], str]] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for s in scripts:
            books = [load_text(args.corpus / f, unwrap=True) for f in s.files]
            picks = [(k % len(books), k) for k in range(args.pages)]
            for fs in sizes:
                for dpi in dpis_for[fs]:
                    cfg = RenderConfig.preset(s.preset).replace(
                        dpi=dpi, font_size=fs, line_height=round(fs * 10 / 9, 3))
                    pxem = fs * dpi / 72
                    for b, k in picks:
                        book = books[b]
                        start = sample_starts(book, args.pages)[k]
                        chunk = book[start: start + (args.chars or 40_000)]
                        page = next(iter_pages(chunk, cfg, keep_image=True, encode=False))
                        assert page.image is not None
                        scale = fixed_scale or max(1.0, OCR_EM_PX / pxem)
                        ref = chunk[page.start:page.end]
                        smp = Sample(s.name, fs, dpi, pxem, s.files[b], start + page.start,
                                     len(ref), page.width, page.height, round(scale, 3))
                        fut = pool.submit(_timed_ocr, page.image, scale, s.lang)
                        pending.append((smp, fut, ref))
        for k, (smp, fut, ref) in enumerate(pending, 1):
            hyp, smp.seconds = fut.result()
            smp.cer = character_error_rate(fold(hyp), fold(ref), whitespace=_ws(smp.script))
            samples.append(smp)
            if args.verbose:
                print(f"[{k}/{len(pending)}] {smp.script} {smp.font_size:g} pt {smp.dpi:g} dpi "
                      f"{smp.file}@{smp.start}: CER {100 * smp.cer:.2f}% ({smp.seconds:.1f} s)",
                      file=sys.stderr, flush=True)

    report(samples, scripts)
    print(f"\n{len(samples)} pages OCR'd in {time.perf_counter() - t0:.0f} s")
    print(DISCLAIMER)
    if args.json:
        args.json.write_text(json.dumps([asdict(x) for x in samples], indent=1))
        print(f"samples -> {args.json}")
    if args.plot:
        plot(samples, args.plot)
    return 0


def _ws(script: str) -> str:
    return SCRIPTS[script].whitespace


def _timed_ocr(image: Image.Image, scale: float, lang: str) -> tuple[str, float]:
    t = time.perf_counter()
    text = ocr(image, scale, lang)
    return text, time.perf_counter() - t


def report(samples: list[Sample], scripts: list[Script]) -> None:
    print(f"{'script':6} {'pt':>4} {'dpi':>5} {'px/em':>6} {'pages':>5} {'chars':>7} "
          f"{'CER median':>10} {'CER mean':>9} {'ocr s':>6}")
    for s in scripts:
        settings: dict[tuple[float, float], list[Sample]] = {}
        for x in samples:
            if x.script == s.name:
                settings.setdefault((x.font_size, x.dpi), []).append(x)
        rows = []
        for (fs, dpi), got in settings.items():
            cers = [x.cer for x in got]
            rows.append((fs * dpi / 72, fs, dpi, got, statistics.median(cers),
                         statistics.fmean(cers)))
        for pxem, fs, dpi, got, med, mean in sorted(rows, key=lambda r: (r[0], r[1])):
            print(f"{s.name:6} {fs:4g} {dpi:5g} {pxem:6.2f} {len(got):5d} "
                  f"{sum(x.chars for x in got):7d} {100 * med:9.2f}% {100 * mean:8.2f}% "
                  f"{sum(x.seconds for x in got):6.1f}")
        points = [(r[0], r[4]) for r in rows]
        print(f"{s.name}: median CER <= 5% for every setting {_fmt_floor(_floor(points, 0.05))}; "
              f"<= 10% {_fmt_floor(_floor(points, 0.10))}; <= 20% "
              f"{_fmt_floor(_floor(points, 0.20))} (compressor floor now "
              f"{DEFAULT_MIN_PX_PER_EM:g} px/em)\n")


def plot(samples: list[Sample], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install matplotlib, or the 'bench' "
              "extra: pip install -e '.[bench]')", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {7.0: "v", 9.0: "o", 11.0: "^"}
    for i, script in enumerate(sorted({x.script for x in samples})):
        color = f"C{i}"
        for fs in sorted({x.font_size for x in samples if x.script == script}):
            pts: dict[float, list[float]] = {}
            for x in samples:
                if x.script == script and x.font_size == fs:
                    pts.setdefault(x.px_per_em, []).append(x.cer)
            xs = sorted(pts)
            ys = [max(1e-4, statistics.median(pts[p])) for p in xs]
            ax.plot(xs, ys, color=color, marker=markers.get(fs, "s"), alpha=0.8,
                    label=f"{script} {fs:g} pt")
    for y in (0.05, 0.10):
        ax.axhline(y, color="grey", lw=0.8, ls="--")
    ax.axvline(DEFAULT_MIN_PX_PER_EM, color="red", lw=0.8, ls=":",
               label=f"compressor floor {DEFAULT_MIN_PX_PER_EM:g} px/em")
    ax.set_yscale("log")
    ax.set_xlabel("pixels per em (font pt x DPI / 72)")
    ax.set_ylabel("Tesseract CER (median over pages)")
    ax.set_title("Legibility of rendered pages (Tesseract: a weak proxy for a VLM)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot -> {path}")


if __name__ == "__main__":
    sys.exit(main())
