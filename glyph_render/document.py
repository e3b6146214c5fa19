"""Reading documents: bytes from a file or stdin -> text, with errors that name the cause.

Plain text is kept exactly as decoded (a BOM, CRLF line ends and all), because page spans are
offsets into the source as read; layout decides what is drawn. Markdown, HTML, PDF and Word
(.docx) files are turned into text by well-kept extraction libraries (the ``docs`` extra):
Markdown through markdown-it-py to HTML, Word through mammoth to HTML, HTML through
inscriptis (which lays out lists and tables as text), PDF through pypdf, page by page. Page
spans then index the *extracted* text, which :func:`dump_text` writes out as it is, so a
span's ``start``/``end`` can be looked up in that file.
"""

from __future__ import annotations

import codecs
import io
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError

STDIN = "-"
#: ``fmt`` values: ``auto`` picks by file suffix, else by content (PDF, DOCX), else text.
FORMATS = ("auto", "text", "markdown", "html", "pdf", "docx")
SUFFIX_FORMATS = {
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown", ".mkd": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx",
}
_DOCS_EXTRA = "pip install 'glyph-render[docs]'"


def read_document(source: str | Path, encoding: str = "utf-8", fmt: str = "auto") -> str:
    """Read a document as text; ``-`` reads standard input.

    ``fmt`` is one of :data:`FORMATS`; ``encoding`` applies to text, Markdown and HTML.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown document format {fmt!r} (formats: {', '.join(FORMATS)})")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    data, label = _read_bytes(source)
    kind = detect_format(label, data) if fmt == "auto" else fmt
    if kind == "text":
        return decode_document(data, label, encoding)
    return extract_text(data, kind, label, encoding)


def _read_bytes(source: str | Path) -> tuple[bytes, str]:
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
    return data, label


def detect_format(name: str, data: bytes) -> str:
    """The format of a document named ``name``: by suffix, else PDF or DOCX by content."""
    kind = SUFFIX_FORMATS.get(Path(name).suffix.lower())
    if kind:
        return kind
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" in z.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
    return "text"


def extract_text(data: bytes, fmt: str, label: str = "<document>",
                 encoding: str = "utf-8") -> str:
    """The text of a Markdown, HTML, PDF or DOCX document (``fmt``), tidied: trailing spaces
    cut from lines, runs of blank lines kept to one, no blank lines at either end."""
    if fmt == "pdf":
        text = _pdf_text(data, label)
    elif fmt == "docx":
        text = _html_text(_docx_html(data, label))
    elif fmt in ("markdown", "html"):
        source = decode_document(data, label, encoding).lstrip("\ufeff")
        if fmt == "markdown":
            source = _need("markdown_it", "Markdown", label).MarkdownIt(
                "commonmark").enable("table").render(source)
        text = _html_text(source, label)
    else:
        raise InputError(f"{label}: cannot extract text from format {fmt!r}")
    text = re.sub(r"[ \t\u00a0]+$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    if not text.strip():
        what = "a scanned PDF holds only images: OCR it first" if fmt == "pdf" else "it is empty"
        raise InputError(f"{label}: no text could be extracted ({what})")
    return text


def _need(module: str, what: str, label: str) -> Any:
    """Import an extraction library of the ``docs`` extra, or fail naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{label}: reading {what} needs the 'docs' extra: {_DOCS_EXTRA} "
                         "(or read it as plain text with format 'text')") from None


def _html_text(html: str, label: str = "<html>") -> str:
    """HTML -> text with inscriptis: block elements on their own lines, lists bulleted,
    tables in columns; scripts, styles and the head dropped."""
    _need("inscriptis", "HTML", label)
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.html_properties import Display, WhiteSpace
    from inscriptis.model.config import ParserConfig
    from inscriptis.model.html_element import HtmlElement

    css = dict(CSS_PROFILES["strict"])
    # <pre><code> (how Markdown writes code blocks): keep the code's own line breaks and indents
    css["code"] = HtmlElement(display=Display.inline, whitespace=WhiteSpace.pre)
    return get_text(html, ParserConfig(css=css)) if html.strip() else ""


def _docx_html(data: bytes, label: str) -> str:
    mammoth = _need("mammoth", "Word documents", label)
    try:
        return str(mammoth.convert_to_html(io.BytesIO(data)).value)
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{label}: not a readable .docx file ({exc})") from None


def _pdf_text(data: bytes, label: str) -> str:
    """Each page's text layer (pypdf), pages separated by a blank line."""
    pypdf = _need("pypdf", "PDF", label)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(f"{label}: the PDF is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except pypdf.errors.PyPdfError as exc:
        raise InputError(f"{label}: not a readable PDF ({exc})") from None
    return "\n\n".join(p.strip("\n") for p in pages)


def dump_text(text: str, target: str | Path) -> None:
    """Write ``text`` exactly (UTF-8, no newline translation) to ``target``; ``-`` is stdout.

    The CLI's ``--dump-text FILE``: the text the pages were rendered from, so page spans
    (``start``/``end``, in characters) index this file's text.
    """
    if str(target) == STDIN:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()
        return
    try:
        with open(target, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the text ({exc.strerror or exc})") from None


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
