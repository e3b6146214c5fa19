"""``--pdf`` is lossless: the PDF's image streams are the PNGs' own pixel data, and the pages
poppler's ``pdfimages`` extracts from it are the PNG files pixel for pixel."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from PIL import Image

from glyph_render import RenderConfig, render, render_to_dir, write_pdf
from glyph_render.encode import encode_png

pytestmark = pytest.mark.skipif(shutil.which("pdfimages") is None,
                                reason="poppler-utils (pdfimages) missing")

PROSE = ("It was the best of times, it was the worst of times, it was the age of wisdom. "
         * 400 + "\n颜色和字体 " * 40)


def idat(png: bytes) -> bytes:
    """The PNG's compressed pixel data: its IDAT chunks joined."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    i, out = 8, b""
    while i < len(png):
        (n,) = struct.unpack(">I", png[i:i + 4])
        if png[i + 4:i + 8] == b"IDAT":
            out += png[i + 8:i + 8 + n]
        i += 12 + n
    return out


def pdf_streams(path: Path) -> list[tuple[bytes, list[float], tuple[int, int]]]:
    """Per page: the raw (still compressed) image stream, the MediaBox, the image's size."""
    out = []
    with pikepdf.open(path) as pdf:
        for page in pdf.pages:
            images = list(page.get_images().values())
            assert len(images) == 1
            xo = images[0]
            out.append((xo.read_raw_bytes(), [float(v) for v in page.MediaBox],
                        (int(xo.Width), int(xo.Height))))
    return out


def extracted(pdf: Path, folder: Path) -> list[np.ndarray]:
    """The page images poppler decodes back out of the PDF, as pixel arrays."""
    folder.mkdir()
    subprocess.run(["pdfimages", "-png", str(pdf), str(folder / "p")], check=True)
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("p-*.png"))]


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_pdf_pages_are_the_pngs(tmp_path: Path, colour: bool) -> None:
    cfg = RenderConfig.preset("glyph-en").replace(dpi=96)
    if colour:
        cfg = cfg.replace(**{"font-color": "#1030C0", "page-bg-color": "#FFF8E0"})
    out = tmp_path / "pages"
    res = render_to_dir(PROSE, cfg, out, pdf=tmp_path / "all.pdf", progress=False)
    assert len(res.pages) >= 3
    pngs = [Path(p.file).read_bytes() for p in res.pages]  # type: ignore[arg-type]
    streams = pdf_streams(tmp_path / "all.pdf")
    assert len(streams) == len(pngs)
    for (raw, box, size), png, page in zip(streams, pngs, res.pages, strict=True):
        assert raw == idat(png)  # the very bytes of the PNG, not a re-encoding
        assert size == (page.width, page.height)
        assert box == pytest.approx([0, 0, page.width * 72 / 96, page.height * 72 / 96])
    back = extracted(tmp_path / "all.pdf", tmp_path / "x")
    with Image.open(out / "page_001.png") as first:
        assert first.mode == ("RGB" if colour else "L")
    for arr, png in zip(back, pngs, strict=True):
        want = np.asarray(Image.open(io.BytesIO(png)))
        assert arr.shape == want.shape and np.array_equal(arr, want)


def test_images_and_png_bytes_make_the_same_pdf(tmp_path: Path) -> None:
    res = render(PROSE[:3000], RenderConfig.preset("glyph-en"), keep_image=True)
    images = [p.image for p in res.pages]
    write_pdf(images, tmp_path / "a.pdf", 72)  # type: ignore[arg-type]
    write_pdf([p.png for p in res.pages], tmp_path / "b.pdf", 72)  # type: ignore[misc]
    write_pdf([encode_png(im, 72) for im in images], tmp_path / "c.pdf", 72)  # type: ignore[arg-type]
    a = (tmp_path / "a.pdf").read_bytes()
    assert a.startswith(b"%PDF-")
    assert a == (tmp_path / "b.pdf").read_bytes() == (tmp_path / "c.pdf").read_bytes()


def test_a_pdf_of_no_pages_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no pages"):
        write_pdf([], tmp_path / "none.pdf", 72)
