"""GlyphClient / AsyncGlyphClient against real servers.

The endpoint is ``glyph-render serve-ocr`` started as a real process (``python -m
glyph_render.testing``): vLLM's protocol, usage counted with the GLM-4.1V arithmetic, pages read
with Tesseract, faults injected with its flags. Requests are counted from its access log.
The only fake is a ten-line HTTP server for replies serve-ocr cannot produce (a 200 whose body is
not a chat completion), marked where it is used.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from glyph_render import (
    AsyncGlyphClient,
    AuthError,
    ConfigError,
    ContextOverflow,
    EndpointUnreachable,
    GlyphClient,
    MalformedReply,
    RenderConfig,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerError,
    StreamInterrupted,
    compress_and_ask,
    encode_png,
)
from glyph_render.client import GLYPH_SAMPLING
from glyph_render.client.answer import StreamSplitter, split_reasoning
from glyph_render.client.reliability import RetryPolicy, parse_context_overflow, parse_retry_after
from glyph_render.render import render

NEEDLE = "The secret code is 7F3K-92QX."
QUESTION = "What is the secret code?"
FAST = {"backoff": 0.01, "max_backoff": 0.05}  # retries without long sleeps


# --- serve-ocr as a real process ---------------------------------------------------------


try:
    from ocr_server_process import ServeOcr, serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import ServeOcr, serve_ocr


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client")


@pytest.fixture(scope="module")
def ocr_server(module_tmp: Path) -> Iterator[ServeOcr]:
    """Reads pages with Tesseract; reasoning in message.reasoning (vLLM >= 0.11).

    ``--ocr-scale 1``: 96-DPI pages read well enough unscaled, in ~60% of the time.
    """
    with serve_ocr(module_tmp, "--reasoning-parser", "glm45", "--reasoning-field",
                   "reasoning", "--ocr-scale", "1") as srv:
        yield srv


@pytest.fixture(scope="module")
def fast_server(module_tmp: Path) -> Iterator[ServeOcr]:
    """No OCR, no reasoning parser (reasoning inline as <think>...</think>), GLM's box."""
    with serve_ocr(module_tmp, "--no-ocr", "--box") as srv:
        yield srv


@pytest.fixture(scope="module")
def small_server(module_tmp: Path) -> Iterator[ServeOcr]:
    """A 4,000-token context; reasoning in reasoning_content (SGLang, older vLLM)."""
    with serve_ocr(module_tmp, "--no-ocr", "--max-model-len", "4000", "--reasoning-parser",
                   "glm45", "--reasoning-field", "reasoning_content") as srv:
        yield srv


@pytest.fixture(scope="module")
def haystack(corpus_text: Callable[[str], str]) -> str:
    """30,000 characters of Frankenstein with the needle planted mid-way."""
    text = corpus_text("en_frankenstein.txt")[1_000:31_000]
    cut = text.index(". ", 15_000) + 2
    text = text[:cut] + NEEDLE + " " + text[cut:]
    return text[:30_000]


@pytest.fixture(scope="module")
def short_text(corpus_text: Callable[[str], str]) -> str:
    return corpus_text("en_pride_and_prejudice.txt")[20_000:26_000]


def client(srv: ServeOcr, **kw) -> GlyphClient:
    return GlyphClient(srv.base_url, tokenizer="bytes", **{**FAST, **kw})


def assert_spans_cover(pages, text_len: int) -> None:
    assert pages[0].start == 0 and pages[-1].end == text_len
    for a, b in zip(pages, pages[1:], strict=False):
        assert a.end == b.start
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))


# --- round trips ----------------------------------------------------------------------------


def test_needle_round_trip(ocr_server: ServeOcr, haystack: str) -> None:
    assert len(haystack) == 30_000 and NEEDLE in haystack
    with client(ocr_server) as c:
        a = c.ask(haystack, QUESTION, dpi=96)
    assert "7F3K-92QX" in a.text
    assert a.reasoning.startswith("Read ") and "<think>" not in a.text
    assert a.usage is not None and a.usage["prompt_tokens"] == a.predicted_prompt_tokens
    assert a.finish_reason == "stop" and a.model == "zai-org/Glyph"
    assert a.dpi == 96 and len(a.pages) > 3
    assert_spans_cover(a.pages, len(haystack))
    needle_at = haystack.index(NEEDLE)
    assert sum(p.start <= needle_at < p.end for p in a.pages) == 1
    assert a.payload_bytes > 1000 * len(a.pages)
    assert a.text_tokens == len(haystack.encode()) and a.compression_ratio > 1
    assert set(a.timings) >= {"plan", "render", "encode", "build", "first_token", "total"}
    j = a.to_json()
    assert json.loads(json.dumps(j))["text"] == a.text
    assert {"text", "reasoning", "usage", "predicted_prompt_tokens", "pages", "timings"} <= set(j)


def test_sync_async_and_streaming_agree(ocr_server: ServeOcr, haystack: str) -> None:
    with client(ocr_server) as c:
        sync = c.ask(haystack, QUESTION, dpi=96)
        events = list(c.ask_stream(haystack, QUESTION, dpi=96))

    async def run_async():
        async with AsyncGlyphClient(ocr_server.base_url, tokenizer="bytes") as ac:
            a = await ac.ask(haystack, QUESTION, dpi=96)
            evs = [e async for e in ac.ask_stream(haystack, QUESTION, dpi=96)]
            return a, evs

    async_answer, async_events = asyncio.run(run_async())
    for evs in (events, async_events):
        done = evs[-1]
        assert done.kind == "done" and done.answer is not None
        assert [e.kind for e in evs[:-1]] == sorted(
            (e.kind for e in evs[:-1]), key=lambda k: k != "reasoning")  # reasoning first
        streamed = "".join(e.text for e in evs if e.kind == "content")
        thought = "".join(e.text for e in evs if e.kind == "reasoning")
        assert streamed.strip() == done.answer.text == sync.text
        assert thought.strip() == done.answer.reasoning == sync.reasoning
        assert done.usage is not None
        assert done.usage["prompt_tokens"] == sync.usage["prompt_tokens"]
        assert done.answer.timings["first_token"] is not None
        assert done.answer.predicted_prompt_tokens == sync.predicted_prompt_tokens
    assert async_answer.text == sync.text and async_answer.usage == sync.usage
    assert "7F3K-92QX" in sync.text


def test_model_discovery_and_repr(small_server: ServeOcr) -> None:
    with client(small_server, api_key="sk-not-shown-123456") as c:
        info = c.model_info()
        assert (info.name, info.max_model_len) == ("zai-org/Glyph", 4000)
        assert "sk-not-shown" not in repr(c) and small_server.base_url in repr(c)
    with GlyphClient(small_server.base_url.removesuffix("/v1"), model="zai-org/Glyph") as c:
        assert c.model_info().max_model_len == 4000  # /v1 added to a bare host:port
    with client(small_server, model="nope") as c, pytest.raises(RequestRejected,
                                                                match="does not serve"):
        c.model_info()


def test_ask_text_sends_no_pages_and_predicts_usage(fast_server: ServeOcr) -> None:
    prompt = "Plain text, no pages: what is the capital of France?"
    with client(fast_server) as c:
        answer = c.ask_text(prompt, text_tokens=11)
    assert answer.pages == [] and answer.usage is not None
    assert answer.usage["prompt_tokens"] == answer.predicted_prompt_tokens
    asyncio.run(_async_ask_text(fast_server, prompt, answer.usage["prompt_tokens"]))


async def _async_ask_text(srv: ServeOcr, prompt: str, expected: int) -> None:
    async with AsyncGlyphClient(srv.base_url) as c:
        answer = await c.ask_text(prompt)
    assert answer.usage is not None and answer.usage["prompt_tokens"] == expected


def test_prepare_then_send_is_the_public_request_path(fast_server: ServeOcr,
                                                    short_text: str) -> None:
    """``prepare()`` -> ``PreparedRequest`` -> ``send()`` / ``stream()`` / ``stream_lines()``:
    what ``ask_pages`` does, in steps a tool can time and inspect."""
    pages = render(short_text, RenderConfig.preset("glyph-en")).pages[:2]
    with client(fast_server) as c:
        req = c.prepare("What is this about?", pages, max_tokens=64)
        assert req.body()["max_tokens"] == 64 and "stream" not in req.body()
        assert req.body(stream=True)["stream"] is True
        sent = c.send(req)
        streamed = [e for e in c.stream(req) if e.kind == "done"][0].answer
        reader = c.stream_reader(req)
        lines = list(c.stream_lines(req, reader))
    for line in lines:
        reader.line(line)
    reader.close()
    raw = reader.reply()
    assert sent.text == streamed.text == split_reasoning(raw.content, raw.reasoning)[0]
    assert sent.usage["prompt_tokens"] == req.predicted_prompt_tokens
    assert [p.number for p in sent.pages] == [1, 2]
    with client(fast_server, max_model_len=500) as c:  # a prompt over the context
        with pytest.raises(ContextOverflow):
            c.prepare("Q?", pages, max_tokens=64)
        unchecked = c.prepare("Q?", pages, max_tokens=64, check_context=False)
        assert unchecked.predicted_prompt_tokens + 64 > 500


def test_endpoint_from_environment(fast_server: ServeOcr, short_text: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLYPH_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert GlyphClient().base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("GLYPH_BASE_URL", fast_server.base_url)
    with GlyphClient(tokenizer="bytes") as c:  # GLYPH_BASE_URL wins over OPENAI_BASE_URL
        assert c.ask(short_text, "What?").text.startswith("OCR is off")
    answer = compress_and_ask(short_text, "What?", tokenizer="bytes", max_tokens=64)
    assert answer.usage["prompt_tokens"] == answer.predicted_prompt_tokens


# --- reasoning, markers, request fields ----------------------------------------------------


def test_inline_think_and_box_markers(fast_server: ServeOcr, short_text: str) -> None:
    with client(fast_server) as c:
        a = c.ask(short_text, "What?")
        events = list(c.ask_stream(short_text, "What?"))
    assert a.text == "OCR is off (serve-ocr --no-ocr)."
    assert re.match(r"Received \d+ page\(s\)", a.reasoning) and "<think>" not in a.reasoning
    streamed = "".join(e.text for e in events if e.kind == "content")
    thought = "".join(e.text for e in events if e.kind == "reasoning")
    assert streamed == a.text and thought.strip() == a.reasoning
    assert "<|begin_of_box|>" not in streamed + thought


def test_reasoning_content_field(small_server: ServeOcr, short_text: str) -> None:
    with client(small_server) as c:
        a = c.ask(short_text, "What?", max_tokens=200)
    assert a.reasoning.startswith("Received") and a.text.startswith("OCR is off")


def test_split_reasoning_forms() -> None:
    assert split_reasoning("<think>hmm</think>\n<|begin_of_box|>42<|end_of_box|>") == ("42",
                                                                                      "hmm")
    assert split_reasoning("opened by the template</think>answer") == ("answer",
                                                                       "opened by the template")
    assert split_reasoning("<think>cut off mid-thought") == ("", "cut off mid-thought")
    assert split_reasoning("<answer>yes</answer>", "why") == ("yes", "why")
    s = StreamSplitter()
    pieces = [p for d in ["<thi", "nk>a", "b</th", "ink><|begin_of", "_box|>4", "2<|end_of_box|>"]
              for p in s.feed(d)] + s.flush()
    assert "".join(t for k, t in pieces if k == "reasoning") == "ab"
    assert "".join(t for k, t in pieces if k == "content") == "42"


def test_request_fields() -> None:
    """What goes on the wire: Glyph's sampling, extras in extra_body, thinking switch."""
    with GlyphClient("http://127.0.0.1:9", model="m", max_model_len=100_000) as c:
        req = c.prepare("Q?", [encode_png(Image.new("L", (300, 400), 255))], thinking=False,
                        extra_body={"min_p": 0.1}, sampling={"seed": 7}, system="Be brief.")
        args = req.body(stream=True)
    assert args["temperature"] == GLYPH_SAMPLING["temperature"] and args["top_p"] == 1.0
    assert args["seed"] == 7 and args["max_tokens"] == 8192
    assert args["extra_body"] == {"top_k": 1, "repetition_penalty": 1.1, "min_p": 0.1,
                                  "chat_template_kwargs": {"enable_thinking": False}}
    assert args["stream_options"] == {"include_usage": True}
    system, user = args["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert user["content"][-1] == {"type": "text", "text": "Q?"}


@pytest.mark.parametrize("kw, said", [
    ({"timeout": 0}, "timeout: must be a finite number > 0, got 0"),
    ({"timeout": float("nan")}, "timeout: must be a finite number > 0, got nan"),
    ({"timeout": True}, "timeout: expected a number, got True"),
    ({"deadline": -5}, "deadline: must be a finite number > 0, got -5"),
    ({"deadline": "soon"}, "deadline: expected a number, got 'soon'"),
])
def test_bad_seconds_are_config_errors_in_the_flags_words(kw: dict, said: str) -> None:
    """The constructor checks its seconds as the --timeout/--deadline flags are checked."""
    for face in (GlyphClient, AsyncGlyphClient):
        with pytest.raises(ConfigError) as exc:
            face("http://127.0.0.1:9", **kw)
        assert str(exc.value) == said
    with GlyphClient("http://127.0.0.1:9", timeout="2.5", deadline=None) as c:
        assert c.timeout == 2.5 and c.deadline is None


# --- exact token prediction ----------------------------------------------------------------


def test_prediction_equals_usage_across_sizes(fast_server: ServeOcr, short_text: str) -> None:
    with client(fast_server, system="You read pages.") as c:
        for dpi in (50, 72, 96, 144):
            a = c.ask(short_text, "Who speaks first?", dpi=dpi, max_tokens=64)
            assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens, dpi
        pages = [encode_png(Image.new("L", size, 255)) for size in
                 [(28, 28), (100, 60), (3000, 300), (595, 842), (1240, 1754)]]
        a = c.ask_pages(pages, "Sizes?", max_tokens=64)
        assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens
        assert [p.vision_tokens for p in a.pages] == [9, 8, 1177, 630, 2772]
        rendered = render(short_text, RenderConfig.preset("glyph-en").replace(dpi=80)).pages
        b = c.ask_pages(rendered, "Again?", max_tokens=64)
        assert b.usage["prompt_tokens"] == b.predicted_prompt_tokens


# --- fitting the context ---------------------------------------------------------------------


def test_overflow_before_upload_is_refitted(small_server: ServeOcr, haystack: str) -> None:
    before = small_server.chat_requests()
    with client(small_server) as c:
        a = c.ask(haystack, QUESTION, dpi=96, max_tokens=500)
        assert a.budget is not None and a.dpi < 96
        assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens <= 4000 - 500
        with pytest.raises(ContextOverflow, match="would fit") as exc:
            c.ask(haystack, QUESTION, dpi=96, max_tokens=500, fit="error")
    assert exc.value.max_context == 4000 and exc.value.prompt_tokens > 4000
    assert exc.value.fitting_budget == a.budget
    assert small_server.chat_requests(before + 1) == before + 1  # the refused one never left


def test_overflow_after_upload_is_parsed(small_server: ServeOcr, haystack: str) -> None:
    with client(small_server, max_model_len=100_000) as c:  # told a wrong, larger context
        with pytest.raises(ContextOverflow) as exc:
            c.ask(haystack, QUESTION, dpi=96, max_tokens=500)
        e = exc.value
        assert e.status_code == 400 and e.max_context == 4000 and e.prompt_tokens > 4000
        assert "Input length" in str(e) and small_server.base_url in str(e)
        assert f"budget={e.fitting_budget}" in str(e)
        with pytest.raises(ContextOverflow):  # streaming: refused before any event
            list(c.ask_stream(haystack, QUESTION, dpi=96, max_tokens=500))
        # The budget it names does fit.
        ok = c.ask(haystack, QUESTION, budget=e.fitting_budget, max_tokens=500)
    assert ok.usage["prompt_tokens"] + 500 <= 4000


def test_map_reduce_when_nothing_fits(module_tmp: Path, haystack: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--max-model-len", "1200") as srv, \
            client(srv, max_concurrency=3) as c:
        a = c.ask(haystack, QUESTION, max_tokens=300)
        n = len(a.parts)
        assert n >= 2 and a.calls == n + 1 and srv.chat_requests(n + 1) == n + 1
        assert_spans_cover(a.pages, len(haystack))
        for part in a.parts:
            assert part.usage["prompt_tokens"] == part.predicted_prompt_tokens <= 1200 - 300
        assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens  # the combining call
        assert a.total_usage["prompt_tokens"] == sum(
            p.usage["prompt_tokens"] for p in [a, *a.parts])
        events = list(c.ask_stream(haystack, QUESTION, max_tokens=300))
        assert [e.kind for e in events].count("part") == n and events[-1].answer.calls == n + 1
        with pytest.raises(ContextOverflow, match="1,200"):
            c.ask(haystack, QUESTION, max_tokens=300, overflow="error")


# --- failures -------------------------------------------------------------------------------


def test_unreachable_endpoint_names_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    with GlyphClient(url) as c, pytest.raises(EndpointUnreachable, match=re.escape(url)):
        c.ask("Some text.", "Q?")
    assert time.monotonic() - t0 < 2  # not retried


def test_timeout(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--delay", "2") as srv, \
            client(srv, timeout=0.5, max_model_len=65536, model="zai-org/Glyph") as c:
        with pytest.raises(RequestTimeout, match=r"did not reply within 0\.5 s"):
            c.ask(short_text, "Q?")
        assert srv.chat_requests(1) == 1  # not retried


def test_429_honours_retry_after_then_succeeds(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--fail-429", "@1", "--retry-after", "0.5") as srv, \
            client(srv) as c:
        t0 = time.monotonic()
        a = c.ask(short_text, "Q?")
        assert time.monotonic() - t0 >= 0.5
        assert a.text.startswith("OCR is off") and srv.chat_requests(2) == 2


def test_retries_stop_at_their_bound(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--fail-429", "1", "--retry-after", "0") as srv, \
            client(srv) as c:
        with pytest.raises(ServerBusy, match="gave up after 4 attempts") as exc:
            c.ask(short_text, "Q?")
        assert exc.value.attempts == 4 and srv.chat_requests(4) == 4
    with serve_ocr(module_tmp, "--no-ocr", "--fail-500", "1") as srv, \
            client(srv, max_retries=1) as c:
        with pytest.raises(ServerError, match="HTTP 500.*gave up after 2 attempts"):
            list(c.ask_stream(short_text, "Q?"))
        assert srv.chat_requests(2) == 2


def test_long_retry_after_is_not_waited(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--fail-429", "1", "--retry-after", "600") as srv, \
            client(srv) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerBusy, match="retry after 600 s"):
            c.ask(short_text, "Q?")
        assert time.monotonic() - t0 < 2 and srv.chat_requests(1) == 1


def test_dropped_connection_is_retried(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--drop-connection", "@1,@3+") as srv, \
            client(srv, max_retries=2) as c:
        assert c.ask(short_text, "Q?").text.startswith("OCR is off")  # #1 dropped, #2 served
        with pytest.raises(ServerError, match="closed the connection without replying"):
            c.ask(short_text, "Q?")  # #3, #4, #5 dropped
        assert srv.chat_requests(5) == 5


def test_truncated_reply_and_cut_stream(module_tmp: Path, short_text: str) -> None:
    with serve_ocr(module_tmp, "--no-ocr", "--reasoning-parser", "glm45",
                   "--drop-stream", "1") as srv, client(srv) as c:
        with pytest.raises(MalformedReply, match="cut short.*gave up after 4 attempts"):
            c.ask(short_text, "Q?")  # nothing of a cut body was shown: retried
        got = []
        with pytest.raises(StreamInterrupted, match="cut mid-way") as exc:
            for event in c.ask_stream(short_text, "Q?"):
                got.append(event)
        assert got and exc.value.partial_reasoning.startswith("Received")
        assert srv.chat_requests(5) == 5  # the stream, cut after events were shown: not


def test_unknown_model_4xx_is_not_retried(fast_server: ServeOcr, short_text: str) -> None:
    before = fast_server.chat_requests()
    with client(fast_server, model="nope", max_model_len=65536) as c, \
            pytest.raises(RequestRejected, match="404.*does not exist"):
        c.ask(short_text, "Q?")
    assert fast_server.chat_requests(before + 1) == before + 1


def test_wrong_key_401_never_shows_the_key(module_tmp: Path, short_text: str,
                                           caplog: pytest.LogCaptureFixture,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-9f8e7d6c5b4a"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    caplog.set_level(logging.DEBUG)
    with serve_ocr(module_tmp, "--no-ocr", "--api-key", "sk-right-0123456789") as srv:
        with GlyphClient(srv.base_url) as c:
            with pytest.raises(AuthError, match="401") as exc:
                c.ask(short_text, "Q?")
            seen = [str(exc.value), repr(exc.value), repr(c), caplog.text,
                    *capsys.readouterr(), srv.log()]
        with GlyphClient(srv.base_url, api_key="sk-right-0123456789") as c:
            assert c.ask(short_text, "Q?").text.startswith("OCR is off")
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    for text in seen:
        assert wrong not in text


def test_reply_that_is_not_a_chat_completion() -> None:
    """A fake server: serve-ocr always answers valid JSON, so it cannot produce these faults."""
    bodies = iter([b"<html>502 Bad Gateway</html>", b'{"object": "chat.completion"}'])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = next(bodies)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with GlyphClient(url, model="m", max_model_len=100_000) as c:
            with pytest.raises(MalformedReply, match="not JSON"):
                c.ask("Some text.", "Q?")
            with pytest.raises(MalformedReply, match="no choices"):
                c.ask("Some text.", "Q?")
    finally:
        httpd.shutdown()


# --- what servers say, parsed --------------------------------------------------------------


@pytest.mark.parametrize(("message", "ctx", "prompt"), [
    ("Input length (18149) exceeds model's maximum context length (16384).", 16384, 18149),
    ("This model's maximum context length is 16384 tokens. However, you requested 18149 tokens "
     "(17149 in the messages, 1000 in the completion). Please reduce the length.", 16384, 17149),
    ("This model's maximum context length is 16384 tokens. However, your prompt contains at "
     "least 16385 input tokens, which exceeds this limit even without any output tokens.",
     16384, 16385),
    ("'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum context "
     "length is 16384 tokens and your request has 9000 input tokens (8192 > 16384 - 9000).",
     16384, 9000),
    ("The input (18149 tokens) is longer than the model's context length (16384 tokens).",
     16384, 18149),
    ("Requested token count exceeds the model's maximum context length of 16384 tokens. You "
     "requested a total of 18149 tokens: 17149 tokens from the input messages and 1000 tokens "
     "for the completion. Please reduce the number of tokens.", 16384, 17149),
])
def test_context_overflow_messages(message: str, ctx: int, prompt: int) -> None:
    over = parse_context_overflow(message)
    assert over is not None and (over.max_context, over.prompt_tokens) == (ctx, prompt)
    assert parse_context_overflow("The model `x` does not exist.") is None


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3.0 and parse_retry_after("0.5") == 0.5
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0)
    assert all(0.5 <= policy.wait(1, None) <= 1.0 for _ in range(50))
    assert all(2.0 <= policy.wait(5, None) <= 4.0 for _ in range(50))  # capped
    assert all(7.0 <= policy.wait(1, 7.0) <= 8.0 for _ in range(50))  # Retry-After honoured


# --- the CLI --------------------------------------------------------------------------------


def test_cli_ask_json_and_stream(fast_server: ServeOcr, short_text: str, tmp_path: Path,
                                 run_cli) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text(short_text, encoding="utf-8")
    res = run_cli(["ask", doc, "Who?", "--endpoint", fast_server.base_url, "--dpi", "90",
                   "--tokenizer", "bytes", "--max-tokens", "400", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["text"] == "OCR is off (serve-ocr --no-ocr)."
    assert out["usage"]["prompt_tokens"] == out["predicted_prompt_tokens"]
    assert out["reasoning"].startswith("Received") and out["dpi"] == 90
    assert {"pages", "timings", "payload_bytes", "compression_ratio"} <= set(out)
    res = run_cli(["ask", doc, "Who?", "--endpoint", fast_server.base_url, "--stream",
                   "--no-thinking", "--system", "Short answers."], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OCR is off (serve-ocr --no-ocr)."
    assert "[thinking] Received" in res.stderr and "prompt tokens (predicted" in res.stderr


def test_cli_ask_failures_exit_2(module_tmp: Path, short_text: str, tmp_path: Path,
                                 run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text(short_text, encoding="utf-8")
    res = run_cli(["ask", doc, "Q?", "--endpoint", "http://127.0.0.1:9/v1"], cwd=tmp_path)
    assert res.returncode == 2 and "http://127.0.0.1:9/v1" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli(["ask", tmp_path / "missing.txt", "Q?"], cwd=tmp_path)
    assert res.returncode == 2 and "no such file" in res.stderr
    key = "sk-cli-wrong-key-55555"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with serve_ocr(module_tmp, "--no-ocr", "--api-key", "right-key-000000") as srv:
        res = run_cli(["ask", doc, "Q?", "--endpoint", srv.base_url], cwd=tmp_path)
    assert res.returncode == 2 and "401" in res.stderr and key not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1
