"""Files every tool writes: JSON bytes, whole-or-nothing writes, and appended JSONL records.

One home for the rules batch jobs and evaluations share: JSON that is valid whatever the text
(lone surrogates, NaN), a file replaced atomically (temporary file, ``os.replace``) so a reader
or a crash never sees half of it, and a JSONL file appended one whole line per ``write`` under
an advisory lock, so a second writer fails fast instead of interleaving.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import OutputError

try:  # advisory lock: a second writer on the same file fails fast instead of interleaving
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RecordWriter", "atomic_write", "dumps_record", "fsync_dir", "json_bytes"]


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


def atomic_write(path: str | os.PathLike[str], data: bytes | Iterable[bytes], *,
                 fsync: bool = False) -> Path:
    """Replace ``path`` with ``data`` (bytes, or pieces streamed) whole: readers see the old
    file or the new, never half.

    ``fsync`` also forces the data and the rename to disk (for files a restart relies on).
    Raises :class:`OutputError` naming the file.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for piece in [data] if isinstance(data, bytes) else data:
                f.write(piece)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{p}: cannot write ({exc.strerror})") from None
    if fsync:
        fsync_dir(p.parent)
    return p


def fsync_dir(folder: Path) -> None:
    """Force a folder's entries (a rename) to disk, where the platform allows it."""
    with contextlib.suppress(OSError):  # not possible on every platform; the rename still holds
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RecordWriter:
    """Appends JSON records to a JSONL file; ``write`` returns once the line is written whole
    (and, with ``fsync``, on disk)."""

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

    def truncate(self) -> None:
        """Empty the file (a fresh run never mixes with an earlier one), keeping the lock."""
        try:
            os.truncate(self.path, 0)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot empty ({exc.strerror})") from None

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock
            self._fd = -1

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
