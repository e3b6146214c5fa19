"""Exception types: one family, so callers can catch ``GlyphRenderError`` and the CLI can turn
every expected failure into one clear line and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class GlyphRenderError(Exception):
    """Base of every error raised on purpose (bad input, bad config, server trouble)."""


class ConfigError(GlyphRenderError, ValueError):
    """A config key is unknown, mistyped or impossible; the message names key and value."""


class InputError(GlyphRenderError, ValueError):
    """The document cannot be read as text: missing, a folder, binary, undecodable, empty."""


class FontError(GlyphRenderError, ValueError):
    """A font file is missing or is not a font."""


class OutputError(GlyphRenderError, OSError):
    """Pages cannot be written where asked."""


class TokenizerError(GlyphRenderError, ValueError):
    """A text tokenizer cannot be loaded (unknown name, bad tokenizer.json, missing extra)."""


class ProfileError(GlyphRenderError, ValueError):
    """A vision model profile is unknown or its preprocessor_config.json is malformed."""


class ImageSizeError(GlyphRenderError, ValueError):
    """An image the model cannot take: aspect ratio past the profile's limit, or degenerate."""


class BudgetError(GlyphRenderError, ValueError):
    """No allowed rendering config fits the vision-token budget; says what the best one needs."""


# --- asking a Glyph endpoint (client.py) -------------------------------------------------------
# Messages name the endpoint URL and what would help, and never carry the API key.


class ClientError(GlyphRenderError):
    """Base of everything that goes wrong talking to the endpoint; ``url`` names it."""

    retryable = False  # only ServerBusy (429) and ServerError (5xx, dropped) are retried

    def __init__(self, message: str, *, url: str | None = None,
                 status_code: int | None = None, attempts: int = 1,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code
        self.attempts = attempts
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


class EndpointUnreachable(ClientError, ConnectionError):
    """Nothing answers at the endpoint (refused, DNS, TLS): wrong URL or server down."""


class RequestTimeout(ClientError, TimeoutError):
    """The server took longer than the client's timeout (not retried: it may still be busy)."""


class AuthError(ClientError, PermissionError):
    """HTTP 401/403: the API key is missing or wrong (the key itself is never shown)."""


class RequestRejected(ClientError, ValueError):
    """A 4xx other than 401/403/429 and context overflow: bad model name, bad field, ..."""


class ContextOverflow(RequestRejected):
    """The prompt does not fit the model's context window, found before upload or by a 400.

    ``prompt_tokens`` and ``max_context`` are what the server (or the prediction) said;
    ``fitting_budget`` is a vision-token budget that would fit, when one can be computed.
    """

    def __init__(self, message: str, *, url: str | None = None, status_code: int | None = None,
                 prompt_tokens: int | None = None, max_context: int | None = None,
                 fitting_budget: int | None = None) -> None:
        super().__init__(message, url=url, status_code=status_code)
        self.prompt_tokens = prompt_tokens
        self.max_context = max_context
        self.fitting_budget = fitting_budget


class ServerBusy(ClientError):
    """HTTP 429 still returned after the last retry (or a Retry-After too long to wait)."""

    retryable = True


class ServerError(ClientError):
    """HTTP 5xx (or a connection dropped before any reply) still failing after the retries."""

    retryable = True


class MalformedReply(ClientError):
    """The reply is not the chat-completion JSON we asked for: not JSON, no choices, cut short."""


class StreamInterrupted(MalformedReply):
    """A streamed reply stopped before its end; ``partial_text`` holds what had arrived."""

    def __init__(self, message: str, *, url: str | None = None, partial_text: str = "",
                 partial_reasoning: str = "") -> None:
        super().__init__(message, url=url)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


# --- bounded waits and sizes (client.reliability) and batch outages (jobs.endpoints) ----------


class DeadlineExceeded(RequestTimeout):
    """A request (all its attempts) or a stream ran past its total ``deadline``, however
    steadily bytes arrived (a server trickling a byte a second, an event stream that never ends).
    ``partial_text`` / ``partial_reasoning``: what a stream had delivered by then."""

    def __init__(self, message: str, *, url: str | None = None, deadline: float | None = None,
                 partial_text: str = "", partial_reasoning: str = "") -> None:
        super().__init__(message, url=url)
        self.deadline = deadline
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


class StreamStalled(StreamInterrupted, RequestTimeout):
    """A stream that started, then sent nothing for the idle ``timeout``; not retried (its
    start was already shown). Both a :class:`StreamInterrupted` (partial text) and a timeout."""


class StreamDropped(StreamInterrupted):
    """The connection closed in the middle of a streamed reply. Retried when none of the
    stream had reached the caller yet; raised with the partial text otherwise."""


class ReplyTooLarge(MalformedReply):
    """The reply is larger than ``max_reply_bytes``: refused from its Content-Length, or as soon
    as that many bytes arrived, never read whole."""

    def __init__(self, message: str, *, url: str | None = None, limit: int | None = None,
                 size: int | None = None) -> None:
        super().__init__(message, url=url)
        self.limit = limit
        self.size = size  # the declared length, or the bytes read when the limit was passed


class EndpointOutage(EndpointUnreachable):
    """Every endpoint of a batch job stayed unreachable longer than ``--outage-wait``: the job
    stops with its unfinished items undone (not failed); the same command resumes it."""

    def __init__(self, message: str, *, url: str | None = None, waited: float = 0.0) -> None:
        super().__init__(message, url=url)
        self.waited = waited


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``: what a server echoes back, or a log line,
    never carries an API key (the client's errors and the gateway's access log both pass
    through here). Empty, ``EMPTY`` (the no-key placeholder) and under-4-character values are
    left alone: replacing them would mangle ordinary text."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret != "EMPTY":
            text = text.replace(secret, "***")
    return text
