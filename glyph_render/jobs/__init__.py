"""``glyph-render batch``: run a whole dataset through render, plan, ocr or qa, resumably.

Modules, one concept each: ``inputs`` (streaming JSONL/folder reader), ``naming`` (ids ->
safe file names), ``records`` (resume scan, compaction; the appending writer is in
:mod:`glyph_render.files`), ``options`` (the job's flags and picklable settings, over
:mod:`glyph_render.settings`), ``stages`` (what happens to one item), ``endpoints`` (load
sharing and fail-over), ``local`` and ``ray_engine`` (the two schedulers), ``summary``
(progress, metrics, summary) and ``job`` (one run, start to end). See docs/batch.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .options import JobSettings, build_parser, settings_from_args

__all__ = ["JobSettings", "build_parser", "main", "run_job"]


def run_job(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`glyph_render.jobs.job.run_job` (imported lazily: render workers import this
    package and must not pay for the HTTP client)."""
    from .job import run_job as run

    return run(*args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """``glyph-render batch MODE INPUT -o OUT.jsonl ...``.

    Exit status: 0 when every input entry has an ``ok`` record, 1 when some failed or were
    invalid (their records say why; ``--retry-failed`` redoes the failures), 2 on a job-level
    error (raised as GlyphRenderError for the CLI to print), 130 when interrupted.
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = settings_from_args(args)
    summary = run_job(
        settings, input_path=args.input, engine=args.engine, workers=args.workers,
        concurrency=args.concurrency, retry_failed=args.retry_failed, limit=args.limit,
        progress=args.progress, default_question=args.question, ray_address=args.ray_address,
    )
    return 0 if summary["error"] == 0 and summary["invalid"] == 0 else 1
