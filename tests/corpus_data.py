"""Where the tests' texts live, all inside the repository: the corpus shipped in the package
(``glyph_render/data/corpus``, excerpts of real books, code and docs with a MANIFEST.tsv) and
``tests/data`` (the seed pages and the naughty-strings stress list). See both READMEs."""

from __future__ import annotations

import functools
from pathlib import Path

from glyph_render.niah import PACKAGE_CORPUS

CORPUS = PACKAGE_CORPUS
TEST_DATA = Path(__file__).resolve().parent / "data"
SEEDS = TEST_DATA / "seeds"


def text_path(name: str) -> Path:
    """A corpus file by name: the package corpus's, else tests/data's."""
    path = CORPUS / name
    return path if path.is_file() else TEST_DATA / name


@functools.lru_cache(maxsize=32)
def read_text(name: str) -> str:
    """The file's text exactly as stored: ``newline=""`` keeps CRLF, so offsets (and page
    spans) index the text as the file holds it, BOM included."""
    with open(text_path(name), encoding="utf-8", newline="") as f:
        return f.read()


def bulk(text: str, chars: int) -> str:
    """``text`` repeated end to end, cut to ``chars`` characters: for tests that need more text
    than an excerpt holds (a long layout, a context to overflow), not particular text."""
    return (text * (chars // len(text) + 1))[:chars]
