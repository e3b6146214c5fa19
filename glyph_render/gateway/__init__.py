"""``glyph-render gateway``: an OpenAI-compatible endpoint that gives any client Glyph's
compression. Long text in chat requests becomes page images, fitted to the upstream model's
context, before the request goes on to the Glyph server. See docs/gateway.md.

Needs the ``gateway`` extra (starlette, uvicorn, httpx, prometheus-client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cli import main
from .settings import GatewaySettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["GatewaySettings", "create_app", "main"]


def create_app(settings: GatewaySettings) -> Starlette:
    """The ASGI app for any ASGI server (starlette is imported only when this is called)."""
    from .app import create_app as _create

    return _create(settings)
