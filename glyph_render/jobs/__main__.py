"""``python -m glyph_render.jobs MODE INPUT -o OUT ...``: the batch CLI without the dispatcher."""

from __future__ import annotations

import sys

from ..errors import GlyphRenderError
from . import main


def _run() -> int:
    try:
        return main()
    except GlyphRenderError as exc:
        print(f"glyph-render batch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glyph-render batch: interrupted", file=sys.stderr)
        return 130


raise SystemExit(_run())
