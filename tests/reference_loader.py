"""``benchmarks/reference_glyph.py`` (the re-creation of Glyph's renderer), or another benchmark,
as a module, loaded once however many test files use it: benchmarks/ is not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(stem: str) -> ModuleType:
    """``benchmarks/<stem>.py`` as the module ``benchmarks.<stem>``, loaded once."""
    name = f"benchmarks.{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{stem}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_reference() -> ModuleType:
    return load_benchmark("reference_glyph")
