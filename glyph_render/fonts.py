"""Fonts: the bundled files, their metrics, and per-character fallback along a chain.

Layout needs the *design* advance widths (hmtx, unkerned, unhinted): that is what reportlab, the
Glyph project's reference renderer, breaks lines with, and it is resolution independent. Which
font draws a character is decided from each font's cmap, so mixed-script text renders every
character some font has; the rest become a visible replacement and are counted.
"""

from __future__ import annotations

import functools
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FontError


def _fonts_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "fonts", here.parent / "fonts"):  # wheel, then source checkout
        if (candidate / "DejaVuSans.ttf").exists():
            return candidate
    raise FontError(f"bundled fonts not found next to {here} (broken install?)")


BUNDLED_FONTS = {
    "DejaVuSans": "DejaVuSans.ttf",
    "DejaVuSansMono": "DejaVuSansMono.ttf",
    "DroidSansFallbackFull": "DroidSansFallbackFull.ttf",
    "NotoColorEmoji": "NotoColorEmoji.ttf",
}
#: Fonts that Glyph's published configs name but that cannot be shipped -> closest bundled font.
GLYPH_FONT_SUBSTITUTES = {
    "Verdana.ttf": "DejaVuSans",
    "verdana.ttf": "DejaVuSans",
    "SourceHanSansHWSC-VF.ttf": "DroidSansFallbackFull",
    "SourceHanSansSC-VF.ttf": "DroidSansFallbackFull",
}

REPLACEMENT = "\ufffd"


def bundled_font(name: str) -> str:
    try:
        return str(_fonts_dir() / BUNDLED_FONTS[name])
    except KeyError:
        raise FontError(
            f"unknown bundled font {name!r} (bundled: {', '.join(BUNDLED_FONTS)})"
        ) from None


@dataclass(frozen=True)
class FontFace:
    """One font file's metrics: which code points it maps, and their advances in em."""

    path: str
    family: str
    advances: dict[int, float] = field(repr=False)  # code point -> advance width in em
    ascent: float  # em, positive up
    descent: float  # em, positive down
    color_bitmap: bool  # CBDT/sbix colour font: Pillow draws it only at its bitmap strike size
    bitmap_size: int  # strike size in pixels for colour bitmap fonts

    def has(self, cp: int) -> bool:
        return cp in self.advances


@functools.lru_cache(maxsize=32)
def load_face(path: str) -> FontFace:
    """Read a TTF/OTF/TTC's cmap and hmtx once per process."""
    from fontTools.ttLib import TTFont, TTLibError

    p = Path(path)
    if not p.exists():
        raise FontError(f"font file {path!r} does not exist")
    if p.is_dir():
        raise FontError(f"font file {path!r} is a directory")
    try:
        font = TTFont(str(p), fontNumber=0, lazy=True)
        cmap = font.getBestCmap() or {}
        upem = font["head"].unitsPerEm
        hmtx = font["hmtx"]
        hhea = font["hhea"]
        name = font["name"].getDebugName(1) or p.stem
        color = ("CBDT" in font or "sbix" in font) and "glyf" not in font and "CFF " not in font
        strike = 109
        if "CBLC" in font:
            sizes = font["CBLC"].strikes
            if sizes:
                strike = int(sizes[0].bitmapSizeTable.ppemY)
        metrics = hmtx.metrics
        advances = {cp: metrics[g][0] / upem for cp, g in cmap.items() if g in metrics}
        font.close()
    except (TTLibError, KeyError, AssertionError, ValueError, OSError, struct.error) as exc:
        raise FontError(f"{path!r} is not a usable TrueType/OpenType font: {exc}") from None
    return FontFace(
        path=str(p), family=name, advances=advances, ascent=hhea.ascent / upem,
        descent=-hhea.descent / upem, color_bitmap=bool(color), bitmap_size=strike,
    )


# Characters that take no room and draw nothing: controls and invisible format characters.
def _is_invisible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf") or cat == "Zl" or cat == "Zp"


class FontChain:
    """Fonts in fallback order, answering 'which font draws this character, how wide is it'.

    Answers are memoised per character: layout asks about every character of the document.
    """

    def __init__(self, paths: tuple[str, ...]):
        if not paths:
            raise FontError("no font given")
        self.paths = paths
        # Fallback fonts load on first need: a CJK font's cmap costs ~0.3 s to read, and most
        # Latin documents never touch it.
        self._faces: list[FontFace | None] = [load_face(paths[0])] + [None] * (len(paths) - 1)
        self._lookup: dict[str, tuple[int, float]] = {}
        self.missing_chars: set[str] = set()  # seen so far with no font: drawn as U+FFFD
        primary = self.face(0)
        self.ascent = primary.ascent
        self.descent = primary.descent
        self._replacement: tuple[int, float] | None = None

    def face(self, i: int) -> FontFace:
        f = self._faces[i]
        if f is None:
            f = self._faces[i] = load_face(self.paths[i])
        return f

    def _replacement_glyph(self) -> tuple[int, float]:
        """The U+FFFD glyph from the first font that has one, else (-1, 0.6 em): a drawn box."""
        if self._replacement is None:
            self._replacement = next(
                ((i, self.face(i).advances[0xFFFD]) for i in range(len(self.paths))
                 if self.face(i).has(0xFFFD)),
                (-1, 0.6),
            )
        return self._replacement

    @property
    def replacement_face(self) -> int:
        return self._replacement_glyph()[0]

    @property
    def replacement_advance(self) -> float:
        return self._replacement_glyph()[1]

    def resolve(self, ch: str) -> tuple[int, float]:
        """(face index, advance in em); face -1 = invisible (no ink, no width), -2 = missing."""
        hit = self._lookup.get(ch)
        if hit is not None:
            return hit
        cp = ord(ch)
        res: tuple[int, float]
        if 0xD800 <= cp <= 0xDFFF:
            res = (-2, self.replacement_advance)
        elif _is_invisible(ch):
            res = (-1, 0.0)
        else:
            for i in range(len(self.paths)):
                adv = self.face(i).advances.get(cp)
                if adv is not None:
                    res = (i, adv)
                    break
            else:
                res = (-2, self.replacement_advance)
        if res[0] == -2:
            self.missing_chars.add(ch)
        self._lookup[ch] = res
        return res

    def advance(self, ch: str) -> float:
        return self.resolve(ch)[1]

    def width(self, text: str) -> float:
        """Unkerned advance width of ``text`` in em."""
        lookup = self._lookup
        total = 0.0
        for ch in text:
            hit = lookup.get(ch)
            if hit is None:
                hit = self.resolve(ch)
            total += hit[1]
        return total


@functools.lru_cache(maxsize=16)
def font_chain(paths: tuple[str, ...]) -> FontChain:
    return FontChain(paths)
