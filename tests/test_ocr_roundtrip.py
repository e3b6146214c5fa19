"""Round trip through a real OCR engine: rendered pages must read back as their source text.

Tesseract (the ``tesseract`` binary, English model) reads each page; the character error rate
(Levenshtein distance / reference length, whitespace normalised) against the page's source span
must stay under 2% at 144 DPI. The edit distance is computed by the small numpy helper below
(``rapidfuzz`` is not a dependency).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glyph_render import RenderConfig
from glyph_render.render import render

TESSERACT = shutil.which("tesseract")
pytestmark = pytest.mark.skipif(TESSERACT is None,
                                reason="tesseract binary not installed (apt install tesseract-ocr)")

START = "To Sherlock Holmes she is always THE woman."


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs), one numpy row per character of ``a``."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.array([ord(c) for c in b], dtype=np.int64)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    prev = idx.copy()
    for i, ca in enumerate(a, 1):
        # substitution/match and deletion first; insertions are a running minimum along the row:
        # cur[j] = min_k (base[k] + j - k)  ==  cummin(base - idx) + idx
        base = np.empty_like(prev)
        base[0] = i
        np.minimum(prev[:-1] + (bb != ord(ca)), prev[1:] + 1, out=base[1:])
        prev = np.minimum.accumulate(base - idx) + idx
    return int(prev[-1])


def _reference_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        new = [i]
        for j, cb in enumerate(b, 1):
            new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb)))
        row = new
    return row[-1]


def normalise(text: str) -> str:
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def test_edit_distance_helper() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("same", "same") == 0
    rng = random.Random(7)
    for _ in range(200):
        a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        assert edit_distance(a, b) == _reference_distance(a, b), (a, b)


@pytest.fixture(scope="module")
def paragraph(corpus_text) -> str:
    """About 430 words of the first Sherlock Holmes story: one dense page at glyph-en."""
    text = corpus_text("en_adventures_of_sherlock_holmes.txt")
    start = text.index(START)
    end = text.index("\r\n\r\n", start + 2000)
    para = text[start:end]
    assert 350 <= len(para.split()) <= 500
    return para


def _ocr(paragraph: str, dpi: int, folder: Path) -> list[tuple[str, subprocess.Popen]]:
    """Render at ``dpi`` and start one Tesseract per page; returns (source span, process)."""
    res = render(paragraph, RenderConfig.preset("glyph-en").replace(dpi=dpi))
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    jobs = []
    for page in res.pages:
        path = folder / f"dpi{dpi}_page{page.number:03d}.png"
        path.write_bytes(page.png)
        proc = subprocess.Popen(
            [TESSERACT, str(path), "stdout", "--psm", "6", "--dpi", str(dpi), "-l", "eng"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        jobs.append((paragraph[page.start:page.end], proc))
    return jobs


def test_ocr_reads_back_144_dpi_pages(paragraph: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # All three resolutions OCR in parallel; only 144 DPI is held to the 2% bound.
    jobs = {dpi: _ocr(paragraph, dpi, tmp_path) for dpi in (144, 96, 72)}
    rates: dict[int, list[float]] = {}
    for dpi, pages in jobs.items():
        rates[dpi] = []
        for source, proc in pages:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode(errors="replace")
            rates[dpi].append(cer(source, out.decode("utf-8", errors="replace")))
    with capsys.disabled():
        for dpi in (144, 96, 72):
            shown = ", ".join(f"{r:.2%}" for r in rates[dpi])
            print(f"\n[ocr] glyph-en {dpi} DPI, {len(rates[dpi])} page(s): CER {shown}", end="")
        print()
    assert len(rates[144]) >= 1
    for page_rate in rates[144]:
        assert page_rate < 0.02, rates
