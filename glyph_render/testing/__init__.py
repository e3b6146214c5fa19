"""``serve-ocr``: a real local stand-in for a Glyph endpoint, for developing and testing clients.

It speaks vLLM's OpenAI protocol (``/v1/models``, ``/v1/chat/completions`` with SSE streaming,
``/metrics``, ``/health``), counts ``usage`` with glyph-render's own GLM-4.1V token arithmetic,
reads the page images with Tesseract and answers from the matching sentences, and can inject
faults (429, 500, dropped streams and connections) on chosen requests.

    from glyph_render.testing import OcrServer

    with OcrServer(max_model_len=16384, reasoning_parser="glm45") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="none")
"""

from __future__ import annotations

from .cli import main, serve
from .config import ServerConfig
from .server import OcrServer

__all__ = ["OcrServer", "ServerConfig", "main", "serve"]
