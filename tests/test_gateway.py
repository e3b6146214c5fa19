"""``glyph-render gateway`` with real parts: the ``openai`` SDK (sync, async, streaming) pointed at
the gateway as a real process, in front of ``serve-ocr`` as a real process (vLLM's protocol,
pages read with Tesseract or counted, faults injected by request number). The policy's message
rewriting is also checked in process, on the real renderer. No fakes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from glyph_render.compress import fit_to_context, pages_cost
from glyph_render.gateway.errors import ApiError
from glyph_render.gateway.pages import LruCache, Renderer
from glyph_render.gateway.policy import HISTORY_NOTE, Compressor
from glyph_render.gateway.settings import GatewaySettings, request_options
from glyph_render.gateway.upstream import ModelEntry
from glyph_render.text_tokens import get_tokenizer
from glyph_render.vision_tokens import get_profile

try:
    from gateway_process import GatewayProcess, gateway
    from ocr_server_process import ServeOcr, serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.gateway_process import GatewayProcess, gateway
    from tests.ocr_server_process import ServeOcr, serve_ocr

NEEDLE = "The secret code is 7F3K-92QX."
QUESTION = "What is the secret code?"
MODEL = "zai-org/Glyph"
FAST = ("--render-workers", "1", "--backoff", "0.01")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def document(corpus_text: Callable[[str], str]) -> str:
    """9,000 characters of Frankenstein with the needle planted mid-way (3 pages)."""
    text = corpus_text("en_frankenstein.txt")[1_000:10_000]
    cut = text.index(". ", 4_500) + 2
    return text[:cut] + NEEDLE + " " + text[cut:]


@pytest.fixture(scope="module")
def counting(module_tmp: Path) -> Iterator[ServeOcr]:
    """No OCR: answers say how many pages arrived; usage counted by the GLM-4.1V rule."""
    with serve_ocr(module_tmp, "--no-ocr") as srv:
        yield srv


@pytest.fixture(scope="module")
def gw(module_tmp: Path, counting: ServeOcr) -> Iterator[GatewayProcess]:
    with gateway(module_tmp, counting.url, *FAST, "--tokenizer", "bytes") as g:
        yield g


def sdk(g: GatewayProcess, key: str = "anything", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.base_url, api_key=key, max_retries=0, **kw)


def ask(document: str) -> list[dict]:
    return [{"role": "user", "content": f"{document}\n\n{QUESTION}"}]


# --- an unmodified SDK program, given only the base URL ------------------------------------


def test_needle_read_from_pages(module_tmp: Path, document: str) -> None:
    """serve-ocr reads the pages with Tesseract: the answer can only come from the pages."""
    with serve_ocr(module_tmp, "--ocr-scale", "1", "--reasoning-parser", "glm45") as ocr, \
            gateway(module_tmp, ocr.url, *FAST, "--dpi", "96") as g:
        raw = sdk(g).chat.completions.with_raw_response.create(
            model=MODEL, messages=ask(document), max_tokens=2000)
        reply = raw.parse()
        assert "7F3K-92QX" in reply.choices[0].message.content, reply
        pages = int(raw.headers["x-glyph-pages"])
        assert pages >= 2 and int(raw.headers["x-glyph-saved-tokens"]) > 0
        glyph = reply.usage.glyph
        assert glyph["pages"] == pages and glyph["dpi"] == [96.0]
        assert glyph["saved_tokens"] == glyph["text_tokens"] - glyph["vision_tokens"] - 2 * pages
        assert ocr.chat_requests(1) == 1  # (waits for the line, written after the reply)
        assert f"pages={pages} " in ocr.chat_lines()[-1]  # the upstream received pages


def test_sync_async_stream_agree_and_cache(gw: GatewayProcess, counting: ServeOcr,
                                           document: str) -> None:
    client = sdk(gw)
    first = client.chat.completions.create(model=MODEL, messages=ask(document), max_tokens=400)
    text = first.choices[0].message.content
    pages = first.usage.glyph["pages"]
    assert f"Received {pages} page(s)" in text
    # The pages cost what the model's image rule says, and far less than the text would.
    assert first.usage.prompt_tokens < len(document.encode()) / 2

    async def run_async() -> openai.types.chat.ChatCompletion:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as ac:
            return await ac.chat.completions.create(model=MODEL, messages=ask(document),
                                                    max_tokens=400)

    second = asyncio.run(run_async())
    assert second.choices[0].message.content == text
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.glyph["cache_hits"] == 1 and second.usage.glyph["cache_misses"] == 0

    chunks = list(client.chat.completions.create(
        model=MODEL, messages=ask(document), max_tokens=400, stream=True,
        stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    usage = chunks[-1].usage
    assert usage.prompt_tokens == first.usage.prompt_tokens and usage.glyph["pages"] == pages


def test_short_text_and_mode_never_stay_text(gw: GatewayProcess, document: str) -> None:
    client = sdk(gw)
    short = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there."}], max_tokens=20)
    assert short.headers["x-glyph-pages"] == "0"
    never = client.chat.completions.create(
        model=MODEL, messages=ask(document), max_tokens=20, extra_body={"glyph": {"mode":
                                                                                 "never"}})
    assert never.usage.glyph["pages"] == 0
    assert never.usage.prompt_tokens > len(document.encode())  # sent as text, byte-counted
    forced = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "A short note."}, {"type": "text", "text": "A question?"}]}],
        max_tokens=20, extra_body={"glyph": {"mode": "always"}})
    assert forced.usage.glyph["pages"] == 1  # the note; the question stays text
    with pytest.raises(openai.BadRequestError, match="glyph.colour: unknown option"):
        client.chat.completions.create(model=MODEL, messages=ask(document),
                                       extra_body={"glyph": {"colour": "red"}})


def test_conversation_history_becomes_pages(gw: GatewayProcess, document: str) -> None:
    """An MRCR-style chat: the old turns arrive as pages, the recent ones and the question as
    text, and the upstream takes the rewritten conversation."""
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Here is a letter:\n\n" + document},
                {"role": "assistant", "content": "Thank you, I have read the letter."},
                {"role": "user", "content": "Who wrote it?"},
                {"role": "assistant", "content": "Robert Walton wrote it."},
                {"role": "user", "content": QUESTION}]
    raw = sdk(gw).chat.completions.with_raw_response.create(model=MODEL, messages=messages,
                                                            max_tokens=400)
    reply = raw.parse()
    glyph = reply.usage.glyph
    assert glyph["documents"] == 1 and glyph["pages"] >= 2  # the first exchange, rendered
    assert f"Received {glyph['pages']} page(s)" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens < len(document.encode()) / 2


def test_fitting_compresses_then_splits(module_tmp: Path, document: str) -> None:
    """A 900-token context: the document is rendered smaller to fit, and a document no
    legible rendering fits is split into chunks asked one by one, then combined."""
    with serve_ocr(module_tmp, "--no-ocr", "--max-model-len", "900") as small, \
            gateway(module_tmp, small.url, *FAST, "--tokenizer", "bytes") as g:
        client = sdk(g)
        fitted = client.chat.completions.create(model=MODEL, messages=ask(document),
                                                max_tokens=100)
        glyph = fitted.usage.glyph
        assert glyph["parts"] == 1 and glyph["dpi"][0] < 72
        assert fitted.usage.prompt_tokens + 100 <= 900
        before = small.chat_requests(1)  # waits for its log line (written after the reply)
        long_doc = (document + "\n\n") * 6
        split = client.chat.completions.create(model=MODEL, messages=ask(long_doc),
                                               max_tokens=100)
        parts = split.usage.glyph["parts"]
        assert parts >= 3 and split.usage.glyph["map_usage"]["prompt_tokens"] > 1000
        assert small.chat_requests(before + parts) == before + parts
        # The combining call carries the partial answers as text, no pages.
        assert "Received 0 page(s)" in split.choices[0].message.content
        assert split.usage.prompt_tokens > 30 * (parts - 1)  # a partial answer each


# --- faults, in the OpenAI error shape -----------------------------------------------------


def _error_body(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


def test_upstream_faults_and_retries(module_tmp: Path, document: str) -> None:
    """Requests are numbered by serve-ocr; the gateway retries once (--max-retries 1)."""
    with serve_ocr(module_tmp, "--no-ocr", "--api-key", "upstream-secret-123",
                   "--fail-500", "@1,@5,@6", "--fail-429", "@3,@4", "--retry-after", "0",
                   "--drop-stream", "@7") as faulty, \
            gateway(module_tmp, faulty.url, *FAST, "--max-retries", "1", "--api-key",
                    "caller-key-456", "--max-body-mb", "0.5",
                    env={"GLYPH_UPSTREAM_API_KEY": "upstream-secret-123"}) as g:
        client = sdk(g, "caller-key-456")
        ok = client.chat.completions.create(model=MODEL, messages=ask(document), max_tokens=20)
        assert ok.usage.glyph["pages"] >= 2  # #1 failed 500, retried as #2
        with pytest.raises(openai.RateLimitError) as busy:  # #3 and #4 answered 429
            client.chat.completions.create(model=MODEL, messages=ask(document), max_tokens=20)
        assert busy.value.response.headers["retry-after"]
        assert _error_body(busy.value)["code"] == "upstream_busy"
        with pytest.raises(openai.InternalServerError) as failed:  # #5 and #6: 500
            client.chat.completions.create(model=MODEL, messages=ask(document), max_tokens=20)
        assert failed.value.status_code == 502
        assert "gave up after 2 attempts" in _error_body(failed.value)["message"]
        with pytest.raises(openai.APIError, match="stream was cut"):  # #7 drops mid-stream
            for _ in client.chat.completions.create(model=MODEL, messages=ask(document),
                                                    max_tokens=20, stream=True):
                pass
        assert faulty.chat_requests(7) == 7

        with pytest.raises(openai.AuthenticationError) as bad:
            sdk(g, "wrong-key").chat.completions.create(model=MODEL, messages=ask("x"))
        assert _error_body(bad.value)["code"] == "invalid_api_key"
        assert httpx.get(g.url + "/health").status_code == 200  # open
        assert httpx.get(g.url + "/metrics").status_code == 401
        assert faulty.chat_requests() == 7  # refused before anything went upstream

        with pytest.raises(openai.APIStatusError) as big:
            client.chat.completions.create(model=MODEL, messages=ask(document * 60))
        assert big.value.status_code == 413 and "over the gateway's limit" in str(big.value)
        auth = {"Authorization": "Bearer caller-key-456"}
        for body, expect in ((b"{not json", "not valid JSON"), (b"[]", "JSON object"),
                             (b'{"model": "m"}', "'messages' must be")):
            r = httpx.post(g.base_url + "/chat/completions", content=body, headers=auth)
            assert r.status_code == 400 and expect in r.json()["error"]["message"]
        r = httpx.get(g.base_url + "/nowhere", headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

        # A render worker killed (as the OOM killer would): 503 + Retry-After, then served.
        for pid in _children(g.proc.pid):
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        with pytest.raises(openai.APIStatusError) as died:
            client.chat.completions.create(model=MODEL, messages=ask(document[:-10]))
        assert died.value.status_code == 503 and died.value.response.headers["retry-after"]
        assert client.chat.completions.create(model=MODEL, messages=ask(document[:-10]),
                                              max_tokens=20).usage.glyph["pages"] >= 2

        metrics = httpx.get(g.url + "/metrics", headers=auth).text
        assert re.search(r"glyph_gateway_pages_total [1-9]", metrics)
        assert 'glyph_gateway_errors_total{kind="upstream_busy"} 1.0' in metrics
        assert "glyph_gateway_page_cache_hits_total" in metrics
        assert "glyph_gateway_upstream_seconds_bucket" in metrics
    logs = g.log() + faulty.log()
    assert "upstream-secret-123" not in logs and "caller-key-456" not in logs
    assert "wrong-key" not in logs


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_upstream_down_timeout_and_saturation(module_tmp: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with gateway(module_tmp, dead, *FAST, "--max-model-len", "4096") as g:
        with pytest.raises(openai.APIStatusError) as down:
            sdk(g).chat.completions.create(model=MODEL, messages=ask("hi"))
        assert down.value.status_code == 502
        assert _error_body(down.value)["code"] == "upstream_unreachable"
    with serve_ocr(module_tmp, "--no-ocr", "--delay", "2.5") as slow, \
            gateway(module_tmp, slow.url, *FAST, "--timeout", "1.5", "--max-concurrency",
                    "1") as g:
        clients = [sdk(g), sdk(g)]  # made first: building one can take a while on a busy host
        clients[0].models.list()  # the model list is cached: only chat waits on the delay
        errors: list[Exception] = []

        def call(client: openai.OpenAI) -> None:
            try:
                client.chat.completions.create(model=MODEL, messages=ask("hi"))
            except Exception as exc:  # noqa: BLE001 - collected for the assertions
                errors.append(exc)

        first = threading.Thread(target=call, args=(clients[0],))
        first.start()
        for _ in range(500):  # until the first is being served (the gateway's own gauge)
            if "glyph_gateway_requests_in_flight 1.0" in httpx.get(g.url + "/metrics").text:
                break
            threading.Event().wait(0.01)
        call(clients[1])
        first.join()
        codes = sorted(e.status_code for e in errors)  # type: ignore[attr-defined]
        assert codes == [429, 504]
        busy = next(e for e in errors if e.status_code == 429)  # type: ignore[attr-defined]
        assert busy.response.headers["retry-after"] == "1"


def test_cli_errors_exit_2(module_tmp: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "glyph_render.gateway", "--upstream", "x",
                        "--api-key-file", str(module_tmp / "missing.txt")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--api-key-file" in p.stderr and "missing.txt" in p.stderr
    p = subprocess.run([sys.executable, "-m", "glyph_render.cli", "gateway", "--upstream", "x",
                        "--threshold", "-1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--threshold" in p.stderr  # through glyph-render's CLI


# --- the policy, in process on the real renderer ------------------------------------------


@pytest.fixture(scope="module")
def compressor() -> Iterator[Compressor]:
    settings = GatewaySettings(upstream="http://unused", threshold=200, keep_turns=2,
                               question_tokens=64, tokenizer="bytes")
    renderer = Renderer(0, 64 << 20, 60, "glyph", "bytes", None)
    yield Compressor(settings, renderer, get_profile("glyph"), get_tokenizer("bytes"))
    renderer.close()


def _compress(c: Compressor, messages: list[dict], ctx: int | None = None, **glyph):
    body = {"model": MODEL, "messages": messages, "max_tokens": 50, "glyph": glyph}
    opts = request_options(body, c.s)
    assert "glyph" not in body  # stripped before forwarding
    return asyncio.run(c.compress(body, opts, ModelEntry(MODEL, ctx)))


def _kinds(message: dict) -> list[str]:
    content = message["content"]
    return ["text"] if isinstance(content, str) else [p["type"] for p in content]


def test_policy_keeps_question_and_recent_turns_as_text(compressor: Compressor,
                                                        document: str) -> None:
    old = document[:3000]
    image = {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Read this: " + old}, image]},
        {"role": "assistant", "content": "I read it. " + old[:1500]},
        {"role": "user", "content": "And the second part?"},
        {"role": "assistant", "content": "It goes on."},
        {"role": "user", "content": "Summarise the whole text.\n\n" + document + "\n\n"
         + QUESTION},
    ]
    done = _compress(compressor, messages)
    out = done.messages
    assert out[0] == messages[0]  # the system prompt stays
    # The two old turns became one user turn of pages, the passed-through image first...
    assert _kinds(out[1])[0] == "image_url" and out[1]["content"][0] == image
    # ...merged into the next user turn, kept as text, so turns still alternate.
    assert out[1]["content"][-2:] == [{"type": "text", "text": HISTORY_NOTE},
                                      {"type": "text", "text": "And the second part?"}]
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[-2] == messages[-2]  # the most recent turn stays text
    latest = out[-1]["content"]
    # The document became pages between its leading instruction and the question.
    assert latest[0] == {"type": "text", "text": "Summarise the whole text.\n\n"}
    assert latest[-1]["text"].strip() == QUESTION
    assert {p["type"] for p in latest[1:-1]} == {"image_url"}
    history_pages = sum(p["type"] == "image_url" for p in out[1]["content"]) - 1
    assert history_pages >= 1
    assert done.figures.documents == 2 and done.figures.pages == len(latest) - 2 + history_pages


def test_policy_fits_context_older_turns_first(compressor: Compressor, document: str) -> None:
    turns = [{"role": "user", "content": "Tell me more. " + "x" * 150},
             {"role": "assistant", "content": "Here is more. " + "y" * 150}] * 4
    messages = [*turns, {"role": "user", "content": QUESTION}]
    loose = _compress(compressor, messages, ctx=1600, threshold=5000)
    assert loose.figures.documents == 0 and loose.messages == messages  # fits as text
    tight = _compress(compressor, messages, ctx=900, threshold=5000)
    assert tight.figures.documents == 1 and tight.figures.pages >= 1  # the history, rendered
    assert tight.messages[-1] == messages[-1] and tight.messages[-2] == messages[-2]


def _sent(messages: list[dict]) -> tuple[int, int]:
    """(prompt tokens, of which pages) of what goes upstream, counted on the messages as sent:
    the GLM template's turns, the text by the gateway's tokenizer (bytes), each PNG by the
    image rule plus its wrapper (sizes read from the PNGs themselves)."""
    prof, tok = get_profile("glyph"), get_tokenizer("bytes")
    total = prof.prompt_prefix_tokens + prof.generation_prompt_tokens
    pages = 0
    for m in messages:
        total += prof.system_turn_tokens if m["role"] == "system" else prof.user_turn_tokens
        content = m["content"]
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if part["type"] == "text":
                total += tok.count(part["text"])
                continue
            png = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            with Image.open(io.BytesIO(png)) as im:
                pages += pages_cost([im.size], prof)
    return total + pages, pages


def test_policy_fits_one_document_as_the_client_does(compressor: Compressor,
                                                     document: str) -> None:
    """One document in a chat (system turn, earlier turns): fitted by the client's own
    fit_to_context against the whole prompt, and split for map-reduce when nothing fits."""
    chat = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hello. What shall I read?"}]
    ctx, reserve = 900, 50  # (_compress asks for max_tokens=50); 72 DPI would take 1,034
    done = _compress(compressor, [*chat, *ask(document)], ctx=ctx)
    sent, pages = _sent(done.messages)
    assert done.figures.parts == 1 and done.figures.documents == 1
    assert sent + reserve <= ctx
    # What the client's fitting chooses for the same prompt (the rest of it as frame tokens).
    job = fit_to_context(document, QUESTION, profile=get_profile("glyph"),
                         tokenizer=get_tokenizer("bytes"), max_context=ctx, max_tokens=reserve,
                         frame_tokens=sent - pages)
    assert job.configured is not None and len(job.spans) == 1
    assert done.figures.dpi == [job.config.dpi] and job.config.dpi < 72

    long_doc = (document + "\n\n") * 6
    split = _compress(compressor, [*chat, {"role": "user", "content": long_doc + QUESTION}],
                      ctx=ctx)
    assert len(split.maps) >= 3 and split.figures.parts == len(split.maps) + 1
    for n, messages in enumerate(split.maps, 1):
        assert messages[:3] == chat  # the chat around the document travels with each chunk
        assert sum(p["type"] == "image_url" for p in messages[-1]["content"]) >= 1
        assert f"part {n} of {len(split.maps)}" in messages[-1]["content"][-1]["text"]
        assert _sent(messages)[0] + reserve <= ctx  # each chunk's request fits


def test_request_options_are_validated() -> None:
    s = GatewaySettings(upstream="x")
    for glyph, where in (({"mode": "sometimes"}, "glyph.mode"), ({"budget": 0}, "glyph.budget"),
                         ({"threshold": "5"}, "glyph.threshold"), ({"dpi": 2}, "glyph.dpi"),
                         ("auto", "'glyph' must be an object")):
        with pytest.raises(ApiError, match=re.escape(where)) as exc:
            request_options({"glyph": glyph}, s)
        assert exc.value.status == 400 and json.loads(exc.value.bytes())["error"]["param"]


def test_lru_cache_is_bounded_in_bytes() -> None:
    cache = LruCache(100, len)
    cache.put("a", "x" * 40)
    cache.put("b", "y" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", "z" * 40)
    assert cache.get("b") is None and cache.get("a") and cache.get("c") and cache.total == 80
    cache.put("huge", "w" * 101)  # never kept, never evicts the rest
    assert cache.get("huge") is None and len(cache) == 2


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--dpi", "nan", "must be a finite number > 0"), ("--dpi", "-3", "must be a finite number > 0"),
    ("--min-px-per-em", "0", "must be a finite number > 0"),
    ("--timeout", "inf", "must be a finite number > 0"),
    ("--backoff", "-1", "must be a finite number >= 0"),
    ("--cache-mb", "abc", "expected a number"), ("--max-concurrency", "0", "must be >= 1"),
    ("--threshold", "-1", "must be >= 0"),
])
def test_bad_numbers_are_one_line_and_exit_2_before_serving(flag: str, value: str,
                                                            says: str) -> None:
    res = subprocess.run([sys.executable, "-m", "glyph_render", "gateway", "--upstream",
                          "http://127.0.0.1:9/v1", "--port", "0", flag, value],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stdout == ""  # never started listening
    lines = res.stderr.strip().splitlines()
    assert lines[-1].endswith(f"argument {flag}: {says}, got {value!r}") or says in lines[-1]
    assert len([ln for ln in lines if "error" in ln]) == 1


@pytest.mark.parametrize("over", [{"dpi": float("nan")}, {"timeout": float("inf")},
                                  {"backoff": -1.0}, {"min_px_per_em": 0.0},
                                  {"models_ttl": True}])
def test_settings_from_python_are_checked_as_the_flags(over: dict) -> None:
    from glyph_render.errors import ConfigError

    name = "--" + next(iter(over)).replace("_", "-")
    with pytest.raises(ConfigError, match=f"^{name}: "):
        GatewaySettings(upstream="http://127.0.0.1:9/v1", **over)


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_render_workers_leave_with_a_gateway_killed_outright(module_tmp: Path) -> None:
    """SIGKILL runs no shutdown: the render workers notice their parent is gone and exit,
    instead of living on (each with a render stack) after every crash of a gateway."""
    gw = GatewayProcess(module_tmp, "http://127.0.0.1:9/v1", "--render-workers", "2")
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline:
            workers = {c for c in _children(gw.proc.pid)
                       if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
                       and "resource_tracker" not in
                       Path(f"/proc/{c}/cmdline").read_text(errors="replace")}
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, workers
        gw.proc.kill()
        gw.proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
        for w in left:  # do not leak them into the rest of the suite
            with contextlib.suppress(OSError):
                os.kill(w, signal.SIGKILL)
        assert left == []
    finally:
        gw.stop()
