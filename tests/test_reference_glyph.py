"""The reportlab re-creation of Glyph's renderer (benchmarks/reference_glyph.py): page size at
72 DPI, and line extraction that agrees with what the PDF actually draws."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("reportlab", reason="reportlab (the 'bench' extra) is not installed")
pytest.importorskip("pdf2image", reason="pdf2image (the 'bench' extra) is not installed")
if not (shutil.which("pdftoppm") and shutil.which("pdfinfo") and shutil.which("pdftotext")):
    pytest.skip("poppler-utils (pdftoppm, pdfinfo, pdftotext) missing", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]


try:
    from reference_loader import load_reference
except ImportError:  # tests/ imported as a package
    from tests.reference_loader import load_reference

rg = load_reference()

LONG = " ".join(f"word{i}" for i in range(160))  # wraps over several 563 pt lines
TEXT = "\n".join(
    ["Title", ""]
    + [LONG if i % 9 == 0 else ("" if i % 5 == 0 else f"line {i}  with  gaps") for i in range(130)]
)


def test_pages_are_a4_at_72_dpi() -> None:
    pdf = rg.build_pdf("Hello world.\nSecond line.", {})
    raw = rg.rasterize(pdf, {"dpi": 72})
    assert [im.size for im in raw] == [(595, 842)]
    pages = rg.render_reference(
        "Hello world.\nSecond line.", {"auto-crop-width": False, "auto-crop-last-page": False}
    )
    assert [(im.size, im.mode) for im in pages] == [((595, 842), "RGB")]
    cropped = rg.render_reference("Hello world.\nSecond line.", {})
    w, h = cropped[0].size
    assert w < 200 and h < 100  # cut at the ink + margins


def test_frame_geometry_of_the_published_config() -> None:
    geo = rg.frame_geometry({})
    assert geo["avail_width"] == 563 and geo["first_baseline_from_page_top"] == 25
    assert geo["lines_per_page"] == 81
    rep = rg.geometry_report({})
    assert rep["first_text_x"] == 16 and rep["first_baseline_from_page_top"] == 25
    assert rep["lines_on_page1"] == 81


def test_extracted_lines_agree_with_the_pdf() -> None:
    rep = rg.verify(TEXT, {})
    assert rep["pages_pdfinfo"] >= 2
    assert rep["lines_recorded"] == rep["lines_pdf_tstar"]
    assert rep["pages_recorded"] == rep["pages_pdfinfo"] == rep["pages_model"]
    assert rep["n_ink_mismatches"] == 0 and rep["wrap_only_nonblank_equals_recorded"]
    assert rep["ok"], rep
    assert rep["lines_recorded"] > rep["lines_wrap_only"]  # page splits after <br/> add blanks
    words = [w for line in rg.reference_lines(TEXT, {}) for w in line]
    assert words[:2] == ["Title", "word0"] and "with" not in words
    assert "1\xa0\xa0with\xa0\xa0gaps" in words  # runs of 2+ spaces glue words (&nbsp;)


def test_paginate_models_orphans_and_the_br_split_blank_line() -> None:
    line = rg.RefLine(("x",), 5.0, 563.0, True)
    blank = rg.RefLine((), 0.0, 563.0, True)
    soft = rg.RefLine(("x",), 5.0, 563.0, False)
    # one free slot: the 3-line paragraph moves whole (no orphan), the slot stays empty
    assert rg.paginate([[soft] * 4, [soft] * 3], 5) == [4, 3]
    # split after a <br/> line: the continuation starts with an extra blank line
    assert rg.paginate([[line] * 7], 5) == [5, 3]
    # split right after a blank line: that blank line moves to the next page
    assert rg.paginate([[line] * 4 + [blank] + [line] * 2], 5) == [4, 3]
    # split after a wrapped line: nothing added
    assert rg.paginate([[soft] * 7], 5) == [5, 2]
