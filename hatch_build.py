"""Build hook: compile glyph-render's C modules (``MODULES``) into the wheel.

The modules are optional: without a C compiler, or with ``GLYPH_RENDER_NO_ACCEL=1``, the build
warns and the package falls back to its pure-Python paths (same results, slower). setuptools
does the compiling, so the platform's own compiler and flags are used; an editable install gets
the modules next to the sources, a wheel gets them inside and a platform tag.

``python hatch_build.py`` compiles them in place (next to the sources), for a checkout that is
imported through ``PYTHONPATH`` rather than installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: Extension module -> its C source, relative to the project root.
MODULES = {
    "glyph_render._accel": "glyph_render/_accel.c",  # the raster's placement and compositing
    "glyph_render._bpe": "glyph_render/_bpe.c",  # the exact cl100k_base text-token count
    "glyph_render._layoutc": "glyph_render/_layoutc.c",  # the line breaker's hot loops
}


class AccelBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("GLYPH_RENDER_NO_ACCEL") == "1":
            return
        root = Path(self.root)
        kept_any = False
        with tempfile.TemporaryDirectory() as tmp:
            for module in MODULES:
                try:
                    built = _compile(root, Path(tmp), module)
                except Exception as exc:  # noqa: BLE001 - any failure leaves the Python path
                    print(f"glyph-render: {module} not built ({type(exc).__name__}: {exc}); "
                          "its pure-Python path is used", file=sys.stderr)
                    continue
                if version == "editable":
                    # an editable install imports from the source folder
                    shutil.copy2(built, root / "glyph_render" / built.name)
                    continue
                kept = Path(self.directory) / ".accel" / built.name
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built, kept)
                build_data["force_include"][str(kept)] = f"glyph_render/{built.name}"
                kept_any = True
        if kept_any:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True


def _compile(root: Path, tmp: Path, module: str) -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    ext = Extension(module, [str(root / MODULES[module])], extra_compile_args=_flags())
    dist = Distribution({"name": "glyph-render", "ext_modules": [ext]})
    cmd = build_ext(dist)
    cmd.build_lib = str(tmp / module / "lib")
    cmd.build_temp = str(tmp / module / "temp")
    cmd.ensure_finalized()
    cmd.run()
    return Path(cmd.get_ext_fullpath(module))


def build_in_place(root: Path) -> list[Path]:
    """Compile every module next to its source (what an editable install does)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for module in MODULES:
            built = _compile(root, Path(tmp), module)
            dest = root / "glyph_render" / built.name
            shutil.copy2(built, dest)
            out.append(dest)
    return out


def _flags() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    return ["-O2", "-ffp-contract=off"]  # no fused multiply-add: the same doubles as NumPy


if __name__ == "__main__":
    for path in build_in_place(Path(__file__).resolve().parent):
        print(path)
