"""The web demo's logic without a browser: previews, lazy pages, the ladder, downloads, the CLI.

What the page shows must be what the renderer makes: the preview's page spans, sizes and vision
tokens are checked against :func:`glyph_render.render` of the same text and config, the lazily
drawn pages against its PNGs, the ladder against :func:`glyph_render.compress.ladder`. The
browser round trip is ``tests/test_ui_browser.py``.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from glyph_render import BudgetError, ConfigError, InputError, RenderConfig, render
from glyph_render.cli import main as cli_main
from glyph_render.compress import ladder
from glyph_render.ui.preview import (
    WINDOW,
    Settings,
    draw_pages,
    figures_markdown,
    ladder_costs,
    ladder_svg,
    make_preview,
    pages_pdf,
    pages_zip,
    source_span,
)


@pytest.fixture(autouse=True)
def _pages_in_tmp(tmp_path: Path, monkeypatch) -> None:
    """Previews draw into a temporary folder: this test's, not the machine's /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture(scope="module")
def prose(corpus_text) -> str:
    return corpus_text("en_alice_in_wonderland.txt")[:12_000]


def test_preview_is_what_render_makes(prose: str) -> None:
    pv = make_preview(prose, Settings(dpi=96))
    ref = render(prose, RenderConfig.preset("glyph-en").replace(dpi=96))
    assert [(p.start, p.end) for p in pv.pages] == [(p.start, p.end) for p in ref.pages]
    assert pv.sizes == [(p.width, p.height) for p in ref.pages]
    assert pv.vision == [p.vision_tokens for p in ref.pages]
    assert pv.text_tokens == ref.text_tokens and pv.tokenizer == ref.tokenizer
    assert "".join(source_span(pv, i) for i in range(len(pv.pages))) == prose  # spans tile it
    s = pv.summary()
    assert s["pages"] == len(ref.pages) and s["vision_tokens"] == ref.vision_tokens
    assert s["dpi"] == 96 and s["rung"] == "base" and "budget" not in s
    md = figures_markdown(pv)
    assert f"{ref.vision_tokens:,} vision tokens" in md and f"{len(ref.pages)} pages" in md
    items = draw_pages(pv, 0)
    assert [Path(f).read_bytes() for f, _ in items] == [p.png for p in ref.pages]
    assert items[0][1].startswith(f"p. 1 · chars 0–{ref.pages[0].end:,} · ")


def test_another_vision_profile_prices_the_pages(prose: str) -> None:
    pv = make_preview(prose, Settings(dpi=96), profile="qwen3-vl")
    ref = render(prose, RenderConfig.preset("glyph-en").replace(dpi=96), profile="qwen3-vl")
    assert pv.vision == [p.vision_tokens for p in ref.pages]
    assert pv.vision != make_preview(prose, Settings(dpi=96)).vision  # 32-px cells, not 28
    assert [r.name for r in ladder_costs(pv)][0] == "base"


def test_pages_are_drawn_lazily_one_window_at_a_time(corpus_text) -> None:
    text = corpus_text("en_frankenstein.txt")[:40_000]  # in 24 pt: many pages, cheap at 30 DPI
    pv = make_preview(text, Settings(config_json='{"font-size": 24, "line-height": 26}', dpi=30))
    n = len(pv.pages)
    assert n > 2 * WINDOW
    assert list(pv.folder.iterdir()) == []  # figures first, no pixels yet
    first = draw_pages(pv, 0)
    assert len(first) == WINDOW and len(list(pv.folder.glob("*.png"))) == WINDOW
    last = draw_pages(pv, (n - 1) // WINDOW * WINDOW)
    assert last[-1][1].startswith(f"p. {n} ·") and len(last) == n - (n - 1) // WINDOW * WINDOW
    assert draw_pages(pv, 10 * n)[-1] == last[-1]  # past the end: clamped to the last page
    assert len(list(pv.folder.glob("*.png"))) == WINDOW + len(last)  # drawn once each
    w, h = pv.sizes[-1]
    assert Image.open(last[-1][0]).size == (w, h)  # the last page cropped as the renderer does


def test_budget_plans_and_marks_the_rung(prose: str) -> None:
    base = make_preview(prose, Settings())
    budget = base.vision_tokens // 2
    pv = make_preview(prose, Settings(budget=budget, dpi=300))  # a budget wins over the DPI
    assert pv.plan is not None and pv.vision_tokens <= budget
    assert pv.vision_tokens == pv.plan.vision_tokens and len(pv.pages) == len(pv.plan.pages)
    assert pv.chosen_rung == next(r["rung"] for r in pv.plan.rungs if r["fits"])
    assert pv.chosen_rung != "base" or pv.config.dpi < base.config.dpi
    assert f"budget {budget:,}" in figures_markdown(pv)
    with pytest.raises(BudgetError, match="cannot hold even one page"):
        make_preview(prose, Settings(budget=5))


def test_presets_and_glyph_config_json(prose: str, corpus_text) -> None:
    zh = corpus_text("zh_hongloumeng.txt")[:3_000]
    assert make_preview(zh, Settings()).config.preset_name == "glyph-zh"
    assert make_preview(zh, Settings(preset="glyph-en")).config.preset_name == "glyph-en"
    cfg = json.dumps({"font-size": 11, "line-height": 12, "margin-x": 4})
    pv = make_preview(prose, Settings(config_json=cfg, dpi=80))
    assert (pv.config.font_size, pv.config.line_height, pv.config.margin_x) == (11, 12, 4)
    assert pv.config.dpi == 80
    ref = render(prose, RenderConfig.from_dict(json.loads(cfg),
                                               base=RenderConfig.preset("glyph-en")).replace(
        dpi=80))
    assert pv.vision == [p.vision_tokens for p in ref.pages]


@pytest.mark.parametrize(("text", "settings", "error", "match"), [
    ("  \n\t ", Settings(), InputError, "empty or holds only whitespace"),
    ("Hello.", Settings(config_json="{font-size: 9"), ConfigError, "config JSON: not valid"),
    ("Hello.", Settings(config_json="[1]"), ConfigError, "expected a JSON object"),
    ("Hello.", Settings(config_json='{"font-size": -3}'), ConfigError, "font-size"),
    ("Hello.", Settings(config_json='{"colour": 1}'), ConfigError, "colour"),
    ("Hello.", Settings(preset="glyph-xx"), ConfigError, "glyph-xx"),
])
def test_bad_input_is_one_clear_error(text: str, settings: Settings, error: type,
                                      match: str) -> None:
    with pytest.raises(error, match=match):
        make_preview(text, settings)


def test_ladder_costs_and_chart(prose: str) -> None:
    pv = make_preview(prose, Settings(budget=3_000))
    rungs = ladder_costs(pv)
    assert [r.name for r in rungs] == [r.name for r in ladder(pv.base, prose)]
    for r in rungs:
        dpis = [d for d, _ in r.costs]
        costs = [c for _, c in r.costs]
        assert dpis == sorted(dpis) and dpis[0] == r.floor_dpi and dpis[-1] == 120
        assert costs == sorted(costs)  # more pixels per inch, more tokens
    at72 = dict(rungs[0].costs)[72.0]
    assert at72 == make_preview(prose, Settings(dpi=72)).vision_tokens  # base rung, priced right
    svg = ladder_svg(rungs, 3_000, (pv.chosen_rung, pv.config.dpi))
    assert svg.count("<polyline") == len(rungs) and "budget 3,000" in svg
    assert f"chosen: {pv.chosen_rung} at {pv.config.dpi:g} DPI" in svg


def test_downloads_hold_every_page(prose: str) -> None:
    pv = make_preview(prose, Settings(dpi=60))
    ref = render(prose, pv.config)
    with zipfile.ZipFile(pages_zip(pv)) as zf:
        assert zf.namelist() == [f"page_{k + 1:03d}.png" for k in range(len(ref.pages))]
        assert [zf.read(n) for n in zf.namelist()] == [p.png for p in ref.pages]
    pdf = pages_pdf(pv).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == len(ref.pages)  # one page object each
    assert Image.open(io.BytesIO(ref.pages[0].png)).size == pv.sizes[0]


def test_settings_key_changes_with_text_and_settings() -> None:
    s = Settings()
    assert s.key("a") == Settings().key("a") != s.key("b")
    assert Settings(dpi=96).key("a") != s.key("a") != Settings(budget=100).key("a")


# --- the command line ---------------------------------------------------------------------


def test_ui_without_gradio_names_the_extra(monkeypatch, capsys) -> None:
    # Fake for a fault a real install cannot produce on demand: Gradio absent. A None entry
    # in sys.modules makes `import gradio` raise ImportError.
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert cli_main(["ui", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["glyph-render: error: the web demo needs Gradio: pip install "
                   "'glyph-render[ui]'"]


@pytest.mark.parametrize(("args", "match"), [
    (["--port", "70000"], "--port: 70000 is not a port number"),
    (["--workers", "0"], "--workers: must be >= 1, got '0'"),
    (["--tokenizer", "no-such-tokenizer"], "unknown tokenizer 'no-such-tokenizer'"),
    (["--profile", "no-such-model"], "unknown vision profile 'no-such-model'"),
    (["--timeout", "-1"], "--timeout: must be a finite number > 0"),
])
def test_ui_bad_flags_are_one_line(args: list[str], match: str, capsys) -> None:
    try:
        code = cli_main(["ui", *args])
    except SystemExit as exc:  # a bad flag exits 2 from the parser itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glyph-render: error: ") and match in err[0]


def test_rendering_runs_off_the_event_loop(corpus_text) -> None:
    """While one user's long document renders, the server's event loop stays free: a ticker
    on the loop keeps ticking, and a second user's small preview finishes first."""
    pytest.importorskip("gradio")  # the app module needs it (installed by the ui extra)
    import asyncio

    from glyph_render.ui.app import DemoServer

    server = DemoServer(None, workers=2)
    long_text = corpus_text("en_frankenstein.txt") * 6  # ~190,000 characters

    async def scenario() -> tuple[int, list[str]]:
        order: list[str] = []
        ticks = 0

        async def preview(name: str, text: str) -> None:
            await server.run(make_preview, text, Settings())
            order.append(name)

        long_job = asyncio.create_task(preview("long", long_text))
        await asyncio.sleep(0.05)  # the long render is under way
        small_job = asyncio.create_task(preview("small", "A short note."))
        while not long_job.done():
            ticks += 1
            await asyncio.sleep(0.005)
        await small_job
        return ticks, order

    try:
        ticks, order = asyncio.run(scenario())
    finally:
        server.close()
    assert order == ["small", "long"]
    assert ticks >= 5  # the loop ran between the render's GIL slices


def test_the_api_key_goes_only_to_the_servers_own_endpoint(tmp_path: Path,
                                                           monkeypatch) -> None:
    """A real serve-ocr that demands a key: the endpoint the demo was started with is asked
    with $OPENAI_API_KEY; the same URL typed in the page as another endpoint gets no key."""
    pytest.importorskip("gradio")
    from glyph_render import AuthError
    from glyph_render.ui.app import DemoServer
    from tests.ocr_server_process import serve_ocr

    key = "k3y-of-the-demo-server"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with serve_ocr(tmp_path, "--no-ocr", "--api-key", key) as srv:
        own = DemoServer(srv.base_url, workers=1)
        typed = DemoServer("http://127.0.0.1:9/v1", workers=1)
        try:
            assert own.client(srv.base_url).model_info().name == "zai-org/Glyph"
            assert own.client("").model_info().name == "zai-org/Glyph"
            with pytest.raises(AuthError) as err:
                typed.client(srv.base_url).model_info()
            assert key not in str(err.value)
        finally:
            own.close()
            typed.close()


@pytest.mark.slow
def test_preview_benchmark_runs_on_a_small_slice() -> None:
    """``benchmarks/ui_preview.py`` for real (its own server, Gradio's client), small, so CI
    keeps it working; the figures it prints are the benchmark's business, not this test's."""
    pytest.importorskip("gradio")
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "ui_preview.py"), "--chars", "8000",
         "--repeat", "2", "--long-chars", "40000"],
        capture_output=True, text=True, timeout=180, env=env, cwd=root, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"8,000 characters, request -> figures \+ \d page images", proc.stdout)
    assert re.search(r"\*\*\d+ pages\*\* · 8,000 characters", proc.stdout)
    assert "while another user's 40,000 characters rendered" in proc.stdout
    assert "in process: layout + pricing + text tokens" in proc.stdout


def test_ui_on_a_busy_port_is_one_line(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_cli(["ui", "--port", str(port)], cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (f"glyph-render: error: cannot listen on 127.0.0.1:{port}: the "
                                  "port is in use, pick another with --port")
