"""serve-ocr, the local stand-in for a Glyph endpoint: real server processes, official client.

Each server is a real ``python -m glyph_render.testing --port 0`` process (module-scoped, so
the few OCR runs are shared); the tests talk to it with the ``openai`` client, or with
``http.client`` where the wire format itself (SSE lines, headers) is what is checked.
OCR tests need the ``tesseract`` binary with English data: skipped without it, unless
GLYPH_REQUIRE_TESSERACT=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from glyph_render.errors import ConfigError
from glyph_render.testing import OcrServer
from glyph_render.testing.answer import answer_question, split_sentences
from glyph_render.testing.faults import FaultPlan, FaultRule
from glyph_render.testing.ocr import line_pitch
from glyph_render.testing.protocol import split_pieces
from glyph_render.vision_tokens import image_token_info, prompt_tokens

REPO = Path(__file__).resolve().parents[1]
FONT = REPO / "fonts" / "DejaVuSans.ttf"
MODEL = "zai-org/Glyph"
NEEDLE = "The secret code is 7F3K-92QX."
QUESTION = "What is the secret code?"
PAGE_LINES = [
    "The quarterly report was filed on a grey Tuesday morning.",
    "Profits rose sharply in the northern region this year.",
    NEEDLE,
    "Nobody expected the old river to flood the valley again.",
]
API_KEY = "s3cret-KEY-4242"


def _need_tesseract() -> None:
    if shutil.which("tesseract") is None:
        if os.environ.get("GLYPH_REQUIRE_TESSERACT") == "1":
            pytest.fail("GLYPH_REQUIRE_TESSERACT=1 but no tesseract binary on PATH")
        pytest.skip("tesseract not installed (Debian: tesseract-ocr tesseract-ocr-eng)")


# --- a real server process ----------------------------------------------------------------


class ServerProcess:
    """``python -m glyph_render.testing --port 0 ARGS``; waits for the URL it prints."""

    def __init__(self, *args: str, timeout: float = 30.0) -> None:
        self._log_dir = tempfile.TemporaryDirectory(prefix="serve-ocr-test-")
        self.stderr_path = Path(self._log_dir.name) / "stderr.log"
        self._stderr_text: str | None = None
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}  # a default key
        with open(self.stderr_path, "wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                # bytes: one token per byte, as the tiny vLLM test model counts (the default,
                # cl100k_base, is checked in test_cli_misc.py); a later --tokenizer wins
                [sys.executable, "-m", "glyph_render.testing", "--port", "0", "--tokenizer",
                 "bytes", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env={**env, "PYTHONPATH": path},
                text=True,
            )
        line = self._first_line(timeout)
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/v1)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"serve-ocr did not start: {line!r}\n{self.stderr()}")
        self.base_url = match.group(1)
        self.port = int(match.group(2))
        self.returncode: int | None = None

    def _first_line(self, timeout: float) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        return box[0] if box else ""

    def client(self, **kw) -> openai.OpenAI:
        kw.setdefault("api_key", "none")
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 60)
        return openai.OpenAI(base_url=self.base_url, **kw)

    def request(self, method: str, path: str, body=None, headers=None):
        """(status, headers, body text) of one raw HTTP request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode("utf-8")
        conn.close()
        return resp.status, dict(resp.getheaders()), text

    def stderr(self) -> str:
        if self._stderr_text is not None:
            return self._stderr_text
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._stderr_text is None:
            self._stderr_text = self.stderr()
            self._log_dir.cleanup()
        return self.returncode


@contextlib.contextmanager
def running(*args: str):
    server = ServerProcess(*args)
    try:
        yield server
    finally:
        server.stop()


# --- pages ----------------------------------------------------------------------------------


def page_png(lines: list[str], size=(820, 250), px=20) -> bytes:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), px)
    for i, line in enumerate(lines):
        draw.text((24, 24 + i * round(px * 1.6)), line, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def blank_png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 255).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def user_message(urls: list[str], text: str) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


PAGE = page_png(PAGE_LINES)
PAGE_SIZE = Image.open(io.BytesIO(PAGE)).size


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in metrics")


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_dir():
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "page.png").write_bytes(PAGE)
        yield Path(tmp)


@pytest.fixture(scope="module")
def glm(media_dir):
    """OCR on, reasoning parser, 16k context (like the vLLM test server)."""
    _need_tesseract()
    with running(
        "--reasoning-parser", "glm45", "--max-model-len", "16384",
        "--allowed-local-media-path", str(media_dir),
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def inline():
    """No reasoning parser (working inline in <think>), boxed answers, OCR off."""
    with running("--no-ocr", "--box") as server:
        yield server


# --- the OpenAI protocol --------------------------------------------------------------------


def test_models_lists_served_name_and_context(glm):
    models = glm.client().models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].owned_by == "glyph-render"
    assert models[0].model_extra["max_model_len"] == 16384
    status, _, _ = glm.request("GET", "/health")
    assert status == 200


def test_needle_comes_back_verbatim_with_reasoning_fields(glm):
    resp = glm.client().chat.completions.create(
        model=MODEL, messages=user_message([data_url(PAGE)], QUESTION)
    )
    message = resp.choices[0].message
    assert message.content == NEEDLE
    extra = message.model_extra
    assert extra["reasoning"] == extra["reasoning_content"]
    assert "Page 1: 820x250" in extra["reasoning"] and "score" in extra["reasoning"]
    assert "<think>" not in message.content
    assert resp.choices[0].finish_reason == "stop"
    # usage is the client's own GLM-4.1V arithmetic: images + wrappers + template + question.
    assert resp.usage.prompt_tokens == prompt_tokens([PAGE_SIZE], QUESTION, tokenizer="bytes")
    generated = f"<think>{extra['reasoning']}</think>{NEEDLE}"
    assert resp.usage.completion_tokens == len(generated.encode())


def test_transcription_returns_all_lines_in_order(glm):
    resp = glm.client().chat.completions.create(
        model=MODEL, messages=user_message([data_url(PAGE)], "Transcribe the text of this page.")
    )
    text = resp.choices[0].message.content
    positions = [text.find(line) for line in PAGE_LINES]
    assert -1 not in positions, text
    assert positions == sorted(positions)


def test_file_url_under_allowed_path_only(glm, media_dir):
    client = glm.client()
    url = (media_dir / "page.png").as_uri()
    resp = client.chat.completions.create(model=MODEL, messages=user_message([url], QUESTION))
    assert resp.choices[0].message.content == NEEDLE
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=user_message(["file:///etc/hostname"], QUESTION)
        )
    assert err.value.body["message"] == (
        "The file path /etc/hostname must be a subpath of `--allowed-local-media-path <path>`."
    )


def test_stream_wire_format(glm):
    payload = {
        "model": MODEL,
        "messages": user_message([data_url(PAGE)], QUESTION),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, body = glm.request("POST", "/v1/chat/completions", payload)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    deltas = [c["choices"][0] for c in chunks[1:-1]]
    kinds = ["reasoning" if "reasoning" in d["delta"] else "content" for d in deltas]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning, then content
    assert kinds.count("reasoning") > 1 and kinds.count("content") > 1
    assert all(d["delta"].get("reasoning") == d["delta"].get("reasoning_content") for d in deltas)
    assert [d["finish_reason"] for d in deltas] == [None] * (len(deltas) - 1) + ["stop"]
    content = "".join(d["delta"].get("content") or "" for d in deltas)
    reasoning = "".join(d["delta"].get("reasoning") or "" for d in deltas)
    assert content == NEEDLE
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == len(f"<think>{reasoning}</think>{content}".encode())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_through_openai_client(glm):
    stream = glm.client().chat.completions.create(
        model=MODEL,
        messages=user_message([data_url(PAGE)], QUESTION),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == NEEDLE
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0


def test_inline_think_and_box_without_parser(inline):
    resp = inline.client().chat.completions.create(
        model=MODEL, messages=user_message([data_url(blank_png((300, 200)))], QUESTION)
    )
    message = resp.choices[0].message
    assert message.model_extra.get("reasoning") is None
    match = re.fullmatch(r"<think>(.+)</think><\|begin_of_box\|>(.+)<\|end_of_box\|>",
                         message.content, re.S)
    assert match, message.content
    assert "OCR is off" in match.group(2)
    assert resp.usage.completion_tokens == len(message.content.encode())


def test_max_tokens_cuts_with_finish_reason_length(inline):
    resp = inline.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert resp.choices[0].message.content == "<thin"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 5


def test_over_context_400_has_vllms_exact_message(glm):
    big = data_url(blank_png((2480, 3508)))  # 6,045 image tokens each
    with pytest.raises(openai.BadRequestError) as err:
        glm.client().chat.completions.create(model=MODEL, messages=user_message([big] * 3, "x"))
    expected = 3 * 6045 + 3 * 2 + 2 + 2 + 2 + 1
    assert err.value.status_code == 400
    assert err.value.body == {
        "message": f"Input length ({expected}) exceeds model's maximum context length (16384).",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert json.loads(err.value.response.text)["error"]["code"] == 400
    with pytest.raises(openai.BadRequestError) as err:  # text-only prompts: vLLM's other check
        glm.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x" * 16400}]
        )
    assert err.value.body["message"] == (
        "This model's maximum context length is 16384 tokens. However, your prompt contains at "
        "least 16385 input tokens, which exceeds this limit even without any output tokens. "
        "Please reduce the length of the input prompt. (parameter=input_tokens, value=16385)"
    )


def test_bad_requests_look_like_vllm(glm):
    status, _, body = glm.request("POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and "JSON decode error" in json.loads(body)["error"]["message"]
    status, _, body = glm.request("POST", "/v1/chat/completions", {"model": MODEL})
    error = json.loads(body)["error"]
    assert status == 400 and error["param"] == "body.messages" and "Field required" in error[
        "message"]
    with pytest.raises(openai.NotFoundError) as err:
        glm.client().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.body["message"].startswith("The model `nope` does not exist.")
    status, _, body = glm.request("GET", "/v1/nothing")
    assert (status, json.loads(body)) == (404, {"detail": "Not Found"})


def test_metrics_count_tokens_and_successes(glm):
    def scrape() -> str:
        status, headers, text = glm.request("GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        return text

    before = scrape()
    info = re.search(r"^vllm:cache_config_info\{([^}]*)\} 1\.0$", before, re.M)
    assert info and 'block_size="16"' in info.group(1)
    assert 'enable_prefix_caching="False"' in info.group(1)
    resp = glm.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say something."}], max_tokens=3
    )
    after = scrape()
    labels = {"model_name": MODEL}
    assert metric(after, "vllm:prompt_tokens_total", **labels) - metric(
        before, "vllm:prompt_tokens_total", **labels) == resp.usage.prompt_tokens
    assert metric(after, "vllm:generation_tokens_total", **labels) - metric(
        before, "vllm:generation_tokens_total", **labels) == 3
    ok = {"finished_reason": "length", **labels}
    assert metric(after, "vllm:request_success_total", **ok) == metric(
        before, "vllm:request_success_total", **ok) + 1


# --- faults -------------------------------------------------------------------------------


def test_each_fault_fires_on_its_request_number():
    with running(
        "--no-ocr", "--fail-429", "@1", "--retry-after", "7", "--fail-500", "@2",
        "--drop-stream", "@3", "--drop-connection", "@4", "--enable-prefix-caching",
    ) as server:  # fmt: skip
        client = server.client()
        messages = [{"role": "user", "content": "hello"}]
        with pytest.raises(openai.RateLimitError) as err:  # 1
            client.chat.completions.create(model=MODEL, messages=messages)
        assert err.value.response.headers["Retry-After"] == "7"
        assert err.value.body["code"] == 429
        with pytest.raises(openai.InternalServerError):  # 2
            client.chat.completions.create(model=MODEL, messages=messages)
        stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        received = 0
        with pytest.raises(openai.APIConnectionError):  # 3: some chunks, then the cut
            for _ in stream:
                received += 1
        assert received >= 1
        with pytest.raises(openai.APIConnectionError):  # 4: no reply at all
            client.chat.completions.create(model=MODEL, messages=messages)
        resp = client.chat.completions.create(model=MODEL, messages=messages)  # 5
        assert resp.choices[0].finish_reason == "stop"
        _, _, text = server.request("GET", "/metrics")
        assert 'enable_prefix_caching="True"' in text
        assert metric(text, "vllm:request_success_total", finished_reason="abort") == 1
        assert metric(text, "vllm:request_success_total", finished_reason="stop") == 1
        assert server.stop() == 0
    log = server.stderr()
    assert "request #4" in log and "drop_connection" in log
    assert "serve-ocr: stopped" in log


def test_openai_retries_ride_over_injected_faults():
    with OcrServer(ocr=False, quiet=True, fail_429="@1", retry_after=0.01, fail_500="@2") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="none", max_retries=2)
        resp = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}]
        )
        assert resp.choices[0].finish_reason == "stop"
        assert srv.requests_seen == 3


def test_api_key_required_and_never_logged():
    with running("--no-ocr", "--api-key", API_KEY) as server:
        status, _, body = server.request("GET", "/v1/models")
        assert (status, json.loads(body)) == (401, {"error": "Unauthorized"})
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key="wrong").models.list()
        assert server.request("GET", "/health")[0] == 200  # not a /v1 route
        resp = server.client(api_key=API_KEY).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}]
        )
        assert resp.choices[0].finish_reason == "stop"
        assert server.stop() == 0
    log = server.stderr()
    assert "401" in log and "POST /v1/chat/completions 200" in log
    assert API_KEY not in log


def test_wrong_token_rule_overbills_images():
    png = blank_png((595, 842))
    with running("--no-ocr", "--token-rule", "wrong") as server:
        resp = server.client().chat.completions.create(
            model=MODEL, messages=user_message([data_url(png)], QUESTION)
        )
    right = prompt_tokens([(595, 842)], QUESTION, tokenizer="bytes")
    info = image_token_info(595, 842)
    assert resp.usage.prompt_tokens == right - info.tokens + info.patches == right + 3 * 630


def test_glyph_render_cli_has_serve_ocr():
    out = subprocess.run(
        [sys.executable, "-m", "glyph_render.cli", "serve-ocr", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--max-model-len" in out.stdout and "--drop-connection" in out.stdout


# --- the parts, in process ----------------------------------------------------------------


def test_fault_rules_parse_and_fire():
    assert FaultRule.parse("@3").fires(3, 0.99) and not FaultRule.parse("@3").fires(4, 0.0)
    rule = FaultRule.parse("@2+")
    assert [rule.fires(n, 0.99) for n in (1, 2, 9)] == [False, True, True]
    assert FaultRule.parse("0.25").fires(1, 0.2) and not FaultRule.parse("0.25").fires(1, 0.3)
    for bad in ("@0", "1.5", "@x", "0.1,0.2", "@"):
        with pytest.raises(ConfigError):
            FaultRule.parse(bad)
    plans = [FaultPlan({"fail_500": FaultRule.parse("0.5")}, seed=7) for _ in range(2)]
    runs = [[p.next().kind for _ in range(20)] for p in plans]
    assert runs[0] == runs[1] and "fail_500" in runs[0] and None in runs[0]


def test_answer_survives_wrapping_and_glued_lines():
    wrapped = "Profits rose. The secret code is\n7F3K-92QX. Nobody expected the flood.\n"
    assert answer_question(QUESTION, [wrapped]).text == NEEDLE
    glued = "Alice had learnt several\nThe secret code is 7F3K-92QX.\nthings of this sort.\n"
    assert answer_question(QUESTION, [glued]).text == NEEDLE
    assert answer_question("Please transcribe.", ["a", "b"]).text == "a\n\nb"
    assert split_sentences("One. Two!\nThree?") == ["One.", "Two!", "Three?"]
    miss = answer_question("What colour is the zebra?", [wrapped])
    assert miss.mode == "none" and "could not find" in miss.text


def test_in_process_server_and_line_pitch():
    with OcrServer(ocr=False, quiet=True, served_model_names=("a", "b")) as srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", srv.base_url)
        client = openai.OpenAI(base_url=srv.base_url, api_key="none", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["a", "b"]
        assert client.chat.completions.create(
            model="b", messages=[{"role": "user", "content": "x"}]
        ).model == "b"
    assert line_pitch(Image.open(io.BytesIO(PAGE))) == round(20 * 1.6)
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        OcrServer(ocr=False, fail_500="sometimes")
    assert time.perf_counter() - started < 5


@given(st.text(), st.integers(min_value=1, max_value=5))
def test_stream_pieces_rejoin_to_the_text(text, words):
    pieces = split_pieces(text, words)
    assert "".join(pieces) == text
    assert all(len(p.split()) <= words for p in pieces)


@pytest.mark.parametrize(("flag", "value"), [("--delay", "nan"), ("--chunk-delay", "-1"),
                                             ("--image-token-scale", "0"),
                                             ("--ocr-workers", "0"), ("--top-k", "x"),
                                             ("--max-model-len", "0")])
def test_bad_numbers_are_one_line_and_exit_2(flag: str, value: str) -> None:
    """The stand-in's flags are checked by the settings module's types, as every command's."""
    res = subprocess.run([sys.executable, "-m", "glyph_render", "serve-ocr", flag, value],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    (line,) = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert f"argument {flag}: " in line and repr(value) in line
