"""``text_to_images``, Glyph's script entry point: same signature, file names, return value and
defaults, and the pages the reportlab reference (benchmarks/reference_glyph.py) draws."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("reportlab", reason="reportlab (the 'bench' extra) is not installed")
pytest.importorskip("pdf2image", reason="pdf2image (the 'bench' extra) is not installed")
if not (shutil.which("pdftoppm") and shutil.which("pdfinfo")):
    pytest.skip("poppler-utils (pdftoppm, pdfinfo) missing", allow_module_level=True)

from reportlab.lib import colors  # noqa: E402
from reportlab.lib.enums import TA_CENTER  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402

import glyph_render  # noqa: E402
from glyph_render.compat import text_to_images  # noqa: E402
from glyph_render.errors import ConfigError, InputError  # noqa: E402
from glyph_render.fonts import bundled_font  # noqa: E402

try:
    from reference_loader import load_reference
except ImportError:  # tests/ imported as a package
    from tests.reference_loader import load_reference

ref = load_reference()
CORPUS = Path(glyph_render.__file__).parent / "data" / "corpus"
DEJAVU = bundled_font("DejaVuSans")
DROID = bundled_font("DroidSansFallbackFull")

#: What Glyph's word2png_function.text_to_images uses for keys a config leaves out.
SCRIPT_DEFAULTS = {
    "page-size": A4, "margin-x": 20, "margin-y": 20, "font-size": 9, "line-height": 10,
    "page-bg-color": "#FFFFFF", "font-color": "#000000", "para-bg-color": "#FFFFFF",
    "para-border-color": "#FFFFFF", "first-line-indent": 0, "left-indent": 0,
    "right-indent": 0, "alignment": "JUSTIFY", "space-before": 0, "space-after": 0,
    "border-width": 0, "border-padding": 0, "horizontal-scale": 1.0, "dpi": 72,
    "auto-crop-last-page": False, "auto-crop-width": False, "newline-markup": "<br/>",
}


def corpus(name: str, chars: int) -> str:
    with open(CORPUS / name, encoding="utf-8", newline="") as f:
        return f.read()[:chars]


def assert_reference_pages(paths: list[str], text: str, cfg: dict, pixels: bool = True) -> None:
    """The files are the reference's pages: same count, sizes and (almost) the same pixels."""
    want = [np.asarray(im) for im in ref.render_reference(text, cfg)]
    assert len(paths) == len(want) == ref.pdf_page_count(ref.build_pdf(text, cfg))
    for path, a in zip(paths, want, strict=True):
        with Image.open(path) as im:
            b = np.asarray(im.convert("RGB"))
        assert a.shape == b.shape, (path, a.shape, b.shape)
        if pixels:
            assert np.abs(a.astype(int) - b.astype(int)).mean() <= 0.01, path


def test_signature_is_glyphs() -> None:
    params = list(inspect.signature(text_to_images).parameters.values())
    assert [p.name for p in params] == [
        "text", "output_dir", "config_path", "config_dict", "unique_id"]
    assert [p.default for p in params[2:]] == [None, None, None]
    assert glyph_render.text_to_images is text_to_images


def test_defaults_names_and_return_value_as_the_script(tmp_path: Path) -> None:
    text = corpus("en_alice_in_wonderland.txt", 9_000)
    out = tmp_path / "out"
    paths = text_to_images(text, str(out), config_dict={"font-path": DEJAVU})
    uid = hashlib.md5(text.encode()).hexdigest()[:16]
    assert len(paths) >= 2
    assert paths == [os.path.abspath(os.path.join(out, uid, f"page_{i:03d}.png"))
                     for i in range(1, len(paths) + 1)]
    assert sorted(p.name for p in (out / uid).iterdir()) == [Path(p).name for p in paths]
    # pixels: see test_a4_pages_match_the_reference_pixel_for_pixel
    assert_reference_pages(paths, text, {**SCRIPT_DEFAULTS, "font-path": DEJAVU}, pixels=False)
    with Image.open(paths[0]) as im:  # A4 (595.3 x 841.9 pt) at 72 DPI, no cropping by default
        assert im.size == (596, 842)


def test_a4_pages_match_the_reference_pixel_for_pixel(tmp_path: Path) -> None:
    text = corpus("en_alice_in_wonderland.txt", 3_000)
    paths = text_to_images(text, tmp_path, config_dict={"font-path": DEJAVU})
    assert_reference_pages(paths, text, {**SCRIPT_DEFAULTS, "font-path": DEJAVU})


def test_whole_point_pages_match_the_reference_pixel_for_pixel(tmp_path: Path) -> None:
    text = corpus("en_alice_in_wonderland.txt", 9_000)
    cfg = {"font-path": DEJAVU, "page-size": "595,842"}
    paths = text_to_images(text, tmp_path, config_dict=cfg)
    assert len(paths) >= 2
    assert_reference_pages(paths, text, {**SCRIPT_DEFAULTS, **cfg})


def test_a_config_file_and_a_unique_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Glyph's published config shape, relative output folder, Chinese text."""
    published = {**ref.DEFAULT_CONFIG, "font-path": DROID, "line-height": None}
    (tmp_path / "config.json").write_text(json.dumps(published), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    text = corpus("zh_hongloumeng.txt", 5_000)
    paths = text_to_images(text, "rendered", config_path="config.json", unique_id="item-7")
    assert paths[0] == str(tmp_path / "rendered" / "item-7" / "page_001.png")
    assert_reference_pages(paths, text, {**published, "line-height": 10})  # None -> size + 1


def test_config_dict_beats_config_path_and_reportlab_values_are_read(tmp_path: Path) -> None:
    text = "Centred, coloured.\n" * 30
    converted = {"font-path": DEJAVU, "alignment": TA_CENTER, "page-size": (300.0, 200.0),
                 "font-color": colors.HexColor("#1B2A4A"), "margin-x": 10, "margin-y": 10}
    paths = text_to_images(text, tmp_path, config_path=tmp_path / "absent.json",
                           config_dict=converted, unique_id="a")
    plain = {**SCRIPT_DEFAULTS, "font-path": DEJAVU, "alignment": "CENTER",
             "page-size": "300,200", "font-color": "#1B2A4A", "margin-x": 10, "margin-y": 10}
    assert_reference_pages(paths, text, plain)


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config_path or config_dict"):
        text_to_images("x", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        text_to_images("x", tmp_path, config_path=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="font-sise"):
        text_to_images("x", tmp_path, config_dict={"font-sise": 9})
    with pytest.raises(InputError, match="empty"):
        text_to_images("  \n", tmp_path, config_dict={})
    assert not list(tmp_path.iterdir())
