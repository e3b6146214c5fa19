"""Ask a Glyph endpoint (vLLM or SGLang, OpenAI-compatible) about a long text.

* :mod:`.core`: everything I/O-free (settings per call, fitting, rendering and encoding the
  pages, building and pricing the request, reading the reply, translating errors) and the
  public request pair: ``prepare...()`` gives a :class:`PreparedRequest`, ``send()`` sends it;
* :mod:`.sync` and :mod:`.aio`: :class:`GlyphClient` and :class:`AsyncGlyphClient`, the two
  faces, which differ only in how they wait (threads or asyncio);
* :mod:`.answer`: the reply as an :class:`Answer`, reasoning kept apart; streamed events;
* :mod:`.reliability`: which failures are retried and how an error is classified;
* :mod:`.progress`: the progress hook (``progress=callback``): what a long call is doing.
"""

from .aio import AsyncGlyphClient
from .answer import Answer, StreamEvent
from .core import DEFAULT_MAX_TOKENS, GLYPH_SAMPLING, ModelInfo, PreparedRequest, page_files
from .progress import Progress
from .sync import GlyphClient, compress_and_ask

__all__ = ["DEFAULT_MAX_TOKENS", "GLYPH_SAMPLING", "Answer", "AsyncGlyphClient", "GlyphClient",
           "ModelInfo", "PreparedRequest", "Progress", "StreamEvent", "compress_and_ask",
           "page_files"]
