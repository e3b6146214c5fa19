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
from dataclasses import dataclass
from typing import Any

from ..errors import EndpointOutage, GlyphRenderError
from ..files import RecordWriter
from .inputs import BadLine, Item, count_entries, iter_entries
from .local import LocalEngine
from .options import JobSettings
from .records import OutputState, compact, latest_records, record_key, scan_output
from .summary import Progress, format_summary, summarize, write_summary

__all__ = ["RunOptions", "run_job"]


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


@dataclass(frozen=True)
class RunOptions:
    """How to run a job (the flags that are not settings of its items)."""

    input_path: str
    engine: str = "local"
    workers: int | None = None
    concurrency: int = 8
    retry_failed: bool = False
    limit: int | None = None
    progress: bool | None = None
    default_question: str | None = None
    ray_address: str | None = None
    quiet: bool = False


def run_job(s: JobSettings, *, input_path: str, engine: str = "local", workers: int | None = None,
            concurrency: int = 8, retry_failed: bool = False, limit: int | None = None,
            progress: bool | None = None, default_question: str | None = None,
            ray_address: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a job; returns the summary (also written beside the output)."""
    t_start = time.perf_counter()
    opts = RunOptions(input_path, engine, workers, concurrency, retry_failed, limit, progress,
                      default_question, ray_address, quiet)
    pool, shown = _endpoints(s, engine)
    try:
        return _run(s, opts, pool, shown, t_start)
    finally:
        if pool is not None:
            pool.close()


def _endpoints(s: JobSettings, engine: str) -> tuple[Any, list[str] | None]:
    """The endpoint pool (checked: the dead ones dropped) and the URLs as shown; no pool for
    modes that ask nothing, or for Ray (its actors make their own clients)."""
    if not s.needs_endpoint:
        return None, None
    from .endpoints import EndpointPool  # loads openai: only when requests are made

    pool = EndpointPool(s.endpoint.endpoints, balance=s.balance,  # type: ignore[arg-type]
                        outage_wait=s.outage_wait, **s.client_kwargs())
    try:
        dropped = pool.check()
    except GlyphRenderError as exc:
        pool.close()
        if s.endpoint.api_key_env != "OPENAI_API_KEY":
            raise GlyphRenderError(f"{exc} (this job reads the key from "
                                   f"${s.endpoint.api_key_env})") from None
        raise
    for n in dropped:
        print(f"glyph-render batch: {n}", file=sys.stderr)
    shown = pool.urls
    if engine == "ray":  # the actors make their own clients, for the endpoints alive
        s.endpoint.endpoints = pool.raw_urls
        pool.close()
        return None, shown
    return pool, shown


def _open_output(s: JobSettings) -> tuple[RecordWriter, OutputState]:
    """The locked output and what it already holds (a torn tail cut, corrupt lines noted)."""
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
    return writer, state


def _pending(s: JobSettings, opts: RunOptions, state: OutputState,
             counts: dict[str, int]) -> Iterator[Item | BadLine]:
    """The input entries this run does: not done already, at most ``limit`` of them."""
    for entry in iter_entries(opts.input_path, s.mode, default_question=opts.default_question):
        key = f"#line:{entry.line}" if isinstance(entry, BadLine) else entry.key
        if state.done(key, retry_failed=opts.retry_failed):
            counts["skipped"] += 1
            continue
        if opts.limit is not None and counts["queued"] >= opts.limit:
            return
        counts["queued"] += 1
        yield entry


def _expected(opts: RunOptions, state: OutputState) -> int:
    """How many entries this run will do, for the progress bar's ETA (one quick pass)."""
    total = max(0, count_entries(opts.input_path) - sum(
        1 for st in state.latest.values() if st == "ok" or not opts.retry_failed))
    return total if opts.limit is None else min(total, opts.limit)


def _run(s: JobSettings, opts: RunOptions, pool: Any, shown: list[str] | None,
         t_start: float) -> dict[str, Any]:
    writer, state = _open_output(s)
    counts = {"skipped": 0, "queued": 0, "written": 0, "replaced": 0}
    progress = sys.stderr.isatty() if opts.progress is None else opts.progress
    bar = Progress(_expected(opts, state) if progress else None, progress, f"batch {s.mode}")
    run_stats = {"ok": 0, "error": 0, "invalid": 0, "pages": 0}

    with writer:
        def emit(rec: dict[str, Any]) -> None:
            writer.write(rec)
            if record_key(rec) in state.latest:
                counts["replaced"] += 1
            counts["written"] += 1
            run_stats[rec["status"]] = run_stats.get(rec["status"], 0) + 1
            if rec["status"] == "ok":
                run_stats["pages"] += rec.get("pages") or 0
            bar.update(rec)

        stopped: EndpointOutage | None = None
        try:
            with _sigterm_as_interrupt():
                if opts.engine == "ray":
                    from .ray_engine import RayEngine

                    RayEngine(s, concurrency=opts.concurrency, address=opts.ray_address,
                              workers=opts.workers).run(_pending(s, opts, state, counts), emit)
                else:
                    LocalEngine(s, workers=opts.workers, concurrency=opts.concurrency,
                                pool=pool).run(_pending(s, opts, state, counts), emit)
        except EndpointOutage as exc:  # the records so far are kept and summarised
            stopped = exc
        finally:
            bar.close()
        compacted = 0  # still under the lock: no other job sees the file mid-rename
        if state.needs_compaction or counts["replaced"]:
            compacted = compact(s.output)
    seconds = time.perf_counter() - t_start
    run = {
        "engine": opts.engine, "processed": counts["written"], "skipped": counts["skipped"],
        "retried": counts["replaced"], "compacted_lines": compacted,
        "seconds": round(seconds, 3),
        "items_per_s": round(counts["written"] / seconds, 3) if seconds else None,
        "pages_per_s": round(run_stats["pages"] / seconds, 3) if seconds else None,
        **{f"{k}_this_run": v for k, v in run_stats.items()},
        "torn_tail_bytes_cut": state.truncated_bytes,
        "endpoints": ({u: c for u, c in zip(pool.urls, pool.calls, strict=True)}
                      if pool is not None else shown),
        "outage": pool.outage.to_json() if pool is not None else None,
    }
    summary = summarize(latest_records(s.output), run)
    path = write_summary(summary, s.output)
    if not opts.quiet:
        print(format_summary(summary))
        print(f"records: {s.output}\nsummary: {path}")
    if stopped is not None:
        raise stopped
    return summary
