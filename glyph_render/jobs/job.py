"""One job from start to end: resume scan, engine, compaction, summary.

Resume rule (both engines): the output is scanned first (a torn last line is cut off); an
input entry is skipped when the newest record of its key is ``ok``, or is an error and
``--retry-failed`` was not given. Records are appended as they finish, by one writer. When the
run ends, if any key now has more than one record (a retried failure) or a corrupt line was
found, the file is compacted to the newest record per key, so a finished job's output has
exactly one line per input entry.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import GlyphRenderError
from .inputs import BadLine, Item, count_entries, iter_entries
from .local import LocalEngine
from .options import JobSettings
from .records import RecordWriter, compact, latest_records, record_key, scan_output
from .summary import Progress, format_summary, summarize, write_summary

__all__ = ["run_job"]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) ends it like Ctrl-C: workers shut down cleanly."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job(s: JobSettings, *, input_path: str, engine: str = "local", workers: int | None = None,
            concurrency: int = 8, retry_failed: bool = False, limit: int | None = None,
            progress: bool | None = None, default_question: str | None = None,
            ray_address: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a job; returns the summary (also written beside the output)."""
    t_start = time.perf_counter()
    pool = None
    shown: list[str] | None = None  # endpoint URLs without any user:password part
    if s.needs_endpoint:
        from .endpoints import EndpointPool  # loads openai: only when requests are made

        pool = EndpointPool(s.endpoints, balance=s.balance,  # type: ignore[arg-type]
                            **s.client_kwargs())
        try:
            dropped = pool.check()
        except GlyphRenderError as exc:
            pool.close()
            if s.api_key_env != "OPENAI_API_KEY":
                raise GlyphRenderError(f"{exc} (this job reads the key from "
                                       f"${s.api_key_env})") from None
            raise
        for n in dropped:
            print(f"glyph-render batch: {n}", file=sys.stderr)
        shown = pool.urls
        if engine == "ray":  # the actors make their own clients, for the endpoints alive
            s.endpoints = pool.raw_urls
            pool.close()
            pool = None
    try:
        return _run(s, pool, shown, t_start, input_path=input_path, engine=engine, workers=workers,
                    concurrency=concurrency, retry_failed=retry_failed, limit=limit,
                    progress=progress, default_question=default_question,
                    ray_address=ray_address, quiet=quiet)
    finally:
        if pool is not None:
            pool.close()


def _run(s: JobSettings, pool: Any, shown: list[str] | None, t_start: float, *,
         input_path: str, engine: str, workers: int | None, concurrency: int,
         retry_failed: bool, limit: int | None, progress: bool | None,
         default_question: str | None, ray_address: str | None,
         quiet: bool) -> dict[str, Any]:
    writer = RecordWriter(s.output)  # takes the lock before anything reads or cuts the file
    try:
        state = scan_output(s.output)
    except BaseException:
        writer.close()
        raise
    other = sorted(state.modes - {s.mode})
    if other:
        writer.close()
        raise GlyphRenderError(
            f"{s.output} holds records of a {other[0]!r} job; a {s.mode!r} job would take "
            "its finished ids as done: write to another output file")
    if state.truncated_bytes:
        print(f"glyph-render batch: cut a torn last line ({state.truncated_bytes} bytes) from "
              f"{s.output}", file=sys.stderr)
    if state.corrupt_lines:
        print(f"glyph-render batch: ignored {len(state.corrupt_lines)} unreadable line(s) in "
              f"{s.output} (first: line {state.corrupt_lines[0]}); their items are redone",
              file=sys.stderr)

    counts = {"skipped": 0, "queued": 0, "written": 0, "replaced": 0}

    def pending() -> Iterator[Item | BadLine]:
        for entry in iter_entries(input_path, s.mode, default_question=default_question):
            key = f"#line:{entry.line}" if isinstance(entry, BadLine) else entry.key
            if state.done(key, retry_failed=retry_failed):
                counts["skipped"] += 1
                continue
            if limit is not None and counts["queued"] >= limit:
                return
            counts["queued"] += 1
            yield entry

    if progress is None:
        progress = sys.stderr.isatty()
    total = None
    if progress:  # one quick pass over the input (newlines only) for the ETA
        total = max(0, count_entries(input_path) - sum(
            1 for st in state.latest.values() if st == "ok" or not retry_failed))
        if limit is not None:
            total = min(total, limit)
    bar = Progress(total, progress, f"batch {s.mode}")
    run_stats = {"ok": 0, "error": 0, "invalid": 0, "pages": 0}

    with writer:
        def emit(rec: dict[str, Any]) -> None:
            writer.write(rec)
            key = record_key(rec)
            if key in state.latest:
                counts["replaced"] += 1
            counts["written"] += 1
            run_stats[rec["status"]] = run_stats.get(rec["status"], 0) + 1
            if rec["status"] == "ok":
                run_stats["pages"] += rec.get("pages") or 0
            bar.update(rec)

        try:
            with _sigterm_as_interrupt():
                if engine == "ray":
                    from .ray_engine import RayEngine

                    RayEngine(s, concurrency=concurrency, address=ray_address,
                              workers=workers).run(pending(), emit)
                else:
                    LocalEngine(s, workers=workers, concurrency=concurrency,
                                pool=pool).run(pending(), emit)
        finally:
            bar.close()
        compacted = 0  # still under the lock: no other job sees the file mid-rename
        if state.needs_compaction or counts["replaced"]:
            compacted = compact(s.output)
    seconds = time.perf_counter() - t_start
    run = {
        "engine": engine, "processed": counts["written"], "skipped": counts["skipped"],
        "retried": counts["replaced"], "compacted_lines": compacted,
        "seconds": round(seconds, 3),
        "items_per_s": round(counts["written"] / seconds, 3) if seconds else None,
        "pages_per_s": round(run_stats["pages"] / seconds, 3) if seconds else None,
        **{f"{k}_this_run": v for k, v in run_stats.items()},
        "torn_tail_bytes_cut": state.truncated_bytes,
        "endpoints": ({u: c for u, c in zip(pool.urls, pool.calls, strict=True)}
                      if pool is not None else shown),
    }
    summary = summarize(latest_records(s.output), run)
    path = write_summary(summary, s.output)
    if not quiet:
        print(format_summary(summary))
        print(f"records: {s.output}\nsummary: {path}")
    return summary
