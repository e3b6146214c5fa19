"""``glyph-render eval TASK``: accuracy of a Glyph endpoint, always beside its compression.

Tasks: ``niah`` (RULER-style needles in corpus haystacks, generated here; heat map),
``longbench`` (LongBench JSONL the user has, LongBench's prompts and metrics) and ``mrcr``
(OpenAI's multi-round co-reference, the conversation rendered). Every run records text
tokens, vision tokens, the compression ratio and prompt tokens per item; ``--as-text`` runs the
same items with the context sent as text, the baseline to compare with. See
docs/evaluation.md.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ..files import json_bytes
from ..settings import Parser

__all__ = ["TASKS", "build_parser", "main"]

#: task -> (module, one-line description)
TASKS = {
    "niah": ("niah_task", "RULER-style needle in a haystack over the local corpus, scored per "
                          "depth x length, with a heat map"),
    "longbench": ("longbench_task", "LongBench JSONL: LongBench's prompts (context rendered) "
                                    "and metrics, per dataset and averaged"),
    "mrcr": ("mrcr_task", "OpenAI MRCR: the conversation rendered as User:/Assistant: pages, "
                          "the request as text"),
}


def build_parser() -> Parser:
    p = Parser(
        prog="glyph-render eval",
        description="Score a Glyph endpoint (vLLM/SGLang) on a long-context benchmark. Every "
                    "score is reported with the compression ratio and prompt tokens it took; "
                    "--as-text runs the text-only baseline through the same harness.",
    )
    sub = p.add_subparsers(dest="task", required=True, metavar="TASK")
    from .runner import add_common_args

    for name, (module, help_text) in TASKS.items():
        mod = importlib.import_module(f".{module}", __package__)
        tp = sub.add_parser(name, help=help_text, description=help_text + ".")
        mod.add_arguments(tp)
        add_common_args(tp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task; print the table (or, with --json, results.json).

    Exit status: 0 when every item was answered, 1 when some failed (their records say why;
    they score 0) or some input entries were invalid (left out of the scores), 2 on an error
    that stops the run (raised as GlyphRenderError for the CLI to print).
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    mod = importlib.import_module(f".{TASKS[args.task][0]}", __package__)
    results, table = mod.run(args)
    if args.json:
        sys.stdout.write(json_bytes(results).decode("utf-8") + "\n")
    else:
        sys.stdout.write(table + "\n")
    sys.stdout.flush()
    return 1 if results["errors"] or results["invalid"] else 0
