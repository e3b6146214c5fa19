"""Layout: text -> lines -> pages, in points. Knows nothing of pixels or DPI.

The geometry and line breaking follow the Glyph project's reference renderer (reportlab's
``Paragraph`` in a ``SimpleDocTemplate`` frame), because that is the layout the model was trained
on:

* the text frame is inset 6 pt inside the margins (reportlab's Frame padding);
* a line's first baseline lies ``font-size`` below the line top; lines are ``line-height`` apart;
* lines break greedily at single spaces on the fonts' unkerned design advances, and a line may
  overrun the frame by 5% of a space width per space already on it (reportlab's space shrinkage);
* runs of two or more spaces are non-breaking (Glyph turns them into ``&nbsp;``), so indentation
  survives; a single space at a line's edge takes no room;
* a word wider than the line is split by character, its first piece filling the current line;
* a newline is a forced line break (``<br/>``) or, in marker mode, an inline marker word;
* CJK text breaks between characters, keeping closing punctuation off the start of a line;
* Glyph's script makes one reportlab Paragraph of every 30 source lines, so, as there: a blank
  source line that ends such a group draws nothing, in marker mode a group boundary is a line
  break (no marker), and a group that would leave only its first line at the foot of a page
  moves whole to the next page (reportlab's ``allowOrphans=0``). Not copied: reportlab's habit
  of opening a page with an empty line when it splits a group right after a ``<br/>``.

Pages come out lazily, each recording the source span it holds: spans tile the input exactly, so
later stages can cite a page, and tests can check that nothing was lost or duplicated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .config import FRAME_PADDING, RenderConfig, frame_height, frame_width
from .fonts import FontChain, font_chain

# Drawn-word styles.
TEXT, MARKER = 0, 1
# Glyph's renderer makes one reportlab Paragraph of every 30 source lines.
LINES_PER_GROUP = 30

_TOKEN = re.compile(r"(\r\n|\r|\n)|((?:[^ \r\n]| {2,})+)")

# Characters that may break on either side (ideographs, kana, hangul, fullwidth forms).
_CJK_CHAR = re.compile(
    r"[\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u33ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
    r"|[\U00020000-\U0003ffff]"
)
# Kinsoku: never at the start of a line / never at the end of a line.
_NO_START = set("，。！？、；：）」』】〕〉》〗〙〛｝］｠”’・ー…‥〜～"
                "ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ!%),.:;?]}¢°·'\"′″℃")
_NO_END = set("（「『【〔〈《〖〘〚｛［｟“‘([{£¥$")


@dataclass(slots=True)
class Line:
    """One drawn line. ``words`` are (x in pt from the page's left edge, text, style)."""

    start: int
    end: int
    baseline: float  # pt from the page's top edge
    width: float  # pt, from the first word's x to the last word's end
    words: list[tuple[float, str, int]]
    forced: bool = False  # ended by a source newline rather than by wrapping


@dataclass(slots=True)
class Box:
    """A paragraph background/border rectangle in points (page coordinates)."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(slots=True)
class Page:
    """A laid-out page: its lines, the source span it holds, and the extents of its ink."""

    number: int  # 1-based
    start: int
    end: int
    lines: list[Line] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    width: float = 0.0  # full page size in pt
    height: float = 0.0
    content_right: float = 0.0  # right edge of the rightmost ink, pt
    content_bottom: float = 0.0  # lowest ink, pt
    missing: int = 0  # characters drawn as the replacement glyph

    @property
    def chars(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class _Unit:
    """A breakable piece: a word, a CJK character, a marker word."""

    text: str
    start: int
    end: int
    width: float  # pt
    gap: bool  # a (break) space precedes it
    style: int = TEXT
    srcmap: list[int] | None = None  # source offset of each character, when tabs expanded it


class _Measurer:
    """Unit widths in points, memoised: prose repeats its words endlessly."""

    def __init__(self, chain: FontChain, size: float):
        self.chain = chain
        self.size = size
        self.cache: dict[str, float] = {}
        self.missing: dict[str, int] = {}  # text -> characters no font has (replacement drawn)
        self.space = chain.advance(" ") * size

    def __call__(self, text: str) -> float:
        w = self.cache.get(text)
        if w is None:
            w = self.chain.width(text) * self.size
            if len(self.cache) < 500_000:
                self.cache[text] = w
            gone = self.chain.missing_chars
            if gone and not gone.isdisjoint(text):
                self.missing[text] = sum(1 for ch in text if ch in gone)
        return w


def _expand_tabs(text: str, start: int, column: int, tab: int) -> tuple[str, list[int]]:
    """Tabs to spaces up to the next tab stop; also each output character's source offset."""
    out: list[str] = []
    src: list[int] = []
    for k, ch in enumerate(text):
        if ch == "\t":
            n = tab - column % tab
            out.append(" " * n)
            src.extend([start + k] * n)
            column += n
        else:
            out.append(ch)
            src.append(start + k)
            column += 1
    return "".join(out), src


def _split_cjk(text: str, start: int, gap: bool, measure: _Measurer) -> list[_Unit]:
    """Cut a word that holds CJK characters into pieces that may break between them."""
    pieces: list[list] = []  # [text, start, end]
    i = 0
    n = len(text)
    while i < n:
        j = i + 1
        if _CJK_CHAR.match(text[i]) is None:
            while j < n and _CJK_CHAR.match(text[j]) is None:
                j += 1
        piece = text[i:j]
        if pieces and (piece[0] in _NO_START or pieces[-1][0][-1] in _NO_END):
            pieces[-1][0] += piece
            pieces[-1][2] = start + j
        else:
            pieces.append([piece, start + i, start + j])
        i = j
    return [
        _Unit(t, s, e, measure(t), gap and k == 0) for k, (t, s, e) in enumerate(pieces)
    ]


def _split_long(u: _Unit, first_room: float, width: float, measure: _Measurer) -> list[_Unit]:
    """Split a too-wide unit by character: first piece fills ``first_room``, then full lines."""
    pieces: list[_Unit] = []
    room = first_room
    buf_start = 0
    acc = 0.0
    text = u.text
    for k, ch in enumerate(text):
        cw = measure(ch)
        if acc + cw > room and k > buf_start and cw > 0:
            pieces.append(_piece(u, buf_start, k, acc, len(pieces) == 0))
            buf_start, acc, room = k, 0.0, width
        elif acc + cw > room and k == buf_start and room < width and cw > 0:
            # Not even one character fits the rest of this line: start the word on the next.
            pieces.append(_piece(u, k, k, 0.0, True))
            room = width
        acc += cw
    pieces.append(_piece(u, buf_start, len(text), acc, len(pieces) == 0))
    return pieces


def _piece(u: _Unit, a: int, b: int, w: float, first: bool) -> _Unit:
    n = len(u.text)
    if u.style == MARKER:
        span_start, span_end = u.start, u.end
    elif u.srcmap is not None:
        span_start = u.srcmap[a] if a < n else u.end
        span_end = u.srcmap[b] if b < n else u.end
    else:
        span_start, span_end = min(u.start + a, u.end), min(u.start + b, u.end)
    measure_text = u.text[a:b]
    return _Unit(measure_text, span_start, span_end, w, u.gap and first, u.style)


class _LineBuilder:
    """Greedy line filling with reportlab's rule and its space-shrink allowance."""

    def __init__(self, cfg: RenderConfig, measure: _Measurer):
        self.cfg = cfg
        self.measure = measure
        self.space = measure.space
        self.shrink = 0.05 * measure.space
        self.base_width = frame_width(cfg)
        self.units: list[_Unit] = []
        self.width = 0.0  # natural width of the current line, pt
        self.gaps = 0
        self._para_first = True
        self._max = self.base_width - cfg.first_line_indent
        self.group = 0  # Glyph's reportlab paragraph (30 source lines) the current line is in
        self.done: list[tuple[list[_Unit], float, int, bool, bool, int]] = []

    @property
    def para_first(self) -> bool:
        """The next line opens a paragraph (and takes the first-line indent)."""
        return self._para_first

    @para_first.setter
    def para_first(self, value: bool) -> None:
        self._para_first = value
        self._max = self.base_width - (self.cfg.first_line_indent if value else 0.0)

    def add(self, u: _Unit) -> None:
        units = self.units
        gap = u.gap and bool(units)
        new_width = self.width + (self.space if gap else 0.0) + u.width
        if new_width <= self._max + self.shrink * (self.gaps + gap):  # the common case, inline
            if gap:
                self.gaps += 1
            u.gap = gap
            units.append(u)
            self.width = new_width
        elif u.width > self._max + 1e-9 and len(u.text) > 1:
            self._add_long(u)
        elif not self.units:
            self._append(u, False, u.width)  # a single character wider than the line
        else:
            self.flush(forced=False)
            self._append(u, False, u.width)

    def _append(self, u: _Unit, gap: bool, new_width: float) -> None:
        if gap:
            self.gaps += 1
        u.gap = gap
        self.units.append(u)
        self.width = new_width

    def _add_long(self, u: _Unit) -> None:
        gap = u.gap and bool(self.units)
        used = self.width + (self.space if gap else 0.0) if self.units else 0.0
        pieces = _split_long(u, self._max - used, self.base_width, self.measure)
        for k, p in enumerate(pieces):
            if k > 0 or (not p.text and self.units):
                self.flush(forced=False)
            if p.text:
                g = gap if k == 0 else False
                self._append(p, g, (self.width + (self.space if g else 0.0) + p.width)
                             if self.units else p.width)

    def flush(self, forced: bool, empty_at: int | None = None) -> None:
        """End the current line (possibly empty, for a blank source line)."""
        if not self.units and empty_at is None:
            return
        self.done.append((self.units, self.width, self.gaps, forced, self.para_first,
                          self.group))
        if self.units:
            self.para_first = False
        self.units = []
        self.width = 0.0
        self.gaps = 0


def _line_extent(cfg: RenderConfig, natural: float, para_first: bool, gaps: int,
                 forced: bool) -> tuple[float, float]:
    """(left edge of the first word, extra width per gap) for the alignment.

    JUSTIFY stretches the gaps of wrapped lines only: a line ended by a newline, or the text's
    last line, keeps its natural width.
    """
    left = cfg.margin_x + FRAME_PADDING + cfg.left_indent
    avail = frame_width(cfg)
    if para_first:
        left += cfg.first_line_indent
        avail -= cfg.first_line_indent
    if cfg.alignment == "CENTER":
        return left + (avail - natural) / 2, 0.0
    if cfg.alignment == "RIGHT":
        return left + avail - natural, 0.0
    if cfg.alignment == "JUSTIFY" and gaps and not forced:
        return left, (avail - natural) / gaps
    return left, 0.0


def _position(cfg: RenderConfig, measure: _Measurer, units: list[_Unit], natural: float,
              gaps: int, forced: bool, para_first: bool) -> tuple[float, list]:
    """x positions of a line's words per the alignment; returns (line width, words)."""
    x0, extra_gap = _line_extent(cfg, natural, para_first, gaps, forced)
    space = measure.space + extra_gap
    words: list[tuple[float, str, int]] = []
    x = x0
    for k, u in enumerate(units):
        if k and u.gap:
            x += space
        if words and not u.gap and words[-1][2] == u.style:
            px, pt, ps = words[-1]
            words[-1] = (px, pt + u.text, ps)
        else:
            words.append((x, u.text, u.style))
        x += u.width
    return x - x0, words


_NEWLINE = re.compile(r"[\r\n]")


def layout(text: str, cfg: RenderConfig, *, geometry_only: bool = False) -> Iterator[Page]:
    """Lay ``text`` out into pages, lazily. Offsets index ``text`` exactly as given.

    ``geometry_only`` is for budget planning: pages carry their spans and ink extents but no
    lines, and a source line that fits the frame whole is measured in one go instead of word by
    word (the same widths summed in another order, so it is only taken with a margin of 1e-6 pt).
    """
    chain = font_chain(cfg.font_chain)
    measure = _Measurer(chain, cfg.font_size)
    builder = _LineBuilder(cfg, measure)
    paginator = _Paginator(cfg, chain, measure, geometry_only)
    fast = geometry_only and cfg.newline.line_break and not cfg.remove_line_breaks
    newline = cfg.newline
    marker_units: list[tuple[str, float]] = []
    if not newline.line_break:
        marker_units = [(w, measure(w)) for w in newline.marker.split(" ") if w]
    tab = cfg.tab_size
    line_start = 0  # source offset of the current source line, for tab columns
    pending_gap = False
    blank_run = True  # at a paragraph start (text start or after a blank line)
    source_line_empty = True
    src_line = 0  # index of the current source line

    def drain() -> Iterator[Page]:
        for entry in builder.done:
            yield from paginator.add_line(*entry)
        builder.done.clear()

    prev_end = 0
    pos = 0
    n_text = len(text)
    search = _TOKEN.search
    while pos < n_text:
        if fast and source_line_empty and not builder.units:
            nl = _NEWLINE.search(text, pos)
            le = nl.start() if nl else n_text
            a, b = pos, le
            if b - a >= 1 and text[a] == " " and (b - a == 1 or text[a + 1] != " "):
                a += 1
            if b - a >= 1 and text[b - 1] == " " and (b - a == 1 or text[b - 2] != " "):
                b -= 1
            if b > a and "\t" not in text[a:b]:
                core = text[a:b]
                if core.isascii() or not _CJK_CHAR.search(core):
                    width = measure(core)
                    first = blank_run or builder.para_first
                    room = builder.base_width - (cfg.first_line_indent if first else 0.0)
                    if width <= room - 1e-6:
                        if blank_run:
                            builder.para_first = True
                            paginator.para_start()
                            blank_run = False
                        builder.done.append(([_Unit(core, a, b, width, False)], width, 0, True,
                                             builder.para_first, builder.group))
                        builder.para_first = False
                        source_line_empty = False
                        prev_end = pos = le
                        yield from drain()
                        if nl is None:
                            break
        m = search(text, pos)
        if m is None:
            break
        pos = m.end()
        s = m.start()
        # Unmatched characters between tokens are single spaces: break opportunities.
        gap = pending_gap or s > prev_end
        prev_end = e = m.end()
        if m.lastindex == 2:
            word = m.group(2)
            if blank_run:
                builder.para_first = True
                paginator.para_start()
                blank_run = False
            source_line_empty = False
            if not word.isascii() and _CJK_CHAR.search(word):
                # Split on the source so every piece keeps its own span; expand tabs after.
                for u in _split_cjk(word, s, gap, measure):
                    if "\t" in u.text:
                        u.text, u.srcmap = _expand_tabs(u.text, u.start, u.start - line_start,
                                                        tab)
                        u.width = measure(u.text)
                    builder.add(u)
            elif "\t" in word:
                word, srcmap = _expand_tabs(word, s, s - line_start, tab)
                builder.add(_Unit(word, s, e, measure(word), gap, TEXT, srcmap))
            else:
                builder.add(_Unit(word, s, e, measure(word), gap))
            pending_gap = False
        else:
            # Glyph's script makes one reportlab Paragraph of every 30 source lines, joined by
            # the newline markup: its last line ends the paragraph instead.
            group_end = src_line % LINES_PER_GROUP == LINES_PER_GROUP - 1
            if cfg.remove_line_breaks:
                pending_gap = True
            elif not newline.line_break:
                if group_end:
                    builder.flush(forced=True)
                    pending_gap = False
                else:
                    for w, wd in marker_units:
                        builder.add(_Unit(w, s, e, wd, True, MARKER))
                    pending_gap = True
            else:
                if source_line_empty:
                    if not blank_run:
                        paginator.para_end()
                    blank_run = True
                    if not group_end:  # a paragraph's trailing <br/> draws no blank line
                        builder.flush(forced=True, empty_at=s)
                else:
                    builder.flush(forced=True)
                pending_gap = False
            source_line_empty = True
            line_start = e
            src_line += 1
            builder.group = src_line // LINES_PER_GROUP
        if builder.done:
            yield from drain()
    builder.flush(forced=True)
    if builder.done:
        # The text's final line is never justified.
        units, width, gaps, _forced, pf, group = builder.done[-1]
        builder.done[-1] = (units, width, gaps, True, pf, group)
    yield from drain()
    yield from paginator.finish(len(text))


class _Paginator:
    """Stacks lines into frames the height of the page's text area, reportlab style."""

    def __init__(self, cfg: RenderConfig, chain: FontChain, measure: _Measurer,
                 geometry_only: bool = False):
        self.geometry_only = geometry_only
        self.cfg = cfg
        self.measure = measure
        self.frame_top = cfg.margin_y + FRAME_PADDING
        self.frame_h = frame_height(cfg)
        self.page = self._new_page(1, 0)
        self.y = 0.0  # pt used in the current frame
        self.pending_space = 0.0  # space-before/after waiting for the next line
        self.para_top: float | None = None
        self.last_end = 0
        self.descent = max(chain.descent, 0.0) * cfg.font_size
        self.draw_boxes = (cfg.para_bg_color != cfg.page_bg_color) or cfg.border_width > 0
        self.group = -1  # group of the last line placed
        self.held: tuple | None = None  # a group's first line waiting on the orphan rule

    def _new_page(self, number: int, start: int) -> Page:
        w, h = self.cfg.page_size
        return Page(number=number, start=start, end=start, width=w, height=h)

    def para_start(self) -> None:
        self.pending_space += self.cfg.space_before

    def para_end(self) -> None:
        self._close_box()
        self.pending_space += self.cfg.space_after

    def _close_box(self) -> None:
        if self.para_top is None or not self.draw_boxes:
            self.para_top = None
            return
        cfg = self.cfg
        pad = cfg.border_padding
        left = cfg.margin_x + FRAME_PADDING + cfg.left_indent - pad
        right = cfg.page_size[0] - cfg.margin_x - FRAME_PADDING - cfg.right_indent + pad
        top = self.frame_top + self.para_top - pad
        bottom = self.frame_top + self.y + pad
        self.page.boxes.append(Box(left, top, right, bottom))
        self.page.content_right = max(self.page.content_right, right + cfg.border_width / 2)
        self.page.content_bottom = max(self.page.content_bottom, bottom + cfg.border_width / 2)
        self.para_top = None

    def add_line(self, units: list[_Unit], natural: float, gaps: int, forced: bool,
                 para_first: bool, group: int) -> Iterator[Page]:
        """Place a line; reportlab's orphan rule (allowOrphans=0) decides at a group's start.

        A paragraph that must be split with room for only one line moves whole to the next
        page, leaving the slot empty. The first line of a group meeting a single free slot is
        held until the next line tells whether the group goes on.
        """
        if self.held is not None:
            held, self.held = self.held, None
            if group == held[-1]:
                start = held[0][0].start if held[0] else self.last_end
                yield self._finish_page(start)
            yield from self._place(*held)
        elif group != self.group and self._free_slots() == 1:
            self.held = (units, natural, gaps, forced, para_first, group)
            return
        yield from self._place(units, natural, gaps, forced, para_first, group)

    def _free_slots(self) -> int:
        space = self.pending_space if self.y > 0 else 0.0
        return int((self.frame_h - self.y - space + 1e-6) // self.cfg.line_height)

    def _place(self, units: list[_Unit], natural: float, gaps: int, forced: bool,
               para_first: bool, group: int) -> Iterator[Page]:
        self.group = group
        cfg = self.cfg
        lh = cfg.line_height
        space = self.pending_space if self.y > 0 else 0.0  # no space-before at a frame top
        if self.y > 0 and self.y + space + lh > self.frame_h + 1e-6:
            start = units[0].start if units else self.last_end
            yield self._finish_page(start)
            space = 0.0
        self.pending_space = 0.0
        self.y += space
        if self.para_top is None and units:
            self.para_top = self.y
        top = self.frame_top + self.y
        baseline = top + cfg.font_size
        self.y += lh
        if units:
            start, end = units[0].start, units[-1].end
            page = self.page
            if self.geometry_only:
                x0, extra_gap = _line_extent(cfg, natural, para_first, gaps, forced)
                right = x0 + natural + extra_gap * gaps
            else:
                width, words = _position(cfg, self.measure, units, natural, gaps, forced,
                                         para_first)
                page.lines.append(Line(start, end, baseline, width, words, forced))
                right = words[0][0] + width
            page.content_right = max(page.content_right, right)
            page.content_bottom = max(page.content_bottom, baseline + self.descent)
            missing = self.measure.missing
            if missing:
                for u in units:
                    page.missing += missing.get(u.text, 0)
            self.last_end = end

    def _finish_page(self, next_start: int) -> Page:
        self._close_box()
        page = self.page
        page.end = next_start
        self.page = self._new_page(page.number + 1, next_start)
        self.y = 0.0
        return page

    def finish(self, text_len: int) -> Iterator[Page]:
        if self.held is not None:
            held, self.held = self.held, None
            yield from self._place(*held)
        self._close_box()
        self.page.end = text_len
        yield self.page
