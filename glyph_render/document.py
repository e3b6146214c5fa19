"""Reading documents: bytes from a file or stdin -> text, with errors that name the cause.

The text is kept exactly as decoded (a BOM, CRLF line ends and all), because page spans are
offsets into the source as read; layout decides what is drawn.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

from .errors import InputError

STDIN = "-"


def read_document(source: str | Path, encoding: str = "utf-8") -> str:
    """Read and decode a document; ``-`` reads standard input."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    name = str(source)
    if name == STDIN:
        data = sys.stdin.buffer.read()
        label = "<stdin>"
    else:
        p = Path(source)
        label = name
        if not p.exists():
            raise InputError(f"{label}: no such file")
        if p.is_dir():
            raise InputError(f"{label}: is a directory, not a text file")
        try:
            data = p.read_bytes()
        except PermissionError:
            raise InputError(f"{label}: permission denied") from None
        except OSError as exc:
            raise InputError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return decode_document(data, label, encoding)


def decode_document(data: bytes, label: str = "<text>", encoding: str = "utf-8") -> str:
    if b"\x00" in data[:65536] and not encoding.lower().replace("-", "").startswith("utf16") \
            and not encoding.lower().replace("-", "").startswith("utf32"):
        raise InputError(f"{label}: looks binary (NUL bytes), not a text file")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label}: not valid {encoding} (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); pass --encoding with the file's encoding"
        ) from None
    check_text(text, label)
    return text


def check_text(text: str, label: str = "<text>") -> None:
    if not isinstance(text, str):
        raise InputError(f"{label}: expected text (str), got {type(text).__name__}")
    if not text.strip().strip("\ufeff"):
        raise InputError(f"{label}: is empty or holds only whitespace: nothing to render")
