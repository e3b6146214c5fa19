"""The stand-in "model": images + question in, reasoning + answer + token counts out.

Token accounting is the point of the stand-in, so it reuses the client's own arithmetic
(:func:`glyph_render.vision_tokens.prompt_tokens`) instead of a copy: a client that predicts
usage with the same profile and tokenizer must match exactly. ``token_rule="wrong"`` (every
image billed as its unmerged patch count, as a processor that forgot the 2x2 merge would) and
``image_token_scale`` exist to make the server disagree on purpose, so the doctor's mismatch
detection has something to detect. Limits follow vLLM 0.32's ``get_max_tokens``: a prompt over
``max_model_len`` is refused, ``max_tokens`` is silently clamped to what is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from glyph_render.errors import GlyphRenderError
from glyph_render.text_tokens import TextTokenizer, get_tokenizer
from glyph_render.vision_tokens import (
    VisionProfile,
    get_profile,
    image_token_info,
    image_tokens,
    prompt_tokens,
)

from .answer import ExtractiveAnswer, answer_question
from .config import ServerConfig
from .media import PageImage, load_image
from .ocr import OcrPage, TesseractReader
from .protocol import ApiError, ChatRequest

__all__ = ["Engine", "Generation"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOX_OPEN, BOX_CLOSE = "<|begin_of_box|>", "<|end_of_box|>"
NO_OCR_ANSWER = "OCR is off (serve-ocr --no-ocr)."


@dataclass(frozen=True)
class Generation:
    """One finished request: what to send and what to count."""

    model: str
    content: str | None  # None when the parser found no answer (e.g. cut inside the reasoning)
    reasoning: str | None  # None without a reasoning parser (it is inline in content then)
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None
    finish_reason: str
    pages: int
    ocr_seconds: float = 0.0  # summed over pages; 0 for cache hits and --no-ocr


class Engine:
    """Turns a parsed :class:`ChatRequest` into a :class:`Generation`; thread-safe."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.profile: VisionProfile = get_profile(config.profile)
        self.tokenizer: TextTokenizer = get_tokenizer(config.tokenizer)
        self.reader = (
            TesseractReader(scale=config.ocr_scale, psm=config.ocr_psm, lang=config.ocr_lang)
            if config.ocr
            else None
        )
        self._pool = ThreadPoolExecutor(max(1, config.ocr_workers), "serve-ocr-ocr")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def model_name(self) -> str:
        return self.config.served_model_names[0]

    def check_model(self, requested: str | None) -> str:
        """The served name answering this request; 404 like vLLM for an unknown one."""
        names = self.config.served_model_names
        if requested is None:
            return names[0]
        if requested not in names:
            raise ApiError(
                404,
                f"The model `{requested}` does not exist. Valid aliases: {', '.join(names)}.",
                param="model",
            )
        return requested

    def count_prompt(self, request: ChatRequest, sizes: Sequence[tuple[int, int]]) -> int:
        """usage.prompt_tokens for this request under the server's (possibly wrong) rule."""
        try:
            total = prompt_tokens(
                sizes,
                request.prompt_text,
                profile=self.profile,
                system=request.system,
                tokenizer=self.tokenizer,
            )
            # Later turns each cost their role wrapper (approximation for multi-turn chats).
            total += max(0, request.turns - 1) * self.profile.user_turn_tokens
            for width, height in sizes:  # swap the right image count for the served one
                right = image_tokens(width, height, self.profile)
                served = right
                if self.config.token_rule == "wrong":
                    served = image_token_info(width, height, self.profile).patches
                served = math.ceil(served * self.config.image_token_scale)
                total += served - right
        except GlyphRenderError as exc:
            raise ApiError(400, str(exc)) from None
        return total

    def run(self, request: ChatRequest) -> Generation:
        """Validate, count, OCR, answer; raises ApiError for anything vLLM would refuse."""
        model = self.check_model(request.model)
        cfg = self.config
        pages = [
            load_image(url, cfg.allowed_local_media_path, decode=cfg.ocr)
            for url in request.image_urls
        ]
        prompt = self.count_prompt(request, [(p.width, p.height) for p in pages])
        limit = cfg.max_model_len
        if prompt > limit:
            if not pages:  # vLLM's text-only check truncates at limit + 1, hence "at least"
                raise ApiError(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, your "
                    f"prompt contains at least {limit + 1} input tokens, which exceeds this "
                    "limit even without any output tokens. Please reduce the length of the "
                    f"input prompt. (parameter=input_tokens, value={limit + 1})",
                )
            raise ApiError(
                400, f"Input length ({prompt}) exceeds model's maximum context length ({limit})."
            )
        budget = limit - prompt
        if request.max_tokens is not None:
            budget = min(budget, request.max_tokens)
        if budget < 1:
            raise ApiError(400, f"max_tokens must be at least 1, got {budget}.")

        reasoning, answer, ocr_seconds = self._think(request.question, pages)
        if cfg.box:
            answer = f"{BOX_OPEN}{answer}{BOX_CLOSE}"
        generated = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"
        finish = "stop"
        if self.tokenizer.count(generated) > budget:
            generated = self._truncate(generated, budget)
            finish = "length"
        completion = self.tokenizer.count(generated)
        if cfg.reasoning_parser is None:
            return Generation(
                model, generated, None, prompt, completion, None, finish, len(pages), ocr_seconds
            )
        content, thought = _parse_glm45(generated)
        thought_tokens = completion - (self.tokenizer.count(content) if content else 0)
        return Generation(
            model, content, thought, prompt, completion, thought_tokens, finish, len(pages),
            ocr_seconds,
        )

    def _think(self, question: str, pages: list[PageImage]) -> tuple[str, str, float]:
        """(reasoning, answer, OCR seconds) for the question over these pages."""
        sizes = ", ".join(f"{p.width}x{p.height}" for p in pages) or "none"
        if self.reader is None:
            return f"Received {len(pages)} page(s) ({sizes}); OCR is off.", NO_OCR_ANSWER, 0.0
        reader = self.reader
        results: list[OcrPage] = list(self._pool.map(lambda p: reader.read(p.image, p.digest),
                                                     pages))
        lines = [f"Read {len(pages)} page(s) with Tesseract (psm {reader.psm}, "
                 f"lang {reader.lang})."]
        for number, page in enumerate(results, start=1):
            # No timings here: the same request must generate the same text (and token count).
            lines.append(
                f"Page {number}: {page.width}x{page.height}, OCR scale {page.scale:g}, "
                f"{len(page.text)} chars."
            )
        answer: ExtractiveAnswer = answer_question(question, [r.text for r in results],
                                                   self.config.top_k)
        if answer.mode == "transcribe":
            lines.append("The question asks for a transcription: returning all text in page order.")
        else:
            lines.append(f"Question terms: {', '.join(answer.terms) or '(none)'}.")
            for match in answer.matches:
                lines.append(f"Match on page {match.page}, score {match.score:g}: {match.text}")
            if not answer.matches:
                lines.append("No sentence shares a content word with the question.")
        ocr_seconds = sum(r.seconds for r in results if not r.cached)
        return "\n".join(lines), answer.text, ocr_seconds

    def _truncate(self, text: str, tokens: int) -> str:
        """The longest prefix of ``text`` that fits in ``tokens`` (what max_tokens cuts to)."""
        if self.tokenizer.name == "bytes":
            return text.encode("utf-8")[:tokens].decode("utf-8", "ignore")
        lo, hi = 0, len(text)
        while lo < hi:  # largest prefix whose count fits; counts grow with the prefix
            mid = (lo + hi + 1) // 2
            if self.tokenizer.count(text[:mid]) <= tokens:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]


def _parse_glm45(generated: str) -> tuple[str | None, str | None]:
    """(content, reasoning) as vLLM's glm45 reasoning parser splits ``<think>...</think>``."""
    body = generated.removeprefix(THINK_OPEN)
    if THINK_CLOSE not in body:
        return None, body or None  # cut off while still thinking
    thought, _, content = body.partition(THINK_CLOSE)
    return content or None, thought or None
