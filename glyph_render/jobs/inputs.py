"""Reading a job's input as a stream: JSONL lines or a folder of documents (``.txt``, and
Markdown, HTML, PDF and Word files read as their text).

Nothing is loaded whole: lines are parsed one at a time and an item's text stays in memory only
while the item is in flight. A line that cannot become an item (bad JSON, no id, no text, a
duplicate id, no question in ``qa`` mode) becomes a :class:`BadLine` naming its line number, and
the job goes on. Ids are kept exactly as given (a string or a whole number); ``unique_id`` (as
Glyph's batch files call it) and ``_id`` (LongBench) are read as the id too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..document import SUFFIX_FORMATS, check_text, read_document
from ..errors import GlyphRenderError, InputError
from .naming import id_key

__all__ = ["ID_FIELDS", "TEXT_FIELDS", "BadLine", "InputLineError", "Item", "count_entries",
           "iter_entries", "load_text"]

ID_FIELDS = ("id", "unique_id", "_id")
TEXT_FIELDS = ("context", "text")
MODES_NEEDING_QUESTION = frozenset({"qa"})


class InputLineError(GlyphRenderError, ValueError):
    """An input line that cannot become an item (recorded, never raised out of the job)."""


@dataclass
class Item:
    """One unit of work; ``text`` or ``path`` (read lazily by whoever renders it)."""

    id: str | int
    line: int
    text: str | None = None
    path: str | None = None
    question: str | None = None
    answers: list[str] | None = None
    metric: str | None = None
    all_classes: list[str] | None = None
    config: dict[str, Any] | None = None
    config_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # dataset, length, ... copied to records
    offset: int | None = None  # where its JSONL line starts: lets a remote task re-read it,
    source_file: str | None = None  # so an item can travel without its text

    @property
    def key(self) -> str:
        return id_key(self.id)


@dataclass
class BadLine:
    """An input line that was not an item: recorded as ``status: invalid`` with its line."""

    line: int
    error_type: str
    message: str
    id: Any = None


# Copied from the input into the record unchanged when present (LongBench's bookkeeping).
EXTRA_FIELDS = ("dataset", "length", "language", "source")


def _fail(line: int, why: str, raw_id: Any = None, kind: str = "InputLineError") -> BadLine:
    return BadLine(line, kind, f"line {line}: {why}", raw_id)


def _item_from(obj: Any, line: int, mode: str, base_dir: Path,
               default_question: str | None) -> Item | BadLine:
    if not isinstance(obj, dict):
        return _fail(line, f"expected a JSON object, got {type(obj).__name__}")
    raw_id = next((obj[k] for k in ID_FIELDS if k in obj), None)
    if raw_id is None:
        return _fail(line, f"no id (give one of {', '.join(ID_FIELDS)})")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return _fail(line, f"the id must be a string or a whole number, got {raw_id!r:.80}",
                     raw_id)
    text = next((obj[k] for k in TEXT_FIELDS if obj.get(k) is not None), None)
    path = obj.get("path")
    if text is None and path is None:
        return _fail(line, f"no text (give one of {', '.join(TEXT_FIELDS)} or a path)", raw_id)
    if text is not None and not isinstance(text, str):
        return _fail(line, f"the text must be a string, got {type(text).__name__}", raw_id)
    if text is not None and not text.strip().strip("\ufeff"):
        return _fail(line, "the text is empty", raw_id)
    if text is None and not isinstance(path, str):
        return _fail(line, f"path must be a string, got {path!r:.80}", raw_id)
    question = obj.get("question", obj.get("input")) or default_question
    if mode in MODES_NEEDING_QUESTION and not (isinstance(question, str) and question.strip()):
        return _fail(line, "no question (a 'question' field or --question)", raw_id)
    answers = obj.get("answers", obj.get("answer"))
    if isinstance(answers, str):
        answers = [answers]
    if answers is not None and not (isinstance(answers, list)
                                    and all(isinstance(a, str) for a in answers) and answers):
        return _fail(line, "answers must be a string or a non-empty list of strings", raw_id)
    config = obj.get("config")
    if config is not None and not isinstance(config, dict):
        return _fail(line, f"config must be a JSON object, got {type(config).__name__}", raw_id)
    if text is None:
        p = Path(path).expanduser()
        path = str(p if p.is_absolute() else base_dir / p)
    return Item(
        id=raw_id, line=line, text=text, path=path,
        question=question if isinstance(question, str) else None, answers=answers,
        metric=obj.get("metric") if isinstance(obj.get("metric"), str) else None,
        all_classes=obj.get("all_classes") if isinstance(obj.get("all_classes"), list) else None,
        config=config,
        config_name=obj.get("config_name") if isinstance(obj.get("config_name"), str) else None,
        extra={k: obj[k] for k in EXTRA_FIELDS if k in obj},
    )


def iter_entries(source: str | os.PathLike[str], mode: str, *,
                 default_question: str | None = None) -> Iterator[Item | BadLine]:
    """Items and bad lines in input order; duplicate ids become bad lines."""
    p = Path(source).resolve()  # item paths stay valid in workers with another cwd (Ray)
    seen: set[str] = set()
    raw: Iterator[Item | BadLine]
    if p.is_dir():
        raw = _iter_folder(p, default_question)
    elif p.is_file():
        raw = _iter_jsonl(p, mode, default_question)
    else:
        raise InputError(f"{source}: no such file or folder")
    for entry in raw:
        if isinstance(entry, Item):
            key = entry.key
            if key in seen:
                yield _fail(entry.line, f"duplicate id {key[:80]} (the first one is kept)",
                            entry.id, "DuplicateId")
                continue
            seen.add(key)
        yield entry


def _iter_jsonl(p: Path, mode: str, default_question: str | None) -> Iterator[Item | BadLine]:
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the with below; open errors named here
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    source_file = str(p.resolve())
    with f:
        offset = 0
        for number, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue  # blank lines (a trailing newline, spacing) are not items
            entry = _parse_line(raw, number, mode, p.parent, default_question)
            if isinstance(entry, Item):
                entry.offset, entry.source_file = start, source_file
            yield entry


def _parse_line(raw: bytes, number: int, mode: str, base_dir: Path,
                default_question: str | None) -> Item | BadLine:
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError:
        return _fail(number, "not UTF-8")
    except ValueError as exc:
        return _fail(number, f"invalid JSON ({exc})")
    return _item_from(obj, number, mode, base_dir, default_question)


def _reread_text(item: Item) -> str:
    """The text of ``item`` read again from its JSONL line.

    The Ray engine ships items without their text (a few hundred bytes each instead of the
    whole context), and each render task reads its own line back from the input file.
    """
    assert item.source_file is not None and item.offset is not None
    try:
        with open(item.source_file, "rb") as f:
            f.seek(item.offset)
            raw = f.readline()
    except OSError as exc:
        raise InputError(f"{item.source_file}: cannot read line {item.line} again "
                         f"({exc.strerror})") from None
    entry = _parse_line(raw, item.line, "render", Path(item.source_file).parent, None)
    if not isinstance(entry, Item) or entry.key != item.key:
        raise InputError(f"{item.source_file}: line {item.line} changed while the job ran")
    if entry.text is None:
        assert entry.path is not None
        return read_document(entry.path)
    return entry.text


#: A folder's documents: text files, and the formats read_document extracts (docs extra).
FOLDER_SUFFIXES = (".txt", *SUFFIX_FORMATS)


def _folder_files(p: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(p)
                  if e.is_file() and e.name.lower().endswith(FOLDER_SUFFIXES))


def _iter_folder(p: Path, default_question: str | None) -> Iterator[Item | BadLine]:
    """One item per document; the id is the name without ``.txt`` (other documents keep
    their suffix: ``notes.md`` beside ``notes.txt`` are two items)."""
    for number, name in enumerate(_folder_files(p), 1):
        yield Item(id=name.removesuffix(".txt"), line=number, path=str(p / name),
                   question=default_question, extra={"source": name})


def count_entries(source: str | os.PathLike[str]) -> int:
    """Non-blank lines (or documents): the progress bar's total, counted without parsing."""
    p = Path(source)
    if p.is_dir():
        return len(_folder_files(p))
    n = 0
    with open(p, "rb") as f:
        for raw in f:
            n += bool(raw.strip())
    return n


def load_text(item: Item) -> str:
    """The item's text, reading its file when it names one; InputError when unusable."""
    if item.text is not None:
        check_text(item.text, f"item {item.key[:80]}")
        return item.text
    if item.path is not None:
        return read_document(item.path)
    return _reread_text(item)
