"""What a Glyph endpoint answered: the answer kept apart from the model's reasoning.

Where the reasoning arrives depends on the server:

* ``message.reasoning`` (vLLM >= 0.11 with ``--reasoning-parser glm45``);
* ``message.reasoning_content`` (SGLang, older vLLM);
* a ``<think>...</think>`` block at the start of ``content`` when no reasoning parser runs (or
  only ``...</think>`` when the chat template already opened the block in the prompt).

GLM-4.1V wraps its final answer in ``<|begin_of_box|>...<|end_of_box|>`` (and sometimes
``<answer>...</answer>``); those markers are stripped from the answer text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import MalformedReply, StreamInterrupted
from ..render import RenderedPage

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOX_OPEN, BOX_CLOSE = "<|begin_of_box|>", "<|end_of_box|>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_DROPPED = (BOX_OPEN, BOX_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

__all__ = ["Answer", "Reply", "StreamAccumulator", "StreamEvent", "StreamSplitter",
           "parse_completion", "split_reasoning"]


def _clean_answer(text: str) -> str:
    for marker in _DROPPED:
        text = text.replace(marker, "")
    return text.strip()


def split_reasoning(content: str | None, reasoning: str | None = None) -> tuple[str, str]:
    """``(answer, reasoning)`` from a message's content and its separate reasoning field."""
    text = content or ""
    parts = [reasoning.strip()] if reasoning and reasoning.strip() else []
    head = text.lstrip()
    if THINK_CLOSE in text:
        before, text = text.split(THINK_CLOSE, 1)
        before = before.lstrip().removeprefix(THINK_OPEN).strip()
        if before:
            parts.append(before)
    elif head.startswith(THINK_OPEN):  # unterminated: the answer budget ran out mid-thought
        if head[len(THINK_OPEN):].strip():
            parts.append(head[len(THINK_OPEN):].strip())
        text = ""
    return _clean_answer(text), "\n".join(parts)


class StreamSplitter:
    """Route streamed content deltas to answer or reasoning, and drop GLM's markers.

    Tags may be split across deltas, so a tail that could start a tag is held back until the
    next delta (or :meth:`flush`). A ``</think>`` without an opening tag cannot be recognised
    live; the final :class:`Answer` (built with :func:`split_reasoning`) always gets it right.
    """

    _TAGS = (THINK_OPEN, THINK_CLOSE, *_DROPPED)

    def __init__(self) -> None:
        self._buf = ""
        self._thinking = False
        self._started = {"content": False, "reasoning": False}

    def feed(self, delta: str) -> list[tuple[str, str]]:
        """``[(kind, text), ...]`` ready to show, kind ``content`` or ``reasoning``."""
        self._buf += delta
        out: list[tuple[str, str]] = []
        while True:
            hits = [(self._buf.find(t), t) for t in self._TAGS]
            hits = [(i, t) for i, t in hits if i >= 0]
            if not hits:
                break
            i, tag = min(hits)
            self._emit(out, self._buf[:i])
            self._buf = self._buf[i + len(tag):]
            if tag == THINK_OPEN:
                self._thinking = True
            elif tag == THINK_CLOSE:
                self._thinking = False
        keep = max((n for t in self._TAGS for n in range(1, len(t))
                    if self._buf.endswith(t[:n])), default=0)
        self._emit(out, self._buf[:len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep:]
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self._buf)
        self._buf = ""
        return out

    def reasoning(self, delta: str) -> list[tuple[str, str]]:
        """A delta from the server's separate reasoning field."""
        out: list[tuple[str, str]] = []
        self._emit(out, delta, "reasoning")
        return out

    def _emit(self, out: list[tuple[str, str]], text: str, kind: str | None = None) -> None:
        kind = kind or ("reasoning" if self._thinking else "content")
        if not self._started[kind]:
            text = text.lstrip()
        if text:
            self._started[kind] = True
            out.append((kind, text))


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Answer:
    """One answer, with everything needed to judge and reproduce it.

    ``usage`` is the server's usage object as sent; ``predicted_prompt_tokens`` is ours, from
    the page sizes (they agree exactly when the profile and tokenizer match the model).
    ``pages`` are the pages sent, with ``start``/``end`` offsets into the source text. For a
    document answered map-reduce, ``parts`` holds each chunk's answer and this one is the
    combining call's (its ``pages`` are all of them).
    """

    text: str
    reasoning: str
    finish_reason: str | None
    model: str
    usage: dict[str, Any] | None
    predicted_prompt_tokens: int
    pages: list[RenderedPage]
    timings: dict[str, float | None]
    payload_bytes: int
    text_tokens: int = 0
    dpi: float | None = None
    budget: int | None = None
    parts: list[Answer] = field(default_factory=list)

    @property
    def vision_tokens(self) -> int:
        return sum(p.vision_tokens for p in self.pages)

    @property
    def compression_ratio(self) -> float:
        """Source text tokens per vision token sent."""
        return self.text_tokens / self.vision_tokens if self.vision_tokens else 0.0

    @property
    def prompt_tokens(self) -> int | None:
        """The server's count (None if it sent no usage)."""
        value = (self.usage or {}).get("prompt_tokens")
        return value if isinstance(value, int) else None

    @property
    def calls(self) -> int:
        return 1 + sum(p.calls for p in self.parts)

    @property
    def total_usage(self) -> dict[str, int]:
        """Usage summed over every call (the chunks and the combining call)."""
        total = {k: 0 for k in _USAGE_KEYS}
        for a in self._all():
            for k in _USAGE_KEYS:
                v = (a.usage or {}).get(k)
                total[k] += v if isinstance(v, int) else 0
        return total

    def _all(self) -> Iterator[Answer]:
        yield self
        for p in self.parts:
            yield from p._all()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text, "reasoning": self.reasoning, "finish_reason": self.finish_reason,
            "model": self.model, "usage": self.usage,
            "predicted_prompt_tokens": self.predicted_prompt_tokens,
            "pages": [p.to_json() for p in self.pages], "page_count": len(self.pages),
            "timings": {k: (round(v, 4) if v is not None else None)
                        for k, v in self.timings.items()},
            "payload_bytes": self.payload_bytes, "text_tokens": self.text_tokens,
            "vision_tokens": self.vision_tokens,
            "compression_ratio": round(self.compression_ratio, 4), "dpi": self.dpi,
            "budget": self.budget, "calls": self.calls,
        }
        if self.parts:
            out["total_usage"] = self.total_usage
            out["parts"] = [p.to_json() for p in self.parts]
        return out


@dataclass(frozen=True)
class StreamEvent:
    """One item of :meth:`GlyphClient.ask_stream`.

    ``reasoning``/``content``: a delta of text as it arrived; ``part``: a chunk of a
    map-reduce document was answered (``answer`` is that part's); ``done``: the last event,
    ``answer`` is the complete :class:`Answer` with the usage.
    """

    kind: Literal["reasoning", "content", "part", "done"]
    text: str = ""
    answer: Answer | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.answer.usage if self.answer is not None else None


# --- reading replies -----------------------------------------------------------------------


def _snippet(data: Any) -> str:
    text = data if isinstance(data, str) else repr(data)
    return text[:160] + ("..." if len(text) > 160 else "")


def _reasoning_field(d: dict[str, Any]) -> str | None:
    """vLLM >= 0.11 sends ``reasoning``; SGLang and older vLLM ``reasoning_content``."""
    value = d.get("reasoning")
    if value is None:
        value = d.get("reasoning_content")
    return value if isinstance(value, str) else None


@dataclass
class Reply:
    """The fields of one chat completion we use, as the server sent them."""

    content: str
    reasoning: str
    finish_reason: str | None
    model: str | None
    usage: dict[str, Any] | None


def parse_completion(data: Any, url: str) -> Reply:
    """A non-streamed ``chat.completion`` body; :class:`MalformedReply` if it is not one."""
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise MalformedReply(f"the reply from {url} is not a chat completion (no "
                             f"choices[0].message): {_snippet(data)}", url=url)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise MalformedReply(f"the reply from {url} has a non-text message content: "
                             f"{_snippet(content)}", url=url)
    usage = data.get("usage")
    return Reply(content or "", _reasoning_field(message) or "", first.get("finish_reason"),
                 data.get("model"), usage if isinstance(usage, dict) else None)


class StreamAccumulator:
    """Server-sent events of a streamed chat completion -> :class:`StreamEvent` deltas + Reply.

    Feed it the response's lines; :meth:`close` checks the stream really ended (``[DONE]`` or a
    finish reason) and raises :class:`StreamInterrupted` with the partial text otherwise.
    """

    def __init__(self, url: str, on_error: Any = None) -> None:
        self.url = url
        self.splitter = StreamSplitter()
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.done = False
        self.events = 0
        self._on_error = on_error  # body -> exception, for error events inside the stream

    def line(self, line: str) -> list[StreamEvent]:
        """One line of the SSE body (every server we know sends one ``data:`` line an event)."""
        if not line.startswith("data:"):
            return []  # blank separators, comments, event:/id:/retry: fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return []
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.interrupted(f"the stream from {self.url} sent an event that is not "
                                   f"JSON: {_snippet(data)}") from None
        if not isinstance(obj, dict):
            raise self.interrupted(f"the stream from {self.url} sent {_snippet(obj)}")
        if obj.get("error") and not obj.get("choices"):
            if self._on_error is not None:
                raise self._on_error(obj)
            raise self.interrupted(f"the stream from {self.url} reported an error: "
                                   f"{_snippet(obj['error'])}")
        self.events += 1
        self.model = obj.get("model") or self.model
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        out: list[tuple[str, str]] = []
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = _reasoning_field(delta)
            if reasoning:
                self.reasoning.append(reasoning)
                out += self.splitter.reasoning(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.content.append(content)
                out += self.splitter.feed(content)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return [StreamEvent(kind, text) for kind, text in out]  # type: ignore[arg-type]

    def close(self) -> list[StreamEvent]:
        """The held-back tail; raises StreamInterrupted if the stream did not finish."""
        if not self.done and self.finish_reason is None:
            raise self.interrupted(f"the stream from {self.url} stopped before its end "
                                   f"(after {self.events} events, no finish reason or [DONE])")
        return [StreamEvent(kind, text) for kind, text in self.splitter.flush()]  # type: ignore[arg-type]

    def interrupted(self, message: str) -> Exception:
        text, reasoning = split_reasoning("".join(self.content), "".join(self.reasoning))
        return StreamInterrupted(message, url=self.url, partial_text=text,
                                 partial_reasoning=reasoning)

    def reply(self) -> Reply:
        return Reply("".join(self.content), "".join(self.reasoning), self.finish_reason,
                     self.model, self.usage)
