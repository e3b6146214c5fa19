"""Numbers as they travel through Glyph's reference pipeline: reportlab prints, poppler reads.

reportlab writes every coordinate, width and word spacing into the PDF with ``fp_str`` (at most
six decimals, fewer for large values), and poppler's lexer reads a decimal by accumulating
``digit * 0.1**k`` in doubles, which is not the correctly rounded value Python's ``float()``
gives. Pixel positions are floors of those doubles, so a faithful raster must see exactly the
numbers poppler saw: :func:`pdf_value` is that round trip.
"""

from __future__ import annotations

import math
from functools import lru_cache

_LN10 = math.log(10.0)
_FORMATS = tuple(f"%.{n}f" for n in range(7))


def fp_str(value: float) -> str:
    """reportlab's ``fp_str`` for one number (``rl_accel._py_fp_str``)."""
    a = abs(value)
    if a <= 1e-7:
        return "0"
    # reportlab takes log10 as log(x)/log(10), which is 2.9999999999999996 at 1000: copied as is.
    digits = 6 if a <= 1 else min(max(0, 6 - int(math.log(a) / _LN10)), 6)
    s = _FORMATS[digits] % value
    if digits:
        j = len(s)
        while j:
            j -= 1
            if s[j] != "0":
                if s[j] != ".":
                    j += 1
                break
        s = s[:j]
    return s if (s[0] != "0" or len(s) == 1) else s[1:]


def poppler_number(text: str) -> float:
    """The double poppler's ``Lexer`` makes of a PDF number token."""
    neg = text.startswith("-")
    body = text[1:] if text[:1] in "+-" else text
    whole, dot, frac = body.partition(".")
    xi = int(whole) if whole else 0
    if not dot:
        return float(-xi if neg else xi)
    xf = float(xi)
    scale = 0.1
    for ch in frac:
        xf = xf + scale * (ord(ch) - 48)
        scale *= 0.1
    return -xf if neg else xf


@lru_cache(maxsize=65536)
def pdf_value(value: float) -> float:
    """``value`` after reportlab wrote it and poppler read it back."""
    return poppler_number(fp_str(value))
