"""Rendering configuration: one validated, frozen dataclass.

It reads the Glyph project's own JSON rendering configs unchanged (hyphenated keys such as
``page-size``, ``margin-x``, ``newline-markup``), and also accepts the snake_case attribute names,
so a config written by Glyph's scripts, by our CLI flags or by Python code means the same thing.
Every value is checked when the object is built, and a bad one raises :class:`ConfigError` naming
the key and the value.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ImageColor

from .errors import ConfigError
from .fonts import BUNDLED_FONTS, GLYPH_FONT_SUBSTITUTES, bundled_font, find_system_font
from .pdfnum import pdf_value

RGB = tuple[int, int, int]

ALIGNMENTS = ("LEFT", "CENTER", "RIGHT", "JUSTIFY")
LINE_BREAK_MARKUP = "<br/>"
#: The compact marker Glyph offers: newlines become a small red literal ``\n`` in the running text.
GLYPH_NEWLINE_MARKER = '<font color="#FF0000"> \\n </font>'

# Pillow refuses to open images above this many pixels (its decompression-bomb guard x2);
# a page bigger than that could be written but not read back by anyone using Pillow.
MAX_PAGE_PIXELS = 178_956_970
#: The widest aspect ratio GLM-4.1V's and Qwen2-VL's image processors accept (``> 200`` raises).
#: A config whose whole page is past it is refused; a cropped page is never cropped past it
#: (``raster`` keeps a band of background instead).
MAX_ASPECT = 200
#: The largest page side PDF readers take (200 inches); no length in a config may pass it.
MAX_POINTS = 14_400.0

_FONT_TAG = re.compile(r'^\s*<font\s+color\s*=\s*["\']([^"\']+)["\']\s*>(.*)</font>\s*$', re.S)


@dataclass(frozen=True)
class NewlineMarkup:
    """What a source newline becomes: a line break, or an inline marker drawn in the text."""

    line_break: bool
    marker: str = ""
    color: RGB | None = None  # None: the font colour


def parse_newline_markup(value: str) -> NewlineMarkup:
    """Understand Glyph's ``newline-markup`` strings (``<br/>`` or ``<font color=..>TEXT</font>``).

    The marker text keeps Glyph's literal backslash-n (JSON ``"\\\\n"``); surrounding spaces in it
    are word separators, exactly as reportlab treats them.
    """
    if not isinstance(value, str):
        raise ConfigError(f"newline-markup: expected a string, got {_short(value)}")
    stripped = value.strip().lower().replace(" ", "")
    if stripped in ("<br/>", "<br>", "\n"):
        return NewlineMarkup(line_break=True)
    m = _FONT_TAG.match(value)
    if m:
        color = parse_color(m.group(1), "newline-markup")
        text = m.group(2)
    else:
        if "<" in value or ">" in value:
            raise ConfigError(
                f"newline-markup: {_short(value)} is neither '<br/>' nor '<font color=\"#RRGGBB\">"
                "TEXT</font>' nor plain marker text"
            )
        color, text = None, value
    if not text.strip():
        raise ConfigError(f"newline-markup: marker {_short(value)} has no visible text")
    return NewlineMarkup(line_break=False, marker=text, color=color)


def parse_color(value: Any, key: str) -> RGB:
    """``#RRGGBB``/``#RGB``/CSS names, or an (r, g, b) triple; reportlab's ``0xRRGGBB`` too."""
    if isinstance(value, (list, tuple)) and len(value) == 3:
        if all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
            return (int(value[0]), int(value[1]), int(value[2]))
        raise ConfigError(
            f"{key}: {_short(value)} is not a colour (three integers 0-255 expected)")
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {_short(value)} is not a colour")
    text = value.strip()
    if text.lower().startswith("0x"):
        text = "#" + text[2:]
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ConfigError(
            f"{key}: {_short(value)} is not a colour (use #RRGGBB or a name)") from None
    return (rgb[0], rgb[1], rgb[2])


def color_hex(rgb: RGB) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _parse_page_size(value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"page-size: {_short(value)} is not 'WIDTH,HEIGHT' in points")
    if len(parts) != 2:
        raise ConfigError(f"page-size: {_short(value)} is not 'WIDTH,HEIGHT' in points")
    try:
        w, h = (float(p) for p in parts)
    except OverflowError:
        raise ConfigError(
            f"page-size: {_short(value)} must be two finite numbers of points") from None
    except (TypeError, ValueError):
        raise ConfigError(f"page-size: {_short(value)} is not 'WIDTH,HEIGHT' in points") from None
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ConfigError(
            f"page-size: {_short(value)} must be two positive, finite numbers of points")
    return (w, h)


@dataclass(frozen=True)
class RenderConfig:
    """Every knob of the renderer, in points unless said otherwise.

    Geometry is in points (1/72 inch) so that layout never depends on ``dpi``: the same layout
    serves every DPI, which is what makes budget search cheap.
    """

    page_size: tuple[float, float] = (595.0, 842.0)
    dpi: float = 72.0
    margin_x: float = 10.0
    margin_y: float = 10.0
    font_path: str | None = None  # None: the bundled Latin sans (DejaVu Sans)
    fallback_fonts: tuple[str, ...] = ("DejaVuSans", "DroidSansFallbackFull", "NotoColorEmoji")
    font_size: float = 9.0
    line_height: float = 10.0
    font_color: RGB = (0, 0, 0)
    page_bg_color: RGB = (255, 255, 255)
    para_bg_color: RGB = (255, 255, 255)
    para_border_color: RGB = (255, 255, 255)
    alignment: str = "LEFT"
    horizontal_scale: float = 1.0
    first_line_indent: float = 0.0
    left_indent: float = 0.0
    right_indent: float = 0.0
    space_before: float = 0.0
    space_after: float = 0.0
    border_width: float = 0.0
    border_padding: float = 0.0
    auto_crop_width: bool = False
    auto_crop_last_page: bool = False
    newline_markup: str = LINE_BREAK_MARKUP
    remove_line_breaks: bool = False
    tab_size: int = 0  # 0: tabs collapse into one space, as in the reference; N: N columns
    split_blank_line: bool = True  # the reference's empty line atop a page split after <br/>
    preset_name: str | None = field(default=None, compare=False)
    #: how a font named by file name was found (the system's copy, or a bundled stand-in)
    font_note: str | None = field(default=None, compare=False)

    # ---- construction -------------------------------------------------------------------
    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: RenderConfig | None = None,
                  relative_to: Path | None = None, quiet: bool = False) -> RenderConfig:
        """Build from Glyph's hyphenated keys (or our snake_case ones) over ``base``.

        ``relative_to`` resolves a relative ``font-path`` the way Glyph's scripts do: against
        the folder of the config file that named it.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        values = _coerce_all(data, relative_to)
        if "font_path" in values:
            values["font_path"], values["font_note"] = values["font_path"]
            if values["font_note"] and not quiet:
                warnings.warn(values["font_note"], FontNotice, stacklevel=2)
        start = base if base is not None else cls()
        try:
            return dataclasses.replace(start, **values)
        except TypeError as exc:  # pragma: no cover - guarded by _coerce_all
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_json(cls, path: str | Path, *, base: RenderConfig | None = None) -> RenderConfig:
        p = Path(path)
        try:
            raw = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} does not exist") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(p)!r} cannot be read: {exc}") from None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
        except ValueError as exc:  # e.g. an integer of over 4,300 digits (Python's limit)
            raise ConfigError(f"config file {str(p)!r} cannot be read as JSON: {exc}") from None
        except RecursionError:  # json nests by recursion: 100,000 '[' overflow the stack
            raise ConfigError(f"config file {str(p)!r} nests too deeply to be a config") from None
        return cls.from_dict(data, base=base, relative_to=p.parent)

    @classmethod
    def preset(cls, name: str, *, font_path: str | None = None) -> RenderConfig:
        """A named preset; ``font_path`` in place of the preset's font (then the preset's
        font, e.g. Glyph's ``Verdana.ttf``, is never looked up on the system)."""
        try:
            values = PRESETS[name]
        except KeyError:
            raise ConfigError(
                f"preset: unknown preset {name!r} (choose from {', '.join(sorted(PRESETS))}, auto)"
            ) from None
        if font_path is not None:
            values = {**values, "font-path": font_path}
        # a preset's font note is reported by whoever uses the final config (the CLI), not here
        return cls.from_dict(values, quiet=True)

    def replace(self, **changes: Any) -> RenderConfig:
        """A copy with some keys changed; keys may be Glyph's or snake_case."""
        return RenderConfig.from_dict(changes, base=self)

    # ---- derived ------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """Pixels per point."""
        return self.dpi / 72.0

    @functools.cached_property
    def newline(self) -> NewlineMarkup:
        return parse_newline_markup(self.newline_markup)

    @functools.cached_property
    def font_chain(self) -> tuple[str, ...]:
        """Font files in fallback order: the primary font, then the fallbacks (paths)."""
        primary = self.font_path or bundled_font("DejaVuSans")
        chain = [primary]
        for f in self.fallback_fonts:
            p = bundled_font(f) if f in BUNDLED_FONTS else f
            if p not in chain:
                chain.append(p)
        return tuple(chain)

    @property
    def is_grey(self) -> bool:
        """True when every colour is grey, so pages can be single-channel 'L' images."""
        cols = [self.font_color, self.page_bg_color, self.para_bg_color]
        if self.border_width > 0:
            cols.append(self.para_border_color)
        nl = self.newline
        if not nl.line_break and nl.color is not None:
            cols.append(nl.color)
        return all(c[0] == c[1] == c[2] for c in cols)

    def to_dict(self) -> dict[str, Any]:
        """Glyph's own JSON keys and value formats, so the result can feed Glyph's scripts."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("preset_name", "font_note"):
                continue
            v = getattr(self, f.name)
            key = f.name.replace("_", "-")
            if f.name == "page_size":
                v = f"{_num(v[0])},{_num(v[1])}"
            elif f.name.endswith("_color"):
                v = color_hex(v)
            elif f.name == "fallback_fonts":
                v = list(v)
            elif isinstance(v, float):
                v = _num(v)
            out[key] = v
        return out


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


_FIELDS = {f.name: f for f in dataclasses.fields(RenderConfig)}
_NUMBER_KEYS = {
    "dpi", "margin_x", "margin_y", "font_size", "line_height", "horizontal_scale",
    "first_line_indent", "left_indent", "right_indent", "space_before", "space_after",
    "border_width", "border_padding",
}
_BOOL_KEYS = {"auto_crop_width", "auto_crop_last_page", "remove_line_breaks",
              "split_blank_line"}
_COLOR_KEYS = {"font_color", "page_bg_color", "para_bg_color", "para_border_color"}


def _coerce_all(data: dict[str, Any], relative_to: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        if not isinstance(raw_key, str):
            raise ConfigError(f"config: key {raw_key!r} is not a string")
        name = raw_key.replace("-", "_")
        if name not in _FIELDS:
            known = ", ".join(sorted(k.replace("_", "-") for k in _FIELDS))
            raise ConfigError(f"config: unknown key {raw_key!r} (known keys: {known})")
        out[name] = _coerce(name, raw_key, value, relative_to)
    return out


def _coerce(name: str, key: str, value: Any, relative_to: Path | None) -> Any:
    if name in _NUMBER_KEYS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{key}: expected a number, got {_short(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer past 1.8e308: JSON allows it, a float cannot hold it
            raise ConfigError(f"{key}: {_short(value)} must be a finite number") from None
    if name in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {_short(value)}")
    if name in _COLOR_KEYS:
        return parse_color(value, key)
    if name == "page_size":
        return _parse_page_size(value)
    if name == "alignment":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4:
            # reportlab's TA_* enums: LEFT=0, CENTER=1, RIGHT=2, JUSTIFY=4
            return {0: "LEFT", 1: "CENTER", 2: "RIGHT", 4: "JUSTIFY"}.get(value, "LEFT")
        if not isinstance(value, str) or value.upper() not in ALIGNMENTS:
            raise ConfigError(
                f"alignment: {_short(value)} is not one of {', '.join(ALIGNMENTS)}")
        return value.upper()
    if name == "tab_size":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"tab-size: expected a whole number, got {_short(value)}")
        return value
    if name == "font_path":
        return _resolve_font_path(value, relative_to)
    if name == "fallback_fonts":
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"fallback-fonts: expected a list of font names/paths, got {_short(value)}")
        return tuple(value)
    if name in ("newline_markup", "preset_name", "font_note"):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_short(value)}")
        return value
    raise ConfigError(f"config: key {key!r} cannot be set")  # pragma: no cover


def _short(value: Any) -> str:
    """``repr`` cut to 60 characters, so a 400-digit number stays a one-line message (and a
    5,000-digit one, which ``repr`` refuses to convert, still gets one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    try:
        text = repr(value)
    except ValueError:
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]} ({len(text):,} characters)"


def _resolve_font_path(value: Any, relative_to: Path | None) -> tuple[str | None, str | None]:
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise ConfigError(f"font-path: expected a file path, got {value!r}")
    if value in BUNDLED_FONTS:
        return bundled_font(value), None
    p = Path(value).expanduser()
    # Relative paths mean the config file's folder first (the file travels with its fonts),
    # then the working directory (how Glyph's scripts open them).
    candidates = [p] if p.is_absolute() else (
        [relative_to / p, p] if relative_to is not None else [p])
    for c in candidates:
        if c.exists():
            return str(c.resolve()), None
    found = find_system_font(p.name)
    if found is not None:
        # Glyph's configs name Verdana.ttf by file name: use the system's copy, as the
        # training pages did, and say so.
        return found, f"font-path {value!r}: using {found} (found on this system)"
    sub = GLYPH_FONT_SUBSTITUTES.get(p.name.lower())
    if sub is not None:
        # Glyph's published configs name fonts we cannot ship (Verdana, Source Han Sans HW);
        # read those configs unchanged and stand in the closest bundled font, and say so.
        return bundled_font(sub), (
            f"font-path {value!r} not found on this system; using the bundled {sub} in its "
            "place (install the font, or pass --font, to match Glyph's training pages)")
    raise ConfigError(f"font-path: font file {value!r} does not exist")


class FontNotice(UserWarning):
    """Which file a font named by a config resolved to, when it was not at the given path."""


def number(value: Any, *, zero: bool = False, infinite: bool = False) -> float:
    """``value`` (a flag's string or a number from Python) as a finite number > 0 (>= 0 with
    ``zero``; ``inf`` too with ``infinite``); ValueError saying what is wrong. True/False, NaN
    and infinities are no numbers of seconds, DPI or megabytes. The package's one number
    check: ``settings`` builds its flag types on it, ``compress`` its arguments' checks."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r:.60}")
    try:
        x = float(value)
    except OverflowError:  # an int past a float's range
        x = math.inf
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r:.60}") from None
    if infinite and x == math.inf:
        return x
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        raise ValueError(f"must be a finite number {'>=' if zero else '>'} 0"
                         f"{' or inf' if infinite else ''}, got {value!r:.60}")
    return x


def _finite(v: Any) -> bool:
    """A real number a float can hold (``math.isfinite`` overflows on a huge int)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _validate(c: RenderConfig) -> None:
    def bad(key: str, value: Any, why: str) -> ConfigError:
        return ConfigError(f"{key}: {_short(value)} {why}")

    # Types first: a RenderConfig built directly (not from a dict) skips the coercion.
    ps = c.page_size
    if not (isinstance(ps, (tuple, list)) and len(ps) == 2 and all(_finite(v) for v in ps)
            and ps[0] > 0 and ps[1] > 0):
        raise bad("page-size", ps, "must be two positive, finite numbers of points")
    w, h = float(ps[0]), float(ps[1])
    if max(w, h) > MAX_POINTS:
        raise bad("page-size", ps, f"is past {MAX_POINTS:,.0f} pt (200 inches), PDF's largest page")
    for key in sorted(_NUMBER_KEYS):
        v = getattr(c, key)
        if not _finite(v):
            raise bad(key.replace("_", "-"), v, "must be a finite number")
        if key not in ("dpi", "horizontal_scale") and abs(v) > MAX_POINTS:
            # a length past any page: 1e308 pt would overflow to inf once doubled
            raise bad(key.replace("_", "-"), v, f"is past {MAX_POINTS:,.0f} pt, the largest page")
    for key in sorted(_COLOR_KEYS):
        v = getattr(c, key)
        if not isinstance(v, (tuple, list)):  # from_dict reads '#RRGGBB'; fields hold triples
            raise bad(key.replace("_", "-"), v, "must be an (r, g, b) triple of 0-255")
        parse_color(v, key.replace("_", "-"))
    if isinstance(c.tab_size, bool) or not isinstance(c.tab_size, int):
        raise bad("tab-size", c.tab_size, "must be a whole number")
    if c.font_path is not None and not isinstance(c.font_path, str):
        raise bad("font-path", c.font_path, "must be a file path")
    if not isinstance(c.fallback_fonts, (tuple, list)) or not all(
            isinstance(f, str) for f in c.fallback_fonts):
        raise bad("fallback-fonts", c.fallback_fonts, "must be a list of font names/paths")
    if not c.dpi > 0:
        raise bad("dpi", c.dpi, "must be greater than 0")
    if c.font_size <= 0:
        raise bad("font-size", c.font_size, "must be greater than 0")
    if c.font_size * c.scale < 1:
        raise bad("dpi", c.dpi, f"draws {c.font_size:g} pt text {c.font_size * c.scale:.2f} px "
                  "tall: under one pixel, nothing can be drawn")
    if c.line_height <= 0:
        raise bad("line-height", c.line_height, "must be greater than 0")
    if c.line_height < c.font_size:
        # One em holds ascender plus descender: any less and descenders meet the next ascenders.
        raise bad(
            "line-height", c.line_height,
            f"is below font-size {c.font_size:g}: the lines would overlap",
        )
    for key in ("margin_x", "margin_y", "left_indent", "right_indent", "space_before",
                "space_after", "border_width", "border_padding"):
        v = getattr(c, key)
        if v < 0 or v != v:
            raise bad(key.replace("_", "-"), v, "must not be negative")
    if not 0.1 <= c.horizontal_scale <= 10:
        raise bad("horizontal-scale", c.horizontal_scale, "must lie between 0.1 and 10")
    if not 0 <= c.tab_size <= 32:
        raise bad("tab-size", c.tab_size, "must lie between 0 (collapse, as Glyph) and 32")
    if c.alignment not in ALIGNMENTS:
        raise bad("alignment", c.alignment, f"is not one of {', '.join(ALIGNMENTS)}")
    text_w = frame_width(c)
    if text_w <= c.font_size:
        raise ConfigError(
            f"margin-x: {c.margin_x!r} (with indents) leaves {text_w:.1f} pt of text width on a "
            f"{w:g} pt wide page: no room for a character"
        )
    if frame_height(c) < c.line_height:
        raise ConfigError(
            f"margin-y: {c.margin_y!r} leaves {frame_height(c):.1f} pt of height on a {h:g} pt "
            f"tall page: not one line of height {c.line_height:g} fits"
        )
    if abs(c.first_line_indent) >= text_w:
        raise bad("first-line-indent", c.first_line_indent, "is as wide as the text column")
    px = (w * c.scale * c.horizontal_scale) * (h * c.scale)
    if px > MAX_PAGE_PIXELS:
        raise ConfigError(
            f"dpi: {c.dpi:g} makes a {w:g}x{h:g} pt page {px:,.0f} pixels, over Pillow's limit "
            f"of {MAX_PAGE_PIXELS:,}"
        )
    pw, ph = full_page_pixels(c)
    if max(pw, ph) > MAX_ASPECT * min(pw, ph):
        raise ConfigError(
            f"page-size: {w:g}x{h:g} pt (horizontal-scale {c.horizontal_scale:g}) draws "
            f"{pw}x{ph} px pages at {c.dpi:g} DPI, past the {MAX_ASPECT}:1 aspect ratio vision "
            "models take"
        )
    parse_newline_markup(c.newline_markup)


# reportlab's Frame pads its content 6 pt on every side; Glyph's pages inherit that inset.
FRAME_PADDING = 6.0


def full_page_pixels(c: RenderConfig) -> tuple[int, int]:
    """(width, height) in pixels of an uncropped page: pdftoppm's ceiling of the page size at
    the DPI, the width then squeezed by ``horizontal-scale`` (at least one pixel each)."""
    k = c.dpi / 72.0
    width, height = (max(1, int(k * ((72.0 / c.dpi) * math.ceil(pdf_value(v) * k)) + 0.5))
                     for v in c.page_size)
    return max(1, int(width * c.horizontal_scale)), height


def frame_width(c: RenderConfig) -> float:
    return c.page_size[0] - 2 * c.margin_x - 2 * FRAME_PADDING - c.left_indent - c.right_indent


def frame_height(c: RenderConfig) -> float:
    return c.page_size[1] - 2 * c.margin_y - 2 * FRAME_PADDING


PRESETS: dict[str, dict[str, Any]] = {
    # The published English config of the Glyph project (config_en.json), Verdana -> DejaVu Sans.
    "glyph-en": {
        "page-size": "595,842", "dpi": 72, "margin-x": 10, "margin-y": 10,
        "font-path": "Verdana.ttf", "font-size": 9, "line-height": 10,
        "font-color": "#000000", "page-bg-color": "#FFFFFF", "para-bg-color": "#FFFFFF",
        "alignment": "LEFT", "horizontal-scale": 1.0, "first-line-indent": 0,
        "left-indent": 0, "right-indent": 0, "space-before": 0, "space-after": 0,
        "border-width": 0, "border-padding": 0, "auto-crop-width": True,
        "auto-crop-last-page": True, "newline-markup": LINE_BREAK_MARKUP, "preset-name": "glyph-en",
    },
}
PRESETS["glyph-zh"] = {
    **PRESETS["glyph-en"],
    "font-path": "SourceHanSansHWSC-VF.ttf",
    "fallback-fonts": ["DejaVuSans", "NotoColorEmoji"],
    "preset-name": "glyph-zh",
}

_LETTER = re.compile(r"[^\W\d_]")
# Lead bytes of UTF-8's 3-byte sequences from U+3000 on: a text without one has no CJK.
_MAYBE_CJK_LEADS = tuple(bytes([b]) for b in range(0xE3, 0xF0))


@functools.cache
def _cjk() -> re.Pattern[str]:
    """Kana, CJK ideographs, Hangul: compiled on first need (~13 ms, for its large classes)."""
    return re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def detect_preset(text: str, sample: int = 200_000) -> str:
    """``glyph-zh`` when CJK characters dominate the text (by words, roughly), else ``glyph-en``."""
    head = text[:sample]
    if head.isascii():
        return "glyph-en"
    data = head.encode("utf-8", "surrogatepass")
    if not any(lead in data for lead in _MAYBE_CJK_LEADS):  # memchr scans, no regex
        return "glyph-en"
    cjk = len(_cjk().findall(head))
    letters = len(_LETTER.findall(head))
    # A Han character carries about a word; Latin letters ~5 to a word. So CJK is dominant
    # once it is a fifth of the letters (a Chinese tutorial with code blocks is still Chinese).
    return "glyph-zh" if cjk and cjk * 4 >= letters - cjk else "glyph-en"
