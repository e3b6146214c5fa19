"""Render speed: glyph-render against Glyph's own renderer, whole process and in process.

What a user sees is the whole process: ``glyph-render doc.txt`` from the shell (interpreter
start, imports, reading, layout, raster, PNG encode and write, the text-token count behind the
report's ratio). This runs that command and Glyph's ``text_to_images`` (the original script with
``--original``, else the re-creation in ``reference_glyph.py``) as fresh processes on the same
text and config, pinned to one core (``--cores 1``, the headline) and on all cores, and prints
the median of ``--repeats`` runs and the ratio, measured side by side in one run. Then, in
process: pages/s warm (caches filled by a first render) and cold (a fresh interpreter, text it
has never seen), the stages, the render command's import time (and whether it pulled in the
client), and peak memory of streaming renders of 1 M and 8 M characters.

The default text is 400,000 characters of flowing English prose: the corpus's English books
with their hard-wrapped lines joined into paragraphs (one source line per paragraph), repeated
to length when the corpus is short.

    python benchmarks/render_speed.py --font Verdana.ttf \
        --original path/to/scripts/word2png_function.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CORPUS = ROOT / "glyph_render" / "data" / "corpus"
ENGLISH = ("en_pride_and_prejudice.txt", "en_frankenstein.txt",
           "en_adventures_of_sherlock_holmes.txt", "en_alice_in_wonderland.txt",
           "en_war_of_the_worlds.txt", "en_art_of_war_giles.txt")


def flowing_prose(corpus: Path, chars: int) -> str:
    """English books, each paragraph on one line, concatenated (and repeated) to ``chars``."""
    parts = []
    for name in ENGLISH:
        p = corpus / name
        if not p.exists():
            continue
        t = p.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        paras = [re.sub(r"\s*\n\s*", " ", q.strip()) for q in re.split(r"\n\s*\n", t)]
        parts.append("\n".join(q for q in paras if q))
    text = "\n".join(parts)
    if not text:
        raise SystemExit(f"no English texts in {corpus}")
    while len(text) < chars:
        text += "\n" + text
    return text[:chars]


def cpus(n: int | None) -> list[int]:
    have = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return have[:n] if n else have


def user_env() -> dict[str, str]:
    """The environment a user's shell has: bytecode caches on, as a pip install leaves them.

    With ``PYTHONDONTWRITEBYTECODE`` set (some sandboxes and CI images set it) every fresh
    process compiles each module from source again; that is no one's real start-up. The
    first, uncounted round of each measurement writes the caches on both sides.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(cmd: list[str], cores: list[int], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one process (its children included), pinned to ``cores``."""
    def pin() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cores))

    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin,
                          env=env or user_env(), check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed:\n{proc.stderr[-2000:]}")
    return dt


def reference_cmd(text_file: str, out: str, config: dict, original: str | None) -> list[str]:
    if original:
        folder = str(Path(original).resolve().parent)
        module = Path(original).stem
        code = (f"import sys, json; sys.path.insert(0, {folder!r}); import {module} as m; "
                f"t = open({text_file!r}, encoding='utf-8').read(); "
                f"m.text_to_images(t, {out!r}, config_dict=json.loads({json.dumps(config)!r}), "
                "unique_id='bench')")
    else:
        code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
                "import reference_glyph as r, os; "
                f"t = open({text_file!r}, encoding='utf-8').read(); "
                f"c = json.loads({json.dumps(config)!r}); "
                f"os.makedirs({out!r}, exist_ok=True); "
                "[open(os.path.join(" + repr(out) + ", f'page_{i + 1:03d}.png'), 'wb')"
                ".write(r.png_bytes(im)) for i, im in enumerate(r.render_reference(t, c))]")
    return [sys.executable, "-c", code]


def ours_cmd(text_file: str, out: str, font: str | None) -> list[str]:
    exe = Path(sys.executable).with_name("glyph-render")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "glyph_render"]
    cmd += [text_file, "-o", out, "--preset", "glyph-en"]
    if font:
        cmd += ["--font", font]
    return cmd


def whole_process(text_file: str, font: str | None, original: str | None, cores: list[int],
                  repeats: int) -> tuple[float, float]:
    from glyph_render.config import RenderConfig

    cfg = RenderConfig.preset("glyph-en")
    if font:
        cfg = cfg.replace(font_path=font)
    glyph_cfg = {k: v for k, v in cfg.to_dict().items()
                 if k not in ("fallback-fonts", "tab-size", "remove-line-breaks",
                              "split-blank-line")}
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(repeats + 1):  # the first round warms the disk cache, not counted
            a = run(ours_cmd(text_file, f"{d}/ours{i}", font), cores)
            b = run(reference_cmd(text_file, f"{d}/ref{i}", glyph_cfg, original), cores)
            if i:
                ours.append(a)
                theirs.append(b)
    return statistics.median(ours), statistics.median(theirs)


def imports_ms(repeats: int = 7) -> tuple[float, bool]:
    code = ("import time, sys, os; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); "
            "t = time.perf_counter(); import glyph_render.cli, glyph_render.render; "
            "print(time.perf_counter() - t, 'openai' in sys.modules or "
            "'glyph_render.client' in sys.modules)")
    runs = []
    client = False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=user_env(), check=True).stdout.split()
        runs.append(float(out[0]))
        client |= out[1] == "True"
    return 1000 * statistics.median(runs), client


def in_process(text: str, font: str | None) -> dict[str, float]:
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
from glyph_render.config import RenderConfig
from glyph_render.encode import encode_png
from glyph_render.layout import layout
from glyph_render.raster import rasterize
from glyph_render.render import iter_pages
text = open(sys.argv[1], encoding='utf-8').read()
cfg = RenderConfig.preset('glyph-en')
if {font!r}:
    cfg = cfg.replace(font_path={font!r})
t = time.perf_counter(); n = sum(1 for _ in iter_pages(text, cfg)); cold = time.perf_counter() - t
t = time.perf_counter(); n = sum(1 for _ in iter_pages(text, cfg)); warm = time.perf_counter() - t
t = time.perf_counter(); pages = list(layout(text, cfg)); lay = time.perf_counter() - t
t = time.perf_counter(); imgs = [rasterize(p, cfg, last=i == len(pages) - 1)
                                 for i, p in enumerate(pages)]; ras = time.perf_counter() - t
t = time.perf_counter(); size = sum(len(encode_png(im, cfg.dpi)) for im in imgs)
enc = time.perf_counter() - t
print(json.dumps(dict(pages=n, cold=cold, warm=warm, layout=lay, raster=ras, encode=enc,
                      bytes=size, chars=len(text))))
"""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        out = subprocess.run([sys.executable, "-c", code, f.name], capture_output=True,
                             text=True, check=True, env=user_env(), preexec_fn=lambda: (
                                 os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})))
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout)


def peak_memory(chars: int, corpus: Path) -> tuple[int, int]:
    text_code = (f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
                 f"from render_speed import flowing_prose; "
                 f"text = flowing_prose(__import__('pathlib').Path({str(corpus)!r}), {chars})")
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); {text_code}\n"
            "from glyph_render import RenderConfig\nfrom glyph_render.render import iter_pages\n"
            "n = sum(1 for _ in iter_pages(text, RenderConfig.preset('glyph-en')))\n"
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
            "print(n, int(hwm.split()[1]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--chars", type=int, default=400_000)
    ap.add_argument("--font", default=None, help="font on both sides (e.g. Glyph's Verdana.ttf)")
    ap.add_argument("--original", default=None,
                    help="path to Glyph's scripts/word2png_function.py (default: re-creation)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    corpus = Path(args.corpus)
    text = flowing_prose(corpus, args.chars)
    font = str(Path(args.font).resolve()) if args.font else None
    print(f"render_speed: {len(text):,} chars of flowing English prose, glyph-en preset, font "
          f"{font or 'the preset default'}, reference "
          f"{args.original or 'reference_glyph.py (re-creation)'}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        print("\n== whole process (glyph-render doc.txt -o DIR vs text_to_images), median of "
              f"{args.repeats}")
        for label, n in (("one core", 1), ("all cores", None)):
            cores = cpus(n)
            ours, theirs = whole_process(f.name, font, args.original, cores, args.repeats)
            print(f"  {label:9} ({len(cores)} CPU): glyph-render {ours:.2f} s, reference "
                  f"{theirs:.2f} s: {theirs / ours:.1f}x")
    finally:
        os.unlink(f.name)
    ms, client = imports_ms()
    print(f"\n== render command imports: {ms:.0f} ms (median of 7 fresh processes); client or "
          f"openai imported: {'yes' if client else 'no'}")
    r = in_process(text, font)
    n = r["pages"]
    print(f"\n== in process, one core: {n} pages, {r['chars']:,} chars")
    print(f"  cold (fresh interpreter, text never seen): {n / r['cold']:.1f} pages/s")
    print(f"  warm (caches filled):                      {n / r['warm']:.1f} pages/s")
    print(f"  stages: layout {r['chars'] / r['layout'] / 1e6:.2f} M chars/s "
          f"({1000 * r['layout'] / n:.2f} ms/page), raster {1000 * r['raster'] / n:.2f} ms/page, "
          f"encode {1000 * r['encode'] / n:.2f} ms/page; {r['bytes'] / n / 1024:.1f} KiB/page")
    if not args.no_memory:
        print("\n== peak memory, streaming render (child processes, VmHWM)")
        for chars in (1_000_000, 8_000_000):
            pages, rss = peak_memory(chars, corpus)
            print(f"  {chars:>10,} chars -> {pages:5d} pages: peak RSS {rss / 1024:7.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
