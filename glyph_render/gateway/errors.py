"""Errors the gateway answers with, in the OpenAI error shape, and how upstream failures map.

Every refusal is ``{"error": {"message", "type", "param", "code"}}`` with the status an OpenAI
SDK expects (it turns 400/401/404/413/429/5xx into its typed exceptions and retries 429/5xx on
its own schedule, honouring ``Retry-After``).
"""

from __future__ import annotations

import json
from typing import Any

from glyph_render.errors import (
    AuthError,
    ClientError,
    ContextOverflow,
    EndpointUnreachable,
    MalformedReply,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerError,
)

__all__ = ["ApiError", "from_client_error"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """A reply the gateway sends instead of the upstream's: status, message, OpenAI type/code."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.kind = kind or code or _TYPES.get(status, "server_error")  # the metrics label

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message,
                          "type": _TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}

    def bytes(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False).encode("utf-8")


def _retry_after(exc: ClientError, default: float = 1.0) -> dict[str, str]:
    seconds = exc.retry_after if exc.retry_after is not None else default
    return {"Retry-After": str(max(1, round(seconds)))}


def from_client_error(exc: ClientError) -> ApiError:
    """What the caller sees when the upstream still fails after the retry policy.

    The upstream's own 4xx (bad model, bad field, context overflow) keeps its status; the
    upstream being down, failing or rate limiting becomes 502/504/429 (gateway semantics).
    """
    msg = str(exc)
    if isinstance(exc, ContextOverflow):
        return ApiError(400, msg, code="context_length_exceeded", param="messages")
    if isinstance(exc, AuthError):
        return ApiError(502, "the upstream refused the gateway's key (set the upstream key in "
                        f"the gateway's environment): {msg}", code="upstream_auth")
    if isinstance(exc, RequestRejected):
        return ApiError(exc.status_code or 400, msg, code="upstream_rejected")
    if isinstance(exc, ServerBusy):
        return ApiError(429, msg, code="upstream_busy", headers=_retry_after(exc))
    if isinstance(exc, RequestTimeout):
        return ApiError(504, msg, code="upstream_timeout")
    if isinstance(exc, EndpointUnreachable):
        return ApiError(502, msg, code="upstream_unreachable")
    if isinstance(exc, ServerError):
        return ApiError(502, msg, code="upstream_error")
    if isinstance(exc, MalformedReply):
        return ApiError(502, msg, code="upstream_malformed")
    return ApiError(502, msg, code="upstream_error")
