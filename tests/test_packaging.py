"""The wheel a user installs: typed (PEP 561 ``py.typed``), its version the package's
``__version__``, and carrying the data the package reads (corpus, fonts). Built offline with the
``test`` extra's hatchling, so the check needs no registry."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import glyph_render

REPO = Path(__file__).resolve().parents[1]


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[.-]?\w+)?", glyph_render.__version__)
    assert "__version__" in glyph_render.__all__


def test_wheel_is_typed_and_carries_its_data_and_version(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", str(REPO), "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("glyph_render-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode("utf-8")
    assert "glyph_render/py.typed" in names
    if shutil.which("cc") or shutil.which("gcc"):  # the build hook compiles the C modules
        for module in ("_accel", "_bpe", "_layoutc"):
            assert any(re.fullmatch(rf"glyph_render/{module}\..+\.(so|pyd)", n) for n in names)
        # compiled in, not shipped (the corpus keeps its C excerpts: they are data)
        assert not [n for n in names if n.endswith((".c", ".h")) and "/data/" not in n]
    assert "glyph_render/data/corpus/MANIFEST.tsv" in names
    assert any(n.startswith("glyph_render/fonts/") for n in names)
    assert f"\nVersion: {glyph_render.__version__}\n" in metadata
    for extra in ("docs", "longbench"):
        assert f"\nProvides-Extra: {extra}\n" in metadata
