"""reportlab's Paragraph, for the markup Glyph's script feeds it: frags, line breaks, splits.

Glyph's renderer (``scripts/word2png_function.py``) escapes the text, turns runs of two or more
spaces into ``&nbsp;``, joins every 30 source lines with the newline markup (``<br/>`` or a
coloured ``<font>`` marker) and hands each such group to one reportlab ``Paragraph``. The model
learned to read the pages that came out, so this module reproduces reportlab's behaviour on
that markup exactly, in the same floating-point order: whitespace collapsing, one frag per
entity, frag words, ``breakLines`` (space shrinkage, long-word splitting), ``breakLinesCJK``
(per-character wrapping, chosen for the whole text when it holds one CJK ideograph), and
``split`` with the re-wrap of the remainder on the next page, quirks included:

* a page split right after a ``<br/>`` opens the next page with an empty line;
* in CJK mode the remainder of a split paragraph gets a space appended to each of its lines
  before it is wrapped again;
* ideographic spaces, tabs and other whitespace collapse into one space.

Everything is in points; nothing here knows about pixels.

The hot loops (frag words, the kind-1 breaker, a split's bookkeeping, and in layout.py the
markup's general line and the placer's line loop) run in C when ``glyph_render._layoutc`` is
built (``_layoutc.c``); the Python code here stays their definition and the path taken without
the module or with ``_USE_C = False``, and tests/test_layoutc.py holds the two to the same
output.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from .fonts import FontChain

try:  # the breaker's hot loops in C (built with the package; optional)
    from . import _layoutc as _c
except ImportError:  # pragma: no cover - a build without a C compiler
    _c = None

#: Tests turn it off to compare the Python path, which is the definition.
_USE_C = True

# Piece styles: body text, the newline marker's colour, a <br/>.
TEXT, MARKER, BREAK = 0, 1, 2

# Frag-word kinds (reportlab's list subclasses), as bit flags.
HS = 1  # _HSFrag: a space follows the word
SPLIT = 2  # _SplitFrag: a piece of a word cut by splitLongWords
SPLIT_END = 4  # _SplitFragH: the last piece of such a word
INJECTED = 8  # _InjectedFrag: the break forced after a cut word's first piece
LINEBREAK = 16  # a <br/> frag word

FUZZ = 1e-6  # rl_config._FUZZ
SPACE_SHRINKAGE = 0.05  # ParagraphStyle.spaceShrinkage

# reportlab's whitespace for strip/split (paragraph._wsc): Python's, less U+00A0, plus U+200B.
WSC = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
       "\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000")
_WSC_SPLIT = re.compile(f"[{re.escape(WSC)}]+").split
STRING_WHITESPACE = " \t\n\r\x0b\x0c"  # string.whitespace, which _getFragWords tests against

# reportlab.lib.textsplit: characters that may not start a line in CJK wrapping.
ALL_CANNOT_START = (
    "!',.:;?!\")]\u3001\u3002\u300d\u300f\u3011\u3015\uff3d\u3011\uff09"
    "\u3005\u2015\u3041\u3043\u3045\u3047\u3049\u3063\u3083\u3085\u3087\u308e\u30a1\u30a3"
    "\u30a5\u30a7\u30a9\u30c3\u30e3\u30e5\u30e7\u30ee\u30fc\u30f5\u30f6"
    "\u309b\u309c\u30fb\u30fd\u30fe\u309d\u309e\u2015\u2010\xb0\u2032\u2033\u2103\uffe0\uff05"
    "\u2030"
)
# U+4E00..U+9FFF in UTF-8: lead byte E5..E9, or lead byte E4 with B8..BF next (lead bytes never
# occur inside a sequence). Found with memchr-speed byte searches: a regex class of 21,000
# characters costs ~8 ms to compile in every process, and a regex scan ~25 ns a character.
_CJK_LEADS = (b"\xe5", b"\xe6", b"\xe7", b"\xe8", b"\xe9")


def cjk_trigger(text: str) -> bool:
    """Whether Glyph's script wraps the whole text CJK-style: one character of U+4E00..U+9FFF
    anywhere in it."""
    if text.isascii():
        return False
    if _c is not None and _USE_C:
        return _c.has_cjk(text)
    data = text.encode("utf-8", "surrogatepass")
    if any(lead in data for lead in _CJK_LEADS):
        return True
    i = data.find(b"\xe4")
    while i >= 0:
        if i + 1 < len(data) and 0xB8 <= data[i + 1] <= 0xBF:
            return True
        i = data.find(b"\xe4", i + 1)
    return False


def rl_split(text: str) -> list[str]:
    """``paragraph.split``: reportlab's whitespace when the text has a U+00A0, else Python's."""
    return _WSC_SPLIT(text) if "\xa0" in text else text.split()


#: Words whose widths one :class:`Metrics` remembers (~100 bytes each); a document's vocabulary
#: is typically 10-30 thousand words.
WIDTH_CACHE_WORDS = 100_000


@functools.lru_cache(maxsize=8)
def metrics_for(chain: FontChain, size: float) -> Metrics:
    """One :class:`Metrics` per font chain and size for the process, so a word measured for
    one document is not measured again for the next."""
    return Metrics(chain, size)


class Metrics:
    """reportlab's ``stringWidth`` for one font chain and size, memoised per string."""

    def __init__(self, chain: FontChain, size: float):
        self.chain = chain
        self.size = size
        self.k = 0.001 * size
        self._cache: dict[str, float] = {}
        self._char = _CharWidths(chain)
        self.space = self.width(" ")
        # the C breaker's view of the memo: words found from a frag's text without a new str
        self._table = (_c.word_table(WIDTH_CACHE_WORDS, self._char, self.k)
                       if _c is not None else None)

    def width(self, text: str) -> float:
        """``0.001 * size * sum(widths)``, summed by ``sum`` as reportlab sums (left to right;
        ``map`` over the characters keeps a first-seen word's cost low)."""
        w = self._cache.get(text)
        if w is None:
            w = self.k * sum(map(self._char.__getitem__, text))
            if len(self._cache) < WIDTH_CACHE_WORDS:
                self._cache[text] = w
        return w


class _CharWidths(dict):
    """Character -> width in 1/1000 em, filled from the font chain on first use."""

    def __init__(self, chain: FontChain):
        super().__init__()
        self.chain = chain

    def __missing__(self, ch: str) -> float:
        w = self[ch] = self.chain.resolve(ch)[2]
        return w


@dataclass(slots=True)
class Frag:
    """A parsed frag: a run of text in one style, or a <br/> (``style == BREAK``).

    ``starts`` holds the source offset of each word of ``text`` (words being the runs between
    its single spaces), so line spans can be mapped back to the input; or ``base`` >= 0 says
    the text lines up with the source character for character from that offset (the common
    case, where nothing collapsed), and ``starts`` is not needed.
    """

    style: int
    text: str
    starts: list[int]
    base: int = -1
    chars: list[int] | None = None  # each character's source offset (frags a split hands on)

    def first(self) -> int:
        if self.base >= 0:
            return self.base
        if self.chars:
            return self.chars[0]
        return self.starts[0] if self.starts else 0


#: A frag word: ``(width, pieces, kind)``, pieces being ``(style, text, source offset)``.
#: A plain tuple, not a class: a long document makes hundreds of thousands of them.
Word = tuple
WIDTH, PIECES, KIND = 0, 1, 2


class Run:
    """Consecutive one-piece words of one frag, each followed by a space: the bulk of a long
    paragraph, kept as parallel lists rather than a tuple per word (``words[pos:]`` of it).

    The breaker takes a run's words in one tight loop while they fill the current line, and
    falls back to one word at a time at line ends; both give reportlab's arithmetic exactly.
    """

    __slots__ = ("style", "texts", "widths", "offs", "pos", "stop")

    def __init__(self, style: int, texts: list[str], widths: list[float], offs: list[int],
                 pos: int = 0, stop: int | None = None):
        self.style = style
        self.texts = texts  # shared by the runs a split cuts from one: words pos..stop-1
        self.widths = widths
        self.offs = offs
        self.pos = pos
        self.stop = len(texts) if stop is None else stop

    def word(self, i: int) -> Word:
        return (self.widths[i], [(self.style, self.texts[i], self.offs[i])], HS)


def later_width(p: Paragraph) -> float:
    """The width of a paragraph's lines after the first, as ``Paragraph.wrap`` computes it."""
    return p.width - p.left_indent - p.right_indent


def _kind(item: Word | Run) -> int:
    return HS if type(item) is Run else item[KIND]


def _has_cut(words: list) -> bool:
    """Whether a cut word's piece or the break injected after one is among ``words``."""
    if _c is not None and _USE_C:
        return _c.has_cut(words)
    return any(_kind(w) & (SPLIT | INJECTED) for w in words)


def take(items: Sequence, a: int, b: int | None = None) -> list:
    """Words ``a`` to ``b`` of a breaker's record (words and ``(run, start, stop)`` slices),
    as words and runs, without spelling runs out word by word."""
    if _c is not None and _USE_C and type(items) is list:
        return _c.take(items, a, b)
    sizes = [(it[2] - it[1] if type(it[0]) is Run else 1) if type(it) is tuple
             else (it.stop - it.pos if type(it) is Run else 1) for it in items]
    ends = list(accumulate(sizes))  # words up to and including each item
    first = bisect_right(ends, a)  # the item holding word a
    last = len(items) if b is None else min(len(items), bisect_left(ends, b) + 1)
    out: list = []
    for j in range(first, last):
        it = items[j]
        i = ends[j] - sizes[j]  # the item's first word
        if type(it) is Run:
            it = (it, it.pos, it.stop)
        if type(it) is tuple and type(it[0]) is Run:
            run, s, e = it
            lo, hi = max(s, a - i + s), e if b is None else min(e, b - i + s)
            if lo < hi:
                out.append(Run(run.style, run.texts, run.widths, run.offs, lo, hi))
        elif i >= a and (b is None or i < b):
            out.append(it)
    return out


@dataclass(slots=True)
class Line:
    """A broken line: the frags it draws (``[style, text, lo, hi]``), reportlab's figures."""

    frags: list[list]
    extra: float  # extraSpace: the width left over (negative when squeezed)
    count: int  # wordCount (kind 1) or number of words (kind 0)
    line_break: bool  # ended by a <br/> (not justified)
    max_width: float
    sfw: int = 0  # index of the line's first frag word in the paragraph's word list
    lo: int = 0  # source span of the characters the line draws (empty lines: lo == hi)
    hi: int = 0
    kind0: list | None = None  # a kind-0 line's words (text, source offset, kind)


def _piece_words(frag: Frag, text: str) -> tuple[list[str], list[int]]:
    """reportlab's split of a frag's (possibly stripped) text, with each word's offset."""
    parts = rl_split(text)
    if frag.base >= 0:
        # single spaces separate the words of an aligned frag
        pos = frag.base + len(frag.text) - len(text) + len(text) - len(text.lstrip(" "))
        return parts, list(accumulate([len(p) + 1 for p in parts[:-1]], initial=pos))
    starts = frag.starts
    # Words of ``text`` are the last len(real) words of the frag (lstrip only drops spaces).
    real = [p for p in parts if p]
    first = len(starts) - len(real)
    offs: list[int] = []
    k = first
    for p in parts:
        if p:
            offs.append(starts[k])
            k += 1
        else:
            offs.append(starts[k] if k < len(starts) else (starts[-1] if starts else 0))
    return parts, offs


def frag_words(frags: Sequence[Frag], m: Metrics) -> list[Word]:
    """``_getFragWords`` for unprocessed frags: words with their widths and hanging spaces."""
    if _c is not None and _USE_C:
        words = _c.frag_words(frags, m._cache, m.width, m._table)
        if words is not None:
            return words
    return _frag_words_py(frags, m)


def _frag_words_py(frags: Sequence[Frag], m: Metrics) -> list[Word]:
    """:func:`frag_words` in Python: the definition the C module follows."""
    R: list[Word] = []
    W: list[tuple[int, str, int]] = []
    n = 0.0
    strip = True  # hangingStrip
    width = m.width
    cache = m._cache
    for f in frags:
        if f.style == BREAK:
            if W:
                R.append((n, W, 0))
                W, n = [], 0.0
            R.append((0.0, [(TEXT, "", f.first())], LINEBREAK))
            strip = True
            continue
        text = f.text
        if not text:
            continue
        if strip:
            text = text.lstrip(WSC)
            if not text:
                continue
            strip = False
        S, offs = _piece_words(f, text)
        if text[0] in STRING_WHITESPACE or not S:
            if W:
                R.append((n, W, 0))
                whs = False
                W, n = [], 0.0
            else:
                whs = bool(R) and (type(R[-1]) is Run or bool(R[-1][KIND] & HS))
            if not whs:
                S.insert(0, "")
                offs.insert(0, offs[0] if offs else f.first())
            elif not S:
                continue
        style = f.style
        if len(S) > 1:
            if W:  # the frag's first word closes the word the previous frag began
                w0 = S[0]
                W.append((style, w0, offs[0]))
                ww = cache.get(w0)
                n += ww if ww is not None else width(w0)
                R.append((n, W, HS))
                W, n = [], 0.0
                start = 1
            else:
                start = 0
            stop = len(S) - 1
            if stop - start >= 4 and style == TEXT and all(S[start:stop]):
                texts = S[start:stop]
                ws = list(map(cache.get, texts))
                if None in ws:
                    ws = [v if v is not None else width(w) for v, w in zip(ws, texts, strict=True)]
                R.append(Run(style, texts, ws, offs[start:stop]))
            else:
                for i in range(start, stop):
                    w = S[i]
                    ww = cache.get(w)
                    # a word on its own: n = 0 + width, which is width exactly
                    R.append((ww if ww is not None else width(w), [(style, w, offs[i])], HS))
        last = S[-1]
        W.append((style, last, offs[-1]))
        ww = cache.get(last)
        n += ww if ww is not None else width(last)
        if text[-1] in STRING_WHITESPACE:
            R.append((n, W, HS))
            W, n = [], 0.0
    if W:
        R.append((n, W, 0))
    if not R and frags:
        f = frags[0]
        R = [(0.0, [(f.style if f.style != BREAK else TEXT, "", f.first())], 0)]
    return R


def rejoin_words(words: Sequence[Word]) -> list[Word]:
    """``_getFragWords`` for processed frags: cut words joined again, injected breaks dropped."""
    R: list[Word] = []
    W: list[Word] = []
    for w in words:
        if type(w) is Run:  # whole words, each followed by a space: never cut
            if W:
                R.append(_rejoin(W))
                W = []
            R.append(w)
            continue
        if w[KIND] & INJECTED:
            continue
        if w[KIND] & SPLIT:
            W.append(w)
            if w[KIND] & HS:
                R.append(_rejoin(W))
                W = []
        else:
            if W:
                R.append(_rejoin(W))
                W = []
            R.append(w)
    if W:
        R.append(_rejoin(W))
    return R


def _rejoin(parts: list[Word]) -> Word:
    width = 0.0
    pieces: list[tuple[int, str, int]] = []
    for p in parts:
        width += p[WIDTH]
        pieces.extend(p[PIECES])  # each cut piece is its own frag clone: never merged
    last = parts[-1]
    return (width, pieces, HS if last[KIND] & HS else 0)


def _split_frag_word(w: Word, max_width: float, max_widths: Sequence[float], lineno: int,
                     m: Metrics) -> list[Word]:
    """``_splitFragWord``: cut a too-long word into pieces that fill lines."""
    R: list[Word] = []
    maxlineno = len(max_widths) - 1
    max_next = max_widths[min(maxlineno, lineno + 1)]
    W: list[tuple[int, str, int]] = []
    line_width = 0.0
    frag_text = ""
    word_width = 0.0
    width = m.width
    pieces = w[PIECES]
    cur = 0  # index of the piece the current text belongs to
    cur_start = pieces[0][2]
    for pi, (_style, text, src) in enumerate(pieces):
        chars = text if text else ("",)
        for ci, c in enumerate(chars):
            cw = width(c) if c else 0.0
            new_line_width = line_width + cw
            too_long = new_line_width > max_width and bool(
                word_width or (not word_width and cw <= max_next))
            if pi != cur or too_long:
                W.append((pieces[cur][0], frag_text, cur_start))
                if too_long:
                    R.append((word_width, W, SPLIT))
                    lineno += 1
                    max_width = max_next
                    max_next = max_widths[min(maxlineno, lineno + 1)]
                    W = []
                    new_line_width = cw
                    word_width = 0.0
                frag_text = ""
                cur = pi
                cur_start = src + ci
            word_width += cw
            frag_text += c
            line_width = new_line_width
    W.append((pieces[cur][0], frag_text, cur_start))
    R.append((word_width, W, SPLIT | SPLIT_END | (w[KIND] & HS)))
    return R


def _cut_word(w: Word, avail: float, max_widths: Sequence[float], lineno: int,
              m: Metrics) -> list[Word]:
    """A word too long for a line, cut: its first piece, the break forced after it
    (``_InjectedFrag``), the other pieces; in the breaker's queue order."""
    parts = _split_frag_word(w, avail, max_widths, lineno, m)
    inj = (0.0, [(TEXT, "", w[PIECES][0][2])], INJECTED | LINEBREAK)
    return [parts[0], inj, *parts[1:]]


class Paragraph:
    """One of Glyph's 30-line reportlab paragraphs, broken into lines for a frame width."""

    def __init__(self, frags: list[Frag] | None, m: Metrics, *, first_indent: float,
                 left_indent: float, right_indent: float, leading: float, cjk: bool,
                 split_blank: bool = True, words: list[Word] | None = None,
                 kind0_words: list | None = None, cjk_lines: list[Line] | None = None):
        self.frags = frags or []
        self.m = m
        self.first_indent = first_indent
        self.left_indent = left_indent
        self.right_indent = right_indent
        self.leading = leading
        self.cjk = cjk
        self.split_blank = split_blank
        self.words = words  # processed frag words (kind 1 after a first break)
        self.prebroken: list[Line] | None = None  # a split's first part: lines known already
        self.kind0_words = kind0_words  # a split kind-0 paragraph's words
        self.cjk_lines = cjk_lines  # a split CJK paragraph's lines (P1 keeps them)
        self.kind = 0
        self.cjk_kind = 0
        self.lines: list[Line] = []
        self.height = 0.0
        self.width = 0.0
        self.justify_last = False  # reportlab's _JustifyLast (set on a split's first part)
        self.group = -1

    # -- reportlab's Paragraph.wrap / breakLines -----------------------------------------
    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        self.width = avail_width
        first = avail_width - (self.left_indent + self.first_indent) - self.right_indent
        later = avail_width - self.left_indent - self.right_indent
        widths = [first, later]
        if self.cjk:
            self._break_cjk(widths)
        else:
            self._break(widths)
        self.height = len(self.lines) * self.leading
        return self.width, self.height

    def _single_frag(self) -> bool:
        return (self.words is None and len(self.frags) == 1) or self.kind0_words is not None

    def _break(self, max_widths: list[float]) -> None:
        if self.prebroken is not None:
            # reportlab breaks a split's first part again from its words; with no cut word
            # among them that gives back exactly the lines it was cut from
            self.lines = self.prebroken
            return
        if self._single_frag():
            self._break_kind0(max_widths)
        elif not self.frags and self.words is None:
            self.kind, self.lines = 0, []
        else:
            self._break_kind1(max_widths)

    def _break_kind0(self, max_widths: list[float]) -> None:
        """breakLines' single-frag case (kind 0): words are plain strings."""
        m = self.m
        self.kind = 0
        if self.kind0_words is not None:
            words = list(self.kind0_words)
            if not any(w[0].strip(WSC) for w in words):
                self.lines = []
                return
        else:
            f = self.frags[0]
            text = f.text.strip(WSC)
            if not text:
                self.lines = []
                return
            parts, offs = _piece_words(f, text)
            words = [(p, o, 0) for p, o in zip(parts, offs, strict=True)]
        lines: list[Line] = []
        lineno = 0
        maxlineno = len(max_widths) - 1
        max_width = max_widths[0]
        space = m.space
        d_shrink = SPACE_SHRINKAGE * space
        c_line: list[tuple[str, int, int]] = []
        current = -space
        forced = False
        queue = deque(words)
        width = m.width
        while queue:
            word = queue.popleft()
            text, src, wkind = word
            if not text and wkind & SPLIT:
                forced = True
            word_width = width(text)
            new_width = current + space + word_width
            lim = max_width + d_shrink * len(c_line)
            if (new_width > lim and not forced and not (wkind & SPLIT)
                    and word_width > max_widths[min(lineno, maxlineno)]):
                    queue.extendleft(reversed(
                        _split_word(text, src, current + space, max_widths, lineno, m)))
                    forced = True
                    continue
            if new_width <= lim or not c_line or forced:
                if text:
                    c_line.append(word)
                if forced:
                    forced = False
                    lines.append(_kind0_line(c_line, max_width - new_width, max_width))
                    c_line = []
                    current = -space
                    lineno += 1
                    max_width = max_widths[min(maxlineno, lineno)]
                else:
                    current = new_width
            else:
                lines.append(_kind0_line(c_line, max_width - current, max_width))
                c_line = [word]
                current = word_width
                lineno += 1
                max_width = max_widths[min(maxlineno, lineno)]
        if c_line:
            lines.append(_kind0_line(c_line, max_width - current, max_width))
        self.lines = lines

    def _break_kind1(self, max_widths: list[float]) -> None:
        """breakLines' general case (kind 1), in C when the module is there."""
        m = self.m
        if _c is None or not _USE_C:
            self._break_kind1_py(max_widths)
            return
        self.kind = 1
        src_words = rejoin_words(self.words) if self.words is not None else frag_words(
            self.frags, m)
        self.lines, self.words_used = _c.break_kind1(src_words, max_widths, m.space, m)

    def _break_kind1_py(self, max_widths: list[float]) -> None:
        """breakLines' general case (kind 1): frag words, <br/>, colours.

        The hot loop of a render: written with locals, a fast path for the common word (one
        piece, the line's style, fits) and a tighter one for a :class:`Run`'s words, each doing
        exactly what the general path would.
        """
        m = self.m
        self.kind = 1
        src_words = rejoin_words(self.words) if self.words is not None else frag_words(
            self.frags, m)
        queue = deque(src_words)
        popleft = queue.popleft
        FW: list = []  # the words taken, as words and (run, start, stop) slices
        fw_append = FW.append
        taken = 0  # words in FW
        lines: list[Line] = []
        lineno = 0
        maxlineno = len(max_widths) - 1
        max_width = max_widths[0]
        space = m.space
        sfw = 0
        words: list[list] = []  # the line's frags: [style, text, first source offset]
        n = 0
        space_width = 0.0
        current = 0.0
        g: list = []
        g_style = -1
        spaces: list[int] = []  # spaces in each of the line's frags, in order
        lo = hi = -1  # source span of the line's drawn text
        while queue:
            w = popleft()
            if type(w) is Run:
                k = w.pos
                texts = w.texts
                end = w.stop
                if (words and g_style == w.style and space_width == space
                        and not g[1].endswith(" ")):
                    widths = w.widths
                    prefix = space_width
                    for ns in spaces[:-1]:
                        if ns:
                            prefix += ns * space
                    ns_last = spaces[-1]
                    start = k
                    while k < end:
                        ww = widths[k]
                        nw = current + space + ww
                        shrink = prefix + ns_last * space if ns_last else prefix
                        if ww <= 0 or nw > max_width + shrink * SPACE_SHRINKAGE:
                            break
                        current = nw
                        ns_last += 1
                        k += 1
                    if k > start:
                        g[1] += " " + " ".join(texts[start:k])
                        spaces[-1] = ns_last
                        n += k - start
                        hi = w.offs[k - 1] + len(texts[k - 1])
                        fw_append((w, start, k))
                        taken += k - start
                        space_width = space
                if k < end:  # the word at k goes the general way; the rest stays a run
                    if k + 1 < end:
                        queue.appendleft(Run(w.style, texts, w.widths, w.offs, k + 1, end))
                    queue.appendleft(w.word(k))
                continue
            fw_append(w)
            taken += 1
            if not words:
                n = 0
                space_width = current = 0.0
                spaces = []
                lo = hi = -1
            word_width = w[WIDTH]
            pieces = w[PIECES]
            style, ntext, src = pieces[0]
            kind = w[KIND]
            new_width = current + space_width + word_width if word_width > 0 else current
            shrink = space_width
            for ns in spaces:
                if ns:
                    shrink += ns * space
            lim = max_width + shrink * SPACE_SHRINKAGE
            if (kind & ~HS) == 0 and len(pieces) == 1 and style == g_style and new_width <= lim:
                # the common case: one more word in the line's current frag
                if ntext:
                    n += 1
                    if lo < 0:
                        lo = src
                    hi = src + len(ntext) if style != MARKER else src + 1
                if space_width:
                    if not g[1].endswith(" "):
                        g[1] += " " + ntext
                        spaces[-1] += 1
                    else:
                        g[1] += ntext
                else:
                    g[1] += ntext
                space_width = space if kind else 0.0
                current = new_width
                continue
            line_break = bool(kind & LINEBREAK)
            if (not line_break and new_width > lim and not (kind & (SPLIT_END | SPLIT))
                    and word_width > max_widths[min(lineno, maxlineno)]):
                queue.extendleft(reversed(_cut_word(w, max_width - space_width - current,
                                                    max_widths, lineno, m)))
                FW.pop()
                taken -= 1
                continue
            end_line = (new_width > lim and n > 0) or line_break
            if not end_line:
                if ntext:
                    n += 1
                if not words:
                    g = [style, ntext, src]
                    words = [g]
                    spaces = [0]
                elif g_style != style:
                    if space_width:
                        for i in range(len(words) - 1, -1, -1):
                            wi = words[i]
                            if wi[0] != BREAK:
                                if not wi[1].endswith(" "):
                                    wi[1] += " "
                                    spaces[i] += 1
                                break
                    g = [style, ntext, src]
                    words.append(g)
                    spaces.append(0)
                elif space_width:
                    if not g[1].endswith(" "):
                        g[1] += " " + ntext
                        spaces[-1] += 1
                    else:
                        g[1] += ntext
                else:
                    g[1] += ntext
                g_style = style
                space_width = space if kind & HS else 0.0
                ni = False
                for piece in pieces:
                    pstyle, ptext, psrc = piece
                    if piece is not pieces[0]:
                        g = [pstyle, ptext, psrc]
                        g_style = pstyle
                        words.append(g)
                        spaces.append(0)
                        if ptext:
                            ni = True
                    if ptext:
                        if lo < 0:
                            lo = psrc
                        hi = psrc + len(ptext) if pstyle != MARKER else psrc + 1
                if not ntext and ni:
                    n += 1
                current = new_width
            else:
                if line_break:
                    words.append([BREAK, "", src])
                    spaces.append(0)
                    llb = not (kind & INJECTED)
                else:
                    llb = False
                lines.append(Line(words, max_width - current, n, llb, max_width, sfw,
                                  lo=lo if lo >= 0 else src, hi=hi if lo >= 0 else src))
                sfw = taken - 1
                lineno += 1
                max_width = max_widths[min(maxlineno, lineno)]
                if line_break:
                    words = []
                    g = []
                    g_style = -1
                    continue
                space_width = space if kind & HS else 0.0
                current = word_width
                n = 1
                lo = hi = -1
                words = []
                spaces = []
                for pstyle, ptext, psrc in pieces:
                    g = [pstyle, ptext, psrc]
                    g_style = pstyle
                    words.append(g)
                    spaces.append(0)
                    if ptext:
                        if lo < 0:
                            lo = psrc
                        hi = psrc + len(ptext) if pstyle != MARKER else psrc + 1
        if words:
            anchor = words[0][2]
            lines.append(Line(words, max_width - current, n, False, max_width, sfw,
                              lo=lo if lo >= 0 else anchor, hi=hi if lo >= 0 else anchor))
        self.words_used = FW
        self.lines = lines

    # -- breakLinesCJK -------------------------------------------------------------------
    def _break_cjk(self, max_widths: list[float]) -> None:
        if self.cjk_lines is not None:  # a split's first part keeps the lines it was cut with
            self.lines = self.cjk_lines
            self.kind = self.cjk_kind
            return
        if self._single_frag():
            self.kind = 0
            if self.kind0_words is not None:
                chars = [(c, o) for t, o, _k in self.kind0_words
                         for c, o in zip(t, range(o, o + len(t)), strict=True)]
            else:
                f = self.frags[0]
                chars = _frag_chars(f)
            self.lines = _dumb_split(chars, max_widths, self.m)
        elif not self.frags:
            self.kind, self.lines = 0, []
        else:
            self.kind = 1
            self.lines = _cjk_frag_split(self.frags, max_widths, self.m)

    # -- Paragraph.split -----------------------------------------------------------------
    def split(self, avail_width: float, avail_height: float) -> list[Paragraph]:
        """reportlab's split: [] (move on), [self] (fits) or [first part, remainder]."""
        if not self.lines and self.height == 0 and not self.frags and self.words is None:
            return []
        if avail_width < FUZZ or avail_height < FUZZ:
            return []
        if not self.lines and not self.width:
            self.wrap(avail_width, avail_height)
        lines = self.lines
        s = int(avail_height / float(self.leading))
        height = s * self.leading
        if s <= 1:  # allowOrphans=0: never leave one line of a paragraph at a page's foot
            return []
        n = len(lines)
        if n <= s:
            return [self]
        common = dict(left_indent=self.left_indent, right_indent=self.right_indent,
                      leading=self.leading, cjk=self.cjk, split_blank=self.split_blank)
        if self.cjk:
            if self.kind == 0:
                p1 = Paragraph(None, self.m, first_indent=self.first_indent,
                               kind0_words=_cjk_kind0_words(lines[:s]),
                               cjk_lines=lines[:s], **common)
                p2 = Paragraph(None, self.m, first_indent=0.0,
                               kind0_words=_cjk_kind0_words(lines[s:]), **common)
            else:
                p1 = Paragraph(_hard_split(lines, 0, s), self.m,
                               first_indent=self.first_indent, cjk_lines=lines[:s], **common)
                p2 = Paragraph(_hard_split(lines, s, n), self.m, first_indent=0.0, **common)
        elif self.kind == 0:
            p1 = Paragraph(None, self.m, first_indent=self.first_indent,
                           kind0_words=_kind0_rejoin(lines[:s]), **common)
            if not any(w[2] & SPLIT for ln in lines[:s] for w in (ln.kind0 or ())):
                p1.prebroken = lines[:s]
                p1.kind = 0
            p2 = Paragraph(None, self.m, first_indent=0.0,
                           kind0_words=_kind0_rejoin(lines[s:]), **common)
        else:
            FW = self.words_used
            a = lines[0].sfw
            b = lines[s].sfw
            head = take(FW, a, b)
            while head and _kind(head[-1]) & INJECTED:
                head.pop()
            p1 = Paragraph(None, self.m, first_indent=self.first_indent, words=head,
                           **common)
            if not _has_cut(head):
                # reportlab breaks the first part again from its words; with no cut word among
                # them that gives back lines[:s], except that the <br/> ending line s-1 (the
                # remainder's first word) is gone: the line loses it, and an empty line that
                # was only that <br/> disappears.
                pre = lines[:s]
                last = pre[-1]
                if last.frags and last.frags[-1][0] == BREAK:
                    if all(f[0] == BREAK for f in last.frags):
                        pre = pre[:-1]
                    else:
                        pre[-1] = dataclasses.replace(last, frags=last.frags[:-1],
                                                      line_break=False)
                p1.prebroken = pre
                p1.kind = 1
                p1.words_used = head
            rest = take(FW, b)
            lead: list[Line] = []
            if rest and _kind(rest[0]) & LINEBREAK and not (_kind(rest[0]) & INJECTED):
                if not self.split_blank:
                    rest = rest[1:]  # opt out of reportlab's empty line atop the next page
                    b += 1
                else:
                    # re-broken, the remainder opens with that <br/>: an empty line
                    src = rest[0][PIECES][0][2]
                    lead = [Line([[BREAK, "", src]], later_width(self) - 0.0, 0, True,
                                 later_width(self), 0, lo=src, hi=src)]
            p2 = Paragraph(None, self.m, first_indent=0.0, words=rest, **common)
            first = rest[len(lead)] if len(rest) > len(lead) else None
            if (first is not None and (type(first) is Run or (
                    not (first[KIND] & ~HS) and first[PIECES][0][1]))
                    and not _has_cut(rest)):
                # The remainder's first word is an ordinary one, which the breaker handles
                # from an empty line exactly as it did when that word opened line s: breaking
                # again gives back lines[s:] (the next page's frame is as wide).
                p2.prebroken = lead + (_c.rebase_lines(lines[s:], b) if _c is not None and _USE_C
                                       else [Line(ln.frags, ln.extra, ln.count, ln.line_break,
                                                  ln.max_width, ln.sfw - b, ln.lo, ln.hi,
                                                  ln.kind0) for ln in lines[s:]])
                p2.kind = 1
                p2.words_used = rest
        p1.cjk_kind = self.kind
        last = lines[s - 1]
        p1.justify_last = not (self.kind == 1 and last.line_break)
        p1.height = height
        p1.width = avail_width
        p1.group = p2.group = self.group
        return [p1, p2]


def _kind0_line(words: list[tuple[str, int, int]], extra: float, max_width: float) -> Line:
    texts = [w[0] for w in words]
    srcs = [(o, o + len(t)) for t, o, _k in words if t]
    lo = min((a for a, _b in srcs), default=words[0][1] if words else 0)
    hi = max((b for _a, b in srcs), default=lo)
    return Line([[TEXT, " ".join(texts), lo]], extra, len(words), False, max_width,
                kind0=list(words), lo=lo, hi=hi)


def _split_word(text: str, src: int, line_width: float, max_widths: Sequence[float],
                lineno: int, m: Metrics) -> list[tuple[str, int, int]]:
    """``_splitWord`` (kind 0): a long word cut into pieces; the last is a _SplitWordEnd."""
    R: list[tuple[str, int, int]] = []
    maxlineno = len(max_widths) - 1
    max_width = max_widths[min(maxlineno, lineno)]
    max_next = max_widths[min(maxlineno, lineno + 1)]
    word = ""
    start = src
    width = m.width
    for i, c in enumerate(text):
        cw = width(c)
        new_width = line_width + cw
        if new_width > max_width and (word or (not word and cw <= max_next)):
            R.append((word, start, SPLIT))
            lineno += 1
            max_width = max_widths[min(maxlineno, lineno)]
            new_width = cw
            word = ""
            start = src + i
        word += c
        line_width = new_width
    R.append((word, start, SPLIT | SPLIT_END))
    return R


def _kind0_rejoin(lines: list[Line]) -> list[tuple[str, int, int]]:
    """``_split_blParaSimple``: a kind-0 paragraph's words, cut words joined again."""
    out: list[tuple[str, int, int]] = []
    pending: list[tuple[str, int, int]] = []
    for line in lines:
        for w in line.kind0 or ():
            text, src, kind = w
            if kind & SPLIT:
                pending.append(w)
                if kind & SPLIT_END:
                    out.append(("".join(p[0] for p in pending), pending[0][1], 0))
                    pending = []
                continue
            if pending:
                out.append(("".join(p[0] for p in pending), pending[0][1], 0))
                pending = []
            out.append(w)
    if pending:
        out.append(("".join(p[0] for p in pending), pending[0][1], 0))
    return out


def _hard_split(lines: list[Line], start: int, stop: int) -> list[Frag]:
    """``_split_blParaHard``: the lines' frags, a space added at the end of each but the last.

    reportlab mutates the frags it hands on (they are shared with the lines already drawn), so
    the added spaces also end up in the first part's lines; they draw nothing there.
    """
    out: list[Frag] = []
    chosen = lines[start:stop]
    for li, line in enumerate(chosen):
        for f in line.frags:
            out.append(f)  # type: ignore[arg-type]
        if li != len(chosen) - 1 and out:
            g = out[-1]
            if not g[1]:
                g[1] = " "
            elif g[1][-1] != " ":
                g[1] += " "
    return [_frag_from_line_frag(f) for f in out]


def _frag_from_line_frag(f: list) -> Frag:
    """A frag handed on by a CJK split, with each character's source offset."""
    chars = f[3] if len(f) > 3 and f[3] else None  # a <br/> carries none: it sits at f[2]
    return Frag(f[0], f[1], [], -1 if chars is not None else f[2], chars)


def _frag_chars(f: Frag) -> list[tuple[str, int]]:
    """Each character of a frag with its source offset (spaces take the next word's)."""
    if f.chars is not None:
        offs = f.chars
        last = offs[-1] + 1 if offs else f.first()
        return [(c, offs[i] if i < len(offs) else last) for i, c in enumerate(f.text)]
    if f.base >= 0:
        base = f.base
        return [(c, base + i) for i, c in enumerate(f.text)]
    out: list[tuple[str, int]] = []
    starts = f.starts
    k = 0
    in_word = False
    pos = 0
    for c in f.text:
        if c == " ":
            in_word = False
            # a space takes the next word's offset; one after the last word, that word's end
            out.append((c, starts[k] if k < len(starts) else (pos if k else f.first())))
            continue
        if not in_word:
            pos = starts[k] if k < len(starts) else pos
            k += 1
            in_word = True
        out.append((c, pos))
        pos += 1
    return out


def _cjk_kind0_words(lines: list[Line]) -> list[tuple[str, int, int]]:
    """A kind-0 CJK paragraph's lines as the words of its remainder (joined with no space)."""
    return [(line.frags[0][1], line.frags[0][2], 0) for line in lines]


def _dumb_split(chars: list[tuple[str, int]], max_widths: Sequence[float],
                m: Metrics) -> list[Line]:
    """``textsplit.dumbSplit`` (wordSplit): wrap one frag character by character."""
    import unicodedata

    width = m.width
    widths = [width(c) for c, _o in chars]
    lines: list[Line] = []
    i = used = start = 0
    used = 0.0
    max_width = max_widths[0]
    n = len(chars)
    while i < n:
        w = widths[i]
        c = chars[i][0]
        used += w
        i += 1
        if used > max_width + FUZZ and used > 0:
            extra = max_width - used
            if ord(c) < 0x3000:
                limit = (start + i) >> 1
                for j in range(i - 1, limit, -1):
                    cj = chars[j][0]
                    if unicodedata.category(cj) == "Zs" or ord(cj) >= 0x3000:
                        k = j + 1
                        if k < i:
                            j = k + 1
                            extra += sum(widths[j:i])
                            w = widths[k]
                            c = chars[k][0]
                            i = j
                            break
            if c not in ALL_CANNOT_START and i > start + 1:
                i -= 1
                extra += w
            seg = chars[start:i]
            text = "".join(ch for ch, _o in seg)
            stripped = text.strip()
            lead = len(text) - len(text.lstrip())
            lo = seg[lead][1] if stripped else (seg[0][1] if seg else 0)
            hi = seg[lead + len(stripped) - 1][1] + 1 if stripped else lo
            lines.append(Line([[TEXT, stripped, lo]], extra, 1, False, max_width, lo=lo, hi=hi))
            max_width = max_widths[min(len(lines), len(max_widths) - 1)]
            start = i
            used = 0.0
    if used > 0:
        seg = chars[start:]
        text = "".join(ch for ch, _o in seg)
        inked = [o for ch, o in seg if not ch.isspace()]
        lo = inked[0] if inked else seg[0][1]
        lines.append(Line([[TEXT, text, seg[0][1]]], max_width - used, 1, False, max_width,
                          lo=lo, hi=inked[-1] + 1 if inked else lo))
    return lines


def _cjk_frag_split(frags: Sequence[Frag], max_widths: Sequence[float],
                    m: Metrics) -> list[Line]:
    """``cjkFragSplit``: per-character wrapping across frags, <br/> included."""
    import unicodedata

    width = m.width
    U: list[tuple[str, int, int, float, bool]] = []  # char, style, src, width, is break
    for f in frags:
        if f.style == BREAK:
            src = f.first()
            if f.text:  # a split handed the <br/> on with a space appended
                U.extend((c, TEXT, src, width(c), True) for c in f.text)
            else:
                U.append(("", TEXT, src, 0.0, True))
            continue
        if f.text:
            for c, o in _frag_chars(f):
                U.append((c, f.style, o, width(c), False))
        else:
            U.append(("", f.style, f.first(), 0.0, False))
    lines: list[Line] = []
    i = start = 0
    used = 0.0
    max_width = max_widths[0]
    nU = len(U)
    while i < nU:
        u = U[i]
        i += 1
        w = u[3]
        used += w
        line_break = u[4]
        if (used > max_width + FUZZ and used > 0) or line_break:
            extra = max_width - used
            if not line_break:
                c = u[0]
                if c and ord(c) < 0x3000:
                    limit = (start + i) >> 1
                    for j in range(i - 1, limit, -1):
                        uj = U[j][0]
                        if (uj and unicodedata.category(uj) == "Zs") or (
                                uj and ord(uj) >= 0x3000):
                            k = j + 1
                            if k < i:
                                j = k + 1
                                extra += sum(U[ii][3] for ii in range(j, i))
                                w = U[k][3]
                                u = U[k]
                                i = j
                                break
                if u[0] not in ALL_CANNOT_START and i > start + 1:
                    i -= 1
                    extra += w
            lines.append(_cjk_make_line(U[start:i], max_width, extra, line_break))
            max_width = max_widths[min(len(lines), len(max_widths) - 1)]
            start = i
            used = 0.0
    if used > 0:
        lines.append(_cjk_make_line(U[start:], max_width, max_width - used, False))
    return lines


def _cjk_make_line(U: list, max_width: float, extra: float, line_break: bool) -> Line:
    """``makeCJKParaLine``: group a line's characters into frags by style."""
    frags: list[list] = []
    prev: int | None = None
    lo = hi = -1
    for c, style, src, _w, brk in U:
        key = BREAK if brk else style
        if prev is None or key != prev or key == BREAK:
            frags.append([key, c, src, [src] if c else []])
            prev = key
        else:
            frags[-1][1] += c
            frags[-1][3].append(src)
        if c and not brk and c != " " and c != "\xa0":  # spaces draw nothing: not in the span
            if lo < 0:
                lo = src
            hi = max(hi, src + 1)
    if lo < 0:
        lo = hi = U[0][2] if U else 0
    return Line(frags, extra, 1, line_break, max_width, lo=lo, hi=hi)


if _c is not None:
    _c.setup(Run, Line, Frag, _cut_word)
