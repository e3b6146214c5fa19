"""Exception types: one family, so callers can catch ``GlyphRenderError`` and the CLI can turn
every expected failure into one clear line and exit code 2."""

from __future__ import annotations


class GlyphRenderError(Exception):
    """Base of every error raised on purpose (bad input, bad config, server trouble)."""


class ConfigError(GlyphRenderError, ValueError):
    """A config key is unknown, mistyped or impossible; the message names key and value."""


class InputError(GlyphRenderError, ValueError):
    """The document cannot be read as text: missing, a folder, binary, undecodable, empty."""


class FontError(GlyphRenderError, ValueError):
    """A font file is missing or is not a font."""


class OutputError(GlyphRenderError, OSError):
    """Pages cannot be written where asked."""


class TokenizerError(GlyphRenderError, ValueError):
    """A text tokenizer cannot be loaded (unknown name, bad tokenizer.json, missing extra)."""


class ProfileError(GlyphRenderError, ValueError):
    """A vision model profile is unknown or its preprocessor_config.json is malformed."""


class ImageSizeError(GlyphRenderError, ValueError):
    """An image the model cannot take: aspect ratio past the profile's limit, or degenerate."""


class BudgetError(GlyphRenderError, ValueError):
    """No allowed rendering config fits the vision-token budget; says what the best one needs."""
