"""``glyph-render batch`` flags, and the picklable settings every stage receives.

Rendering flags are the single-document CLI's own (``--preset``, ``--config``, ``--dpi``,
``--budget``, ... from :mod:`glyph_render.cli`), so a config tuned on one document carries over
to a batch unchanged. An item's own ``config`` (as Glyph's batch files carry it) applies on top
of them: the item is the more specific of the two.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compress import DEFAULT_MAX_DPI
from ..config import RenderConfig
from ..errors import GlyphRenderError, InputError

__all__ = ["MODES", "OCR_PROMPT", "JobSettings", "build_parser", "settings_from_args"]

MODES = ("qa", "ocr", "render", "plan")
BALANCE = ("least", "round-robin")
OCR_PROMPT = ("Transcribe all the text on this page verbatim, in reading order. Output only the "
              "text.")


@dataclass
class JobSettings:
    """Everything a render worker, request thread or Ray actor needs; plain picklable data."""

    mode: str
    output: str
    bases: dict[str, RenderConfig]  # preset name -> job config (preset + --config + flags)
    preset: str = "auto"
    budget: int | None = None
    min_px_per_em: float | None = None  # None: compress's script-aware default
    max_dpi: float = DEFAULT_MAX_DPI
    overflow: str = "error"
    profile: str = "glyph"
    tokenizer: str = "cl100k_base"
    pages_dir: str | None = None
    endpoints: list[str] = field(default_factory=list)
    served_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    balance: str = "least"
    max_tokens: int | None = None
    system: str | None = None
    thinking: bool | None = None
    timeout: float = 600.0
    max_retries: int = 3
    ocr_prompt: str = OCR_PROMPT
    keep_transcripts: bool = True

    @property
    def needs_endpoint(self) -> bool:
        return self.mode in ("qa", "ocr")

    def client_kwargs(self) -> dict[str, Any]:
        """GlyphClient keywords; the key is read here, from the environment, never a flag."""
        return {
            "api_key": os.environ.get(self.api_key_env) or None, "model": self.served_model,
            "profile": self.profile, "tokenizer": self.tokenizer, "timeout": self.timeout,
            "max_retries": self.max_retries, "encode_workers": 2,
        }

    def ask_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.max_tokens is not None:
            kw["max_tokens"] = self.max_tokens
        if self.system is not None:
            kw["system"] = self.system
        if self.thinking is not None:
            kw["thinking"] = self.thinking
        return kw


def build_parser() -> argparse.ArgumentParser:
    # The CLI's flag helpers load here, not at import: render workers import this module, and
    # when the job runs as ``python -m glyph_render.cli`` the worker start-up runs that module
    # as __main__ (it must not be imported before).
    from ..cli import PROG, _budget_args, _config_flags, _token_args

    p = argparse.ArgumentParser(
        prog=f"{PROG} batch", conflict_handler="resolve",
        description="Run a whole dataset: render, plan, transcribe (ocr) or answer (qa) every "
                    "item of a JSONL file or folder of .txt files. Resumable: finished ids in "
                    "OUT are skipped on restart.",
    )
    p.add_argument("mode", choices=MODES,
                   help="qa: answer each item's question; ocr: transcribe each page and score "
                        "the character error rate; render: pages to a folder per item; plan: "
                        "token accounting only (no endpoint)")
    p.add_argument("input", help="JSONL (id/unique_id, context/text/path, question, answers, "
                                 "config) or a folder of .txt files")
    p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                   help="records, one JSON line per item; OUT.summary.json is written beside it")
    p.add_argument("--pages-dir", metavar="DIR",
                   help="render mode: where the page folders go (default OUT.pages/ beside OUT)")
    p.add_argument("--question", help="question for items that carry none (e.g. a .txt folder)")
    p.add_argument("--retry-failed", action="store_true",
                   help="redo items whose newest record is an error (default: skip them)")
    p.add_argument("--limit", type=int, metavar="N", help="stop after N new items (a sample run)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bar on stderr (default: when stderr is a terminal)")

    g = p.add_argument_group("endpoint (qa and ocr)")
    g.add_argument("--endpoint", action="append", default=[], metavar="URL",
                   help="OpenAI-compatible server (vLLM, SGLang); repeat to share the load")
    g.add_argument("--balance", choices=BALANCE, default="least",
                   help="how endpoints share requests: fewest in flight (default) or in turn")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY); "
                        "the key itself is never printed")
    g.add_argument("--max-tokens", type=int, metavar="N", help="answer length limit")
    g.add_argument("--system", help="system prompt")
    g.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                   help="ask for (or switch off) the model's reasoning")
    g.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds per request (default 600)")
    g.add_argument("--retries", "--max-retries", dest="max_retries", type=int, default=3,
                   metavar="N", help="retries of a 429/5xx/dropped request (default 3)")
    g.add_argument("--ocr-prompt", default=OCR_PROMPT, help="ocr mode: the instruction per page")
    g.add_argument("--no-transcripts", dest="keep_transcripts", action="store_false",
                   help="ocr mode: keep only the scores, not the transcribed text")

    g = p.add_argument_group("concurrency")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="render processes (default: one per CPU; 0 renders in this process)")
    g.add_argument("--concurrency", type=int, default=8, metavar="N",
                   help="requests in flight at once, over all endpoints (default 8)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray (pip install 'glyph-render[ray]')")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="ray engine: cluster to join ('auto' after 'ray start'; default a "
                        "local one)")
    _token_args(p)  # --profile (vision-token profile), --tokenizer
    p.add_argument("--model", dest="served_model", metavar="NAME",
                   help="served model name (default: the first one /v1/models lists); as in "
                        "'glyph-render ask', the vision profile is --profile")
    _budget_args(p)
    _config_flags(p)
    return p


def settings_from_args(args: argparse.Namespace) -> JobSettings:
    """Validate flag combinations and resolve the job config once (per preset for auto)."""
    from ..cli import preset_bases

    if args.budget is not None and args.cfg_dpi is not None:
        raise GlyphRenderError("give --dpi or --budget, not both")
    if args.max_retries < 0 or not args.timeout > 0:
        raise GlyphRenderError("--retries must be >= 0 and --timeout > 0")
    if args.concurrency < 1:
        raise GlyphRenderError(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.workers is not None and args.workers < 0:
        raise GlyphRenderError(f"--workers must be >= 0, got {args.workers}")
    if args.limit is not None and args.limit < 0:
        raise GlyphRenderError(f"--limit must be >= 0, got {args.limit}")
    if not Path(args.input).exists():
        raise InputError(f"{args.input}: no such file or folder")
    if Path(args.output).is_dir():
        raise GlyphRenderError(f"-o {args.output}: is a folder; give the output JSONL's path")
    if args.mode in ("qa", "ocr") and not args.endpoint:
        raise GlyphRenderError(f"{args.mode} mode needs --endpoint URL")
    bases = preset_bases(args)
    out = Path(args.output)
    pages_dir = args.pages_dir
    if args.mode == "render" and pages_dir is None:
        pages_dir = str(out.with_name(out.name.removesuffix(".jsonl") + ".pages"))
    if pages_dir is not None:  # absolute: Ray workers may run in another directory
        pages_dir = str(Path(pages_dir).resolve())
    return JobSettings(
        mode=args.mode, output=str(out), bases=bases, preset=args.preset, budget=args.budget,
        min_px_per_em=args.min_px_per_em,
        max_dpi=args.max_dpi or DEFAULT_MAX_DPI, overflow=args.overflow, profile=args.profile,
        tokenizer=args.tokenizer, pages_dir=pages_dir, endpoints=list(args.endpoint),
        served_model=args.served_model, api_key_env=args.api_key_env, balance=args.balance,
        max_tokens=args.max_tokens, system=args.system, thinking=args.thinking,
        timeout=args.timeout, max_retries=args.max_retries, ocr_prompt=args.ocr_prompt,
        keep_transcripts=args.keep_transcripts,
    )


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, JobSettings]:
    args = build_parser().parse_args(list(argv))
    return args, settings_from_args(args)
