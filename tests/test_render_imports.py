"""The render command's imports: with the compiled module built, ``glyph-render doc.txt -o DIR``
draws and encodes its pages without importing NumPy (a tenth of a short render just to import),
nor the client's stack (openai, httpx).

Each check runs the command in a fresh interpreter (what a user's shell does), through
``cli.main`` so the process can report its ``sys.modules`` after the render; the pages it wrote
are then read back with Pillow. Speed itself is measured by ``benchmarks/render_speed.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "glyph_render" / "data" / "corpus"

if os.environ.get("GLYPH_REQUIRE_ACCEL") != "1":
    pytest.importorskip("glyph_render._accel", reason="the C module is not built")

#: what the render command must not load
UNWANTED = ("numpy", "glyph_render.client", "openai", "httpx")

SCRIPT = f"""
import json, sys
from glyph_render.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": [m for m in {UNWANTED!r} if m in sys.modules],
                  "accel": "glyph_render._accel" in sys.modules}}))
"""


def _render(tmp_path: Path, text: str, *flags: str) -> tuple[dict, list[Path]]:
    doc = tmp_path / "doc.txt"
    doc.write_text(text, encoding="utf-8")
    out = tmp_path / "pages"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(doc), "-o", str(out),
                           "--tokenizer", "bytes", *flags],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, sorted(out.glob("page_*.png"))


@pytest.mark.parametrize("flags", [
    (),
    ("--font-color", "#1B2A4A", "--page-bg-color", "#FDF6E3", "--para-bg-color", "#EEE8D5",
     "--horizontal-scale", "0.9"),
], ids=["glyph-en", "colour-scaled"])
def test_render_command_does_not_import_numpy(tmp_path: Path, flags: tuple[str, ...]) -> None:
    text = (CORPUS / "en_frankenstein.txt").read_text(encoding="utf-8-sig")[:12_000]
    report, pages = _render(tmp_path, text, "--preset", "glyph-en", *flags)
    assert report["code"] == 0 and report["accel"]
    assert report["loaded"] == [], f"the render command imported {report['loaded']}"
    assert len(pages) >= 2
    for p in pages:
        with Image.open(p) as img:
            img.load()
            assert img.mode == ("L" if not flags else "RGB")
            assert img.getextrema() != ((255, 255),) * len(img.getbands())  # ink drawn


def test_cjk_and_astral_text_render_without_numpy(tmp_path: Path) -> None:
    """Code points past the dense table (astral: emoji, rare CJK) take the table's other road."""
    text = (CORPUS / "zh_luxun_zhaohua_xishi.txt").read_text(encoding="utf-8-sig")[:3000]
    report, pages = _render(tmp_path, text + " \U0001F600 \U00020BB7 end", "--preset",
                            "glyph-zh")
    assert report["code"] == 0 and report["loaded"] == []
    assert pages
