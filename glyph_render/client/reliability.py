"""Talking to an unreliable endpoint: classify failures, parse what servers say, retry.

The openai client's own retry loop also retries 408 and 409 and every connection error, and
waits on its own schedule; our policy is narrower, so its ``max_retries`` is 0 and tenacity
drives this one:

* retried: HTTP 429, HTTP 5xx, a connection the server closed before sending any reply
  (a proxy or server restarting; also the keep-alive race on reused connections), a reply
  body cut short, and a stream dropped before any of it reached the caller;
* never retried: any other 4xx (the same request would fail again), an unreachable endpoint
  (fail fast with the URL), a timeout (the server may still be working on it; a retry doubles
  its load), a malformed reply, a reply over ``max_reply_bytes``, a stream cut after it
  started (its deltas were already handed to the caller);
* waits: exponential from ``backoff`` (doubling, capped at ``max_backoff``) with "equal jitter"
  (half fixed, half random), or the server's ``Retry-After`` (seconds or an HTTP date) plus a
  little jitter; a Retry-After longer than ``max_retry_after`` ends the retries at once;
* bounded: at most ``max_retries`` retries (default 3, so 4 attempts), and never past the
  call's :class:`Deadline`: every attempt's waits are cut to what is left of it, and no retry
  starts whose backoff would end after it.

Three limits bound every call: ``timeout`` (idle: the longest silence between two reads),
``deadline`` (total seconds for the call, attempts and backoff included, streamed or not) and
``max_reply_bytes`` (a reply, or a whole stream, larger than this is refused as it arrives,
from its Content-Length when it has one).

Error messages carry the server's own words with the API key scrubbed out, and never the
request headers.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, TypeVar

import tenacity

from ..errors import (
    AuthError,
    ClientError,
    ConfigError,
    ContextOverflow,
    EndpointUnreachable,
    MalformedReply,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerError,
    scrub,  # kept importable from here; its home is glyph_render.errors
)

log = logging.getLogger("glyph_render.client")

T = TypeVar("T")

__all__ = [
    "Deadline",
    "ErrorReply",
    "Overflow",
    "RetryPolicy",
    "classify",
    "parse_context_overflow",
    "parse_retry_after",
    "retry_async",
    "retry_sync",
    "scrub",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry 429/5xx; see the module docstring."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise ConfigError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        if not (self.backoff >= 0 and self.max_backoff >= 0 and self.max_retry_after >= 0):
            raise ConfigError("backoff, max_backoff and max_retry_after must be >= 0")

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after + random.uniform(0, min(self.backoff, 1.0))
        step = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)


@dataclass
class Deadline:
    """One call's total time bound: ``limit`` seconds from ``start`` (None: no bound)."""

    limit: float | None
    start: float = field(default_factory=time.monotonic)
    fired: bool = False  # set when a watchdog cut the connection at the deadline

    def remaining(self) -> float | None:
        """Seconds left (0.0 when past); None without a bound."""
        if self.limit is None:
            return None
        return max(0.0, self.limit - (time.monotonic() - self.start))

    def expired(self) -> bool:
        left = self.remaining()
        return self.fired or (left is not None and left <= 0.0)

    def timeout(self, idle: float) -> float:
        """The timeout for the next wait: the idle limit, or less when the deadline is nearer
        (never 0, which some HTTP libraries read as "no timeout")."""
        left = self.remaining()
        return idle if left is None else max(1e-3, min(idle, left))


# --- what servers say ----------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Overflow:
    """Figures from a context-length 400: prompt tokens, context size, completion tokens."""

    max_context: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


_N = r"(\d[\d,]*)"
# Each pattern fills some of: ctx, prompt, completion, total.
_OVERFLOW_PATTERNS = [
    # vLLM (multimodal prompts, get_max_tokens): "Input length (18149) exceeds model's maximum
    # context length (16384)."
    rf"input length \({_N}\) exceeds (?:the )?model's maximum context length \({_N}\)",
    # vLLM renderer: "This model's maximum context length is 16384 tokens. However, your prompt
    # contains at least 16385 input tokens, ..."
    rf"maximum context length is {_N} tokens\. however, your prompt contains (?:at least )?"
    rf"{_N} input tokens",
    # vLLM renderer, character pre-check: "... your prompt contains 70000 characters ..."
    rf"maximum context length is {_N} tokens\. however, your prompt contains {_N} characters",
    # Older vLLM and OpenAI: "This model's maximum context length is 16384 tokens. However, you
    # requested 18149 tokens (17149 in the messages, 1000 in the completion). ..."
    rf"maximum context length is {_N} tokens\. however, you requested {_N} tokens"
    rf"(?: \({_N} in the messages, {_N} in the completion\))?",
    # vLLM: "'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum
    # context length is 16384 tokens and your request has 9000 input tokens (...)"
    rf"is too large: {_N}\. this model's maximum context length is {_N} tokens and your "
    rf"request has {_N} input tokens",
    # SGLang: "The input (18149 tokens) is longer than the model's context length (16384 tokens)."
    rf"input \({_N} tokens\) is longer than the model's context length \({_N} tokens\)",
    # SGLang: "Requested token count exceeds the model's maximum context length of 16384 tokens.
    # You requested a total of 18149 tokens: 17149 tokens from the input messages and 1000 tokens
    # for the completion."
    rf"maximum context length of {_N} tokens\. you requested a total of {_N} tokens: {_N} "
    rf"tokens from the input messages and {_N} tokens for the completion",
]
# Which group is which, per pattern.
_OVERFLOW_FIELDS = [
    ("prompt", "ctx"),
    ("ctx", "prompt"),
    ("ctx", "chars"),
    ("ctx", "total", "prompt", "completion"),
    ("completion", "ctx", "prompt"),
    ("prompt", "ctx"),
    ("ctx", "total", "prompt", "completion"),
]
_OVERFLOW_RE = [re.compile(p, re.IGNORECASE) for p in _OVERFLOW_PATTERNS]


def parse_context_overflow(message: str) -> Overflow | None:
    """The figures of a vLLM/SGLang/OpenAI "context too long" message; None for anything else."""
    for regex, fields in zip(_OVERFLOW_RE, _OVERFLOW_FIELDS, strict=True):
        m = regex.search(message)
        if not m:
            continue
        got = {
            name: int(value.replace(",", ""))
            for name, value in zip(fields, m.groups(), strict=True) if value is not None
        }
        return Overflow(max_context=got["ctx"], prompt_tokens=got.get("prompt"),
                        completion_tokens=got.get("completion"), total_tokens=got.get("total"))
    return None


def server_message(body: Any, fallback: str = "") -> str:
    """The human part of an error body: OpenAI/vLLM ``{"error": {"message"}}`` and variants."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("message", "detail", "error"):
                value = inner.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
        elif isinstance(inner, str) and inner.strip():
            return inner.strip()
        detail = body.get("detail") or body.get("message")
        if isinstance(detail, str):
            return detail.strip()
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


# --- classification ------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def _names(exc: BaseException) -> set[str]:
    """Class names along the cause chain: httpx and httpx2 raise same-named types."""
    return {cls.__name__ for e in _chain(exc) for cls in type(e).__mro__}


def transport_error(exc: BaseException, url: str, timeout: float | None, *,
                    streaming: bool = False) -> ClientError | None:
    """A transport failure (no HTTP status) as one of ours; None if ``exc`` is not one."""
    names = _names(exc)
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if "ConnectError" in names or "ConnectTimeout" in names:
        return EndpointUnreachable(
            f"cannot connect to {url}: {reason(exc)}; is the server running there "
            "(set --endpoint or GLYPH_BASE_URL)?", url=url)
    if "TimeoutException" in names or "APITimeoutError" in names:
        limit = f" within {timeout:g} s" if timeout else ""
        return RequestTimeout(
            f"{url} did not reply{limit}; the server may be overloaded or the request too "
            "large (raise the timeout)", url=url)
    if "without sending a response" in text or ("RemoteProtocolError" in names
                                                and not streaming and "incomplete" not in text
                                                and "complete message" not in text):
        return ServerError(f"{url} closed the connection without replying", url=url)
    if names & {"RemoteProtocolError", "ReadError", "ProtocolError", "NetworkError",
                "TransportError", "APIConnectionError"}:
        cut = MalformedReply(f"the reply from {url} was cut short ({reason(exc)})", url=url)
        cut.retryable = not streaming  # a whole body: none of it was shown, ask again
        return cut
    return None


def reason(exc: BaseException) -> str:
    """The innermost cause's message, e.g. ``[Errno 111] Connection refused``."""
    for e in reversed(_chain(exc)):
        msg = str(e).strip()
        if msg:
            return msg
    return type(exc).__name__


def status_error(status: int, body: Any, headers: Any, url: str, secrets: Iterable[str | None],
                 overflow_budget: Callable[[Overflow], int | None] | None = None) -> ClientError:
    """An HTTP error reply as one of ours; ``overflow_budget`` says what budget would fit."""
    said = " ".join(scrub(server_message(body, f"HTTP {status}"), secrets).split())
    retry_after = None
    if headers is not None:
        ms = headers.get("retry-after-ms")
        retry_after = (parse_retry_after(ms) / 1000 if ms and parse_retry_after(ms) is not None
                       else parse_retry_after(headers.get("retry-after")))
    if status in (401, 403):
        what = "was refused (HTTP 401): the API key is missing or wrong" if status == 401 else \
            "was refused (HTTP 403): this API key may not use it"
        return AuthError(f"{url} {what}; set OPENAI_API_KEY (server said: {said})", url=url,
                         status_code=status)
    if status == 429:
        return ServerBusy(f"{url} is rate limiting requests (HTTP 429): {said}", url=url,
                          status_code=status, retry_after=retry_after)
    if status >= 500:
        return ServerError(f"{url} failed with HTTP {status}: {said}", url=url,
                           status_code=status, retry_after=retry_after)
    over = parse_context_overflow(said) if status in (400, 413, 422) else None
    if over is not None:
        fits = overflow_budget(over) if overflow_budget else None
        have = f"{over.prompt_tokens:,}" if over.prompt_tokens is not None else "more"
        hint = (f"; a vision-token budget of {fits:,} would fit (budget={fits} / --budget {fits})"
                if fits and fits > 0 else "; shorten the document or the answer (max_tokens)")
        return ContextOverflow(
            f"{url} rejected the prompt: {have} tokens do not fit the model's context of "
            f"{over.max_context:,}{hint} (server said: {said})", url=url, status_code=status,
            prompt_tokens=over.prompt_tokens, max_context=over.max_context, fitting_budget=fits)
    if status == 404:
        return RequestRejected(f"{url} answered 404 (wrong endpoint path or model name?): "
                               f"{said}", url=url, status_code=status)
    return RequestRejected(f"{url} rejected the request (HTTP {status}): {said}", url=url,
                           status_code=status)


class ErrorReply(Exception):
    """A non-2xx reply whose body the transport read only in part: at most
    ``ERROR_BODY_BYTES`` of it, within the call's deadline (the faces' response hooks raise it
    before openai would read the whole body, however large or endless). ``body``: the JSON or
    text read."""

    def __init__(self, status_code: int, response: Any, data: bytes) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.response = response
        text = data.decode("utf-8", "replace")
        try:
            self.body: Any = json.loads(text)
        except ValueError:
            self.body = text


def _status_exception(exc: BaseException) -> BaseException | None:
    """The HTTP status error in ``exc``'s chain (old openai versions wrap what a response
    hook raises in APIConnectionError)."""
    for e in _chain(exc):
        if isinstance(getattr(e, "status_code", None), int) \
                and getattr(e, "response", None) is not None:
            return e
    return None


def classify(exc: BaseException, url: str, timeout: float | None,
             secrets: Iterable[str | None],
             overflow_budget: Callable[[Overflow], int | None] | None = None, *,
             streaming: bool = False) -> ClientError | None:
    """Any openai/httpx exception as one of ours; None when it is not a transport/API error."""
    for e in _chain(exc):  # ours, raised in a response hook and wrapped by openai/httpx
        if isinstance(e, ClientError):
            return e
    found = _status_exception(exc)
    if found is not None:
        exc = found
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and response is not None:
        body = getattr(exc, "body", None)
        if body is None:
            try:
                body = response.json()
            except Exception:  # noqa: BLE001 - any undecodable body is shown as text
                body = getattr(response, "text", "")
        return status_error(status, body, response.headers, url, secrets, overflow_budget)
    return transport_error(exc, url, timeout, streaming=streaming)


# --- retrying ------------------------------------------------------------------------------


def _retrying_kwargs(policy: RetryPolicy, deadline: Deadline | None) -> dict[str, Any]:
    def retry_after_too_long(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        ra = getattr(exc, "retry_after", None)
        return ra is not None and ra > policy.max_retry_after

    def past_deadline(state: tenacity.RetryCallState) -> bool:
        """No retry whose backoff alone would reach the deadline (the worst case of the
        jittered wait counts)."""
        left = deadline.remaining() if deadline is not None else None
        if left is None:
            return False
        exc = state.outcome.exception() if state.outcome else None
        ra = getattr(exc, "retry_after", None)
        longest = (ra + min(policy.backoff, 1.0) if ra is not None else
                   min(policy.max_backoff, policy.backoff * 2 ** (state.attempt_number - 1)))
        return longest >= left

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait(state.attempt_number, getattr(exc, "retry_after", None))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.info("attempt %d of %d failed (%s); retrying in %.2f s", state.attempt_number,
                 policy.max_retries + 1, type(exc).__name__, sleep)

    return dict(
        retry=tenacity.retry_if_exception(lambda e: getattr(e, "retryable", False)),
        stop=(tenacity.stop_after_attempt(policy.max_retries + 1) | retry_after_too_long
              | past_deadline),
        wait=wait, before_sleep=before_sleep, reraise=True,
    )


def _gave_up(exc: ClientError, attempts: int, policy: RetryPolicy,
             deadline: Deadline | None = None) -> ClientError:
    """Say how many attempts were made (and why we stopped early) in the final error."""
    exc.attempts = attempts
    if exc.retryable:
        if exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
            note = (f"the server asks to retry after {exc.retry_after:.0f} s, longer than "
                    f"max_retry_after={policy.max_retry_after:g} s")
        else:
            note = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
            if attempts <= policy.max_retries and deadline is not None \
                    and deadline.limit is not None:
                note += f", the deadline of {deadline.limit:g} s leaving no time for another"
        exc.args = (f"{exc.args[0]} ({note})", *exc.args[1:])
    return exc


def retry_sync(fn: Callable[[], T], policy: RetryPolicy, deadline: Deadline | None = None) -> T:
    """Call ``fn`` under the policy (and within ``deadline``); ``fn`` raises our ClientError
    types."""
    retrying = tenacity.Retrying(**_retrying_kwargs(policy, deadline))
    try:
        return retrying(fn)
    except ClientError as exc:
        raise _gave_up(exc, retrying.statistics.get("attempt_number", 1), policy,
                       deadline) from None


async def retry_async(fn: Callable[[], Awaitable[T]], policy: RetryPolicy,
                      deadline: Deadline | None = None) -> T:
    """:func:`retry_sync` for coroutines (sleeps with asyncio)."""
    retrying = tenacity.AsyncRetrying(**_retrying_kwargs(policy, deadline))
    try:
        return await retrying(fn)
    except ClientError as exc:
        raise _gave_up(exc, retrying.statistics.get("attempt_number", 1), policy,
                       deadline) from None
