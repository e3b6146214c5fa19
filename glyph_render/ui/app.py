"""The Gradio app of ``glyph-render ui``: input, pages, ladder, ask (and compare as plain text).

Rendering is CPU work: every render, page window, ladder and download runs in one bounded thread
pool (``workers``) that the async handlers await, so the event loop keeps serving every other
user while one of them renders a long document; Gradio's queue lets ``concurrency`` events run at
once instead of its default of one per event. Asking streams from a worker thread too, through a
queue, so the reasoning and the answer reach the page as the endpoint sends them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from glyph_render import GlyphClient, GlyphRenderError, read_document
from glyph_render.document import FORMATS

from .preview import (
    PRESET_CHOICES,
    TOKENIZER,
    WINDOW,
    Preview,
    Settings,
    draw_pages,
    figures_markdown,
    ladder_costs,
    ladder_svg,
    ladder_table,
    make_preview,
    pages_pdf,
    pages_zip,
    source_span,
)

T = TypeVar("T")
THINKING = {"server default": None, "on": True, "off": False}
TEXT_PROMPT = "{document}\n\n{question}"  # the plain-text baseline: the document, then the question

INTRO = """# glyph-render: see the pages, the tokens and the answer
Paste a document (or upload one), render it as the page images a Glyph model reads, and see
what it costs in text tokens and in vision tokens. Ask a question of the endpoint and watch the
thinking and the answer arrive; tick *compare* to ask the same question with the document as
plain text."""


class DemoServer:
    """Shared by every session: the render pool and one client per endpoint."""

    def __init__(self, endpoint: str | None, workers: int,
                 client_kwargs: dict[str, Any] | None = None, profile: str = "glyph") -> None:
        self.endpoint = endpoint or ""
        self.client_kwargs = dict(client_kwargs or {})  # GlyphClient's: key, model, tokenizer
        self.profile = profile
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="glyph-ui-render")
        self._clients: dict[str, GlyphClient] = {}
        self._lock = threading.Lock()
        self._folders: set[str] = set()
        atexit.register(self.close)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the render pool, awaited: the event loop never renders."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def client(self, endpoint: str) -> GlyphClient:
        """The client for an endpoint typed in the page. The server's API key (from the
        environment) goes only to the endpoint it was started with: one typed in the page
        gets none, so no user of a shared demo can send the key to a server of their own."""
        url = endpoint.strip() or self.endpoint  # empty: the server's own
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                kw = dict(self.client_kwargs)
                if url not in ("", self.endpoint):  # another server: no key, its own model
                    kw.update(api_key="EMPTY", model=None)
                client = GlyphClient(url or None, **kw)
                self._clients[url] = client
            return client

    def keep(self, pv: Preview, old: Preview | None) -> None:
        """Remember the preview's folder for cleanup; drop the session's previous one."""
        with self._lock:
            self._folders.add(str(pv.folder))
        if old is not None and old.folder != pv.folder:
            self.drop(old)

    def drop(self, pv: Preview | None) -> None:
        """Delete a preview's drawn pages: replaced by a new one, or its session closed."""
        if pv is None:
            return
        with self._lock:
            self._folders.discard(str(pv.folder))
        shutil.rmtree(pv.folder, ignore_errors=True)

    def warm_up(self) -> None:
        """One tiny preview, thrown away: tiktoken's tables and the fonts loaded."""
        with contextlib.suppress(Exception):  # a real preview will report any trouble
            self.drop(make_preview("Warm-up.", Settings(), self.profile))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for c in self._clients.values():
                with contextlib.suppress(Exception):
                    c.close()
            self._clients.clear()
            for folder in self._folders:
                shutil.rmtree(folder, ignore_errors=True)
            self._folders.clear()


def _number(value: Any, name: str, whole: bool = False) -> float | int | None:
    """A number field: empty or 0 means unset (a browser's empty number field sends 0)."""
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GlyphRenderError(f"{name}: {value!r} is not a number") from None
    if v == 0:
        return None
    if not 0 < v < float("inf"):  # negative, NaN or infinite
        raise GlyphRenderError(f"{name}: {value!r} must be greater than 0")
    return int(v) if whole else v


def settings_from(preset: str, config_json: str, dpi: Any, budget: Any) -> Settings:
    return Settings(preset=preset or "auto", config_json=config_json or "",
                    dpi=_number(dpi, "DPI"), budget=_number(budget, "budget", whole=True))


def document_from(text: str, file: str | None, encoding: str, fmt: str = "auto") -> str:
    """An uploaded file (any format ``glyph-render`` reads) wins over the pasted text; clear
    the upload to use the text."""
    if file:
        return read_document(file, (encoding or "utf-8").strip(), fmt or "auto")
    return text or ""


def _error(exc: BaseException) -> str:
    if isinstance(exc, GlyphRenderError):
        return f"**error:** {exc}"
    return f"**error:** {type(exc).__name__}: {exc}"


def _log_unexpected(exc: BaseException) -> None:
    """A bug, not a refusal: its traceback goes to the server's stderr, not only the page."""
    if not isinstance(exc, GlyphRenderError):
        traceback.print_exception(exc, file=sys.stderr)


def _window_label(pv: Preview, start: int) -> str:
    n = len(pv.pages)
    end = min(n, start + WINDOW)
    return f"pages {start + 1}–{end} of {n}" if n else "no pages"


def _stats(answer: Any, label: str) -> str:
    usage = answer.usage or {}
    prompt = usage.get("prompt_tokens")
    predicted = answer.predicted_prompt_tokens
    t = answer.timings
    first, total = t.get("first_token"), t.get("total")
    rows = [
        f"| {label} | |", "|---|---|",
        f"| prompt tokens (server) | {prompt if prompt is not None else '?'} |",
        f"| predicted prompt tokens | {predicted} |",
        f"| completion tokens | {usage.get('completion_tokens', '?')} |",
        f"| time to first token | {f'{first:.2f} s' if first is not None else '–'} |",
        f"| total latency | {f'{total:.2f} s' if total is not None else '–'} |",
    ]
    if answer.pages:
        rows += [f"| pages sent | {len(answer.pages)} at {answer.dpi or 0:g} DPI |",
                 f"| vision tokens | {answer.vision_tokens:,} |",
                 f"| text / vision tokens (client's tokenizer) | "
                 f"{answer.compression_ratio:.2f}× |"]
        if answer.calls > 1:
            rows.append(f"| calls (map-reduce) | {answer.calls} |")
    elif answer.text_tokens:
        rows.append(f"| document as text | {answer.text_tokens:,} tokens ({TOKENIZER}) |")
    return "\n".join(rows)


def _answer_panes(title: str, prefix: str) -> tuple[gr.Textbox, gr.Textbox, gr.Markdown]:
    """Thinking, answer and figures of one side of the comparison."""
    gr.Markdown(f"### {title}")
    think = gr.Textbox(label="Thinking", lines=6, max_lines=12, elem_id=f"{prefix}thinking",
                       interactive=False)
    answer = gr.Textbox(label="Answer", lines=4, max_lines=12, elem_id=f"{prefix}answer",
                        interactive=False)
    return think, answer, gr.Markdown("", elem_id=f"{prefix}stats")


def build(server: DemoServer) -> gr.Blocks:
    """The page: build once, serve to every user."""
    with gr.Blocks(title="glyph-render", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        state = gr.State(None, delete_callback=server.drop)  # a closed tab frees its pages
        window = gr.State(0)
        with gr.Row():
            with gr.Column(scale=2):
                text = gr.Textbox(label="Document", lines=12, max_lines=18, elem_id="doc-text",
                                  placeholder="Paste text here, or upload a file below")
                upload = gr.File(label="…or upload a file (wins over the pasted text)",
                                 type="filepath", elem_id="doc-file", height=110)
                with gr.Row():
                    fmt = gr.Dropdown(list(FORMATS), value="auto", elem_id="doc-format",
                                      label="File format (auto: by suffix, else content)")
                    encoding = gr.Textbox("utf-8", label="File encoding", max_lines=1)
                with gr.Row():
                    preset = gr.Dropdown(list(PRESET_CHOICES), value="auto", label="Preset",
                                         elem_id="preset")
                    dpi = gr.Number(None, label="DPI (0: the config's)", elem_id="dpi")
                    budget = gr.Number(None, label="Vision-token budget (0: none; wins over DPI)",
                                       precision=0, elem_id="budget")
                config_json = gr.Code(None, language="json", lines=4, elem_id="config-json",
                                      label="Glyph rendering config JSON (optional, over the "
                                            "preset)")
                config_file = gr.File(label="…or load a config file", type="filepath",
                                      file_types=[".json"], height=110)
                render_btn = gr.Button("Render pages", variant="primary", elem_id="render-btn")
            with gr.Column(scale=3):
                status = gr.Markdown("", elem_id="status")
                figures = gr.Markdown("", elem_id="figures")
                gallery = gr.Gallery(label="Pages", columns=4, height=520, object_fit="contain",
                                     allow_preview=True, format="png", elem_id="pages")
                with gr.Row():
                    prev_btn = gr.Button("◀ previous pages", size="sm")
                    window_md = gr.Markdown("", elem_id="window")
                    next_btn = gr.Button("next pages ▶", size="sm")
                span = gr.Textbox(label="Source span of the selected page", lines=5,
                                  max_lines=10, elem_id="span", interactive=False)
                ladder_html = gr.HTML("", elem_id="ladder", label="Compressor ladder")
                with gr.Accordion("The ladder as a table", open=False):
                    ladder_df = gr.Dataframe(headers=["rung", "font pt", "floor DPI",
                                                      "vision tokens"], visible=False,
                                             interactive=False, elem_id="ladder-table")
                with gr.Row():
                    zip_btn = gr.Button("Download pages (zip)", size="sm", elem_id="zip-btn")
                    pdf_btn = gr.Button("Download PDF", size="sm", elem_id="pdf-btn")
                download = gr.File(label="Download", interactive=False, elem_id="download",
                                   visible=False, height=80)
        gr.Markdown("## Ask")
        with gr.Row():
            endpoint = gr.Textbox(server.endpoint, label="Endpoint (OpenAI-compatible base URL)",
                                  placeholder="$GLYPH_BASE_URL, $OPENAI_BASE_URL, else "
                                              "http://127.0.0.1:8000/v1", elem_id="endpoint")
            thinking = gr.Radio(list(THINKING), value="server default", label="Thinking")
            max_tokens = gr.Number(8192, label="Max answer tokens", precision=0)
        with gr.Row():
            question = gr.Textbox(label="Question", scale=4, elem_id="question")
            compare = gr.Checkbox(label="Compare with the document as plain text",
                                  elem_id="compare")
            ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-btn")
        with gr.Row():
            with gr.Column():
                think_box, answer_box, stats = _answer_panes("As pages (Glyph)", "")
            with gr.Column(visible=False) as text_col:
                text_think, text_answer, text_stats = _answer_panes("As plain text", "text-")

        doc_inputs = [text, upload, encoding, fmt, preset, config_json, dpi, budget]

        async def ensure(old: Preview | None, text_v: str, file_v: str | None, enc: str,
                         fmt_v: str, preset_v: str, cfg_v: str, dpi_v: Any,
                         budget_v: Any) -> Preview:
            doc = await server.run(document_from, text_v, file_v, enc, fmt_v)
            s = settings_from(preset_v, cfg_v, dpi_v, budget_v)
            if old is not None and old.key == s.key(doc):
                return old
            pv = await server.run(make_preview, doc, s, server.profile)
            server.keep(pv, old)
            return pv

        async def show(old: Preview | None, inputs: tuple[Any, ...], keep: bool):
            """Preview the inputs; ``keep``: leave the page as it is when nothing changed."""
            skip = gr.skip()
            try:
                pv = await ensure(old, *inputs)
                if keep and pv is old:
                    return (old, skip, skip, skip, skip, "", skip, skip)
                items = await server.run(draw_pages, pv, 0)
            except GlyphRenderError as exc:
                return (old, skip, skip, skip, skip, _error(exc), skip, skip)
            return (pv, 0, items, figures_markdown(pv), _window_label(pv, 0), "", "",
                    gr.update(value=None, visible=False))  # the last download is stale now

        async def on_render(old, *inputs):
            return await show(old, inputs, keep=False)

        async def on_ask_inputs(old, *inputs):
            """Asking renders first when the document or settings changed since the preview."""
            return await show(old, inputs, keep=True)

        async def on_ladder(pv: Preview | None):
            if pv is None:
                return gr.skip(), gr.skip()
            try:
                if pv.ladder is None:  # once per preview
                    pv.ladder = await server.run(ladder_costs, pv)
                rungs = pv.ladder
            except GlyphRenderError as exc:
                return f"<p>ladder: {exc}</p>", gr.update(visible=False)
            chosen = (pv.chosen_rung, pv.config.dpi)
            svg = ladder_svg(rungs, pv.plan.budget if pv.plan else None, chosen)
            head = ("<p><b>The compressor's ladder</b>: vision tokens each rung would cost, "
                    "from its legibility floor to the highest DPI; the ring marks the pages "
                    "shown.</p>")
            return head + svg, gr.update(value=ladder_table(rungs), visible=True)

        async def on_window(pv: Preview | None, start: int, step: int):
            if pv is None:
                return gr.skip(), gr.skip(), gr.skip()
            new = min(max(0, start + step), max(0, (len(pv.pages) - 1) // WINDOW * WINDOW))
            items = await server.run(draw_pages, pv, new)
            return new, items, _window_label(pv, new)

        def on_select(pv: Preview | None, start: int, evt: gr.SelectData):
            if pv is None or evt.index is None:
                return ""
            index = start + int(evt.index if not isinstance(evt.index, list) else evt.index[0])
            p = pv.pages[index]
            head = f"[page {index + 1}: characters {p.start:,}–{p.end:,}]\n"
            return head + source_span(pv, index)

        async def on_download(pv: Preview | None, kind: str):
            if pv is None:
                return gr.skip(), "**error:** render the pages first"
            try:
                path = await server.run(pages_zip if kind == "zip" else pages_pdf, pv)
            except (GlyphRenderError, OSError) as exc:  # e.g. the temporary folder is full
                return gr.skip(), _error(exc)
            return gr.update(value=str(path), visible=True), ""

        def ask(pv: Preview | None, question_v: str, endpoint_v: str, thinking_v: str,
                max_tokens_v: Any, compare_v: bool) -> Iterator[tuple[Any, ...]]:
            """Stream the pages' answer (and the plain-text one) into their panes."""
            if pv is None:
                yield ("", "", "**error:** render the pages first", "", "", "")
                return
            if not (question_v or "").strip():
                yield ("", "", "**error:** type a question", "", "", "")
                return
            try:
                client = server.client(endpoint_v)
                limit = int(_number(max_tokens_v, "max answer tokens", whole=True) or 8192)
            except GlyphRenderError as exc:
                yield ("", "", _error(exc), "", "", "")
                return
            kw: dict[str, Any] = {"thinking": THINKING.get(thinking_v), "max_tokens": limit}
            events: queue.Queue[tuple[str, Any]] = queue.Queue()

            def pages_side() -> None:
                try:
                    for ev in client.ask_stream(pv.text, question_v, config=pv.config, **kw):
                        events.put(("pages", ev))
                except Exception as exc:  # shown in the pane; the other side carries on
                    _log_unexpected(exc)
                    events.put(("pages-error", exc))
                events.put(("pages-end", None))

            def text_side() -> None:
                try:
                    prompt = TEXT_PROMPT.format(document=pv.text, question=question_v)
                    events.put(("text", client.ask_text(prompt, text_tokens=pv.text_tokens,
                                                        **kw)))
                except Exception as exc:
                    _log_unexpected(exc)
                    events.put(("text-error", exc))
                events.put(("text-end", None))

            sides = [pages_side] + ([text_side] if compare_v else [])
            for side in sides:
                threading.Thread(target=side, daemon=True, name="glyph-ui-ask").start()
            out = ["", "", "asking…", "", "", "asking…" if compare_v else ""]
            yield tuple(out)
            open_sides = len(sides)
            last = 0.0
            while open_sides:
                kind, item = events.get()
                if kind.endswith("-end"):
                    open_sides -= 1
                elif kind == "pages":
                    if item.kind == "reasoning":
                        out[0] += item.text
                    elif item.kind == "content":
                        out[1] += item.text
                    elif item.kind == "part":
                        out[0] += f"\n[part answered: {item.text}]\n"
                    elif item.kind == "done":
                        out[1] = item.answer.text
                        out[2] = _stats(item.answer, "as pages")
                elif kind == "pages-error":
                    out[2] = _error(item)
                elif kind == "text":
                    out[3], out[4] = item.reasoning, item.text
                    out[5] = _stats(item, "as plain text")
                elif kind == "text-error":
                    out[5] = _error(item)
                now = time.monotonic()
                if now - last > 0.05 or events.empty():  # coalesce bursts of tiny deltas
                    last = now
                    yield (out[0], out[1], out[2], out[3], out[4], out[5])
            yield (out[0], out[1], out[2], out[3], out[4], out[5])

        render_outputs = [state, window, gallery, figures, window_md, status, span, download]
        render_btn.click(on_render, [state, *doc_inputs], render_outputs, api_name="render").then(
            on_ladder, [state], [ladder_html, ladder_df])
        upload.upload(on_render, [state, *doc_inputs], render_outputs).then(
            on_ladder, [state], [ladder_html, ladder_df])

        def on_config_file(path: str | None):
            """A Glyph config file into the JSON field (checked when the pages render)."""
            if not path:
                return gr.skip(), gr.skip()
            try:
                return Path(path).read_text(encoding="utf-8"), ""
            except (OSError, UnicodeDecodeError) as exc:
                return gr.skip(), f"**error:** config file: cannot be read as UTF-8 ({exc})"

        config_file.upload(on_config_file, [config_file], [config_json, status])

        async def on_prev(pv: Preview | None, start: int):
            return await on_window(pv, start, -WINDOW)

        async def on_next(pv: Preview | None, start: int):
            return await on_window(pv, start, WINDOW)

        async def on_zip(pv: Preview | None):
            return await on_download(pv, "zip")

        async def on_pdf(pv: Preview | None):
            return await on_download(pv, "pdf")

        prev_btn.click(on_prev, [state, window], [window, gallery, window_md])
        next_btn.click(on_next, [state, window], [window, gallery, window_md])
        gallery.select(on_select, [state, window], [span])
        zip_btn.click(on_zip, [state], [download, status])
        pdf_btn.click(on_pdf, [state], [download, status])
        compare.change(lambda c: gr.update(visible=bool(c)), [compare], [text_col])
        ask_outputs = [think_box, answer_box, stats, text_think, text_answer, text_stats]

        prepared = ask_btn.click(on_ask_inputs, [state, *doc_inputs], render_outputs)
        prepared.then(ask, [state, question, endpoint, thinking, max_tokens, compare],
                      ask_outputs, api_name="ask")
        prepared.then(on_ladder, [state], [ladder_html, ladder_df])
    return demo


def serve(endpoint: str | None, host: str, port: int, workers: int | None = None,
          concurrency: int = 32, ready: Callable[[str], None] | None = None,
          block: bool = True, client_kwargs: dict[str, Any] | None = None,
          profile: str = "glyph") -> tuple[gr.Blocks, DemoServer]:
    """Build and launch; ``ready(url)`` is called once the server listens. ``client_kwargs``
    go to each :class:`GlyphClient`; ``profile`` prices the previewed pages."""
    server = DemoServer(endpoint, workers or max(1, os.cpu_count() or 1), client_kwargs,
                        profile)
    # The first preview would otherwise pay for tiktoken's tables and the fonts (~1 s): warm
    # them in the render pool while the page loads.
    server.pool.submit(server.warm_up)
    demo = build(server)
    demo.queue(default_concurrency_limit=concurrency, max_size=256)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # nothing fetched
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                ssr_mode=False, theme=theme, footer_links=[], show_error=True,
                max_file_size="256mb")  # uploads: a long book is a few MB
    url = f"http://{host}:{demo.server_port}/"
    if ready is not None:
        ready(url)
    if block:
        # SIGTERM (a service manager, a test harness) ends the server as Ctrl+C does, so the
        # drawn pages are deleted (atexit alone does not run on a signal).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            demo.block_thread()
        finally:
            server.close()
    return demo, server
