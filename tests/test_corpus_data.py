"""The vendored texts are what their MANIFEST and READMEs say: every file listed, sizes and
sha256 sums right, every licence text present and named."""

from __future__ import annotations

import hashlib
import re

import pytest

from glyph_render.niah import read_manifest

try:
    from corpus_data import CORPUS, TEST_DATA
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import CORPUS, TEST_DATA

ROWS = read_manifest(CORPUS)
NOT_TEXTS = {"README.md", "MANIFEST.tsv", "LICENSES"}


def test_manifest_lists_every_text() -> None:
    assert sorted(ROWS) == sorted(p.name for p in CORPUS.iterdir() if p.name not in NOT_TEXTS)
    prefixes = {name.split("_")[0] for name in ROWS}
    assert {"en", "zh", "ja", "ru", "code"} <= prefixes


@pytest.mark.parametrize("name", sorted(ROWS))
def test_manifest_row_matches_the_file(name: str) -> None:
    row, data = ROWS[name], (CORPUS / name).read_bytes()
    assert int(row["bytes"]) == len(data)
    assert int(row["chars"]) == len(data.decode("utf-8"))
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["source"].startswith("github:") and row["license"]
    assert b"Gutenberg" not in data  # the public-domain text alone, no Project Gutenberg mark


def test_total_size_stays_small() -> None:
    assert sum((CORPUS / n).stat().st_size for n in ROWS) < 600_000


@pytest.mark.parametrize("folder", [CORPUS, TEST_DATA], ids=["package", "tests"])
def test_every_licence_text_is_there_and_named(folder) -> None:
    readme = (folder / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"LICENSES/([\w.+-]+)", readme))
    assert named == {p.name for p in (folder / "LICENSES").iterdir()}


def test_test_data_sha256_as_the_readme_says() -> None:
    readme = (TEST_DATA / "README.md").read_text(encoding="utf-8")
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    assert len(sums) == 3
    for digest, name in sums:
        assert hashlib.sha256((TEST_DATA / name).read_bytes()).hexdigest() == digest, name
