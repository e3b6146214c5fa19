"""Ask a Glyph endpoint (vLLM or SGLang, OpenAI-compatible) about a long text.

* :mod:`.core`: everything I/O-free (settings per call, fitting, rendering and encoding the
  pages, building and pricing the request, reading the reply, translating errors) and the
  public request pair: ``prepare...()`` gives a :class:`PreparedRequest`, ``send()`` sends it;
* :mod:`.sync` and :mod:`.aio`: :class:`GlyphClient` and :class:`AsyncGlyphClient`, the two
  faces, which differ only in how they wait (threads or asyncio);
* :mod:`.answer`: the reply as an :class:`Answer`, reasoning kept apart; streamed events;
* :mod:`.reliability`: which failures are retried and how an error is classified;
* :mod:`.progress`: the progress hook (``progress=callback``): what a long call is doing.

Also public, for code that talks to an endpoint on its own terms (the gateway, batch jobs) and
should behave as the client does: the retry rules (:class:`RetryPolicy`, :func:`retry_sync`,
:func:`retry_async`), the error translation (:func:`classify` for a raised exception,
:func:`status_error` for an HTTP error reply), :func:`split_reasoning` (answer and reasoning
from a message) and the map-reduce questions (:data:`MAP_PROMPT`, :data:`REDUCE_PROMPT`).
"""

from .aio import AsyncGlyphClient
from .answer import Answer, StreamEvent, split_reasoning
from .core import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_TOKENS,
    GLYPH_SAMPLING,
    MAP_PROMPT,
    REDUCE_PROMPT,
    ModelInfo,
    PreparedRequest,
    longest_map_question,
    page_files,
)
from .progress import Progress
from .reliability import (
    Deadline,
    RetryPolicy,
    classify,
    retry_async,
    retry_sync,
    status_error,
)
from .sync import GlyphClient, compress_and_ask

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_MAX_REPLY_BYTES", "DEFAULT_MAX_TOKENS", "Deadline",
           "GLYPH_SAMPLING", "MAP_PROMPT", "REDUCE_PROMPT", "Answer", "AsyncGlyphClient",
           "GlyphClient", "ModelInfo", "PreparedRequest", "Progress", "RetryPolicy", "StreamEvent",
           "classify", "compress_and_ask", "longest_map_question", "page_files", "retry_async",
           "retry_sync", "split_reasoning", "status_error"]
