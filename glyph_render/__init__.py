"""glyph-render: long text -> dense page images for Glyph visual-text compression.

Stages, one module each, data flowing one way: ``document`` (read) -> ``layout`` (lines and
pages in points) -> ``raster`` (pixels at a DPI) -> ``encode`` (PNG bytes); ``vision_tokens`` and
``text_tokens`` price the result.
"""

from .answer import Answer, StreamEvent
from .compress import Plan, compress, context_budget
from .config import PRESETS, RenderConfig, detect_preset, parse_newline_markup
from .document import read_document
from .encode import encode_png, write_pdf
from .errors import (
    AuthError,
    BudgetError,
    ClientError,
    ConfigError,
    ContextOverflow,
    EndpointUnreachable,
    FontError,
    GlyphRenderError,
    ImageSizeError,
    InputError,
    MalformedReply,
    OutputError,
    ProfileError,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerError,
    StreamInterrupted,
    TokenizerError,
)
from .layout import Line, Page, layout
from .raster import page_pixel_size, rasterize
from .render import RenderedPage, RenderResult, iter_pages, page_sizes, render, render_to_dir
from .text_tokens import count_tokens, get_tokenizer
from .vision_tokens import (
    VisionProfile,
    get_profile,
    image_token_info,
    image_tokens,
    prompt_tokens,
    smart_resize,
)

__version__ = "0.1.0"

# The client pulls in the openai package (~1 s to import), so it loads on first use.
_LAZY = {"GlyphClient": "client", "AsyncGlyphClient": "client", "ModelInfo": "client",
         "compress_and_ask": "client"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS", "Plan", "compress", "context_budget", "BudgetError", "ConfigError", "FontError",
    "GlyphRenderError", "ImageSizeError",
    "InputError", "Line", "OutputError", "Page", "ProfileError", "RenderConfig",
    "RenderResult", "RenderedPage", "TokenizerError", "VisionProfile", "count_tokens",
    "detect_preset", "encode_png", "get_profile", "get_tokenizer", "image_token_info",
    "image_tokens", "iter_pages", "layout", "page_pixel_size", "page_sizes",
    "parse_newline_markup", "prompt_tokens", "rasterize", "read_document", "render",
    "render_to_dir", "smart_resize", "write_pdf", "__version__",
    # asking an endpoint
    "Answer", "AsyncGlyphClient", "AuthError", "ClientError", "ContextOverflow",
    "EndpointUnreachable", "GlyphClient", "MalformedReply", "ModelInfo", "RequestRejected",
    "RequestTimeout", "ServerBusy", "ServerError", "StreamEvent", "StreamInterrupted",
    "compress_and_ask",
]
