"""glyph-render: long text -> dense page images for Glyph visual-text compression.

Stages, one module each, data flowing one way: ``document`` (read) -> ``layout`` (lines and
pages in points) -> ``raster`` (pixels at a DPI) -> ``encode`` (PNG bytes); ``vision_tokens`` and
``text_tokens`` price the result.

The render pipeline is imported eagerly: three of its functions share their module's name
(``layout``, ``render``, ``compress``), and binding them here, after their modules load, is
what keeps ``glyph_render.layout`` the function whichever import came first. The client and
its answers (openai, httpx) load on first use (PEP 562), so rendering never imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .compat import text_to_images
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

_EXPORTS: dict[str, tuple[str, ...]] = {
    "client": ("Answer", "AsyncGlyphClient", "GlyphClient", "ModelInfo", "StreamEvent",
               "compress_and_ask"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["Answer", "AsyncGlyphClient", "AuthError", "BudgetError", "ClientError", "ConfigError",
    "ContextOverflow", "EndpointUnreachable", "FontError", "GlyphClient", "GlyphRenderError",
    "ImageSizeError", "InputError", "Line", "MalformedReply", "ModelInfo", "OutputError",
    "PRESETS", "Page", "Plan", "ProfileError", "RenderConfig", "RenderResult", "RenderedPage",
    "RequestRejected", "RequestTimeout", "ServerBusy", "ServerError", "StreamEvent",
    "StreamInterrupted", "TokenizerError", "VisionProfile", "compress", "compress_and_ask",
    "context_budget", "count_tokens", "detect_preset", "encode_png", "get_profile",
    "get_tokenizer", "image_token_info", "image_tokens", "iter_pages", "layout",
    "page_pixel_size", "page_sizes", "parse_newline_markup", "prompt_tokens", "rasterize",
    "read_document", "render", "render_to_dir", "smart_resize", "text_to_images", "write_pdf",
    "__version__"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the lazy names, imported eagerly
    from .client import (
        Answer,
        AsyncGlyphClient,
        GlyphClient,
        ModelInfo,
        StreamEvent,
        compress_and_ask,
    )
