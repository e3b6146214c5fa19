"""Reading a job's input as a stream: JSONL lines, a JSON list, or a folder of documents
(``.txt``, and Markdown, HTML, PDF and Word files read as their text).

Nothing is loaded whole: lines are parsed one at a time and an item's text stays in memory only
while the item is in flight. A line that cannot become an item (bad JSON, no id, no text, a
duplicate id, no question in ``qa`` mode) becomes a :class:`BadLine` naming its line number, and
the job goes on. Ids are kept exactly as given (a string or a whole number); ``unique_id`` (as
Glyph's batch files call it) and ``_id`` (LongBench) are read as the id too.

Glyph's own batch files (``word2png_function.batch_process_to_images``) are one JSON list of
objects (``unique_id``, ``context``, ``config``): a file whose first character is ``[`` is read
as such a list, element by element (:func:`iter_json_list`), never parsed whole. Its entries
are numbered by the line their object starts on, as a JSONL file's are.
"""

from __future__ import annotations

import codecs
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
           "is_json_list", "iter_entries", "iter_json_list", "load_text"]

ID_FIELDS = ("id", "unique_id", "_id")
TEXT_FIELDS = ("context", "text")
MODES_NEEDING_QUESTION = frozenset({"qa"})


class InputLineError(GlyphRenderError, ValueError):
    """An input line that cannot become an item (recorded, never raised out of the job)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


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


def _fail(line: int, why: str, raw_id: Any = None, kind: str = "InputLineError",
          label: str = "line") -> BadLine:
    return BadLine(line, kind, f"{label} {line}: {why}", raw_id)


def _item_from(obj: Any, line: int, mode: str, base_dir: Path,
               default_question: str | None, label: str = "line") -> Item | BadLine:
    """``label``: what ``line`` counts (``entry`` in a JSON list)."""
    def fail(why: str, raw_id: Any = None) -> BadLine:
        return _fail(line, why, raw_id, label=label)

    if not isinstance(obj, dict):
        return fail(f"expected a JSON object, got {type(obj).__name__}")
    raw_id = next((obj[k] for k in ID_FIELDS if k in obj), None)
    if raw_id is None:
        return fail(f"no id (give one of {', '.join(ID_FIELDS)})")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return fail(f"the id must be a string or a whole number, got {raw_id!r:.80}", raw_id)
    text = next((obj[k] for k in TEXT_FIELDS if obj.get(k) is not None), None)
    path = obj.get("path")
    if text is None and path is None:
        return fail(f"no text (give one of {', '.join(TEXT_FIELDS)} or a path)", raw_id)
    if text is not None and not isinstance(text, str):
        return fail(f"the text must be a string, got {type(text).__name__}", raw_id)
    if text is not None and not text.strip().strip("\ufeff"):
        return fail("the text is empty", raw_id)
    if text is None and not isinstance(path, str):
        return fail(f"path must be a string, got {path!r:.80}", raw_id)
    question = obj.get("question", obj.get("input")) or default_question
    if mode in MODES_NEEDING_QUESTION and not (isinstance(question, str) and question.strip()):
        return fail("no question (a 'question' field or --question)", raw_id)
    answers = obj.get("answers", obj.get("answer"))
    if isinstance(answers, str):
        answers = [answers]
    if answers is not None and not (isinstance(answers, list)
                                    and all(isinstance(a, str) for a in answers) and answers):
        return fail("answers must be a string or a non-empty list of strings", raw_id)
    config = obj.get("config")
    if config is not None and not isinstance(config, dict):
        return fail(f"config must be a JSON object, got {type(config).__name__}", raw_id)
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
    label = "line"
    if p.is_dir():
        raw = _iter_folder(p, default_question)
    elif p.is_file() and is_json_list(p):
        raw, label = _iter_list(p, mode, default_question), "entry"
    elif p.is_file():
        raw = _iter_jsonl(p, mode, default_question)
    else:
        raise InputError(f"{source}: no such file or folder")
    for entry in raw:
        if isinstance(entry, Item):
            key = entry.key
            if key in seen:
                yield _fail(entry.line, f"duplicate id {key[:80]} (the first one is kept)",
                            entry.id, "DuplicateId", label)
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


_CHUNK = 1 << 16
_SPACE = " \t\r\n"


def is_json_list(p: Path) -> bool:
    """Whether the file is one JSON list (its first character, after a BOM and spaces, is
    ``[``): Glyph's batch files; a JSONL line is an object."""
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
            while head.lstrip(b" \t\r\n") == b"" and len(head) < (1 << 20):
                more = f.read(4096)
                if not more:
                    break
                head += more
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    return head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:1] == b"["


def iter_json_list(p: Path) -> Iterator[tuple[int, int, Any]]:
    """``(line, byte offset, value)`` for each element of the JSON list in ``p``, read in
    chunks: memory holds one element at a time (and a chunk). A syntax error raises
    :class:`InputLineError` naming the line; nothing after it can be located."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the with below; open errors named here
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    with f:
        buf, eof = "", False
        offset, line = 0, 1  # bytes and lines before buf[0]

        def fill(need_more: bool) -> bool:
            """Read another chunk (at least doubling a long element's buffer); False at EOF."""
            nonlocal buf, eof
            if eof:
                return False
            size = max(_CHUNK, len(buf)) if need_more else _CHUNK
            data = f.read(size)
            try:
                buf += utf8.decode(data, final=not data)
            except UnicodeDecodeError:
                raise InputLineError(f"line {line}: not UTF-8", line) from None
            eof = not data
            return bool(data) or bool(buf)

        def skip(n: int) -> None:
            nonlocal buf, offset, line
            done = buf[:n]
            offset += len(done.encode("utf-8"))
            line += done.count("\n")
            buf = buf[n:]

        def next_char() -> str:
            while True:
                stripped = buf.lstrip(_SPACE + "\ufeff")
                if stripped:
                    skip(len(buf) - len(stripped))
                    return buf[0]
                skip(len(buf))
                if not fill(False):
                    return ""

        if next_char() != "[":
            raise InputLineError(f"line {line}: expected a JSON list", line)
        skip(1)
        first = True
        while True:
            c = next_char()
            if c == "]":
                return
            if c and not first:
                if c != ",":
                    raise InputLineError(f"line {line}: expected ',' or ']' between the list's "
                                         f"elements, got {c!r}", line)
                skip(1)
                c = next_char()
            if c == "":
                raise InputLineError(f"line {line}: the list is not closed with ']'", line)
            first = False
            while True:
                try:
                    value, end = decoder.raw_decode(buf)
                    if end < len(buf) or eof:  # a number may go on in the next chunk
                        break
                except ValueError as exc:
                    if eof:
                        raise InputLineError(f"line {line}: invalid JSON ({exc})", line) from None
                if not fill(True):
                    raise InputLineError(f"line {line}: the list is not closed with ']'", line)
            yield line, offset, value
            skip(end)


def _iter_list(p: Path, mode: str, default_question: str | None) -> Iterator[Item | BadLine]:
    """A JSON list's entries, numbered by position (1 = first): a list written on one line,
    as ``json.dump`` writes it, still gives every entry its own number."""
    source_file = str(p.resolve())
    number = 0
    try:
        for number, (line, offset, obj) in enumerate(iter_json_list(p), 1):
            entry = _item_from(obj, number, mode, p.parent, default_question, "entry")
            if isinstance(entry, Item):
                entry.offset, entry.source_file = offset, source_file
            elif line > 1:
                entry.message += f" (line {line})"
            yield entry
    except InputLineError as exc:  # the rest of the list cannot be found: say so, as a record
        yield BadLine(number + 1, "InputLineError",
                      f"entry {number + 1}: {exc}; the entries from there on in {p.name} "
                      f"were not read")


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
    source = Path(item.source_file)
    try:
        with open(source, "rb") as f:
            f.seek(item.offset)
            if is_json_list(source):  # one element: read up to where it ends
                entry = _reread_element(f, item)
            else:
                entry = _parse_line(f.readline(), item.line, "render", source.parent, None)
    except OSError as exc:
        raise InputError(f"{item.source_file}: cannot read line {item.line} again "
                         f"({exc.strerror})") from None
    if not isinstance(entry, Item) or entry.key != item.key:
        raise InputError(f"{item.source_file}: line {item.line} changed while the job ran")
    if entry.text is None:
        assert entry.path is not None
        return read_document(entry.path)
    return entry.text


def _reread_element(f: Any, item: Item) -> Item | BadLine:
    """The list element starting at ``f``'s position (a Ray task re-reading its item)."""
    decoder, raw = json.JSONDecoder(), b""
    while True:
        data = f.read(max(_CHUNK, len(raw)))
        raw += data
        try:
            obj, _ = decoder.raw_decode(raw.decode("utf-8", errors="strict" if not data
                                                   else "ignore"))
            break
        except ValueError:
            if not data:
                return _fail(item.line, "invalid JSON", label="entry")
    assert item.source_file is not None
    return _item_from(obj, item.line, "render", Path(item.source_file).parent, None, "entry")


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
    if is_json_list(p):
        try:
            return sum(1 for _ in iter_json_list(p))
        except InputLineError:
            return 0  # the job itself records where the list breaks
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
