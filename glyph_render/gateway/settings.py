"""The gateway's settings (flags) and the per-request ``"glyph": {...}`` options.

Flags set the defaults; a request may steer its own compression with a ``glyph`` object in the
body, which is validated here and never forwarded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from glyph_render.config import RenderConfig
from glyph_render.errors import ConfigError
from glyph_render.settings import check_number

from .errors import ApiError

__all__ = ["MODES", "GatewaySettings", "RequestOptions", "request_options"]

MODES = ("auto", "always", "never")
UPSTREAM_KEY_ENV = "GLYPH_UPSTREAM_API_KEY"


@dataclass(frozen=True)
class GatewaySettings:
    """Everything ``glyph-render gateway`` is told; see docs/gateway.md for each."""

    upstream: str
    host: str = "127.0.0.1"
    port: int = 8100
    api_keys: tuple[str, ...] = ()
    upstream_key_env: str = UPSTREAM_KEY_ENV
    # policy
    mode: str = "auto"
    threshold: int = 2000  # text tokens above which a text part becomes pages
    keep_turns: int = 2  # the most recent messages before the latest user turn stay text
    question_tokens: int = 512  # a leading/trailing paragraph this short stays text
    config: RenderConfig | None = None  # None: the preset detected from each document
    dpi: float | None = None
    profile: str = "glyph"
    tokenizer: str | None = None  # None: the profile's stand-in (cl100k_base)
    min_px_per_em: float | None = None
    answer_reserve: int = 1024  # tokens kept for the answer when a request sets no max_tokens
    max_model_len: int | None = None  # None: read from the upstream's /v1/models
    # throughput
    render_workers: int = max(1, os.cpu_count() or 1)
    cache_mb: float = 512.0
    max_concurrency: int = 64
    retry_after: int = 1  # seconds told to callers refused for saturation
    max_body_mb: float = 64.0
    timeout: float = 600.0
    render_timeout: float = 120.0
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    models_ttl: float = 60.0
    map_concurrency: int = 4
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode: {self.mode!r} is not one of {', '.join(MODES)}")
        positive = ("render_workers", "max_concurrency", "map_concurrency", "answer_reserve")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: {value!r} must be >= 1")
        for name in ("threshold", "keep_turns", "question_tokens", "max_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')}: must be >= 0, "
                                  f"got {getattr(self, name)!r}")
        # numbers given from Python get the flags' checks: finite, > 0 (or >= 0)
        for name in ("cache_mb", "max_body_mb", "timeout", "render_timeout", "max_backoff",
                     "max_retry_after", "models_ttl"):
            check_number(f"--{name.replace('_', '-')}", getattr(self, name))
        check_number("--backoff", self.backoff, zero=True)
        for name in ("dpi", "min_px_per_em"):
            if getattr(self, name) is not None:
                check_number(f"--{name.replace('_', '-')}", getattr(self, name))
        if not 0 < self.port < 65536 and self.port != 0:
            raise ConfigError(f"--port: {self.port!r} is not a TCP port")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def upstream_key(self) -> str | None:
        """The upstream's key, from the environment only (callers' keys are never forwarded)."""
        return os.environ.get(self.upstream_key_env) or None


@dataclass(frozen=True)
class RequestOptions:
    """One request's policy: the flags' defaults, overridden by its ``glyph`` object."""

    mode: str
    threshold: int
    keep_turns: int
    budget: int | None = None  # vision tokens for all pages together
    dpi: float | None = None


_INTS = {"threshold", "keep_turns", "budget"}


def request_options(body: dict[str, Any], settings: GatewaySettings) -> RequestOptions:
    """Pop ``glyph`` from ``body`` and validate it; a bad key or value is a 400 naming it."""
    opts = RequestOptions(settings.mode, settings.threshold, settings.keep_turns,
                          None, settings.dpi)
    raw = body.pop("glyph", None)
    if raw is None:
        return opts
    if not isinstance(raw, dict):
        raise ApiError(400, f"'glyph' must be an object, got {type(raw).__name__}",
                       param="glyph", code="invalid_glyph_option")
    known = {f.name for f in fields(RequestOptions)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"glyph.{key}"
        if key not in known:
            raise ApiError(400, f"{where}: unknown option (known: {', '.join(sorted(known))})",
                           param=where, code="invalid_glyph_option")
        if key == "mode":
            if value not in MODES:
                raise ApiError(400, f"{where}: {value!r} is not one of {', '.join(MODES)}",
                               param=where, code="invalid_glyph_option")
        elif key in _INTS:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < (1 if key == "budget" else 0)):
                raise ApiError(400, f"{where}: {value!r} must be a whole number >= "
                               f"{1 if key == 'budget' else 0}", param=where,
                               code="invalid_glyph_option")
        elif key == "dpi" and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
                or not 10 <= value <= 600):
            raise ApiError(400, f"{where}: {value!r} must be a number of dots per inch in "
                           "10..600", param=where, code="invalid_glyph_option")
        changes[key] = value
    if changes.get("budget") is not None and changes.get("dpi") is not None:
        raise ApiError(400, "glyph: give dpi or budget, not both", param="glyph",
                       code="invalid_glyph_option")
    return replace(opts, **changes)
