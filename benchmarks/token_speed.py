"""Text-token count: tiktoken against the C counter (``glyph_render._bpe``), and what the count
costs the render command.

1. load + count of cl100k_base on the 400,000-character text of ``render_speed.py``
   (``flowing_prose``), each in a fresh process pinned to one core, timed inside it (the
   package's own imports excluded): tiktoken as before (``GLYPH_RENDER_NO_BPE=1``) and the C
   counter, cold (an empty cache folder: nothing cached yet, so tiktoken's bundled file is parsed
   and the caches are written) and warm (caches in place).
2. the whole command ``glyph-render doc.txt -o DIR --preset glyph-en [--font F]`` with the
   default tokenizer (the C counter), with tiktoken (``GLYPH_RENDER_NO_BPE=1``) and with
   ``--tokenizer bytes`` (no tokenizer at all: the floor), on one core and on two.

All variants run interleaved, round after round, and medians are printed side by side.

    python benchmarks/token_speed.py --font /work/ref/Verdana.ttf --repeats 9
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_speed import DEFAULT_CORPUS, ROOT, cpus, flowing_prose, ours_cmd, user_env  # noqa: E402

LOAD_AND_COUNT = """
import json, sys, time
sys.path.insert(0, {root!r})
text = open(sys.argv[1], encoding="utf-8").read()
from glyph_render import text_tokens as T
t0 = time.perf_counter()
tok = T.get_tokenizer("cl100k_base")
t1 = time.perf_counter()
n = tok.count(text)
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "count": t2 - t1, "n": n, "kind": type(tok).__name__}}))
"""


def pinned(cores: list[int]):
    def pin() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cores))
    return pin


def load_and_count(text_file: str, cache: str, c: bool, core: list[int]) -> dict:
    env = {**user_env(), "GLYPH_RENDER_CACHE": cache}
    env.pop("GLYPH_RENDER_NO_BPE", None)
    if not c:
        env["GLYPH_RENDER_NO_BPE"] = "1"
    out = subprocess.run([sys.executable, "-c", LOAD_AND_COUNT.format(root=str(ROOT)), text_file],
                         capture_output=True, text=True, env=env, preexec_fn=pinned(core),
                         check=False)
    if out.returncode:
        raise SystemExit(f"load+count failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def command(text_file: str, out: str, font: str | None, cache: str, variant: str,
            cores: list[int]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of the render command."""
    env = {**user_env(), "GLYPH_RENDER_CACHE": cache}
    env.pop("GLYPH_RENDER_NO_BPE", None)
    cmd = ours_cmd(text_file, out, font)
    if variant == "tiktoken":
        env["GLYPH_RENDER_NO_BPE"] = "1"
    elif variant == "bytes":
        cmd += ["--tokenizer", "bytes"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=pinned(cores),
                          check=False)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return dt, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--chars", type=int, default=400_000)
    ap.add_argument("--font", default=None, help="font for the render command (e.g. Verdana.ttf)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-command", action="store_true", help="only the load + count part")
    args = ap.parse_args(argv)
    text = flowing_prose(Path(args.corpus), args.chars)
    one = cpus(1)
    with tempfile.TemporaryDirectory() as d:
        text_file = os.path.join(d, "doc.txt")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(text)
        warm_cache = os.path.join(d, "warm")
        # first, uncounted: fills the warm cache (both files) and the bytecode caches
        for c in (False, True):
            load_and_count(text_file, warm_cache, c, one)
        rows: dict[str, list[dict]] = {k: [] for k in
                                       ("tiktoken cold", "tiktoken warm", "C cold", "C warm")}
        for i in range(args.repeats):
            for name in rows:
                cache = warm_cache if name.endswith("warm") else os.path.join(d, f"cold{i}{name}")
                rows[name].append(load_and_count(text_file, cache, name.startswith("C"), one))
        counts = {r["n"] for rs in rows.values() for r in rs}
        print(f"load + count of cl100k_base, {len(text):,} chars, fresh process on one core, "
              f"median of {args.repeats} (ms):")
        print(f"  {'':15} {'load':>8} {'count':>8} {'total':>8}  tokenizer")
        for name, rs in rows.items():
            load = 1000 * statistics.median(r["load"] for r in rs)
            count = 1000 * statistics.median(r["count"] for r in rs)
            total = 1000 * statistics.median(r["load"] + r["count"] for r in rs)
            print(f"  {name:15} {load:8.1f} {count:8.1f} {total:8.1f}  {rs[0]['kind']}")
        print(f"  same count everywhere: {len(counts) == 1} ({', '.join(map(str, counts))} tokens)")
        if args.no_command:
            return 0
        variants = ("C (default)", "tiktoken", "bytes")
        for cores in (one, cpus(2)):
            if len(cores) < 2 and cores is not one:
                break
            times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for i in range(args.repeats + 1):  # the first round is not counted
                for v in variants:
                    dt = command(text_file, os.path.join(d, "out"), args.font, warm_cache,
                                 v.split()[0].lower(), cores)
                    if i:
                        times[v].append(dt)
            print(f"whole command on {len(cores)} core(s), median of {args.repeats}, "
                  "seconds (+ ms over the floor, --tokenizer bytes):")
            for k, what in ((0, "wall"), (1, "CPU")):
                med = {v: statistics.median(t[k] for t in ts) for v, ts in times.items()}
                print(f"  {what:5}" + "".join(
                    f"  {v} {t:.3f} (+{1000 * (t - med['bytes']):.0f})" for v, t in med.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
