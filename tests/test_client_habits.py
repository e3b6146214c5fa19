"""Glyph users' habits and long-call feedback, against ``glyph-render serve-ocr`` as a real
process on 127.0.0.1.

* a full ``.../v1/chat/completions`` URL as the endpoint (Glyph's scripts post there);
* asking about page images already on disk (CLI ``ask --pages``, ``ask_images``), priced from
  the images' sizes; ``file://`` pages for a server started with
  ``--allowed-local-media-path`` (as vLLM);
* the progress hook: a re-plan announced before any request reaches the server, rendering,
  upload, the wait, the first token; ``--quiet``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glyph_render import AsyncGlyphClient, GlyphClient, InputError, RenderConfig, RequestRejected
from glyph_render.client import Progress, page_files
from glyph_render.client.core import normalise_base_url
from glyph_render.render import render_to_dir

try:
    from ocr_server_process import ServeOcr, serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import ServeOcr, serve_ocr

SAMPLE = Path(__file__).resolve().parents[1] / "glyph_render" / "data" / "sample.txt"
QUESTION = "Who was sitting on the top?"


@pytest.fixture(scope="module")
def mtmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("habits")


@pytest.fixture(scope="module")
def pages(mtmp: Path) -> Path:
    """The sample rendered as ``glyph-render render`` writes it: out/page_001.png ..."""
    out = mtmp / "media" / "out"
    render_to_dir(SAMPLE.read_text(encoding="utf-8"), RenderConfig.preset("glyph-en"), out)
    return out


@pytest.fixture(scope="module")
def local(mtmp: Path, pages: Path) -> Iterator[ServeOcr]:
    """Reads pages with Tesseract; file:// allowed under the media folder (pages' parent)."""
    with serve_ocr(mtmp, "--allowed-local-media-path", str(pages.parent), "--ocr-scale",
                   "1") as srv:
        yield srv


@pytest.fixture(scope="module")
def small(mtmp: Path) -> Iterator[ServeOcr]:
    """No OCR, a 3,000-token context: the sample's pages at 72 DPI do not fit."""
    with serve_ocr(mtmp, "--no-ocr", "--max-model-len", "3000") as srv:
        yield srv


def settled(srv: ServeOcr) -> int:
    """Chat requests in the access log once no more lines arrive (each is written after its
    reply, so a request just answered may not be counted yet)."""
    n = -1
    while n != (n := len(srv.chat_lines())):
        time.sleep(0.3)
    return n


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glyph_render.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


# --- endpoint URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "base"), [
    ("localhost:8000", "http://localhost:8000/v1"),
    ("http://h:8000/", "http://h:8000/v1"),
    ("http://h:8000/v1", "http://h:8000/v1"),
    ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
    ("http://h:8000/v1/chat/completions/", "http://h:8000/v1"),
    ("https://proxy/api/v1/models", "https://proxy/api/v1"),
    ("http://h/v1/completions", "http://h/v1"),
    ("http://h/openai/v1", "http://h/openai/v1"),
])
def test_endpoint_urls_are_normalised_to_the_base(given: str, base: str) -> None:
    assert normalise_base_url(given) == base


def test_full_chat_completions_url_works_sync_async_and_cli(local: ServeOcr,
                                                           pages: Path) -> None:
    full = local.url + "/chat/completions"
    with GlyphClient(full, tokenizer="bytes") as c:
        assert c.base_url == local.url
        assert c.model_info().max_model_len == 65536

    async def go() -> str:
        async with AsyncGlyphClient(full) as c:
            return (await c.model_info()).name

    assert asyncio.run(go()) == "zai-org/Glyph"
    proc = cli("ask", "--pages", pages / "page_001.png", QUESTION, "--endpoint", full)
    assert proc.returncode == 0, proc.stderr
    assert "no /models listing" not in proc.stderr and proc.stdout.strip()


# --- pages on disk -------------------------------------------------------------------------


def test_page_files_in_page_order(tmp_path: Path, pages: Path) -> None:
    names = [p.name for p in page_files(pages)]
    assert names == sorted(names) and len(names) == 6
    assert page_files(str(pages / "page_00[12].png")) == [pages / "page_001.png",
                                                          pages / "page_002.png"]
    for n in (2, 10, 1):  # unpadded numbers still sort as pages
        (tmp_path / f"p_{n}.png").write_bytes((pages / "page_001.png").read_bytes())
    assert [p.name for p in page_files(tmp_path)] == ["p_1.png", "p_2.png", "p_10.png"]
    with pytest.raises(InputError, match="no such file"):
        page_files(tmp_path / "missing")
    with pytest.raises(InputError, match="no file matches"):
        page_files(str(tmp_path / "q_*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no page images"):
        page_files(tmp_path / "empty")


def test_ask_images_base64_and_file_urls_agree(local: ServeOcr, pages: Path) -> None:
    seen: list[Progress] = []
    with GlyphClient(local.url, tokenizer="bytes", progress=seen.append) as c:
        b64 = c.ask_images(pages, QUESTION)
        url = c.ask_images(str(pages / "page_*.png"), QUESTION, local_media=True)
    # priced from the images' sizes, exactly as the server counts them
    assert b64.predicted_prompt_tokens == b64.usage["prompt_tokens"]
    assert url.usage["prompt_tokens"] == b64.usage["prompt_tokens"]
    assert url.text == b64.text and "top" in b64.text
    assert len(b64.pages) == 6 and [p.number for p in url.pages] == list(range(1, 7))
    # file:// sends paths, not pixels
    on_disk = sum(p.stat().st_size for p in pages.glob("page_*.png"))
    assert b64.payload_bytes > on_disk > 100 * url.payload_bytes
    uploads = [e for e in seen if e.stage == "upload"]
    assert [e.bytes for e in uploads] == [b64.payload_bytes, url.payload_bytes]


def test_async_ask_images_with_file_urls(local: ServeOcr, pages: Path) -> None:
    async def go() -> tuple[str, int, list[str]]:
        stages: list[str] = []
        async with AsyncGlyphClient(local.url, tokenizer="bytes", local_media=True,
                                    progress=lambda e: stages.append(e.stage)) as c:
            a = await c.ask_images([pages / "page_001.png", pages / "page_002.png"], QUESTION)
            return a.text, a.payload_bytes, stages

    text, payload, stages = asyncio.run(go())
    assert text and payload < 1000
    assert stages == ["upload", "waiting", "answered"]


def test_file_urls_refused_without_allowed_media_path(small: ServeOcr, pages: Path) -> None:
    with GlyphClient(small.url, local_media=True, max_tokens=200) as c, \
            pytest.raises(RequestRejected, match="allowed-local-media-path"):
        c.ask_images(pages / "page_001.png", QUESTION)


def test_pages_too_big_for_the_context_fail_before_sending(small: ServeOcr,
                                                           pages: Path) -> None:
    before = settled(small)
    proc = cli("ask", "--pages", pages, QUESTION, "--endpoint", small.url, "--max-tokens",
               "2000")
    assert proc.returncode == 2 and "context of 3,000" in proc.stderr, proc.stderr
    assert settled(small) == before


def test_cli_ask_pages_bad_input_is_one_line_exit_2(tmp_path: Path, local: ServeOcr,
                                                    pages: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    cases = [
        (["ask", "--pages", tmp_path / "none", QUESTION], "no such file"),
        (["ask", "--pages", tmp_path / "notes.png", QUESTION], "notes.png: cannot read"),
        (["ask", SAMPLE, QUESTION, "--pages", pages], "not both"),
        (["ask", QUESTION], "give a document"),
        (["ask", SAMPLE, QUESTION, "--local-media"], "use it with --pages"),
        (["ask", "--pages", pages, QUESTION, "--budget", "900"], "sent as they are"),
    ]
    for args, why in cases:
        proc = cli(*args, "--endpoint", local.url)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], proc.stderr


def test_cli_ask_pages_local_media_streamed(local: ServeOcr, pages: Path) -> None:
    proc = cli("ask", "--pages", pages / "page_*.png", QUESTION, "--endpoint", local.url,
               "--local-media", "--stream")
    assert proc.returncode == 0, proc.stderr
    assert "top" in proc.stdout
    err = proc.stderr
    assert "sending 6 pages" in err and "bytes" in err  # a few hundred bytes of paths
    assert err.index("waiting for the first token") < err.index("first token after")


# --- feedback ------------------------------------------------------------------------------


def test_replan_is_announced_before_the_request_goes_out(small: ServeOcr) -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    log: list[tuple[Progress, int]] = []

    def hook(e: Progress) -> None:
        log.append((e, len(small.chat_lines())))

    before = settled(small)
    with GlyphClient(small.url, tokenizer="bytes", progress=hook, max_tokens=1000) as c:
        answer = c.ask(text, QUESTION)
    stages = [e.stage for e, _ in log]
    assert stages[0] == "replan"
    assert stages[-3:] == ["upload", "waiting", "answered"]
    assert set(stages[1:-3]) == {"render"} and len(stages[1:-3]) == len(answer.pages)
    replan, requests_then = log[0]
    assert requests_then == before  # nothing had reached the server yet
    assert replan.from_dpi == 72 and replan.dpi == answer.dpi < 72
    assert replan.from_tokens is not None and replan.from_tokens + 1000 > 3000
    assert replan.pages == len(answer.pages) and replan.context == 3000
    assert "re-planned" in replan.message and "context of 3,000" in replan.message
    upload = next(e for e, _ in log if e.stage == "upload")
    assert upload.bytes == answer.payload_bytes
    assert upload.tokens == answer.predicted_prompt_tokens


def test_async_stream_reports_first_token(small: ServeOcr) -> None:
    text = SAMPLE.read_text(encoding="utf-8")[:3000]

    async def go() -> list[Progress]:
        seen: list[Progress] = []
        async with AsyncGlyphClient(small.url, progress=seen.append) as c:
            async for _ in c.ask_stream(text, QUESTION, max_tokens=200):
                pass
        return seen

    seen = asyncio.run(go())
    stages = [e.stage for e in seen]
    assert "replan" not in stages  # it fits as configured
    assert stages.index("upload") < stages.index("waiting") < stages.index("first_token")
    assert stages[-1] == "answered"
    first = next(e for e in seen if e.stage == "first_token")
    assert first.seconds is not None and first.seconds >= 0


def test_cli_feedback_in_order_and_quiet(small: ServeOcr) -> None:
    args = ["ask", SAMPLE, QUESTION, "--endpoint", small.url, "--max-tokens", "1000"]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    order = ["glyph-render: re-planned: 6 pages at 72 DPI", "glyph-render: rendered 6 pages",
             "glyph-render: sending 6 pages,", "glyph-render: sent; waiting for",
             "prompt tokens (predicted"]
    at = [err.find(s) for s in order]
    assert -1 not in at and at == sorted(at), err
    quiet = cli(*args, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == proc.stdout
    assert cli(*args, "-q", "--json").stderr == ""


@pytest.mark.parametrize("command", ["render", "layout", "plan", "ask", "batch", "eval",
                                     "doctor", "bench serve", "serve", "gateway"])
def test_every_command_takes_quiet(command: str) -> None:
    proc = cli(*command.split(), "-h")
    assert proc.returncode == 0 and "--quiet" in proc.stdout, proc.stderr


# --- the real vLLM -------------------------------------------------------------------------


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_reads_file_pages_and_takes_the_full_url(vllm_server, pages: Path) -> None:
    """vLLM's own --allowed-local-media-path: file:// pages priced and billed as the base64
    ones, and the full chat-completions URL accepted (tiny model: one token per byte). The
    session's server allows file:// pages under its media_dir: the pages are copied there."""
    two = [vllm_server.media_dir / name for name in ("page_001.png", "page_006.png")]
    for path in two:
        path.write_bytes((pages / path.name).read_bytes())
    with GlyphClient(vllm_server.base_url + "/chat/completions", tokenizer="bytes",
                     max_tokens=4) as c:
        b64 = c.ask_images(two, QUESTION)
        url = c.ask_images(two, QUESTION, local_media=True)
        assert b64.usage["prompt_tokens"] == b64.predicted_prompt_tokens
        assert url.usage["prompt_tokens"] == url.predicted_prompt_tokens \
            == b64.predicted_prompt_tokens
        assert url.payload_bytes < 500 < 10_000 < b64.payload_bytes
