"""Both benchmarks, run for real as subprocesses on a small slice so CI exercises them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glyph_render import RenderConfig
from glyph_render.niah import PACKAGE_CORPUS
from glyph_render.render import render

ROOT = Path(__file__).resolve().parents[1]
CORPUS = PACKAGE_CORPUS  # the corpus shipped in the package: each benchmark is pointed at it


def bench(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
        text=True, timeout=timeout, env=env, check=False, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_compression_small_slice(tmp_path):
    out = tmp_path / "rows.json"
    plot = tmp_path / "ratio.png"
    proc = bench("compression.py", "--corpus", str(CORPUS),
                 "--files", "en_alice_in_wonderland.txt", "code_click_core.py",
                 "--chars", "20000", "--dpi", "72,96", "--json", str(out), "--plot", str(plot))
    assert "72 dpi: vis" in proc.stdout and "96 dpi: vis" in proc.stdout
    assert "en_alice_in_wonderland.txt" in proc.stdout and "code_click_core.py" in proc.stdout
    assert "by group" in proc.stdout
    rows = {r["file"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"en_alice_in_wonderland.txt", "code_click_core.py"}
    alice = rows["en_alice_in_wonderland.txt"]
    # fewer pixels, fewer tokens: 72 DPI compresses more than 96
    assert alice["vision_tokens"]["72.0"] < alice["vision_tokens"]["96.0"]
    # the arithmetic (one geometry-only layout priced per DPI) equals really rendering it
    text = (CORPUS / "en_alice_in_wonderland.txt").open(encoding="utf-8", newline="").read()
    text = text.removeprefix("\ufeff")[:20000]
    res = render(text, RenderConfig.preset("glyph-en").replace(dpi=96))
    assert res.vision_tokens == alice["vision_tokens"]["96.0"]
    assert res.text_tokens == alice["text_tokens"]
    assert len(res.pages) == alice["pages"]
    if plot.exists():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed" in proc.stderr


@pytest.mark.skipif(shutil.which("tesseract") is None,
                    reason="tesseract binary not installed (apt install tesseract-ocr)")
def test_legibility_small_slice(tmp_path):
    out = tmp_path / "samples.json"
    # 9 pt at 40 / 64 / 144 DPI = 5 / 8 / 18 px per em
    proc = bench("legibility.py", "--corpus", str(CORPUS),
                 "--scripts", "en", "--dpi", "40,64,144", "--font-size", "9",
                 "--pages", "1", "--chars", "1500", "--json", str(out))
    assert "weak proxy for a VLM" in proc.stdout
    assert "px/em" in proc.stdout and "CER median" in proc.stdout
    assert "18.00" in proc.stdout and "5.00" in proc.stdout
    cer = {s["px_per_em"]: s["cer"] for s in json.loads(out.read_text())}
    assert set(cer) == {5.0, 8.0, 18.0}
    assert cer[18.0] < 0.03  # 144 DPI, 9 pt: Tesseract reads English almost perfectly
    # and errors climb as the glyphs shrink toward 5 px per em
    assert cer[5.0] > cer[8.0] > cer[18.0]
    assert cer[5.0] > 0.10


def test_layout_speed_small_slice():
    """The layout benchmark runs both paths (C and Python) on each of its three texts."""
    proc = bench("layout_speed.py", "--corpus", str(CORPUS), "--chars", "20000",
                 "--other-chars", "5000", "--repeats", "1", timeout=300)
    for label in ("flowing prose (20,000 chars)", "code:", "CJK:"):
        assert label in proc.stdout, proc.stdout
    assert proc.stdout.count("warm: C ") == 3 and proc.stdout.count("cold: C ") == 3
