"""Glyph's own entry point, ``text_to_images``, on glyph-render's faithful pipeline.

Glyph's ``scripts/word2png_function.py`` renders with reportlab and poppler; code written
against it calls ``text_to_images(text, output_dir, config_path=..., config_dict=...,
unique_id=...)`` and gets back the absolute paths of ``output_dir/unique_id/page_001.png``...
This function keeps that signature, those file names and that return value, and the script's
defaults for keys a config leaves out (A4, 20 pt margins, justified, line height font size + 1,
no cropping), so such code runs unchanged, without reportlab or poppler, and its pages are the
ones the reference draws (``tests/test_compat.py`` compares them).

Differences a caller may notice: a config with no ``font-path`` renders with the bundled
DejaVu Sans (Glyph stops on an assertion); unknown keys and bad values are refused with an
error naming the key (Glyph ignores unknown keys); empty text is refused (Glyph writes a
blank page); page files left in the folder by an earlier, longer render are removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import LINE_BREAK_MARKUP, RenderConfig
from .errors import ConfigError
from .render import render_to_dir

__all__ = ["GLYPH_SCRIPT_DEFAULTS", "glyph_script_config", "text_to_images"]

#: The values ``text_to_images`` in Glyph's script falls back to for keys a config omits.
#: A4 is reportlab's (210 x 297 mm in points); ``line-height`` falls back to font size + 1.
GLYPH_SCRIPT_DEFAULTS: dict[str, Any] = {
    "page-size": (210 * 72 / 25.4, 297 * 72 / 25.4),
    "margin-x": 20, "margin-y": 20, "font-size": 9,
    "page-bg-color": "#FFFFFF", "font-color": "#000000", "para-bg-color": "#FFFFFF",
    "para-border-color": "#FFFFFF", "first-line-indent": 0, "left-indent": 0,
    "right-indent": 0, "alignment": "JUSTIFY", "space-before": 0, "space-after": 0,
    "border-width": 0, "border-padding": 0, "horizontal-scale": 1.0, "dpi": 72,
    "auto-crop-last-page": False, "auto-crop-width": False, "newline-markup": LINE_BREAK_MARKUP,
}
_ALIGN_NAMES = ("LEFT", "CENTER", "RIGHT", "JUSTIFY")


def _glyph_value(key: str, value: Any) -> Any:
    """A value as Glyph's script accepts it -> one ``RenderConfig`` reads.

    Glyph turns colours into reportlab ``HexColor`` objects and an unknown alignment name into
    JUSTIFY; configs that went through its ``load_config`` carry those converted values.
    """
    if key.endswith("color") and hasattr(value, "hexval"):  # a reportlab Color
        return "#" + str(value.hexval())[2:]
    if key == "alignment" and isinstance(value, str) and value.upper() not in _ALIGN_NAMES:
        return "JUSTIFY"
    return value


def glyph_script_config(config: dict[str, Any], *, relative_to: Path | None = None
                        ) -> RenderConfig:
    """The ``RenderConfig`` Glyph's script would render ``config`` with (its defaults filled in).

    A config naming a font renders with that font alone, as Glyph's does (no fallback fonts),
    unless it lists ``fallback-fonts`` itself.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a dict of Glyph's keys, got {type(config).__name__}")
    given = {str(k).replace("_", "-"): _glyph_value(str(k).replace("_", "-"), v)
             for k, v in config.items()}
    merged = {**GLYPH_SCRIPT_DEFAULTS, **given}
    if not merged.get("line-height"):  # Glyph: ``config.get('line-height') or font_size + 1``
        size = merged["font-size"]
        merged["line-height"] = (size if isinstance(size, (int, float)) else float(size)) + 1
    if merged.get("font-path") and "fallback-fonts" not in merged:
        merged["fallback-fonts"] = []
    return RenderConfig.from_dict(merged, relative_to=relative_to)


def text_to_images(text: str, output_dir: str | os.PathLike[str],
                   config_path: str | os.PathLike[str] | None = None,
                   config_dict: dict[str, Any] | None = None,
                   unique_id: str | None = None) -> list[str]:
    """Render ``text`` into ``output_dir/unique_id/page_NNN.png``; return their absolute paths.

    ``config_dict`` (Glyph's JSON keys) wins over ``config_path`` (a Glyph JSON config file);
    one of them is required. ``unique_id`` defaults to the first 16 hex digits of the text's
    MD5, as in Glyph.
    """
    if config_dict is None:
        if config_path is None:
            raise ValueError("Must provide either config_path or config_dict")
        path = Path(config_path)
        cfg = glyph_script_config(_read_config(path), relative_to=path.parent)
    else:
        cfg = glyph_script_config(config_dict)
    if unique_id is None:
        import hashlib  # here: OpenSSL's load is ~5 ms of every render command's start

        unique_id = hashlib.md5(text.encode()).hexdigest()[:16]
    out_root = os.path.join(os.fspath(output_dir), unique_id)
    result = render_to_dir(text, cfg, out_root, progress=False)
    return [os.path.abspath(os.path.join(out_root, f"page_{p.number:03d}.png"))
            for p in result.pages]


def _read_config(path: Path) -> dict[str, Any]:
    """A Glyph JSON config file's object, or a one-line error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a JSON object, "
                          f"got {type(data).__name__}")
    return data
