"""A re-creation of Glyph's reportlab + pdf2image page renderer (``word2png_function.py``).

Why: glyph-render re-implements that pipeline in pure Pillow/numpy. The benchmarks need the
original's pages, its line breaks and its stage timings as the yardstick, so this module builds
the same PDF (same story, style, frame and pagination), rasterises it with pdftoppm the same way
and post-processes it identically. It also exposes reportlab's own line breaks (read from the
paragraphs actually drawn while the document is built) and cross-checks them against the PDF.

Library use::

    from benchmarks.reference_glyph import render_reference, reference_layout, time_reference
    pages = render_reference(text, {"dpi": 96})       # list of PIL images, as Glyph saves them
    lay = reference_layout(text, {})                  # drawn lines per page, from reportlab

CLI: ``python -m benchmarks.reference_glyph {render,lines,verify,geometry,time} ...``.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The published English config of Glyph, with DejaVu Sans standing in for Verdana.
DEFAULT_CONFIG: dict[str, Any] = {
    "page-size": "595,842",
    "dpi": 72,
    "margin-x": 10,
    "margin-y": 10,
    "font-path": "fonts/DejaVuSans.ttf",
    "font-size": 9,
    "line-height": 10,
    "font-color": "#000000",
    "page-bg-color": "#FFFFFF",
    "para-bg-color": "#FFFFFF",
    "para-border-color": "#FFFFFF",
    "alignment": "LEFT",
    "horizontal-scale": 1.0,
    "first-line-indent": 0,
    "left-indent": 0,
    "right-indent": 0,
    "space-before": 0,
    "space-after": 0,
    "border-width": 0,
    "border-padding": 0,
    "auto-crop-width": True,
    "auto-crop-last-page": True,
    "newline-markup": "<br/>",
}

#: Source lines per reportlab Paragraph, as in Glyph.
LINES_PER_PARAGRAPH = 30
#: Pages per pdf2image call, as in Glyph.
RASTER_BATCH = 20
#: Frame padding reportlab's SimpleDocTemplate uses on every side (Frame default), in points.
FRAME_PADDING = 6.0

_ALIGN = {"LEFT": TA_LEFT, "CENTER": TA_CENTER, "RIGHT": TA_RIGHT, "JUSTIFY": TA_JUSTIFY}
_CJK = re.compile(r"[\u4E00-\u9FFF]")
_SPACE_RUN = re.compile(r" {2,}")

#: reportlab's own word-separator set (``paragraph._wsc``): note U+00A0 is *not* in it, so
#: ``&nbsp;`` glues words together, and U+200B is (Glyph deletes it beforehand anyway).
RL_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000"
)


# --------------------------------------------------------------------------- config


def normalise_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` over :data:`DEFAULT_CONFIG`, accepting ``_`` for ``-`` in keys.

    Why: callers pass partial Glyph configs; a relative font path is resolved against the
    current directory first, then the repository root, so the CLI works from anywhere.
    """
    cfg = dict(DEFAULT_CONFIG)
    for key, value in (config or {}).items():
        key = key.replace("_", "-")
        if key not in DEFAULT_CONFIG:
            raise KeyError(f"unknown Glyph config key {key!r}")
        cfg[key] = value
    font = Path(cfg["font-path"])
    if not font.is_absolute():
        font = font.resolve() if font.exists() else REPO_ROOT / font
    cfg["font-path"] = str(font)
    return cfg


def page_size(cfg: dict[str, Any]) -> tuple[float, float]:
    """``"595,842"`` (or a pair) -> (width, height) in points."""
    ps = cfg["page-size"]
    w, h = ps.split(",") if isinstance(ps, str) else ps
    return float(w), float(h)


def frame_geometry(config: dict[str, Any] | None = None) -> dict[str, float]:
    """The text frame reportlab lays out into, in points, derived as reportlab does.

    SimpleDocTemplate builds ``Frame(leftMargin, bottomMargin, width, height)`` with the Frame
    default padding of 6 pt per side; a Paragraph's first baseline sits ``fontSize`` below its
    top (``rl_config.paraFontSizeHeightOffset``); ``Paragraph.split`` fits ``int(aH/leading)``
    lines.
    """
    cfg = normalise_config(config)
    pw, ph = page_size(cfg)
    mx, my = float(cfg["margin-x"]), float(cfg["margin-y"])
    avail_w = pw - 2 * mx - 2 * FRAME_PADDING
    avail_h = ph - 2 * my - 2 * FRAME_PADDING
    lead = float(cfg["line-height"])
    return {
        "frame_x": mx + FRAME_PADDING,
        "frame_top_from_page_top": my + FRAME_PADDING,
        "avail_width": avail_w,
        "avail_height": avail_h,
        "first_baseline_from_page_top": my + FRAME_PADDING + float(cfg["font-size"]),
        "lines_per_page": float(int(avail_h / lead)),
    }


# --------------------------------------------------------------------------- story / PDF

_FONT_CACHE: dict[str, str] = {}


def register_font(path: str) -> str:
    """Register a TTF with reportlab once per process and return its font name.

    Why cached: parsing DejaVu takes ~0.1 s, which would otherwise be billed to every build.
    """
    name = _FONT_CACHE.get(path)
    if name is None:
        name = "GlyphRef-" + re.sub(r"[^A-Za-z0-9]+", "", Path(path).stem)
        pdfmetrics.registerFont(TTFont(name, path))
        _FONT_CACHE[path] = name
    return name


def make_style(text: str, cfg: dict[str, Any]) -> ParagraphStyle:
    """The ParagraphStyle Glyph builds; wordWrap is CJK if *any* of the text is CJK."""
    font_name = register_font(cfg["font-path"])
    return ParagraphStyle(
        name="GlyphRef",
        parent=getSampleStyleSheet()["Normal"],
        fontName=font_name,
        fontSize=cfg["font-size"],
        leading=cfg["line-height"],
        textColor=colors.toColor(cfg["font-color"]),
        backColor=colors.toColor(cfg["para-bg-color"]),
        borderColor=colors.toColor(cfg["para-border-color"]),
        borderWidth=cfg["border-width"],
        borderPadding=cfg["border-padding"],
        firstLineIndent=cfg["first-line-indent"],
        wordWrap="CJK" if _CJK.search(text) else None,
        leftIndent=cfg["left-indent"],
        rightIndent=cfg["right-indent"],
        alignment=_ALIGN[str(cfg["alignment"]).upper()],
        spaceBefore=cfg["space-before"],
        spaceAfter=cfg["space-after"],
    )


def preprocess_text(text: str) -> str:
    """Glyph's character-level clean-up, before markup: drop soft hyphens and zero-width spaces."""
    return text.replace("\xad", "").replace("\u200b", "")


def paragraph_markups(text: str, cfg: dict[str, Any]) -> list[str]:
    """The reportlab markup strings of Glyph's story: one per 30 source lines.

    Runs of 2+ spaces become one ``&nbsp;`` per space (so they neither collapse nor break).
    """
    marked = escape(preprocess_text(text))
    marked = _SPACE_RUN.sub(lambda m: "&nbsp;" * len(m.group()), marked)
    parts = marked.split("\n")
    joiner = cfg["newline-markup"]
    return [
        joiner.join(parts[i : i + LINES_PER_PARAGRAPH])
        for i in range(0, len(parts), LINES_PER_PARAGRAPH)
    ]


def build_story(text: str, config: dict[str, Any] | None = None) -> list[Paragraph]:
    """The list of Paragraph flowables Glyph hands to ``doc.build``."""
    cfg = normalise_config(config)
    style = make_style(text, cfg)
    return [Paragraph(m, style) for m in paragraph_markups(text, cfg)]


class _RecordingDoc(SimpleDocTemplate):
    """SimpleDocTemplate that remembers every drawn flowable with its page number.

    Why: after a page-end split reportlab re-wraps each part, so the lines actually drawn are
    only known at draw time; ``afterFlowable`` sees each flowable right after it is drawn and
    changes nothing in the layout.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drawn: list[tuple[int, Any]] = []

    def afterFlowable(self, flowable: Any) -> None:
        self.drawn.append((self.page, flowable))


def _page_painter(cfg: dict[str, Any]) -> Any:
    bg = colors.toColor(cfg["page-bg-color"])
    pw, ph = page_size(cfg)

    def paint(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColor(bg)
        canvas.rect(0, 0, pw, ph, fill=1, stroke=0)
        canvas.restoreState()

    return paint


def _build(text: str, cfg: dict[str, Any], *, record: bool) -> tuple[bytes, list[tuple[int, Any]]]:
    buf = io.BytesIO()
    mx, my = cfg["margin-x"], cfg["margin-y"]
    doc_cls = _RecordingDoc if record else SimpleDocTemplate
    doc = doc_cls(
        buf, pagesize=page_size(cfg), leftMargin=mx, rightMargin=mx, topMargin=my, bottomMargin=my
    )
    story = build_story(text, cfg)
    paint = _page_painter(cfg)
    doc.build(story, onFirstPage=paint, onLaterPages=paint)
    return buf.getvalue(), getattr(doc, "drawn", [])


def build_pdf(text: str, config: dict[str, Any] | None = None) -> bytes:
    """Build the PDF exactly as Glyph does and return its bytes."""
    return _build(text, normalise_config(config), record=False)[0]


# --------------------------------------------------------------------------- raster / post


def pdf_page_count(pdf: bytes) -> int:
    """Page count as poppler's ``pdfinfo`` reports it."""
    out = subprocess.run(
        ["pdfinfo", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode("latin-1")
    m = re.search(r"^Pages:\s+(\d+)", out, re.MULTILINE)
    if not m:
        raise RuntimeError("pdfinfo reported no page count")
    return int(m.group(1))


def rasterize(pdf: bytes, config: dict[str, Any] | None = None) -> list[Image.Image]:
    """pdf2image ``convert_from_bytes`` at the config's DPI, 20 pages per call like Glyph."""
    from pdf2image import convert_from_bytes, pdfinfo_from_bytes

    cfg = normalise_config(config)
    n = int(pdfinfo_from_bytes(pdf)["Pages"])
    images: list[Image.Image] = []
    for first in range(1, n + 1, RASTER_BATCH):
        last = min(first + RASTER_BATCH - 1, n)
        images.extend(convert_from_bytes(pdf, dpi=cfg["dpi"], first_page=first, last_page=last))
    return images


def postprocess(
    images: Sequence[Image.Image], config: dict[str, Any] | None = None
) -> list[Image.Image]:
    """Glyph's per-page post-processing: horizontal scale, then auto-crop.

    Ink = pixels whose grey level differs by more than 5 from the median of the top-left 2x2
    block. auto-crop-width keeps columns up to (last ink column + 1) + margin-x pixels;
    auto-crop-last-page keeps rows of the last page up to its last ink row + margin-y pixels
    (the script adds no 1 there), clamped to the image; Pillow's crop rounds a fractional
    margin. A page without ink is left whole. Each step is the script's own arithmetic.
    """
    cfg = normalise_config(config)
    scale = float(cfg["horizontal-scale"])
    mx, my = cfg["margin-x"], cfg["margin-y"]
    crop_w, crop_last = bool(cfg["auto-crop-width"]), bool(cfg["auto-crop-last-page"])
    out: list[Image.Image] = []
    for i, img in enumerate(images):
        if scale != 1.0:
            img = img.resize((int(img.width * scale), img.height))
        is_last = i == len(images) - 1
        if crop_w or (crop_last and is_last):
            grey = np.array(img.convert("L"))
            bg = np.median(grey[:2, :2])
            mask = np.abs(grey - bg) > 5
            if crop_w:
                cols = np.where(mask.any(axis=0))[0]
                if cols.size:
                    img = img.crop((0, 0, min(img.width, cols[-1] + 1 + mx), img.height))
            if crop_last and is_last:
                rows = np.where(mask.any(axis=1))[0]
                if rows.size:
                    img = img.crop((0, 0, img.width, min(img.height, rows[-1] + my)))
        out.append(img)
    return out


def png_bytes(img: Image.Image) -> bytes:
    """Encode as Glyph saves pages: RGB, ``img.save(f, 'PNG')`` with default settings."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def render_reference(text: str, config: dict[str, Any] | None = None) -> list[Image.Image]:
    """Text -> the page images Glyph would save (RGB, post-processed)."""
    cfg = normalise_config(config)
    return [im.convert("RGB") for im in postprocess(rasterize(build_pdf(text, cfg), cfg), cfg)]


STAGES = ("pdf", "raster", "post", "save")


def _clocks() -> tuple[float, float]:
    """(wall, CPU) seconds; CPU counts this process and its reaped children (pdftoppm, pdfinfo),
    so a stage's CPU time is its one-core cost even on a busy machine."""
    t = os.times()
    return time.perf_counter(), time.process_time() + t.children_user + t.children_system


@dataclass
class ReferenceTiming:
    """Seconds per stage of a reference render: ``cpu`` (median over repeats; the one-core
    figure) and ``wall`` (minimum over repeats). Font registration is excluded (done once)."""

    pages: int
    dpi: int
    cpu: dict[str, float]
    wall: dict[str, float]
    png_bytes: int

    def total(self, clock: str = "cpu") -> float:
        return sum((self.cpu if clock == "cpu" else self.wall).values())

    def summary(self) -> str:
        parts = [f"{self.pages} pages @ {self.dpi} dpi"]
        for clock in ("cpu", "wall"):
            d = self.cpu if clock == "cpu" else self.wall
            t = self.total(clock)
            shares = " ".join(f"{k} {v:.3f}s ({v / t:.0%})" for k, v in d.items())
            parts.append(f"{clock}: {t:.3f}s = {self.pages / t:.1f} pages/s [{shares}]")
        parts.append(f"{self.png_bytes / max(self.pages, 1) / 1024:.1f} KiB/page")
        return " | ".join(parts)


def time_reference(
    text: str, config: dict[str, Any] | None = None, *, repeats: int = 1
) -> ReferenceTiming:
    """Time the four stages: PDF build, rasterise (pdf2image/pdftoppm), post-process (scale and
    auto-crop), PNG save to memory (RGB, Pillow defaults, as Glyph saves).

    Run it pinned to one core (CLI ``--cpu``) for the one-core figures; pdftoppm inherits the pin.
    """
    cfg = normalise_config(config)
    register_font(cfg["font-path"])
    cpu_runs: list[list[float]] = []
    wall_runs: list[list[float]] = []
    n_pages = size = 0
    for _ in range(max(1, repeats)):
        marks = [_clocks()]
        pdf = build_pdf(text, cfg)
        marks.append(_clocks())
        raw = rasterize(pdf, cfg)
        marks.append(_clocks())
        pages = postprocess(raw, cfg)
        marks.append(_clocks())
        size = sum(len(png_bytes(p)) for p in pages)
        marks.append(_clocks())
        n_pages = len(pages)
        wall_runs.append([b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)])
        cpu_runs.append([b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)])
    return ReferenceTiming(
        n_pages,
        int(cfg["dpi"]),
        {k: statistics.median(r[i] for r in cpu_runs) for i, k in enumerate(STAGES)},
        {k: min(r[i] for r in wall_runs) for i, k in enumerate(STAGES)},
        size,
    )


# --------------------------------------------------------------------------- line extraction


@dataclass(frozen=True)
class RefLine:
    """One line reportlab drew (or would draw): its words and the widths it measured.

    ``words`` keep U+00A0 inside them (a ``&nbsp;`` run is part of its word); ``used`` is the
    width reportlab believed the line has (maxWidth - extraSpace) and ``line_break`` is True when
    the line was ended by a ``<br/>`` (a source newline inside a 30-line paragraph).
    """

    words: tuple[str, ...]
    used: float
    max_width: float
    line_break: bool
    page: int = 0

    @property
    def ink(self) -> str:
        """The line's non-whitespace characters, in order (what both renderers must agree on)."""
        return "".join(ch for ch in "".join(self.words) if ch not in RL_WHITESPACE)


def _para_lines(para: Paragraph, page: int = 0) -> list[RefLine]:
    """Read ``blPara.lines`` of a wrapped Paragraph, whichever of its two shapes it has.

    kind 0 (one text frag, no ``<br/>``): lines are ``(extraSpace, [word, ...])`` tuples.
    kind 1 (several frags, e.g. ``<br/>`` or ``&nbsp;``): lines are FragLines whose ``words`` are
    frags; a frag's ``text`` holds the line's words joined by single spaces.
    """
    bl = para.blPara
    widths = getattr(para, "_wrapWidths", None) or [para.width]
    out: list[RefLine] = []
    for i, line in enumerate(bl.lines):
        max_w = float(widths[min(i, len(widths) - 1)])
        if isinstance(line, tuple):
            extra, words = line
            out.append(RefLine(tuple(str(w) for w in words), max_w - extra, max_w, False, page))
        else:
            text = "".join(getattr(f, "text", "") or "" for f in line.words)
            words = tuple(w for w in text.split(" ") if w)
            max_w = float(getattr(line, "maxWidth", max_w))
            out.append(
                RefLine(
                    words,
                    max_w - float(line.extraSpace),
                    max_w,
                    bool(getattr(line, "lineBreak", False)),
                    page,
                )
            )
    return out


@dataclass
class ReferenceLayout:
    """reportlab's layout of a text: the drawn lines per page, and the PDF it made."""

    pages: list[list[RefLine]]
    pdf: bytes
    config: dict[str, Any] = field(repr=False)

    @property
    def lines(self) -> list[RefLine]:
        return [ln for page in self.pages for ln in page]


def reference_layout(text: str, config: dict[str, Any] | None = None) -> ReferenceLayout:
    """Build the PDF and record the lines of every flowable as it is drawn, page by page."""
    cfg = normalise_config(config)
    pdf, drawn = _build(text, cfg, record=True)
    pages: list[list[RefLine]] = []
    for page, flowable in drawn:
        while len(pages) < page:
            pages.append([])
        if hasattr(flowable, "blPara"):
            pages[page - 1].extend(_para_lines(flowable, page))
    n = pdf_page_count(pdf)
    while len(pages) < n:  # pages holding only zero-line paragraphs
        pages.append([])
    return ReferenceLayout(pages, pdf, cfg)


def reference_lines(text: str, config: dict[str, Any] | None = None) -> list[list[str]]:
    """The words of every line reportlab draws, in order (an empty list for a blank line)."""
    return [list(ln.words) for ln in reference_layout(text, config).lines]


def wrapped_lines(text: str, config: dict[str, Any] | None = None) -> list[list[RefLine]]:
    """Line breaks from ``Paragraph.wrap`` alone (no build), per story paragraph.

    Why: cheaper than a build, and shows breaks do not depend on pagination when it agrees with
    :func:`reference_layout` (``verify`` checks that).
    """
    cfg = normalise_config(config)
    aw = frame_geometry(cfg)["avail_width"]
    out = []
    for para in build_story(text, cfg):
        para.wrap(aw, 1e9)
        out.append(_para_lines(para))
    return out


def paginate(
    paragraphs: Iterable[Sequence[RefLine]], lines_per_page: int, allow_orphans: bool = False,
    br_split_quirk: bool = True,
) -> list[int]:
    """Lines reportlab draws on each page, given each paragraph's wrapped lines (uniform
    leading, zero space before/after).

    Model of Frame._add + Paragraph.split: a paragraph that fits is drawn whole; otherwise it is
    split after ``s`` = free lines, unless ``s`` <= 1 with allowOrphans=0 (the default) -- then it
    moves whole to the next page and the slot stays empty. Widows are allowed (allowWidows=1).

    Quirk of ``_split_blParaProcessed`` (paragraphs with ``<br/>``): the cut is made at line
    ``s``'s first frag-word index ``sFW``, which for a line after a ``<br/>`` points at that
    ``<br/>``. So when line ``s-1`` ended with ``<br/>``, the continuation starts with it -- one
    extra blank line on top of the next page -- and the first part, re-wrapped, loses that
    ``<br/>``; if line ``s-1`` was itself blank it vanishes there (the blank line moves over).
    A zero-line paragraph meeting a full page still opens a new (blank) page.
    """
    pages = [0]
    for para in paragraphs:
        lines = [(ln.line_break, not ln.words) for ln in para]
        while True:
            n, free = len(lines), lines_per_page - pages[-1]
            if n <= free and (free > 0 or n > 0):
                pages[-1] += n
                break
            if free <= 0 or (not allow_orphans and free <= 1):
                if pages[-1] == 0:
                    raise RuntimeError("a line taller than the frame")
                pages.append(0)
                continue
            broke, blank = lines[free - 1]
            if not br_split_quirk:  # the split a reader expects: the next line opens the page
                pages[-1] += free
                lines = lines[free:]
                pages.append(0)
                continue
            pages[-1] += free - 1 if (broke and blank) else free
            lines = ([(True, True)] if broke else []) + lines[free:]
            pages.append(0)
    return pages


# --------------------------------------------------------------------------- PDF inspection


def _pdf_objects(pdf: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Object number -> (dictionary text, decoded stream) for reportlab's own PDFs."""
    objs: dict[int, tuple[bytes, bytes]] = {}
    for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", pdf, re.DOTALL):
        body = m.group(2)
        sm = re.search(rb"stream\r?\n(.*?)(?:\r?\n)?endstream", body, re.DOTALL)
        data = b""
        if sm:
            head = body[: sm.start()]
            data = sm.group(1)
            if b"ASCII85Decode" in head:
                data = base64.a85decode(data.strip().removesuffix(b"~>").replace(b"\n", b""))
            if b"FlateDecode" in head:
                data = zlib.decompress(data)
            body = head
        objs[int(m.group(1))] = (body, data)
    return objs


def pdf_page_streams(pdf: bytes) -> list[bytes]:
    """Decoded content stream of each page, in page order (via /Pages /Kids)."""
    objs = _pdf_objects(pdf)
    root = next(d for d, _ in objs.values() if re.search(rb"/Type\s*/Pages\b", d))
    kids_m = re.search(rb"/Kids\s*\[(.*?)\]", root, re.DOTALL)
    kids = [int(k) for k in re.findall(rb"(\d+) 0 R", kids_m.group(1) if kids_m else b"")]
    streams = []
    for k in kids:
        cref = re.search(rb"/Contents\s+(\d+) 0 R", objs[k][0])
        streams.append(objs[int(cref.group(1))][1] if cref else b"")
    return streams


@dataclass(frozen=True)
class DrawnBlock:
    """One paragraph (part) as drawn: origin from ``cm``, first baseline, lines advanced."""

    x: float
    y: float
    first_baseline: float
    lines: int


def pdf_text_blocks(stream: bytes) -> list[DrawnBlock]:
    """Text blocks in a reportlab page stream: each paragraph is ``1 0 0 1 x y cm`` then
    ``BT 1 0 0 1 0 dy Tm ... ET`` where every drawn line (blank ones too) ends with ``T*``."""
    ops = re.sub(rb"\((?:\\.|[^\\)])*\)", b"()", stream)  # blank out string operands
    blocks = []
    for m in re.finditer(
        rb"1 0 0 1 ([-\d.]+) ([-\d.]+) cm(.*?)(?=1 0 0 1 [-\d.]+ [-\d.]+ cm|$)", ops, re.DOTALL
    ):
        x, y = float(m.group(1)), float(m.group(2))
        for bt in re.finditer(rb"BT 1 0 0 1 ([-\d.]+) ([-\d.]+) Tm(.*?)ET", m.group(3), re.DOTALL):
            tx, ty = float(bt.group(1)), float(bt.group(2))
            blocks.append(DrawnBlock(x + tx, y, y + ty, len(re.findall(rb"T\*", bt.group(3)))))
    return blocks


def pdf_ink_lines(pdf: bytes) -> list[list[str]]:
    """Per page, the ink of each non-blank text line, via ``pdftotext -bbox`` (poppler).

    Words are grouped into lines by their yMin; whitespace is dropped (poppler turns the
    U+00A0 of ``&nbsp;`` into word gaps, so only the ink is comparable).
    """
    with tempfile.TemporaryDirectory() as td:
        src = Path(td, "doc.pdf")
        src.write_bytes(pdf)
        xml = subprocess.run(
            ["pdftotext", "-bbox", "-enc", "UTF-8", str(src), "-"], capture_output=True, check=True
        ).stdout.decode("utf-8")
    pages: list[list[str]] = []
    for page in re.findall(r"<page[^>]*>(.*?)</page>", xml, re.DOTALL):
        rows: dict[float, list[tuple[float, str]]] = {}
        for xmin, ymin, word in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>(.*?)</word>', page
        ):
            rows.setdefault(round(float(ymin), 1), []).append((float(xmin), html.unescape(word)))
        pages.append(
            ["".join(w for _, w in sorted(rows[y])).translate(_DROP_WS) for y in sorted(rows)]
        )
    return pages


_DROP_WS = {ord(c): None for c in RL_WHITESPACE | {"\xa0"}}


def verify(text: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cross-check the recorded lines with the PDF and with wrap-only line breaking.

    Checks: page count (recorded vs pdfinfo); lines per page, blank ones included (recorded vs
    the ``T*`` count of each page's content stream vs :func:`paginate` run on the wrap-only
    lines); the ink of each non-blank line (recorded vs pdftotext); and the non-blank lines of
    the build vs those of ``Paragraph.wrap`` alone (pagination must not change the breaks).
    """
    cfg = normalise_config(config)
    lay = reference_layout(text, cfg)
    geo = frame_geometry(cfg)
    n_pdf = pdf_page_count(lay.pdf)
    streams = pdf_page_streams(lay.pdf)
    tstar = [sum(b.lines for b in pdf_text_blocks(s)) for s in streams]
    recorded = [len(p) for p in lay.pages]
    ink_pdf = pdf_ink_lines(lay.pdf)
    ink_rec = [[t for ln in p if (t := ln.ink.translate(_DROP_WS))] for p in lay.pages]
    wrapped = wrapped_lines(text, cfg)
    # blank lines differ by design (the page-split quirk, see paginate): compare the rest
    flat_wrapped = [ln.ink for para in wrapped for ln in para if ln.ink]
    flat_rec = [ln.ink for ln in lay.lines if ln.ink]
    model = paginate(wrapped, int(geo["lines_per_page"]))
    bad_ink = [
        (pi + 1, i, a, b)
        for pi, (pa, pb) in enumerate(zip(ink_rec, ink_pdf, strict=False))
        for i, (a, b) in enumerate(zip(pa, pb, strict=False))
        if a != b
    ]
    return {
        "pages_pdfinfo": n_pdf,
        "pages_recorded": len(lay.pages),
        "pages_model": len(model),
        "pages_with_model_mismatch": [
            i + 1 for i, (a, b) in enumerate(zip(recorded, model, strict=False)) if a != b
        ],
        "lines_recorded": sum(recorded),
        "lines_pdf_tstar": sum(tstar),
        "lines_wrap_only": sum(len(p) for p in wrapped),
        "pages_with_line_count_mismatch": [
            i + 1 for i, (a, b) in enumerate(zip(recorded, tstar, strict=False)) if a != b
        ],
        "nonblank_lines_recorded": sum(len(p) for p in ink_rec),
        "nonblank_lines_pdftotext": sum(len(p) for p in ink_pdf),
        "ink_mismatches": bad_ink[:5],
        "n_ink_mismatches": len(bad_ink),
        "wrap_only_nonblank_equals_recorded": flat_wrapped == flat_rec,
        "ok": (
            n_pdf == len(lay.pages)
            and recorded == tstar == model
            and not bad_ink
            and [len(p) for p in ink_rec] == [len(p) for p in ink_pdf]
            and flat_wrapped == flat_rec
        ),
    }


def geometry_report(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure frame geometry from the PDF content stream of a probe document.

    The probe has a 2-line paragraph (a ``<br/>`` break), a blank line, a second paragraph and
    enough text to run over a page, so the stream shows where lines, breaks and paragraph
    boundaries land, and how many lines one page holds.
    """
    cfg = normalise_config(config)
    pw, ph = page_size(cfg)
    probe = "first line\nsecond line\n\nfourth line" + "\n" * 27 + "next paragraph"
    probe += "\n" + "\n".join(f"filler {i}" for i in range(200))
    lay = reference_layout(probe, cfg)
    streams = pdf_page_streams(lay.pdf)
    blocks = [pdf_text_blocks(s) for s in streams]
    p1 = blocks[0]
    return {
        "config_geometry": frame_geometry(cfg),
        "page1_blocks": [b.__dict__ for b in p1],
        "first_text_x": p1[0].x,
        "first_baseline_from_page_top": ph - p1[0].first_baseline,
        "second_paragraph_first_baseline_from_top": ph - p1[1].first_baseline,
        "lines_on_page1": sum(b.lines for b in p1),
        "lines_on_page2": sum(b.lines for b in blocks[1]) if len(blocks) > 1 else 0,
        "page_width": pw,
    }


# --------------------------------------------------------------------------- CLI


def read_text(path: str, chars: int | None = None, start: int = 0) -> str:
    """Read a text file as Glyph input: UTF-8, CRLF -> LF; ``start``/``chars`` index the raw
    file (as the corpus MANIFEST offsets do)."""
    with open(path, encoding="utf-8", newline="") as f:
        raw = f.read()
    raw = raw[start : start + chars] if chars else raw[start:]
    return raw.replace("\r\n", "\n")


def _cli_config(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if args.config:
        cfg.update(json.loads(Path(args.config).read_text()))
    for kv in args.set or []:
        k, _, v = kv.partition("=")
        cfg[k] = json.loads(v) if v[:1] in '-0123456789[{tf"' else v
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("render", "lines", "verify", "geometry", "time"):
        p = sub.add_parser(name)
        if name != "geometry":
            p.add_argument("text", help="UTF-8 text file")
            p.add_argument("--chars", type=int, default=None, help="take only this many chars")
            p.add_argument("--start", type=int, default=0, help="char offset to start at")
        p.add_argument("--config", help="Glyph JSON config (keys hyphenated)")
        p.add_argument("--set", action="append", help="KEY=VALUE override, e.g. dpi=96")
        if name == "render":
            p.add_argument("--out", required=True, help="folder for page PNGs")
        if name == "time":
            p.add_argument("--dpi", type=int, action="append", help="DPI to time (repeatable)")
            p.add_argument("--repeats", type=int, default=3)
            p.add_argument("--cpu", type=int, default=None, help="pin to this CPU (one core)")
    args = ap.parse_args(argv)
    cfg = _cli_config(args)

    if args.cmd == "geometry":
        print(json.dumps(geometry_report(cfg), indent=2))
        return 0
    text = read_text(args.text, args.chars, args.start)
    if args.cmd == "render":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(render_reference(text, cfg)):
            (out / f"page_{i + 1:03d}.png").write_bytes(png_bytes(img))
        print(f"wrote {i + 1} pages to {out}")
    elif args.cmd == "lines":
        for page_no, page in enumerate(reference_layout(text, cfg).pages, 1):
            for ln in page:
                print(f"p{page_no:<4} {ln.used:7.2f}/{ln.max_width:.2f} {' '.join(ln.words)}")
    elif args.cmd == "verify":
        rep = verify(text, cfg)
        print(json.dumps(rep, indent=2, ensure_ascii=False))
        return 0 if rep["ok"] else 1
    elif args.cmd == "time":
        if args.cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.cpu})  # pdftoppm children inherit the pin
        for dpi in args.dpi or [72, 96]:
            t = time_reference(text, {**cfg, "dpi": dpi}, repeats=args.repeats)
            print(t.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
