"""Layout: text -> pages of positioned lines, in points, exactly as Glyph's reference lays them out.

The Glyph project renders text with reportlab (``scripts/word2png_function.py``): it removes
soft hyphens and zero-width spaces, escapes the text, turns runs of two or more spaces into
``&nbsp;``, joins every 30 source lines with the newline markup into one ``Paragraph`` and
flows the paragraphs through a ``SimpleDocTemplate`` frame (margins plus reportlab's 6 pt frame
padding). This module does the same without reportlab: :mod:`.paragraph` breaks the lines, the
frame logic here places and splits paragraphs page by page (``allowOrphans=0``, space before
and after, a split remainder re-wrapped on the next page), and each line's pen position is
computed the way reportlab writes it into the PDF and poppler reads it back, so the raster can
place every glyph where poppler placed it.

Pages come out lazily, each recording the span of source text it holds: spans tile the input.
Layout knows no DPI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import paragraph as _para
from .config import FRAME_PADDING, RenderConfig
from .fonts import font_chain
from .paragraph import BREAK, MARKER, TEXT, WSC, Frag, Paragraph, cjk_trigger, metrics_for
from .paragraph import Line as PLine
from .pdfnum import fp_str, pdf_value, poppler_number

__all__ = ["Block", "Line", "Page", "layout", "LINES_PER_GROUP", "TEXT", "MARKER"]

#: Glyph's renderer makes one reportlab Paragraph of every 30 source lines.
LINES_PER_GROUP = 30


@dataclass(slots=True)
class Line:
    """One drawn line: its source span, what it draws, and where poppler puts its pen.

    ``runs`` are ``(text, style)`` as drawn (spaces included; ``MARKER`` is the newline marker's
    colour). ``ux``/``uy`` are poppler's text-space pen (after the text matrix, before the
    page transform of the line's :class:`Block`), ``word_space`` the ``Tw`` in force.
    """

    start: int
    end: int
    runs: list[tuple[str, int]]
    ux: float
    uy: float
    word_space: float
    block: int
    baseline: float  # pt from the page's top edge
    x: float  # pt from the page's left edge
    forced: bool = False  # ended by a source newline
    width: float = 0.0  # pt: reportlab's measured width (max width - extraSpace; CJK mode
    # counts the spaces it strips off the line's ends, as reportlab does)

    @property
    def text(self) -> str:
        return "".join(t for t, _s in self.runs)


@dataclass(slots=True)
class Block:
    """One placed paragraph (part): its origin and background rectangle, as poppler read them."""

    ex: float
    ey: float
    rect: tuple[float, float, float, float]  # x, y, w, h relative to (ex, ey)
    fill: bool
    stroke: bool


@dataclass(slots=True)
class Page:
    """A laid-out page: its lines and blocks, the source span it holds, its size in points."""

    number: int  # 1-based
    start: int
    end: int
    lines: list[Line] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    font_size: float = 0.0  # as poppler read it (Tf)
    missing: int = 0  # characters drawn as a replacement glyph
    ink: object = field(default=None, repr=False, compare=False)  # raster's crop candidates

    @property
    def chars(self) -> int:
        return self.end - self.start


# ---- Glyph's markup ------------------------------------------------------------------------

_PY_WS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_WS_PY = re.escape(_PY_WS)
_WS_RL = re.escape(WSC)
# A source line: runs of 2+ spaces (&nbsp; entities), &<> (entities), or text whose whitespace
# collapses (a single space that starts a 2+ run belongs to the run).
_LINE_TOKENS = {
    ws: re.compile(r"(?P<nb> {2,})|(?P<ent>[&<>])|(?P<txt>(?:[^&<> ]| (?! ))+)")
    for ws in (_WS_PY, _WS_RL)
}
_WORDS = {ws: re.compile(rf"[^{ws}]+") for ws in (_WS_PY, _WS_RL)}
_IS_WS = {ws: re.compile(rf"[{ws}]") for ws in (_WS_PY, _WS_RL)}


class _Markup:
    """Turns 30-line groups of the (cleaned) source into reportlab frags."""

    def __init__(self, cfg: RenderConfig):
        nl = cfg.newline
        self.line_break = nl.line_break
        self.marker = nl.marker
        self.marker_tagged = nl.color is not None

    def frags(self, text: str, bounds: list[tuple[int, int]]) -> list[Frag]:
        """Frags of the group whose source lines are ``text[a:b]`` for ``(a, b)`` in bounds."""
        raw_nbsp = any("\xa0" in text[a:b] for a, b in bounds)
        ws = _WS_RL if raw_nbsp else _WS_PY
        tokens = _LINE_TOKENS[ws]
        words_re = _WORDS[ws]
        is_ws = _IS_WS[ws]
        out: list[Frag] = []
        last = len(bounds) - 1
        c = _para._c if _para._USE_C else None
        for i, (a, b) in enumerate(bounds):
            seg = text[a:b]
            if c.aligned(text, a, b) if c is not None else _aligned(seg):
                # the common line: nothing collapses, so the frag lines up with the source
                if seg:
                    out.append(Frag(TEXT, seg[:-1] + " " if seg[-1] == "\r" else seg, [], a))
            elif c is not None:
                out.extend(c.line_frags(text, a, b, raw_nbsp))
            else:
                out.extend(_line_frags(text, a, b, tokens, words_re, is_ws))
            if i != last:
                if self.line_break:
                    out.append(Frag(BREAK, "", [b]))
                else:
                    self._marker(out, b)
        _clean_ends(out)
        return out

    def _marker(self, out: list[Frag], at: int) -> None:
        """The newline marker: its own frag (a <font> tag), or text merged into the line."""
        text = self.marker
        words = text.split()
        t = (" " if text[:1].isspace() else "") + " ".join(words) + (
            " " if text[-1:].isspace() and words else "")
        if not self.marker_tagged and out and out[-1].style == TEXT and out[-1].text.endswith(
                " ") and t.startswith(" "):
            t = t[1:]  # no tag between: the spaces collapse
        out.append(Frag(MARKER if self.marker_tagged else TEXT, t, [at] * len(words)))


def _aligned(seg: str) -> bool:
    """A source line whose markup cleans to itself: no entity, no run of whitespace, no
    whitespace but single spaces (a CRLF's trailing CR becomes one)."""
    if "&" in seg or "<" in seg or ">" in seg or "  " in seg:
        return False
    if seg.isprintable():
        return True
    return seg[-1:] == "\r" and seg[:-1].isprintable() and not seg[:-1].endswith(" ")


def _line_frags(text: str, a: int, b: int, tokens: re.Pattern, words_re: re.Pattern,
                is_ws: re.Pattern) -> Iterator[Frag]:
    """The general case: entities and &nbsp; runs are frags of their own, whitespace
    collapses to single spaces. (``_layoutc.line_frags`` does the same in C.)"""
    for m in tokens.finditer(text, a, b):
        kind = m.lastgroup
        if kind == "txt":
            s, e = m.span()
            words = [(w.group(), w.start()) for w in words_re.finditer(text, s, e)]
            lead = bool(is_ws.match(text, s))
            trail = bool(is_ws.match(text, e - 1))
            body = " ".join(w for w, _o in words)
            t = (" " if lead else "") + body + (" " if trail and words else "")
            # whitespace alone collapses to one space, placed where the run starts
            yield Frag(TEXT, t, [o for _w, o in words]) if words else Frag(TEXT, t, [], s)
        elif kind == "nb":
            s, e = m.span()
            yield from (Frag(TEXT, "\xa0", [k]) for k in range(s, e))
        else:
            yield Frag(TEXT, m.group(), [m.start()])


def _clean_ends(frags: list[Frag]) -> None:
    """reportlab's cleaner strips the paragraph's leading and trailing whitespace."""
    while frags and frags[0].style == TEXT:
        f = frags[0]
        t = f.text.lstrip(" ")
        if t:
            if f.base >= 0:  # a frag aligned with its source: the text now starts later
                f.base += len(f.text) - len(t)
            f.text = t
            break
        frags.pop(0)
    while frags and frags[-1].style == TEXT:
        f = frags[-1]
        t = f.text.rstrip(" ")
        if t:
            f.text = t
            break
        frags.pop()


def _source(text: str, tab_size: int = 0) -> tuple[str, list[int] | None]:
    """Glyph deletes soft hyphens and zero-width spaces first; keep a map back to the source.

    ``tab_size`` > 0 (not the reference's behaviour, where a tab collapses into one space)
    first expands tabs to that many columns, so code keeps its indentation.
    """
    expand = tab_size > 0 and "\t" in text
    if "\xad" not in text and "\u200b" not in text and not expand:
        return text, None
    out: list[str] = []
    omap: list[int] = []
    col = 0
    for i, c in enumerate(text):
        if c in "\xad\u200b":
            continue
        if c == "\t" and expand:
            n = tab_size - col % tab_size
            out.append(" " * n)
            omap.extend([i] * n)
            col += n
            continue
        out.append(c)
        omap.append(i)
        col = 0 if c == "\n" else col + 1
    return "".join(out), omap


def _groups(text: str, cfg: RenderConfig) -> Iterator[list[tuple[int, int]]]:
    """Source-line bounds of each 30-line group (lines split at ``\\n`` only, as Glyph does)."""
    if cfg.remove_line_breaks:
        yield [(0, len(text))]
        return
    bounds: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    find = text.find
    while True:
        nl = find("\n", start)
        end = n if nl < 0 else nl
        bounds.append((start, end))
        if len(bounds) == LINES_PER_GROUP:
            yield bounds
            bounds = []
        if nl < 0:
            break
        start = nl + 1
    if bounds:
        yield bounds


# ---- reportlab's frame and doc template ----------------------------------------------------

class _Frame:
    """SimpleDocTemplate's single frame: margins, 6 pt padding, reportlab's float arithmetic."""

    def __init__(self, cfg: RenderConfig):
        pw, ph = cfg.page_size
        lm = rm = cfg.margin_x
        tm = bm = cfg.margin_y
        width = (pw - rm) - lm
        height = (ph - tm) - bm
        self.x1, self.y1 = lm, bm
        x2 = self.x1 + width
        self.y2 = self.y1 + height
        self.y1p = self.y1 + FRAME_PADDING
        self.aW = x2 - self.x1 - FRAME_PADDING - FRAME_PADDING
        self.x = self.x1 + FRAME_PADDING
        self.reset()

    def reset(self) -> None:
        self.y = self.y2 - FRAME_PADDING
        self.at_top = True
        self.prev_after = 0.0


# ---- pens: what reportlab writes, what poppler reads ---------------------------------------

class _Pen:
    """A paragraph's text object, written as reportlab's PDFTextObject writes it and read as
    poppler's Gfx reads it (Td merging, fp_str numbers, T* leading)."""

    def __init__(self, x: float, y: float, leading: float):
        self.tm_e = pdf_value(x)
        self.tm_f = pdf_value(y)
        self.line_x = 0.0
        self.line_y = 0.0
        self.leading = pdf_value(leading)
        self.ws = 0.0
        self.pending: str | None = None  # the last op was "<dx> 0 Td" (not yet read)

    def _flush(self) -> None:
        if self.pending is not None:
            self.line_x = self.line_x + poppler_number(self.pending)
            self.pending = None

    def set_x(self, dx: float) -> None:
        """setXPos: Td, merged with an immediately preceding Td as reportlab merges them."""
        if not (dx > 1e-6 or dx < -1e-6):
            return
        if self.pending is not None:
            dx += float(self.pending)
        self.pending = fp_str(dx)

    def word_space(self, ws: float) -> None:
        self._flush()
        self.ws = pdf_value(ws)

    def start_line(self) -> tuple[float, float, float]:
        """Read everything pending; the pen (curX, curY) and Tw for the text about to be drawn."""
        self._flush()
        ux = 1.0 * self.line_x + 0.0 * self.line_y + self.tm_e
        uy = 0.0 * self.line_x + 1.0 * self.line_y + self.tm_f
        return ux, uy, self.ws

    def next_line(self) -> None:
        """T* after a line's text."""
        self.line_y = self.line_y - self.leading


#: ``_layoutc.draw_lines``' codes for the alignments (any other draws as RIGHT does).
_ALIGN_CODES = {"LEFT": 0, "JUSTIFY": 1, "CENTER": 2, "RIGHT": 3}


class _Placer:
    """Draws placed paragraphs onto pages: blocks, pens, lines, spans (the loop over a
    paragraph's lines in C when ``_layoutc`` is there: ``_line`` is its definition)."""

    def __init__(self, cfg: RenderConfig, omap: list[int] | None):
        self.cfg = cfg
        self.omap = omap
        self.size_pv = pdf_value(cfg.font_size)
        pad = cfg.border_padding
        self.draw_rect = True  # Glyph always gives a paragraph background (para-bg-color)
        self.stroke = cfg.border_width > 0
        self.pad = pad

    def src(self, i: int) -> int:
        omap = self.omap
        if omap is None:
            return i
        return omap[i] if i < len(omap) else (omap[-1] + 1 if omap else i)

    def draw(self, page: Page, para: Paragraph, x: float, y: float) -> None:
        cfg = self.cfg
        block_no = len(page.blocks)
        pad = self.pad
        left = para.left_indent
        rect = (pdf_value(left - pad), pdf_value(-pad),
                pdf_value(para.width - (left + para.right_indent) + pad + pad),
                pdf_value(para.height + pad + pad))
        ex, ey = pdf_value(x), pdf_value(y)
        page.blocks.append(Block(ex, ey, rect, self.draw_rect, self.stroke))
        lines = para.lines
        n = len(lines)
        if not n:
            return
        pen = _Pen(left, para.height - cfg.font_size, cfg.line_height)
        align = cfg.alignment
        no_justify_last = not para.justify_last
        top = cfg.page_size[1]
        if _para._c is not None and _para._USE_C:
            _para._c.draw_lines(page.lines, lines, para.kind == 0, _ALIGN_CODES.get(align, 3),
                                no_justify_last, para.first_indent, pen.tm_e, pen.tm_f,
                                pen.leading, self.omap, block_no, ex, ey, top)
            return
        for i, line in enumerate(lines):
            offset = para.first_indent if i == 0 else 0.0
            last = no_justify_last and i == n - 1
            self._line(page, pen, para, line, offset, last, align, block_no, ex, ey, top)

    def _line(self, page: Page, pen: _Pen, para: Paragraph, line: PLine, offset: float,
              last: bool, align: str, block_no: int, ex: float, ey: float,
              top: float) -> None:
        """One line, in the order reportlab's ``_*DrawParaLine[X]`` functions write it."""
        frags = line.frags
        extra = line.extra
        kind0 = para.kind == 0
        if kind0 or len(frags) == 1:
            n_spaces = line.count + frags[0][1].count("\xa0") - 1
        else:
            n_spaces = line.count + sum(f[1].count("\xa0") for f in frags) - 1
        if align == "JUSTIFY":
            simple = ((not kind0 and line.line_break) or (-1e-8 < extra <= 1e-8)
                      or (last and extra > -1e-8))
        else:
            simple = extra > -1e-8
        if not simple:
            simple = n_spaces <= 0
        ws = None if simple else extra / float(n_spaces)
        if align in ("LEFT", "JUSTIFY"):
            m = offset
            pen.set_x(m)
            if ws is not None:
                pen.word_space(ws)
        elif simple:
            m = offset + (0.5 * extra if align == "CENTER" else extra)
            pen.set_x(m)
        else:
            m = offset
            pen.word_space(ws)
            if kind0:  # the kind-0 variants move after setting the word space; kind 1 never
                pen.set_x(m)
        ux, uy, tw = pen.start_line()
        runs: list[tuple[str, int]] = []
        for f in frags:
            t = f[1]
            if t:
                st = MARKER if f[0] == MARKER else TEXT
                if runs and runs[-1][1] == st:
                    runs[-1] = (runs[-1][0] + t, st)
                else:
                    runs.append((t, st))
        lo, hi = line.lo, line.hi
        page.lines.append(Line(self.src(lo), self.src(hi), runs, ux, uy, tw, block_no,
                               top - (ey + uy), ex + ux, bool(line.line_break),
                               line.max_width - extra))
        pen.next_line()
        if ws is not None:
            pen.word_space(0)
        pen.set_x(-m)


def layout(text: str, cfg: RenderConfig, *, geometry_only: bool = False) -> Iterator[Page]:
    """Lay ``text`` out into pages, lazily. Offsets index ``text`` exactly as given.

    ``geometry_only`` is accepted for callers that only need spans and sizes; the full layout
    is cheap enough that both return the same pages.
    """
    stext, omap = _source(text, cfg.tab_size)
    chain = font_chain(cfg.font_chain)
    m = metrics_for(chain, cfg.font_size)
    markup = _Markup(cfg)
    cjk = cjk_trigger(text)
    frame = _Frame(cfg)
    placer = _Placer(cfg, omap)
    w, h = cfg.page_size
    page = Page(number=1, start=0, end=0, width=w, height=h, font_size=placer.size_pv)
    common = dict(left_indent=cfg.left_indent, right_indent=cfg.right_indent,
                  leading=cfg.line_height, cjk=cjk, split_blank=cfg.split_blank_line)

    def new_page() -> Page:
        nonlocal page
        done = page
        frame.reset()
        page = Page(number=done.number + 1, start=0, end=0, width=w, height=h,
                    font_size=placer.size_pv)
        return done

    pending: list[Paragraph] = []
    held: Page | None = None  # a finished page waiting for the next one's start
    for gi, bounds in enumerate(_groups(stext, cfg)):
        para = Paragraph(markup.frags(stext, bounds), m, first_indent=cfg.first_line_indent,
                         **common)
        para.group = gi
        pending.append(para)
        while pending:
            f = pending.pop(0)
            if _add(frame, f, cfg, placer, page):
                continue
            parts = _split(frame, f, cfg)
            if parts:
                if not _add(frame, parts[0], cfg, placer, page):
                    raise AssertionError("reportlab splitting error")  # pragma: no cover
                pending[0:0] = parts[1:]
            elif getattr(f, "_postponed", False):
                # reportlab raises LayoutError: the frame cannot hold two lines. Draw it anyway.
                _add(frame, f, cfg, placer, page, force=True)
            else:
                f._postponed = True  # type: ignore[attr-defined]
                pending.insert(0, f)
                done = new_page()
                if held is not None:
                    held.end = done.start = max(held.start, _first_start(done, held.start))
                    yield _count_missing(held, chain)
                else:
                    done.start = 0
                held = done
    if held is not None:
        held.end = page.start = max(held.start, _first_start(page, held.start))
        yield _count_missing(held, chain)
    else:
        page.start = 0
    page.end = len(text)
    yield _count_missing(page, chain)


def _first_start(page: Page, default: int) -> int:
    return page.lines[0].start if page.lines else default


def _count_missing(page: Page, chain) -> Page:
    gone = chain.missing_chars
    if gone:
        page.missing = sum(1 for ln in page.lines for t, _s in ln.runs for c in t if c in gone)
    return page


def _space_left(frame: _Frame, cfg: RenderConfig) -> tuple[float, float]:
    """The space before the next paragraph (none at the frame's top; what the previous
    paragraph's space after already gave is subtracted) and the height left below it."""
    s = 0.0
    if not frame.at_top:
        s = cfg.space_before
        s = max(s - frame.prev_after, 0)
    return s, frame.y - frame.y1p - s


def _add(frame: _Frame, f: Paragraph, cfg: RenderConfig, placer: _Placer, page: Page,
         force: bool = False) -> bool:
    """reportlab's Frame.add: wrap in the space left, draw if it fits."""
    y = frame.y
    p = frame.y1p
    s, h = _space_left(frame, cfg)
    if h > 0 or force:
        _w, h = f.wrap(frame.aW, h)
    else:
        return False
    h += s
    y -= h
    if y < p - 1e-6 and not force:
        return False
    sa = cfg.space_after
    placer.draw(page, f, frame.x, y)
    y -= sa
    frame.prev_after = sa
    if y != frame.y:
        frame.at_top = False
    frame.y = y
    return True


def _split(frame: _Frame, f: Paragraph, cfg: RenderConfig) -> list[Paragraph]:
    """reportlab's Frame.split: the paragraph cut to the height left."""
    _s, h = _space_left(frame, cfg)
    if h <= 0:
        return []
    return f.split(frame.aW, h)


if _para._c is not None:
    _para._c.setup_draw(Line, fp_str, poppler_number, pdf_value)
