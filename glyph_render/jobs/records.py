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

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .naming import id_key

try:  # advisory lock: a second job on the same output fails fast instead of interleaving
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputState", "RecordWriter", "compact", "dumps_record", "json_bytes",
           "latest_records", "record_key", "scan_output"]

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


def json_bytes(obj: Any, *, indent: int | None = None) -> bytes:
    """UTF-8 JSON; text with lone surrogates (legal in JSON ids, not in UTF-8) falls back to
    ASCII escapes, and NaN/infinity become null rather than invalid JSON."""
    obj = _finite(obj)
    try:
        return json.dumps(obj, ensure_ascii=False, indent=indent).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, indent=indent).encode("ascii")


def dumps_record(rec: dict[str, Any]) -> bytes:
    """One line of JSON, newline included."""
    return json_bytes(rec) + b"\n"


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class RecordWriter:
    """Appends records to the output; ``write`` returns only once the line is on disk."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot open for appending ({exc.strerror})") from None
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self._fd)
                raise OutputError(
                    f"{self.path}: another glyph-render batch job is writing this file"
                ) from None
        self.written = 0

    def write(self, rec: dict[str, Any]) -> None:
        data = memoryview(dumps_record(rec))
        try:
            while data:  # os.write may write less than asked (signals, quotas): finish the line
                n = os.write(self._fd, data)
                data = data[n:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot append a record ({exc.strerror})") from None
        self.written += 1

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock
            self._fd = -1

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    tmp = p.with_name(p.name + ".compact.tmp")
    before = sum(1 for _ in _iter_lines(p))
    kept = 0
    try:
        with open(tmp, "wb") as out:
            for rec in latest_records(p):
                out.write(dumps_record(rec))
                kept += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, p)
        _fsync_dir(p.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{p}: cannot compact ({exc.strerror})") from None
    return before - kept


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not possible on every platform; the rename still holds
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
