"""All settings of a ``serve-ocr`` server in one frozen dataclass (CLI flags map 1:1 to fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from glyph_render.errors import ConfigError

from .faults import FaultPlan, FaultRule

__all__ = ["DEFAULT_MODEL", "REASONING_FIELDS", "REASONING_PARSERS", "TOKEN_RULES", "ServerConfig"]

DEFAULT_MODEL = "zai-org/Glyph"
#: "glyph": the client's own arithmetic; "wrong": every image billed its unmerged patch count.
TOKEN_RULES = ("glyph", "wrong")
REASONING_PARSERS = ("glm45",)
#: Where reasoning goes with --reasoning-parser: vLLM >= 0.11 uses ``reasoning``, SGLang and
#: older vLLM ``reasoning_content``; "both" serves clients written for either.
REASONING_FIELDS = {
    "reasoning": ("reasoning",),
    "reasoning_content": ("reasoning_content",),
    "both": ("reasoning", "reasoning_content"),
}


@dataclass(frozen=True)
class ServerConfig:
    """How the stand-in listens, counts, answers and misbehaves."""

    host: str = "127.0.0.1"
    port: int = 0
    served_model_names: tuple[str, ...] = (DEFAULT_MODEL,)
    max_model_len: int = 65536
    # token accounting
    profile: str = "glyph"
    tokenizer: str = "cl100k_base"  # the client's default, so the two agree out of the box
    token_rule: str = "glyph"
    image_token_scale: float = 1.0
    # output format
    reasoning_parser: str | None = None
    reasoning_field: str = "both"
    box: bool = False
    stream_words: int = 3
    # OCR and answering
    ocr: bool = True
    ocr_scale: float | None = None
    ocr_psm: int = 6
    ocr_lang: str = "eng"
    ocr_workers: int = min(4, os.cpu_count() or 1)
    top_k: int = 1
    allowed_local_media_path: str | None = None
    # vLLM look-alike settings
    api_key: str | None = None
    enable_prefix_caching: bool = False
    block_size: int = 16
    # faults
    delay: float = 0.0
    chunk_delay: float = 0.0
    fail_429: str | None = None
    retry_after: float = 1.0
    fail_500: str | None = None
    drop_stream: str | None = None
    drop_connection: str | None = None
    seed: int | None = None
    # logging
    quiet: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.served_model_names, str):
            object.__setattr__(self, "served_model_names", (self.served_model_names,))
        if not self.served_model_names or not all(self.served_model_names):
            raise ConfigError("--served-model-name: give at least one non-empty name")
        if self.max_model_len < 1:
            raise ConfigError(f"--max-model-len must be >= 1, got {self.max_model_len}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        if self.token_rule not in TOKEN_RULES:
            raise ConfigError(
                f"--token-rule must be one of {', '.join(TOKEN_RULES)}, got {self.token_rule!r}"
            )
        if not self.image_token_scale > 0:
            raise ConfigError(f"--image-token-scale must be > 0, got {self.image_token_scale!r}")
        if self.reasoning_parser is not None and self.reasoning_parser not in REASONING_PARSERS:
            raise ConfigError(
                f"--reasoning-parser: only {', '.join(REASONING_PARSERS)} is supported, "
                f"got {self.reasoning_parser!r}"
            )
        if self.ocr_scale is not None and not 0.25 <= self.ocr_scale <= 8:
            raise ConfigError(f"--ocr-scale must be in [0.25, 8] or auto, got {self.ocr_scale!r}")
        if self.reasoning_field not in REASONING_FIELDS:
            raise ConfigError(
                f"--reasoning-field must be one of {', '.join(REASONING_FIELDS)}, "
                f"got {self.reasoning_field!r}"
            )
        for name in ("delay", "chunk_delay", "retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
        if self.stream_words < 1 or self.top_k < 1 or self.ocr_workers < 1:
            raise ConfigError("--stream-words, --top-k and --ocr-workers must be >= 1")
        if self.allowed_local_media_path is not None and not os.path.isdir(
            self.allowed_local_media_path
        ):
            raise ConfigError(
                f"--allowed-local-media-path {self.allowed_local_media_path!r} is not a folder"
            )
        self.fault_plan()  # validates the fault rules now rather than on the first request

    def with_(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes``; unknown names raise ConfigError (typos fail loudly)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown serve-ocr settings: {', '.join(unknown)}")
        return replace(self, **changes)

    @property
    def reasoning_fields(self) -> tuple[str, ...]:
        return REASONING_FIELDS[self.reasoning_field]

    def fault_plan(self) -> FaultPlan:
        rules = {
            "drop_connection": FaultRule.parse(self.drop_connection, flag="--drop-connection"),
            "fail_429": FaultRule.parse(self.fail_429, flag="--fail-429"),
            "fail_500": FaultRule.parse(self.fail_500, flag="--fail-500"),
            "drop_stream": FaultRule.parse(self.drop_stream, flag="--drop-stream"),
        }
        return FaultPlan(rules, seed=self.seed)
