"""The compressor: never over budget, not wastefully under it, honest about what it tried."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glyph_render import BudgetError, ContextOverflow, RenderConfig, image_tokens
from glyph_render.compress import (
    compress,
    context_budget,
    fit_to_context,
    ladder,
    pages_cost,
    pages_room,
)
from glyph_render.layout import layout
from glyph_render.render import page_sizes, render
from glyph_render.text_tokens import get_tokenizer
from glyph_render.vision_tokens import get_profile, prompt_tokens

try:
    from corpus_data import bulk, read_text
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import bulk, read_text


def corpus(name: str, chars: int | None = None, start: int = 0) -> str:
    text = read_text(name)
    return text[start:start + chars] if chars else text[start:]


ALICE = corpus("en_alice_in_wonderland.txt", 60_000, 1000)
DOCS = {
    "alice": ALICE,
    "zh": corpus("zh_luxun_zhaohua_xishi.txt", 12_000),
    "code": corpus("code_click_core.py", 40_000),
    "ru": corpus("ru_pushkin_kapitanskaya_dochka.txt", 30_000),
}


def test_plan_fits_and_matches_the_rendered_pages():
    plan = compress(ALICE, 9_000)
    assert plan.vision_tokens <= 9_000
    assert plan.vision_tokens >= 0.9 * 9_000
    assert plan.limited_by == "budget"
    # Rendering with the chosen config costs exactly what the plan said: the arithmetic is exact.
    res = render(ALICE, plan.config)
    assert [(p.width, p.height) for p in res.pages] == [(p.width, p.height) for p in plan.pages]
    assert res.vision_tokens == plan.vision_tokens
    assert [(p.start, p.end) for p in res.pages] == [(p.start, p.end) for p in plan.pages]


def test_generous_budget_is_limited_by_legibility():
    plan = compress(ALICE, 1_000_000, max_dpi=96)
    assert plan.limited_by == "legibility"
    assert plan.dpi == 96
    assert plan.rungs[0]["rung"] == "base" and len(plan.rungs) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.sampled_from(sorted(DOCS)), budget=st.integers(min_value=300, max_value=60_000),
       floor=st.sampled_from([5.0, 7.0, 9.0]))
def test_budget_never_exceeded_and_used(doc, budget, floor):
    text = DOCS[doc]
    try:
        plan = compress(text, budget, min_px_per_em=floor)
    except BudgetError as exc:
        # Only when even the most compact rung at the floor does not fit; the message says so.
        assert f"{budget:,}" in str(exc) and "needs" in str(exc)
        last = ladder(RenderConfig.preset("glyph-en"), text)[-1]
        cfg = RenderConfig.preset("glyph-en").replace(**last.changes)
        dpi = floor * 72 / cfg.font_size
        n = sum(1 for _ in layout(text, cfg))
        assert n >= 1
        assert dpi > 0
        return
    assert plan.cost <= budget
    assert plan.config.font_size * plan.dpi / 72 >= floor - 1e-9
    if plan.limited_by == "budget" and plan.dpi < 120:
        assert plan.cost >= 0.9 * budget, plan.rungs
    for p in plan.pages:
        assert p.vision_tokens == image_tokens(p.width, p.height)


def test_over_compression_is_refused_with_the_figures():
    with pytest.raises(BudgetError) as err:
        compress(ALICE, 500)
    msg = str(err.value)
    assert "500" in msg and "needs" in msg and "most compact" in msg


@pytest.mark.parametrize("budget", [0, -5, 2.5, True])
def test_bad_budget(budget):
    with pytest.raises(BudgetError, match="budget"):
        compress(ALICE, budget)


def test_split_chunks_each_fit_and_tile_the_input():
    text = bulk(corpus("en_frankenstein.txt", start=2000), 300_000)
    budget = 3_000
    plan = compress(text, budget, overflow="split")
    assert plan.limited_by == "split"
    assert len(plan.chunks) >= 2
    assert plan.chunks[0].start == 0 and plan.chunks[-1].end == len(text)
    assert "".join(text[c.start:c.end] for c in plan.chunks) == text
    for a, b in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert a.end == b.start
    for c in plan.chunks:
        assert c.vision_tokens <= budget
        # Rendered alone, each chunk really fits.
        res = render(text[c.start:c.end], plan.config)
        assert res.vision_tokens == c.vision_tokens <= budget


def test_per_image_tokens_count_against_the_budget():
    plain = compress(ALICE, 9_000)
    wrapped = compress(ALICE, 9_000, per_image_tokens=2)
    assert wrapped.cost == wrapped.vision_tokens + 2 * len(wrapped.pages) <= 9_000
    assert wrapped.vision_tokens <= plain.vision_tokens


def test_context_budget():
    left = context_budget(16_384, "What is the code?", 1_024, tokenizer="bytes")
    # [gMASK] <sop> <|user|> \n <|assistant|> \n = 6 template tokens + 17 question bytes
    assert left == 16_384 - 6 - 17 - 1_024
    with pytest.raises(BudgetError, match="no room"):
        context_budget(100, "q", 200)


def test_pages_room_and_cost():
    assert pages_room(16_384, 23, 1_024) == 16_384 - 23 - 1_024
    with pytest.raises(BudgetError, match="the prompt without its pages takes 900 tokens"):
        pages_room(1_000, 900, 200)
    glm = get_profile("glyph")
    sizes = [(595, 842), (595, 300)]
    assert pages_cost(sizes, glm) == sum(image_tokens(w, h, glm) + glm.image_wrapper_tokens
                                        for w, h in sizes)
    assert pages_cost(sizes, glm, 0) == sum(image_tokens(w, h, glm) for w, h in sizes)
    # the same figure the prompt prediction adds for these images
    assert pages_cost(sizes, glm) == prompt_tokens(sizes, "") - prompt_tokens([], "")


def test_fit_to_context_prices_a_larger_prompt_by_its_frame_tokens():
    """The client's prompt (one user turn) and a chat's (earlier turns: the gateway's) are
    fitted by the same rule; only the tokens besides the pages differ."""
    glm, tok = get_profile("glyph"), get_tokenizer("bytes")
    text, q = ALICE[:20_000], "Who is late?"
    kw = dict(profile=glm, tokenizer=tok, max_context=1_800, max_tokens=200)
    frame = prompt_tokens([], q, profile=glm, tokenizer=tok)
    alone = fit_to_context(text, q, **kw)
    same = fit_to_context(text, q, frame_tokens=frame, **kw)
    assert alone.configured is not None  # it did not fit as configured
    assert (same.config, same.spans, same.budget, same.configured) == \
        (alone.config, alone.spans, alone.budget, alone.configured)
    chat = fit_to_context(text, q, frame_tokens=frame + 800, **kw)
    assert alone.budget == 1_800 - 200 - frame and chat.budget == alone.budget - 800
    assert chat.config.dpi < alone.config.dpi  # less room, smaller pages
    # split: each chunk's request is priced with the chunk question in place of the question
    chunk_q = q + " (part 9999 of 9999; answer from these pages alone)"
    split = fit_to_context(text * 3, q, frame_tokens=frame + 800, chunk_question=chunk_q,
                           max_dpi=72, min_px_per_em=9, **kw)
    assert len(split.spans) > 1
    assert split.budget == 1_800 - 200 - (frame + 800) - (tok.count(chunk_q) - tok.count(q))
    with pytest.raises(ContextOverflow, match="the prompt without its pages takes 1,700"):
        fit_to_context(text, q, frame_tokens=1_700, **kw)


def test_ladder_order():
    names = [r.name for r in ladder(RenderConfig.preset("glyph-en"), "a\nb")]
    assert names == ["base", "margins-4", "newline-marker", "tight-leading", "font-8", "font-7",
                     "font-6"]
    assert "newline-marker" not in [r.name for r in ladder(RenderConfig.preset("glyph-en"),
                                                           "no newlines")]


def test_geometry_only_layout_matches_full_layout():
    # the planner prices pages from a geometry-only layout: spans, lines and the pixel sizes
    # they give must be the full layout's
    for text in DOCS.values():
        for cfg in (RenderConfig.preset("glyph-en"),
                    RenderConfig.preset("glyph-en").replace(alignment="CENTER",
                                                            first_line_indent=20)):
            full = list(layout(text, cfg))
            fast = list(layout(text, cfg, geometry_only=True))
            assert [(p.start, p.end) for p in full] == [(p.start, p.end) for p in fast]
            assert [[(ln.start, ln.end, ln.x, ln.baseline) for ln in p.lines] for p in full] == \
                [[(ln.start, ln.end, ln.x, ln.baseline) for ln in p.lines] for p in fast]
            for dpi in (72, 96):
                assert page_sizes(full, cfg, dpi=dpi) == page_sizes(fast, cfg, dpi=dpi)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glyph_render.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_plan_cli_json(tmp_path):
    doc = tmp_path / "alice.txt"
    doc.write_text(ALICE, encoding="utf-8")
    out = run_cli("plan", str(doc), "--budget", "9000", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    for key in ("budget", "vision_tokens", "text_tokens", "ratio", "config", "pages", "rungs",
                "limited_by"):
        assert key in plan
    assert plan["vision_tokens"] <= 9000 and plan["limited_by"] == "budget"
    assert plan["config"]["dpi"] == plan["dpi"]


def test_render_cli_with_budget(tmp_path):
    doc = tmp_path / "alice.txt"
    doc.write_text(ALICE, encoding="utf-8")
    out = run_cli(str(doc), "--budget", "9000", "--json", "-o", str(tmp_path / "pages"))
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["vision_tokens"] == rep["plan"]["vision_tokens"] <= 9000
    assert len(list((tmp_path / "pages").glob("page_*.png"))) == rep["page_count"]


def test_cli_budget_nothing_fits_exits_2(tmp_path):
    doc = tmp_path / "alice.txt"
    doc.write_text(ALICE, encoding="utf-8")
    out = run_cli("plan", str(doc), "--budget", "300")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "300" in out.stderr and "needs" in out.stderr
    assert "Traceback" not in out.stderr


def test_cjk_text_gets_the_higher_legibility_floor():
    from glyph_render.compress import DEFAULT_MIN_PX_PER_EM_CJK, legibility_floor

    assert legibility_floor(DOCS["zh"]) == DEFAULT_MIN_PX_PER_EM_CJK == 9.0
    assert legibility_floor(ALICE) == 7.0
    plan = compress(DOCS["zh"], 4_000)
    assert plan.config.font_size * plan.dpi / 72 >= 9.0 - 1e-9
    assert plan.rungs[0]["dpi_range"][0] == 72.0  # 9 px/em at 9 pt
