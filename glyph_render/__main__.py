"""``python -m glyph_render``: the ``glyph-render`` command."""

from .cli import run

run()
