"""Fonts: the bundled files, their metrics as reportlab reads them, and per-character fallback.

Glyph's reference renderer measures text with reportlab: a character's width is its ``hmtx``
advance scaled to 1/1000 em (``advance * (1000 / unitsPerEm)``), a character the font lacks
takes glyph 0's advance and draws glyph 0 (.notdef), and a no-break space always borrows the
space's glyph and width. This module answers those questions for a chain of fonts, through
FreeType (the library poppler draws with), so layout and raster read one source of truth.

Where the primary font lacks a character, glyph-render draws it from the first fallback font
that has one (reportlab would draw .notdef boxes); an empty fallback chain restores the
reference behaviour exactly.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
#: Fonts that Glyph's published configs name but that cannot be shipped -> closest bundled font,
#: used only when the named file is found neither beside the config nor on the system.
GLYPH_FONT_SUBSTITUTES = {
    "verdana.ttf": "DejaVuSans",
    "sourcehansanshwsc-vf.ttf": "DroidSansFallbackFull",
    "sourcehansanssc-vf.ttf": "DroidSansFallbackFull",
}

REPLACEMENT = "\ufffd"
NOTDEF = 0  # glyph id of .notdef


def bundled_font(name: str) -> str:
    try:
        return str(_fonts_dir() / BUNDLED_FONTS[name])
    except KeyError:
        raise FontError(
            f"unknown bundled font {name!r} (bundled: {', '.join(BUNDLED_FONTS)})"
        ) from None


# ---- finding a named font on the system ---------------------------------------------------

def _font_folders() -> list[Path]:
    """The standard font folders of Linux, macOS and Windows, most specific first."""
    home = Path.home()
    folders = [home / ".local/share/fonts", home / ".fonts", Path("/usr/local/share/fonts"),
               Path("/usr/share/fonts"), home / "Library/Fonts", Path("/Library/Fonts"),
               Path("/System/Library/Fonts/Supplemental"), Path("/System/Library/Fonts")]
    for var, sub in (("LOCALAPPDATA", "Microsoft/Windows/Fonts"), ("WINDIR", "Fonts"),
                     ("SystemRoot", "Fonts")):
        if os.environ.get(var):
            folders.append(Path(os.environ[var]) / sub)
    return folders


@functools.lru_cache(maxsize=64)
def find_system_font(filename: str) -> str | None:
    """Look a font file up by name as the system would: fontconfig, then the font folders.

    Glyph's configs name ``Verdana.ttf``; Verdana ships with macOS and Windows and installs on
    Linux from the core-fonts package, so most users have the training font somewhere.
    """
    want = filename.lower()
    if shutil.which("fc-list"):
        import subprocess  # only here: a render that names no font pays nothing for it

        try:
            out = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if Path(line).name.lower() == want and Path(line).is_file():
                return line
    for folder in _font_folders():
        if not folder.is_dir():
            continue
        try:
            for path in folder.rglob("*"):
                if path.name.lower() == want and path.is_file():
                    return str(path)
        except OSError:
            continue
    return None


# ---- one font file -----------------------------------------------------------------------

#: FreeType's faces (and the library that opens them) are not thread-safe, and threads render
#: concurrently (the async client, eval --concurrency, bench serve). Every call into FreeType,
#: and every cache that grows from one, is made holding this lock; warm lookups take none.
FT_LOCK = threading.RLock()


def _freetype() -> Any:
    try:
        import freetype
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise FontError(f"freetype-py is not installed ({exc}): pip install freetype-py") from None
    return freetype


@dataclass
class FontFace:
    """One font file: its cmap and advances in reportlab's units (1/1000 em), lazily."""

    path: str
    family: str
    units_per_em: int
    bbox: tuple[int, int, int, int]  # font units: xMin, yMin, xMax, yMax
    ascent: float  # em, positive up
    descent: float  # em, positive down
    color_bitmap: bool  # CBDT/sbix colour font: no outlines, drawn from its bitmap strike
    bitmap_size: int
    ft: Any = field(repr=False)
    _glyphs: dict[int, int] = field(default_factory=dict, repr=False)
    _widths: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def default_width(self) -> float:
        """Width of glyph 0 (.notdef), what reportlab gives a character the font lacks."""
        return self.glyph_width(NOTDEF)

    def glyph(self, cp: int) -> int:
        """Glyph id for a code point, 0 when the font has none (a no-break space is a space)."""
        g = self._glyphs.get(cp)
        if g is None:
            with FT_LOCK:
                g = self.ft.get_char_index(cp)
                if cp == 0xA0 or cp == 0x20:
                    space = self.ft.get_char_index(0x20)
                    g = space or self.ft.get_char_index(0xA0)
                self._glyphs[cp] = g
        return g

    def has(self, cp: int) -> bool:
        return self.glyph(cp) != 0

    def glyph_width(self, gid: int) -> float:
        """Advance of a glyph in 1/1000 em, computed as reportlab does (float, unrounded)."""
        w = self._widths.get(gid)
        if w is None:
            ft = _freetype()
            with FT_LOCK:
                aw = self.ft.get_advance(gid, ft.FT_LOAD_NO_SCALE)
            upem = self.units_per_em
            w = float(aw) if upem == 1000 else aw * (1000 / upem)
            self._widths[gid] = w
        return w


@functools.lru_cache(maxsize=32)
def load_face(path: str) -> FontFace:
    """Open a TTF/OTF/TTC (its first face) once per process."""
    p = Path(path)
    if not p.exists():
        raise FontError(f"font file {path!r} does not exist")
    if p.is_dir():
        raise FontError(f"font file {path!r} is a directory")
    ft = _freetype()
    try:
        with FT_LOCK:
            face = ft.Face(str(p), 0)
        upem = face.units_per_EM
        color = bool(face.has_fixed_sizes) and not face.is_scalable
        strike = int(face.available_sizes[0].y_ppem / 64) if face.num_fixed_sizes else 109
        if not upem:  # FreeType reports 0 for bitmap-only fonts; their hmtx still uses 'head'
            upem = _head_units_per_em(p) or 2048
        family = face.family_name.decode("utf-8", "replace") if face.family_name else p.stem
        bb = face.bbox
        ascent, descent = face.ascender / upem, -face.descender / upem
    except (ft.FT_Exception, OSError, ValueError, AttributeError) as exc:
        raise FontError(f"{path!r} is not a usable TrueType/OpenType font: {exc}") from None
    return FontFace(path=str(p), family=family, units_per_em=upem,
                    bbox=(bb.xMin, bb.yMin, bb.xMax, bb.yMax), ascent=ascent,
                    descent=descent, color_bitmap=color, bitmap_size=strike, ft=face)


def _head_units_per_em(path: Path) -> int:
    """unitsPerEm from the 'head' table of the first face, read directly."""
    import struct

    with open(path, "rb") as f:
        data = f.read(65536)
    offset = 0
    if data[:4] == b"ttcf":
        offset = struct.unpack_from(">I", data, 12)[0]
    num = struct.unpack_from(">H", data, offset + 4)[0]
    for i in range(num):
        tag, _sum, where, _len = struct.unpack_from(">4sIII", data, offset + 12 + 16 * i)
        if tag == b"head":
            with open(path, "rb") as f:
                f.seek(where + 18)
                return struct.unpack(">H", f.read(2))[0]
    return 0


# Characters that take no room and draw nothing when no font has them.
def _is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


class FontChain:
    """Fonts in fallback order: which font and glyph draw a character, and how wide it is.

    ``resolve`` answers ``(face index, glyph id, width in 1/1000 em)`` and memoises per
    character. The primary font answers first, exactly as reportlab would; a character it lacks
    comes from the first fallback that has it, else U+FFFD from the chain (counted as missing).
    With no fallback fonts every character resolves in the primary font, .notdef included.
    """

    def __init__(self, paths: tuple[str, ...]):
        if not paths:
            raise FontError("no font given")
        self.paths = paths
        # Fallback fonts open on first need: most Latin documents never touch the CJK one.
        self._faces: list[FontFace | None] = [load_face(paths[0])] + [None] * (len(paths) - 1)
        self.lookup: dict[str, tuple[int, int, float]] = {}
        self.missing_chars: set[str] = set()
        primary = self.face(0)
        self.ascent = primary.ascent
        self.descent = primary.descent
        self._replacement: tuple[int, int, float] | None = None

    @property
    def primary(self) -> FontFace:
        return self.face(0)

    def face(self, i: int) -> FontFace:
        f = self._faces[i]
        if f is None:
            with FT_LOCK:
                f = self._faces[i] = load_face(self.paths[i])
        return f

    def _replacement_glyph(self) -> tuple[int, int, float]:
        """U+FFFD from the first font of the chain that has it, else the primary's .notdef."""
        if self._replacement is None:
            for i in range(len(self.paths)):
                f = self.face(i)
                g = f.glyph(0xFFFD)
                if g:
                    self._replacement = (i, g, f.glyph_width(g))
                    break
            else:
                p = self.primary
                self._replacement = (0, NOTDEF, p.default_width)
        return self._replacement

    def resolve(self, ch: str) -> tuple[int, int, float]:
        hit = self.lookup.get(ch)
        if hit is not None:
            return hit
        with FT_LOCK:
            return self._resolve(ch)

    def _resolve(self, ch: str) -> tuple[int, int, float]:
        hit = self.lookup.get(ch)
        if hit is not None:
            return hit
        cp = ord(ch)
        primary = self.primary
        g = primary.glyph(cp) if not 0xD800 <= cp <= 0xDFFF else 0
        if g or len(self.paths) == 1:
            if not g:  # the single font lacks it: drawn as its .notdef, as the reference does
                self.missing_chars.add(ch)
            res = (0, g, primary.glyph_width(g))
        else:
            for i in range(1, len(self.paths)):
                f = self.face(i)
                if not f.color_bitmap or not _is_invisible(ch):
                    fg = f.glyph(cp)
                    if fg:
                        res = (i, fg, f.glyph_width(fg))
                        break
            else:
                if _is_invisible(ch):
                    res = (-1, 0, 0.0)
                else:
                    self.missing_chars.add(ch)
                    res = self._replacement_glyph()
        self.lookup[ch] = res
        return res

    def width(self, text: str) -> float:
        """Sum of the characters' widths in 1/1000 em (what reportlab sums, in its order)."""
        lookup = self.lookup
        total = 0.0
        for ch in text:
            hit = lookup.get(ch) or self.resolve(ch)
            total += hit[2]
        return total


@functools.lru_cache(maxsize=16)
def font_chain(paths: tuple[str, ...]) -> FontChain:
    return FontChain(paths)

