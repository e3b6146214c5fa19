"""The output file: one JSON record per line, appended atomically, scanned on restart.

Crash safety comes from three rules:

* one writer (a thread of the local engine, the driver of the Ray engine) appends each record
  as one ``write`` of a whole line to a file opened ``O_APPEND``, then ``fsync``\\s it, so a
  record is either on disk whole or (killed mid-``write``, power lost) is a torn last line;
* on restart :func:`scan_output` truncates anything after the last newline (a torn tail), and
  ignores (and later compacts away) a line that is not a JSON record;
* the newest record per key wins, everywhere: in the resume scan, the summary and compaction.
  A ``--retry-failed`` run appends the new record after the old error record; when a run
  finishes, :func:`compact` rewrites the file (temporary file, ``fsync``, ``rename``) so that
  it holds exactly one line per key again.

A record's key is its id's JSON text; a record for an input line that could not be read (bad
JSON, no id, duplicate id) is keyed by its line number instead, so it never shadows the good
record of the same id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..files import atomic_write, dumps_record
from .naming import id_key

__all__ = ["OutputState", "compact", "latest_records", "record_key", "scan_output"]

OK, ERROR, INVALID = "ok", "error", "invalid"


def record_key(rec: dict[str, Any]) -> str | None:
    """What makes two records the same item; None for something that is not a record."""
    if not isinstance(rec, dict) or "status" not in rec:
        return None
    if rec["status"] == INVALID:
        line = rec.get("line")
        return f"#line:{line}" if isinstance(line, int) else None
    if "id" not in rec:
        return None
    return id_key(rec["id"])


@dataclass
class OutputState:
    """What an existing output holds: the newest status per key, and what needed repair."""

    latest: dict[str, str] = field(default_factory=dict)  # key -> ok / error / invalid
    lines: int = 0
    superseded: int = 0  # records a newer record of the same key replaces
    corrupt_lines: list[int] = field(default_factory=list)
    truncated_bytes: int = 0
    modes: set[str] = field(default_factory=set)  # the job modes the records were written by

    def done(self, key: str, *, retry_failed: bool) -> bool:
        """Whether the item with ``key`` needs no more work in this run."""
        status = self.latest.get(key)
        return status == OK or (status is not None and not retry_failed)

    @property
    def needs_compaction(self) -> bool:
        return bool(self.superseded or self.corrupt_lines)


def _iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, line)`` over complete lines, streamed."""
    with open(path, "rb") as f:
        offset = 0
        for number, line in enumerate(f, 1):
            yield number, offset, line
            offset += len(line)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if record_key(rec) is not None else None


def scan_output(path: str | os.PathLike[str], *, repair: bool = True) -> OutputState:
    """Read an existing output: cut a torn tail (when ``repair``), collect the newest statuses."""
    p = Path(path)
    state = OutputState()
    if not p.exists():
        return state
    size = p.stat().st_size
    end = _complete_end(p, size)
    if end < size:
        state.truncated_bytes = size - end
        if repair:
            try:
                os.truncate(p, end)
            except OSError as exc:
                raise OutputError(f"{p}: cannot cut its torn last line ({exc.strerror})") from None
    for number, offset, line in _iter_lines(p):
        if offset >= end:
            break
        state.lines += 1
        rec = _parse(line)
        if rec is None:
            if line.strip():
                state.corrupt_lines.append(number)
            continue
        key = record_key(rec)
        assert key is not None
        if key in state.latest:
            state.superseded += 1
        state.latest[key] = rec["status"]
        if isinstance(rec.get("mode"), str):
            state.modes.add(rec["mode"])
    return state


def _complete_end(p: Path, size: int) -> int:
    """Byte offset just past the last newline: what a kill -9 cannot have torn."""
    with open(p, "rb") as f:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return pos - step + i + 1
            pos -= step
    return 0


def latest_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The newest record of each key, in file order; memory is one offset per key."""
    p = Path(path)
    if not p.exists():
        return
    winner: dict[str, int] = {}
    for number, _, line in _iter_lines(p):
        rec = _parse(line)
        if rec is not None:
            winner[record_key(rec)] = number  # type: ignore[index]
    keep = set(winner.values())
    del winner
    for number, _, line in _iter_lines(p):
        if number in keep:
            rec = _parse(line)
            if rec is not None:
                yield rec


def compact(path: str | os.PathLike[str]) -> int:
    """Rewrite ``path`` keeping only the newest record per key; returns the lines dropped."""
    p = Path(path)
    before = sum(1 for _ in _iter_lines(p))
    kept = 0

    def lines() -> Iterator[bytes]:
        nonlocal kept
        for rec in latest_records(p):
            kept += 1
            yield dumps_record(rec)

    atomic_write(p, lines(), fsync=True)
    return before - kept
