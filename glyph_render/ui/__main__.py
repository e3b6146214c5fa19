"""``python -m glyph_render.ui``: the same as ``glyph-render ui``."""

import sys

from glyph_render.cli import main

sys.exit(main(["ui", *sys.argv[1:]]))
