"""``glyph-render batch`` flags, and the picklable settings every stage receives.

Rendering and endpoint flags are every command's own (``--preset``, ``--config``, ``--dpi``,
``--budget``, ``--endpoint``, ``--model``, ... from :mod:`glyph_render.settings`), so a config
tuned on one document carries over to a batch unchanged. An item's own ``config`` (as Glyph's
batch files carry it) applies on top of them: the item is the more specific of the two.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, OutputError
from ..settings import (
    PROG,
    EndpointSettings,
    Parser,
    RenderSettings,
    add_endpoint_flags,
    add_render_flags,
    at_least,
    non_empty,
    non_negative,
)

__all__ = ["DEFAULT_OUTAGE_WAIT", "MODES", "OCR_PROMPT", "JobSettings", "build_parser",
           "settings_from_args"]

MODES = ("qa", "ocr", "render", "plan")
BALANCE = ("least", "round-robin")
DEFAULT_OUTAGE_WAIT = 600.0  # seconds: a vLLM restart, weights loaded again, fits well within
OCR_PROMPT = ("Transcribe all the text on this page verbatim, in reading order. Output only the "
              "text.")


@dataclass
class JobSettings:
    """Everything a render worker, request thread or Ray actor needs; plain picklable data.

    ``render`` and ``endpoint`` are the settings every command shares (:mod:`glyph_render.
    settings`); the rest is the job's own."""

    mode: str
    output: str
    render: RenderSettings
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    pages_dir: str | None = None
    balance: str = "least"
    ocr_prompt: str = OCR_PROMPT
    keep_transcripts: bool = True
    outage_wait: float = DEFAULT_OUTAGE_WAIT

    @property
    def needs_endpoint(self) -> bool:
        return self.mode in ("qa", "ocr")

    def client_kwargs(self) -> dict[str, Any]:
        """GlyphClient keywords; the key is read here, from the environment, never a flag."""
        return {**self.endpoint.client_kwargs(self.render), "encode_workers": 2}


def build_parser() -> Parser:
    p = Parser(
        prog=f"{PROG} batch",
        description="Run a whole dataset: render, plan, transcribe (ocr) or answer (qa) every "
                    "item of a JSONL file or folder of .txt files. Resumable: finished ids in "
                    "OUT are skipped on restart.",
    )
    p.add_argument("mode", choices=MODES,
                   help="qa: answer each item's question; ocr: transcribe each page and score "
                        "the character error rate; render: pages to a folder per item; plan: "
                        "token accounting only (no endpoint)")
    p.add_argument("input", type=non_empty,
                   help="JSONL (id/unique_id, context/text/path, question, answers, config) or "
                        "a folder of .txt files")
    p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", type=non_empty,
                   help="records, one JSON line per item; OUT.summary.json is written beside it")
    p.add_argument("--pages-dir", metavar="DIR", type=non_empty,
                   help="render mode: where the page folders go (default OUT.pages/ beside OUT)")
    p.add_argument("--question", help="question for items that carry none (e.g. a .txt folder)")
    p.add_argument("--retry-failed", action="store_true",
                   help="redo items whose newest record is an error (default: skip them)")
    p.add_argument("--limit", type=at_least(0), metavar="N",
                   help="stop after N new items (a sample run)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bar on stderr (default: when stderr is a terminal)")

    add_endpoint_flags(p, many=True)
    g = p.add_argument_group("qa and ocr")
    g.add_argument("--balance", choices=BALANCE, default="least",
                   help="how endpoints share requests: fewest in flight (default) or in turn")
    g.add_argument("--ocr-prompt", default=OCR_PROMPT, help="ocr mode: the instruction per page")
    g.add_argument("--no-transcripts", dest="keep_transcripts", action="store_false",
                   help="ocr mode: keep only the scores, not the transcribed text")
    g.add_argument("--outage-wait", type=non_negative, default=DEFAULT_OUTAGE_WAIT,
                   metavar="S",
                   help="when every endpoint is unreachable, wait up to S seconds for one to "
                        "come back (probing with backoff) before stopping the job with its "
                        "unfinished items undone; 0 stops at once "
                        f"(default {DEFAULT_OUTAGE_WAIT:g})")

    g = p.add_argument_group("concurrency")
    g.add_argument("--workers", type=at_least(0), default=None, metavar="N",
                   help="render processes (default: one per CPU; 0 renders in this process)")
    g.add_argument("--concurrency", type=at_least(1), default=8, metavar="N",
                   help="requests in flight at once, over all endpoints (default 8)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray (pip install 'glyph-render[ray]')")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="ray engine: cluster to join ('auto' after 'ray start'; default a "
                        "local one)")
    add_render_flags(p)
    return p




def settings_from_args(args: argparse.Namespace) -> JobSettings:
    """Validate flag combinations and resolve the job config once (per preset for auto)."""
    if not Path(args.input).exists():
        raise InputError(f"{args.input}: no such file or folder")
    if Path(args.output).is_dir():
        raise OutputError(f"-o {args.output}: is a folder; give the output JSONL's path")
    if args.mode in ("qa", "ocr") and not args.endpoint:
        raise ConfigError(f"{args.mode} mode needs --endpoint URL")
    render = RenderSettings.from_args(args, every_preset=True)
    out = Path(args.output)
    pages_dir = args.pages_dir
    if args.mode == "render" and pages_dir is None:
        pages_dir = str(out.with_name(out.name.removesuffix(".jsonl") + ".pages"))
    if pages_dir is not None:  # absolute: Ray workers may run in another directory
        pages_dir = str(Path(pages_dir).resolve())
    return JobSettings(
        mode=args.mode, output=str(out), render=render,
        endpoint=EndpointSettings.from_args(args), pages_dir=pages_dir, balance=args.balance,
        ocr_prompt=args.ocr_prompt, keep_transcripts=args.keep_transcripts,
        outage_wait=args.outage_wait,
    )
