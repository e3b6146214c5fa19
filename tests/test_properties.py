"""Property tests (issue 12): for any text and config the library keeps its promises.

- page spans tile the input (no character lost or drawn twice);
- the reported vision tokens are the GLM-4.1V rule on the PNGs' own sizes, and the sizes the
  planner prices by arithmetic are the rendered ones;
- no plan holds a page set over its budget, split chunks (each priced alone) included;
- every error raised is a ``GlyphRenderError``.

The checks are ``benchmarks/fuzz.py``'s (one copy of the invariants); the fuzz benchmark runs
10,000 random cases, these run a bounded number under hypothesis's shrinking.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from glyph_render import GlyphRenderError, RenderConfig, render
from glyph_render.compress import compress

ROOT = Path(__file__).resolve().parents[1]


try:
    from reference_loader import load_benchmark
except ImportError:  # tests/ imported as a package
    from tests.reference_loader import load_benchmark

fuzz = load_benchmark("fuzz")

# Every script the renderer meets, plus controls, lone surrogates and the characters that
# once crashed a renderer (U+FBE0, ZWJ, bidi controls, line/paragraph separators).
_CHARS = st.one_of(
    st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z"]),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF),
    st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.sampled_from(["\n", "\t", "\r", "\x00", "\x0b", "\x85", "\u200d", "\u2028", "\u2029",
                     "\u202e", "\ufeff", "\ufbe0", "\ud800", "\udfff", " "]),
)
TEXT = st.text(_CHARS, min_size=1, max_size=300)
WORDS = st.lists(st.sampled_from(["lorem", "ipsum", "dolor", "文本", "視覺", "שלום", "\n",
                                  "supercalifragilistic", "\U0001F600", "1234"]),
                 min_size=1, max_size=120).map(" ".join)

_CONFIG = st.fixed_dictionaries({}, optional={
    "page-size": st.tuples(st.floats(40, 900), st.floats(40, 1200)),
    "dpi": st.one_of(st.floats(5, 150), st.sampled_from([72, 96, 120])),
    "font-size": st.floats(4, 24),
    "margin-x": st.floats(0, 30),
    "margin-y": st.floats(0, 30),
    "horizontal-scale": st.sampled_from([1.0, 1.0, 0.5, 0.1, 2.0]),
    "alignment": st.sampled_from(["LEFT", "CENTER", "RIGHT", "JUSTIFY"]),
    "auto-crop-width": st.booleans(),
    "auto-crop-last-page": st.booleans(),
    "newline-markup": st.sampled_from(["<br/>", '<font color="#FF0000"> \\n </font>']),
    "font-path": st.sampled_from(["DejaVuSans", "DejaVuSansMono", "NotoColorEmoji"]),
    "fallback-fonts": st.sampled_from([[], ["DroidSansFallbackFull"],
                                       ["DejaVuSans", "DroidSansFallbackFull", "NotoColorEmoji"]]),
    "font-color": st.sampled_from(["#000000", "#FF0000", "#777777"]),
})


def _config(data: dict) -> RenderConfig:
    """The drawn keys over glyph-en, line height at least the font size; configs the
    validation refuses are skipped (that they are refused with ConfigError is tested below)."""
    data = dict(data)
    if "font-size" in data:
        data["line-height"] = data["font-size"] * 1.15
    try:
        return RenderConfig.from_dict(data, base=RenderConfig.preset("glyph-en"), quiet=True)
    except GlyphRenderError:
        assume(False)
        raise


SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(text=st.one_of(TEXT, WORDS), data=_CONFIG)
def test_render_spans_tile_and_tokens_follow_the_rule_on_the_pngs(text, data):
    cfg = _config(data)
    try:
        res = render(text, cfg, tokenizer="bytes")
    except GlyphRenderError:
        return  # e.g. text with nothing to draw; typed, as promised
    assert fuzz.check_render(text, cfg, res) == []


@SETTINGS
@given(text=st.tuples(WORDS, st.integers(1, 40)).map(lambda t: (t[0] + "\n") * t[1]),
       data=_CONFIG, budget=st.floats(math.log(40), math.log(20_000)).map(
           lambda x: int(math.exp(x))),
       overflow=st.sampled_from(["error", "split", "split"]), per_image=st.sampled_from([0, 0, 17]))
def test_no_plan_is_over_its_budget(text, data, budget, overflow, per_image):
    cfg = _config(data)
    try:
        plan = compress(text, budget, config=cfg, tokenizer="bytes", overflow=overflow,
                        per_image_tokens=per_image)
    except GlyphRenderError as exc:
        event(type(exc).__name__)
        return  # nothing fits, said with the figures
    event(f"plan limited by {plan.limited_by}")
    assert fuzz.check_plan(text, budget, plan, render_pages=len(text) < 1500) == []


SAMPLE = (files("glyph_render") / "data" / "sample.txt").read_text(encoding="utf-8")


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(start=st.integers(0, len(SAMPLE) - 1000), length=st.integers(3_000, 30_000),
       budget=st.integers(150, 3_000), per_image=st.sampled_from([0, 17]),
       data=st.fixed_dictionaries({}, optional={
           "page-size": st.sampled_from([(420, 595), (595, 842), (300, 300), (842, 595)]),
           "font-size": st.sampled_from([7, 9, 12]),
           "margin-x": st.sampled_from([0, 10, 30]),
           "dpi": st.sampled_from([10, 72, 96])}))
def test_split_chunks_each_fit_alone(start, length, budget, per_image, data):
    """Documents too long for the budget are cut into chunks that each fit, priced alone."""
    text = (SAMPLE * (1 + length // len(SAMPLE)))[start:start + length]
    cfg = _config(data)
    try:
        plan = compress(text, budget, config=cfg, tokenizer="bytes", overflow="split",
                        per_image_tokens=per_image)
    except GlyphRenderError as exc:
        event(type(exc).__name__)
        return
    event(f"plan limited by {plan.limited_by}")
    assert fuzz.check_plan(text, budget, plan, render_pages=False) == []
    if plan.chunks:  # one chunk rendered for real costs what the plan says
        c = plan.chunks[len(plan.chunks) // 2]
        res = render(text[c.start:c.end], plan.config, tokenizer="bytes")
        assert [(p.width, p.height) for p in res.pages] == [(p.width, p.height)
                                                            for p in c.pages]


_ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                 st.text(max_size=20), st.lists(st.integers(-5, 1000), max_size=4),
                 st.just(10 ** 400), st.just(float("inf")), st.just("1e999"))
_KEYS = st.sampled_from(["page-size", "dpi", "font-size", "line-height", "margin-x",
                         "margin-y", "horizontal-scale", "font-color", "alignment", "tab-size",
                         "newline-markup", "font-path", "fallback-fonts", "border-width",
                         "auto-crop-width", "bogus-key", "first-line-indent"])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.dictionaries(_KEYS, _ANY, max_size=4), text=TEXT,
       budget=st.one_of(st.integers(-10, 50_000), st.just(10 ** 400), st.floats()),
       max_dpi=st.one_of(st.floats(), st.integers(-10, 10 ** 6)))
def test_every_error_is_a_glyph_render_error(data, text, budget, max_dpi):
    try:
        cfg = RenderConfig.from_dict(data, quiet=True)
    except GlyphRenderError:
        return
    for call in (lambda: render(text[:80], cfg, tokenizer="bytes"),
                 lambda: compress(text[:80], budget, config=cfg, max_dpi=max_dpi,
                                  tokenizer="bytes", overflow="split")):
        with contextlib.suppress(GlyphRenderError):  # anything else fails the test
            call()


def test_fuzz_benchmark_runs_clean_on_a_slice():
    """The benchmark itself, for real, on a few cases (the full run is 10,000)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--cases", "40"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert "fuzz: 40 cases" in out.stdout, out.stdout + out.stderr
    assert "crashes: 0" in out.stdout and "violations: 0" in out.stdout, out.stdout
    assert out.returncode == 0


@pytest.mark.parametrize("spans, ok", [
    ([(0, 3), (3, 5)], True), ([(0, 3), (4, 5)], False), ([(1, 5)], False), ([(0, 4)], False),
])
def test_the_tiling_check_can_fail(spans, ok):
    assert (fuzz.tiling(spans, 5, "pages") == []) is ok
