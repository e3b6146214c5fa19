"""Encode: page images -> PNG bytes (and all pages -> one PDF).

Pages are mostly flat background with sparse ink, so PNG's per-row filters buy little while
Pillow's encoder spends ~2.5x the time of zlib alone on the same rows (measured in
``benchmarks/render_speed.py``). We therefore write the PNG container ourselves around one
deflate stream: filter type 0 on every row, a ``pHYs`` chunk carrying the DPI. Deflate is
Intel's ISA-L (``isal``, ~4x zlib's level 1 on a page, and smaller) where its wheel exists,
else zlib level 1. The output is a standard PNG; the pixels are what raster drew, bit for bit.
The rows are laid out by the compiled module (``_accel.png_rows``) where it is built, else by
NumPy, so rendering imports no NumPy.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

try:
    from isal import isal_zlib as _deflate

    _LEVEL = 2
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _deflate: Any = zlib  # type: ignore[no-redef]
    _LEVEL = 1

try:  # optional: the NumPy fallback below lays out the same bytes
    from ._accel import png_rows as _c_png_rows
except ImportError:  # pragma: no cover - depends on the build
    _c_png_rows = None

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {"L": 0, "RGB": 2}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(img: Image.Image, dpi: float | None = None, level: int | None = None) -> bytes:
    """PNG bytes of an 'L' or 'RGB' image (``level``: the deflate level, default fast)."""
    if img.mode not in _COLOR_TYPE:
        img = img.convert("RGB")
    w, h = img.size
    channels = 1 if img.mode == "L" else 3
    filtered = _rows(img, w * channels, h)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[img.mode], 0, 0, 0)
    parts = [_SIGNATURE, _chunk(b"IHDR", ihdr)]
    if dpi:
        ppm = round(dpi / 0.0254)
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
    data = _deflate.compress(filtered, _LEVEL if level is None else level)  # no copy
    parts.append(_chunk(b"IDAT", data))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _rows(img: Image.Image, row_bytes: int, h: int) -> Any:
    """The image's scanlines, each after a 0 byte (filter "None"): the IDAT's data."""
    if _c_png_rows is not None:
        out = bytearray(h * (row_bytes + 1))
        _c_png_rows(img.tobytes(), row_bytes, row_bytes, h, out)
        return out
    import numpy as np

    filtered = np.empty((h, row_bytes + 1), np.uint8)
    filtered[:, 0] = 0
    filtered[:, 1:] = np.asarray(img).reshape(h, row_bytes)
    return filtered


def write_pdf(images: Iterable[Image.Image | bytes], path: str | Path, dpi: float) -> None:
    """All pages in one PDF, losslessly: each page's image stream is its PNG's pixel data.

    Pages may be PNG bytes (as :func:`encode_png` made them) or images, which are encoded
    here with :func:`encode_png` at ``dpi``, so they are byte for byte the PNGs ``render``
    writes. img2pdf embeds a PNG's deflate stream as it is (FlateDecode with the PNG predictor),
    so nothing is re-compressed or re-sampled; the page size is the image size at ``dpi``,
    and the file carries no date, so the same pages make the same PDF.
    """
    import img2pdf  # a base dependency; imported here so rendering alone never loads pikepdf

    pngs = [p if isinstance(p, bytes) else encode_png(p, dpi) for p in images]
    if not pngs:
        raise ValueError("no pages to write")
    layout = img2pdf.get_fixed_dpi_layout_fun((float(dpi), float(dpi)))
    with open(path, "wb") as f:
        img2pdf.convert(pngs, layout_fun=layout, outputstream=f, nodate=True)
