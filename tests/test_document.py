"""Documents as users hold them: Markdown, HTML, PDF and Word files read as text through the
``docs`` extra, with real files made here (reportlab writes the PDFs, python-docx the DOCX),
and page spans that index the extracted text ``dump_text`` writes out."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import docx
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from glyph_render import RenderConfig, read_document, render
from glyph_render.document import FORMATS, detect_format, dump_text, extract_text
from glyph_render.errors import InputError, OutputError

MARKDOWN = """# Release notes

Some *emphasis*, a [link](https://example.org/x) and `inline  code`.

- first item
- second item

```python
def f():
    return 1
```

| key | value |
|-----|-------|
| a   | 1     |

Last paragraph, 中文 too.
"""

HTML = """<!doctype html><html><head><title>Ignored title</title>
<style>p { color: red }</style><script>var secret = 1;</script></head>
<body><h1>Heading</h1><p>Para with <b>bold</b> &amp; an entity.</p>
<div>block<br>second line</div><ul><li>alpha</li><li>beta</li></ul></body></html>"""


def make_pdf(pages: list[list[str]]) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for lines in pages:
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 16 * i, line)
        c.showPage()
    c.save()
    return buf.getvalue()


def make_docx() -> bytes:
    d = docx.Document()
    d.add_heading("Quarterly report", 1)
    d.add_paragraph("Revenue rose in every region; ünïcode and 中文 survive.")
    d.add_paragraph("north", style="List Bullet")
    d.add_paragraph("south", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    for (r, c), v in {(0, 0): "region", (0, 1): "growth", (1, 0): "north", (1, 1): "7%"}.items():
        table.cell(r, c).text = v
    d.add_paragraph("Closing words.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_markdown_is_read_as_its_text(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(MARKDOWN, encoding="utf-8")
    text = read_document(tmp_path / "notes.md")
    lines = text.split("\n")
    assert lines[0] == "Release notes"
    assert "Some emphasis, a link and inline  code." in lines
    assert "#" not in text and "*emphasis*" not in text and "https://" not in text
    assert any(ln.strip() == "* first item" for ln in lines)
    assert "def f():\n    return 1" in text  # a code block keeps its lines and indent
    assert any(ln.split() == ["key", "value"] for ln in lines)
    assert lines[-1] == "Last paragraph, 中文 too."
    # read as it is, on request
    assert read_document(tmp_path / "notes.md", fmt="text") == MARKDOWN


def test_html_is_read_as_its_text(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(HTML, encoding="utf-8")
    text = read_document(tmp_path / "page.html")
    lines = [ln.strip() for ln in text.split("\n")]
    assert lines[0] == "Heading"
    assert "Para with bold & an entity." in lines
    assert "block" in lines and "second line" in lines
    assert "* alpha" in lines and "* beta" in lines
    assert "secret" not in text and "color" not in text and "Ignored title" not in text


def test_pdf_pages_are_read_in_order(tmp_path: Path) -> None:
    pdf = make_pdf([["Page one, line one.", "Page one, line two."], ["Page two."]])
    (tmp_path / "doc.pdf").write_bytes(pdf)
    assert read_document(tmp_path / "doc.pdf") == (
        "Page one, line one.\nPage one, line two.\n\nPage two.")
    # found by its content too, whatever the name
    (tmp_path / "download").write_bytes(pdf)
    assert read_document(tmp_path / "download").startswith("Page one")


def test_docx_is_read_with_its_lists_and_tables(tmp_path: Path) -> None:
    data = make_docx()
    (tmp_path / "report.docx").write_bytes(data)
    text = read_document(tmp_path / "report.docx")
    lines = [ln.strip() for ln in text.split("\n")]
    assert lines[0] == "Quarterly report"
    assert "Revenue rose in every region; ünïcode and 中文 survive." in lines
    assert "* north" in lines and "* south" in lines
    assert [ln.split() for ln in lines if "growth" in ln or "7%" in ln] == [
        ["region", "growth"], ["north", "7%"]]
    assert lines[-1] == "Closing words."
    assert detect_format("attachment", data) == "docx"


def test_plain_text_is_kept_exactly(tmp_path: Path) -> None:
    raw = "\ufeffline one\r\n  indented *not markdown*\r\n"
    (tmp_path / "a.txt").write_bytes(raw.encode("utf-8"))
    assert read_document(tmp_path / "a.txt") == raw
    assert detect_format("a.txt", raw.encode()) == "text"
    assert set(FORMATS) == {"auto", "text", "markdown", "html", "pdf", "docx"}


def test_page_spans_index_the_dumped_text(tmp_path: Path) -> None:
    pdf = make_pdf([[f"Line {p}.{i} of the long report, words words words." for i in range(45)]
                    for p in range(6)])
    (tmp_path / "long.pdf").write_bytes(pdf)
    text = read_document(tmp_path / "long.pdf")
    result = render(text, RenderConfig.preset("glyph-en").replace(dpi=40))
    assert len(result.pages) >= 2
    dump_text(text, tmp_path / "long.txt")
    with open(tmp_path / "long.txt", encoding="utf-8", newline="") as f:
        dumped = f.read()
    assert dumped == text
    assert result.pages[0].start == 0 and result.pages[-1].end == len(dumped)
    for a, b in zip(result.pages, result.pages[1:], strict=False):
        assert a.end <= b.start and not dumped[a.end:b.start].strip()
    assert dumped[result.pages[1].start:].lstrip().startswith("Line ")


def test_dump_text_to_stdout_and_to_a_bad_place(tmp_path: Path, capfdbinary) -> None:
    dump_text("中文\r\nline", "-")
    assert capfdbinary.readouterr().out == "中文\r\nline".encode()
    with pytest.raises(OutputError, match="cannot write the text"):
        dump_text("x", tmp_path / "missing" / "out.txt")


def test_bad_documents_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    (tmp_path / "blank.pdf").write_bytes(make_pdf([[]]))
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 nothing")
    (tmp_path / "latin1.html").write_bytes("<p>caf\xe9</p>".encode("latin-1"))
    cases = {
        "broken.pdf": "not a readable PDF", "blank.pdf": "no text could be extracted",
        "broken.docx": "not a readable .docx", "latin1.html": "not valid utf-8",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as exc:
            read_document(tmp_path / name)
        assert str(exc.value).startswith(str(tmp_path / name)) and "\n" not in str(exc.value)
    assert read_document(tmp_path / "latin1.html", encoding="latin-1") == "café"
    with pytest.raises(InputError, match="unknown document format 'rtf'"):
        read_document(tmp_path / "latin1.html", fmt="rtf")
    with pytest.raises(InputError, match="cannot extract text from format 'text'"):
        extract_text(b"x", "text")


@pytest.mark.parametrize(("module", "name", "data"), [
    ("pypdf", "a.pdf", None), ("mammoth", "a.docx", None), ("inscriptis", "a.html", b"<p>x</p>"),
    ("markdown_it", "a.md", b"# x"),
])
def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str,
                                  name: str, data: bytes | None) -> None:
    # The test environment has the docs extra; hiding a module from import is the only way to
    # meet its absence.
    monkeypatch.setitem(sys.modules, module, None)
    if data is None:
        data = make_pdf([["x"]]) if name.endswith(".pdf") else make_docx()
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError, match=r"needs the 'docs' extra: pip install "
                                         r"'glyph-render\[docs\]'") as exc:
        read_document(tmp_path / name)
    assert "\n" not in str(exc.value)


def test_stdin_is_recognised_by_its_content() -> None:
    code = "import sys; from glyph_render import read_document; print(read_document('-'))"
    for data in (make_pdf([["Piped PDF text."]]), make_docx()):
        proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                              timeout=120, check=True)
        first = proc.stdout.decode("utf-8").split("\n")[0]
        assert first in ("Piped PDF text.", "Quarterly report")
