"""``python -m glyph_render.testing --port 8000 ...``: the serve-ocr CLI."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
