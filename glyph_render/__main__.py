"""``python -m glyph_render``: the ``glyph-render`` command."""

import sys

from .cli import main

sys.exit(main())
