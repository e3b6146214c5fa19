"""``glyph-render gateway``: an OpenAI-compatible endpoint that gives any client Glyph's
compression. Long text in chat requests becomes page images, fitted to the upstream model's
context, before the request goes on to the Glyph server. See docs/gateway.md.

Needs the ``gateway`` extra (starlette, uvicorn, httpx, prometheus-client).
"""

from __future__ import annotations

from .cli import add_parser, main
from .settings import GatewaySettings

__all__ = ["GatewaySettings", "add_parser", "create_app", "main"]


def create_app(settings: GatewaySettings):  # noqa: ANN201 - starlette is an optional import
    """The ASGI app (imports starlette only when called)."""
    from .app import create_app as _create

    return _create(settings)
