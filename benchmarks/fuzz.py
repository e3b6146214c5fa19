"""Fuzz the Python API as an adversarial user would, and check its promises on every case.

Each case is drawn from its own seed (``--seed`` and the case number), so a failing case
reruns alone with ``--only N``. A case renders, plans (fit or split) or builds a config from
random texts (ASCII, Latin, CJK, kana, Hangul, RTL, emoji and ZWJ sequences, controls, lone
surrogates, combining marks, naughty strings) and random configs (ordinary, tiny, huge and
hostile values: NaN, inf, 400-digit integers, wrong types). Counted:

- crashes: any exception that is not a ``GlyphRenderError`` (those are the promised errors);
- violations of the invariants below (the functions are shared with tests/test_properties.py):
  page spans tile the input; each PNG's size is the page's reported size and its vision tokens
  are the GLM-4.1V rule on that size; a plan's pages are what rendering its config gives; no
  plan holds a page set over its budget (split chunks each priced alone included);
- the slowest case, and cases still running after ``--timeout`` (run in a child process,
  which is replaced; counted apart, not as crashes).

Violations are tagged: ``budget``, ``tiling``, ``png``, ``rule`` (reported tokens against the
rule on the PNG), ``plan-vs-render`` (a plan's page sizes against rendering its config) and
``arithmetic`` (``page_sizes``, what plans are priced with, against the rasters).

Target (issue 12): 0 crashes and 0 violations over 10,000 cases.

    python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--only N] [--timeout 60]
                              [--max-seconds S]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render import (  # noqa: E402
    GlyphRenderError,
    RenderConfig,
    get_profile,
    image_tokens,
    layout,
    page_sizes,
    render,
)
from glyph_render.compress import Plan, compress  # noqa: E402
from glyph_render.render import RenderResult  # noqa: E402

# --- invariants (tests/test_properties.py uses these too) -----------------------------------


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    w, h = struct.unpack(">II", png[16:24])
    return w, h


def tiling(spans: list[tuple[int, int]], length: int, what: str) -> list[str]:
    """Spans that start at 0, meet end to start and end at ``length``: no text lost or doubled."""
    if not spans:
        return [f"[tiling] {what}: no spans for {length} characters"] if length else []
    out = []
    if spans[0][0] != 0:
        out.append(f"[tiling] {what}: first span starts at {spans[0][0]}, not 0")
    for (_a0, a1), (b0, _b1) in zip(spans, spans[1:], strict=False):
        if a1 != b0:
            out.append(f"[tiling] {what}: span ending at {a1} is followed by one at {b0}")
            break
    if any(e < s for s, e in spans):
        out.append(f"[tiling] {what}: a span ends before it starts")
    if spans[-1][1] != length:
        out.append(f"[tiling] {what}: last span ends at {spans[-1][1]}, not {length}")
    return out


def check_render(text: str, cfg: RenderConfig, res: RenderResult,
                 profile: str = "glyph") -> list[str]:
    """A render's promises: spans tile the text, PNG sizes are the reported ones and their
    tokens the rule's, and the arithmetic sizes (what plans are priced with) agree."""
    prof = get_profile(profile)
    out = tiling([(p.start, p.end) for p in res.pages], len(text), "pages")
    sizes = []
    for p in res.pages:
        if p.png is None:
            out.append(f"[png] page {p.number}: no PNG")
            continue
        w, h = png_size(p.png)
        sizes.append((w, h))
        if (w, h) != (p.width, p.height):
            out.append(f"[png] page {p.number}: PNG is {w}x{h}, reported {p.width}x{p.height}")
        rule = image_tokens(w, h, prof)
        if rule != p.vision_tokens:
            out.append(f"[rule] page {p.number}: {p.vision_tokens} vision tokens reported, "
                       f"the rule on {w}x{h} gives {rule}")
    if sum(p.vision_tokens for p in res.pages) != res.vision_tokens:
        out.append("[rule] result: vision_tokens is not the sum of its pages'")
    arith = page_sizes(list(layout(text, cfg)), cfg)
    if arith != sizes:
        diff = next(((i, a, b) for i, (a, b) in enumerate(zip(arith, sizes, strict=False))
                     if a != b), (len(sizes), len(arith), len(sizes)))
        out.append(f"[arithmetic] page sizes by arithmetic differ from the rasters "
                   f"(page {diff[0] + 1}: {diff[1]} vs {diff[2]})")
    return out


def check_plan(text: str, budget: int, plan: Plan, *, render_pages: bool = True) -> list[str]:
    """A plan's promises: never over budget (each split chunk alone included), spans tile the
    text, and (``render_pages``) rendering the plan's config gives the planned pages."""
    out: list[str] = []
    per = plan.per_image_tokens
    if plan.limited_by == "split":
        out += tiling([(c.start, c.end) for c in plan.chunks], len(text), "chunks")
        for c in plan.chunks:
            cost = c.vision_tokens + per * len(c.pages)
            if cost > budget:
                out.append(f"[budget] chunk {c.start}-{c.end}: costs {cost}, over {budget}")
            out += tiling([(p.start - c.start, p.end - c.start) for p in c.pages],
                          c.end - c.start, f"chunk {c.start}-{c.end} pages")
        if render_pages:
            for c in plan.chunks[:3]:
                res = render(text[c.start:c.end], plan.config, profile=plan.profile)
                got = [(p.width, p.height) for p in res.pages]
                if got != [(p.width, p.height) for p in c.pages]:
                    out.append(f"[plan-vs-render] chunk {c.start}-{c.end}: rendered pages "
                               f"{got[:3]}... differ from the planned ones")
    else:
        if plan.cost > budget:
            out.append(f"[budget] plan costs {plan.cost}, over the budget {budget}")
        out += tiling([(p.start, p.end) for p in plan.pages], len(text), "plan pages")
        if render_pages:
            res = render(text, plan.config, profile=plan.profile)
            got = [(p.width, p.height, p.vision_tokens) for p in res.pages]
            want = [(p.width, p.height, p.vision_tokens) for p in plan.pages]
            if got != want:
                out.append(f"[plan-vs-render] rendered pages {got[:3]}... differ from the plan's "
                           f"{want[:3]}...")
    return out


# --- random inputs -----------------------------------------------------------------------------

_RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F),
    (0x2190, 0x23FF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFB00, 0xFEFF),
    (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF), (0x300, 0x36F),
]
_SPECIAL = ["\n", "\n\n", "\r\n", "\t", " ", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85",
            "\u200b", "\u200d", "\u2028", "\u2029", "\ufeff", "\ufffd", "\ufbe0", "\ud800",
            "\udfff", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u2764\ufe0f", "<br/>",
            "&amp;", "<font color='red'>x</font>", "\u202e", "\u0301", "\\n"]
_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Glyph", "token",
          "支持", "视觉", "文本", "です", "한국어", "Привет", "مرحبا", "שלום", "1234567890",
          "supercalifragilisticexpialidocious" * 3, "https://example.com/a/b?c=d"]


def _naughty() -> list[str]:
    path = ROOT / "tests" / "data" / "mixed_blns_naughty_strings.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln and not ln.startswith("#")]


NAUGHTY = _naughty()


def random_text(rng: random.Random) -> str:
    kind = rng.random()
    n = int(math.exp(rng.uniform(0, math.log(4000))))
    if kind < 0.3:  # prose-like words with newlines
        parts = []
        for _ in range(max(1, n // 6)):
            parts.append(rng.choice(_WORDS))
            parts.append(rng.choice([" ", " ", " ", " ", "\n", "\n\n", ", ", ". "]))
        return "".join(parts)
    if kind < 0.6:  # random code points from many scripts
        out = []
        for _ in range(n):
            if rng.random() < 0.08:
                out.append(rng.choice(_SPECIAL))
            else:
                lo, hi = rng.choice(_RANGES)
                out.append(chr(rng.randint(lo, hi)))
        return "".join(out)
    if kind < 0.75 and NAUGHTY:
        return "\n".join(rng.choice(NAUGHTY) for _ in range(rng.randint(1, 40)))
    if kind < 0.85:  # one script, long
        lo, hi = rng.choice(_RANGES)
        return "".join(chr(rng.randint(lo, hi)) if rng.random() > 0.15 else " "
                       for _ in range(n * 3))
    if kind < 0.93:  # whitespace, controls and markers only
        return "".join(rng.choice(_SPECIAL + [" ", "\n"]) for _ in range(rng.randint(0, 60)))
    return rng.choice(["", " ", "\n", "x", "\ud800", "\x00", "\U0001F600", "a" * 5000,
                       "word " * 3000, "\n" * 500])


_HOSTILE = [float("nan"), float("inf"), -float("inf"), -1, 0, 10 ** 400, -(10 ** 400), 1e308,
            1e-308, "abc", "", None, [], {}, True, [1, 2, 3], "nan", "1e999"]


def _maybe_hostile(rng: random.Random, ok: Callable[[], Any], p: float = 0.04) -> Any:
    return rng.choice(_HOSTILE) if rng.random() < p else ok()


_KEYS = ["page-size", "dpi", "font-size", "line-height", "margin-x", "margin-y",
         "horizontal-scale", "first-line-indent", "left-indent", "right-indent", "space-before",
         "space-after", "border-width", "border-padding", "font-color", "alignment",
         "auto-crop-width", "newline-markup", "tab-size", "font-path", "fallback-fonts"]


def random_config(rng: random.Random) -> dict[str, Any]:
    """A dict of Glyph keys: mostly sane, some extreme, about one in eight with a hostile
    value (or an unknown key)."""
    d: dict[str, Any] = {}
    def pick(key: str, ok: Callable[[], Any], p: float = 0.35) -> None:
        if rng.random() < p:
            d[key] = ok()

    small = rng.random() < 0.3
    pick("page-size", lambda: [round(rng.uniform(20, 400 if small else 1600), 1),
                               round(rng.uniform(20, 400 if small else 1600), 1)], 0.5)
    pick("dpi", lambda: rng.choice([rng.uniform(1, 150), rng.uniform(0.1, 10), 72, 96, 300]),
         0.5)
    size = rng.choice([rng.uniform(0.5, 30), 9, 12, rng.uniform(30, 120)])
    pick("font-size", lambda: size, 0.5)
    if "font-size" in d or rng.random() < 0.3:
        base = d.get("font-size", 9)
        d["line-height"] = base * rng.choice([1.0, rng.uniform(1.0, 2.5), 1.2, 1.1, 0.95])
    for key in ("margin-x", "margin-y"):
        pick(key, lambda: rng.choice([0, rng.uniform(0, 40), 3.2, 10]))
    pick("horizontal-scale", lambda: rng.choice([1.0, rng.uniform(0.1, 3), 0.1, 10]))
    for key in ("first-line-indent", "left-indent", "right-indent", "space-before",
                "space-after", "border-width", "border-padding"):
        pick(key, lambda: rng.choice([0, rng.uniform(0, 30), rng.uniform(0, 3)]), 0.1)
    for key in ("font-color", "page-bg-color", "para-bg-color", "para-border-color"):
        pick(key, lambda: rng.choice(["#000000", "#FFFFFF", "#FF0000", "red", "#777",
                                      [rng.randint(0, 255) for _ in range(3)], "0x123456"]),
             0.15)
    pick("alignment", lambda: rng.choice(["LEFT", "CENTER", "RIGHT", "JUSTIFY", 0, 1, 2, 4]),
         0.25)
    for key in ("auto-crop-width", "auto-crop-last-page", "remove-line-breaks",
                "split-blank-line"):
        pick(key, lambda: rng.choice([True, False]), 0.3)
    pick("newline-markup", lambda: rng.choice(
        ["<br/>", '<font color="#FF0000"> \\n </font>', " | ", "<font color='blue'>¶</font>"]),
         0.25)
    pick("tab-size", lambda: rng.choice([0, 1, 4, 8, 32]), 0.15)
    pick("font-path", lambda: rng.choice(["DejaVuSans", "DejaVuSansMono", "NotoColorEmoji",
                                          "DroidSansFallbackFull", "Verdana.ttf"]), 0.15)
    pick("fallback-fonts", lambda: rng.sample(
        ["DejaVuSans", "DroidSansFallbackFull", "NotoColorEmoji", "DejaVuSansMono"],
        rng.randint(0, 3)), 0.15)
    if rng.random() < 0.12:
        d[rng.choice(_KEYS + ["no-such-key"])] = rng.choice(_HOSTILE)
    return d


# --- cases -------------------------------------------------------------------------------------

class Case:
    def __init__(self, index: int, seed: int):
        self.index = index
        self.rng = random.Random(f"{seed}:{index}")
        self.kind = ""
        self.desc = ""


def run_case(case: Case) -> list[str]:
    """Run one random case; returns invariant violations (exceptions propagate)."""
    rng = case.rng
    roll = rng.random()
    text = random_text(rng)
    cfg_dict = random_config(rng)
    case.desc = f"text {len(text)} chars {text[:40]!r}, config {cfg_dict}"
    if roll < 0.08:
        case.kind = "config-file"
        raw = rng.choice(["[" * rng.randint(1, 100_000), "{" * rng.randint(1, 50_000),
                          json.dumps(cfg_dict), '{"dpi": ' + "9" * rng.randint(300, 6000) + "}",
                          '{"page-size": "1e999,5"}', "\x00\x01", '{"dpi": NaN}'])
        case.desc = f"config file {raw[:60]!r} ({len(raw)} chars)"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False,
                                         encoding="utf-8") as f:
            f.write(raw)
        try:
            RenderConfig.from_json(f.name)
        finally:
            os.unlink(f.name)
        return []
    preset = rng.choice(["glyph-en", "glyph-zh"])
    case.kind = "config"  # until the config is accepted
    case.desc = f"text {len(text)} chars {text[:40]!r}, {preset} with {cfg_dict}"
    cfg = RenderConfig.from_dict(cfg_dict, base=RenderConfig.preset(preset), quiet=True)
    if roll < 0.55:
        case.kind = "render"
        res = render(text, cfg, tokenizer="bytes")
        return check_render(text, cfg, res)
    case.kind = "compress"
    budget = _maybe_hostile(rng, lambda: int(math.exp(rng.uniform(math.log(5),
                                                                   math.log(60_000)))))
    kwargs: dict[str, Any] = {"overflow": rng.choice(["error", "split", "split"])}
    if rng.random() < 0.3:
        kwargs["max_dpi"] = _maybe_hostile(rng, lambda: rng.choice([10, 60, 96, 120, 300]))
    if rng.random() < 0.3:
        kwargs["min_px_per_em"] = _maybe_hostile(rng, lambda: rng.choice([0.5, 5, 7, 9, 20]))
    if rng.random() < 0.2:
        kwargs["per_image_tokens"] = rng.choice([0, 1, 17, 200])
    case.desc += f", budget {budget!r:.40}, {kwargs}"
    plan = compress(text, budget, config=cfg, tokenizer="bytes", **kwargs)
    return check_plan(text, budget, plan, render_pages=len(text) < 3000)


def outcome(index: int, seed: int) -> tuple[str, str, str, list[str], float]:
    """Run case ``index``: (kind, description, status, messages, seconds). Status is ``ok``,
    ``typed:<ErrorName>`` (a promised error), ``crash`` or ``violation``."""
    case = Case(index, seed)
    t0 = time.perf_counter()
    try:
        bad = run_case(case)
        status = "violation" if bad else "ok"
    except GlyphRenderError as exc:
        status, bad = f"typed:{type(exc).__name__}", []
    except Exception as exc:  # noqa: BLE001 - a crash is what we are counting
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        status = "crash"
        bad = [f"{type(exc).__name__}: {str(exc)[:200]} ({Path(tb.filename).name}:{tb.lineno})"]
    return case.kind, case.desc, status, bad, time.perf_counter() - t0


def _rss() -> int:
    """This process's resident memory now, in bytes (0 where /proc cannot tell)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _worker(conn: Any, seed: int) -> None:
    """Runs cases sent by the parent, one at a time, until it is sent None; with each
    outcome, how much memory it holds now."""
    while (index := conn.recv()) is not None:
        conn.send((outcome(index, seed), _rss()))


class Runner:
    """Cases in a child process, so one that runs past ``timeout`` is stopped (and counted)
    without leaving this process's caches half-built; the child is then replaced, and also
    after every ``recycle`` cases, or a case that leaves it holding over ``max_rss`` bytes
    (caches of random scripts at random sizes add up; the library bounds its glyph atlases,
    but a case's huge pages leave the allocator's arenas large)."""

    def __init__(self, seed: int, timeout: float, recycle: int = 1000,
                 max_rss: int = 1 << 30):
        self.seed, self.timeout, self.recycle = seed, timeout, recycle
        self.max_rss = max_rss
        self.done = 0
        self.fresh = 0  # workers replaced for memory
        self.ctx = multiprocessing.get_context("fork")
        self.proc: Any = None
        self.conn: Any = None

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.seed), daemon=True)
        self.proc.start()
        child.close()

    def run(self, index: int) -> tuple[str, str, str, list[str], float] | None:
        """The case's outcome, or None when it ran past the timeout."""
        if self.done and self.done % self.recycle == 0:
            self.close()
        self.done += 1
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(index)
        if self.conn.poll(self.timeout):
            try:
                got, rss = self.conn.recv()
                if rss > self.max_rss:
                    self.fresh += 1
                    self.close()
                return got
            except EOFError:  # the child died (e.g. killed for memory): a crash
                self.close()
                return "?", "", "crash", ["the worker process died"], self.timeout
        self.close()
        return None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, default=0,
                    help="number of the first case (runs may share out a range)")
    ap.add_argument("--only", type=int, default=None,
                    help="run only this case, in this process, with its traceback")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a case may run before it is stopped and counted as slow")
    ap.add_argument("--recycle", type=int, default=1000,
                    help="start a fresh worker process after this many cases")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop after this long and report how many cases ran")
    ap.add_argument("--show", type=int, default=10, help="crashes/violations printed in full")
    args = ap.parse_args(argv)
    if args.only is not None:
        case = Case(args.only, args.seed)
        t0 = time.perf_counter()
        bad = run_case(case)  # exceptions propagate with their traceback
        print(f"case {args.only} ({case.kind}) {time.perf_counter() - t0:.2f} s: {case.desc}")
        for msg in bad:
            print(f"  violation: {msg}")
        return 1 if bad else 0
    runner = Runner(args.seed, args.timeout, max(1, args.recycle))
    t_start = time.perf_counter()
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    slow: list[int] = []
    crash_cases: list[int] = []
    kinds_bad: Counter[str] = Counter()
    bad_cases: dict[str, list[int]] = {}
    slowest: tuple[float, int, str, str] = (0.0, -1, "", "")
    ran = shown = 0
    try:
        for i in range(args.first, args.first + args.cases):
            if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
                break
            got = runner.run(i)
            ran += 1
            if got is None:
                slow.append(i)
                print(f"  case {i}: still running after {args.timeout:g} s, stopped", flush=True)
                continue
            kind, desc, status, msgs, dt = got
            kinds[kind or "?"] += 1
            if status.startswith("typed:"):
                errors[status[6:]] += 1
                status = "typed"
            counts[status] += len(msgs) if status == "violation" else 1
            if status == "crash":
                crash_cases.append(i)
            if status == "violation":
                kinds_bad.update(m.split("]", 1)[0].strip("[") for m in msgs)
                bad_cases.setdefault(msgs[0].split("]", 1)[0].strip("["), []).append(i)
            for msg in msgs:
                shown += 1
                if shown <= args.show:
                    print(f"  case {i} ({kind}) {status}: {msg}\n    {desc[:300]}", flush=True)
            if dt > slowest[0]:
                slowest = (dt, i, kind, desc)
    finally:
        runner.close()
    total = time.perf_counter() - t_start
    first = f"cases {args.first:,}-{args.first + ran - 1:,}, " if args.first else ""
    print(f"fuzz: {ran:,} cases ({first}seed {args.seed}) in {total:.1f} s, "
          f"{1000 * total / max(ran, 1):.1f} ms a case; "
          + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())))
    print(f"  rendered or planned: {counts['ok']:,}; typed errors (expected): "
          + (", ".join(f"{k} {n:,}" for k, n in errors.most_common()) or "none"))
    print(f"  crashes: {counts['crash']}"
          + (f" (cases {', '.join(map(str, crash_cases[:12]))})" if crash_cases else ""))
    print(f"  violations: {counts['violation']}"
          + (" (" + ", ".join(f"{k} {n}" for k, n in kinds_bad.most_common()) + ")"
             if kinds_bad else ""))
    for k, cases in bad_cases.items():
        print(f"    {k}: cases {', '.join(map(str, cases[:12]))} (rerun one: --only N)")
    print(f"  stopped after {args.timeout:g} s: {len(slow)}"
          + (f" (cases {', '.join(map(str, slow[:10]))})" if slow else ""))
    if slowest[1] >= 0:
        print(f"  slowest: case {slowest[1]} ({slowest[2]}) {slowest[0]:.2f} s: "
              f"{slowest[3][:200]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  worker peak memory: {peak:,.0f} MiB (a fresh worker every {args.recycle:,} cases, "
          f"or after a case leaving it over {runner.max_rss >> 20:,} MiB: {runner.fresh:,} so)")
    if ran < args.cases:
        print(f"  stopped by --max-seconds {args.max_seconds:g}: {ran:,} of {args.cases:,}")
    return 1 if counts["crash"] or counts["violation"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
