"""Build hook: compile ``glyph_render/_accel.c`` (the raster's compositing loop) into the wheel.

The module is optional: without a C compiler, or with ``GLYPH_RENDER_NO_ACCEL=1``, the build
warns and the package falls back to its NumPy path (same pages, slower). setuptools does the
compiling, so the platform's own compiler and flags are used; an editable install gets the
module next to the sources, a wheel gets it inside and a platform tag.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "glyph_render._accel"
SOURCE = "glyph_render/_accel.c"


class AccelBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("GLYPH_RENDER_NO_ACCEL") == "1":
            return
        root = Path(self.root)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                built = _compile(root, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - any failure leaves the NumPy path
                print(f"glyph-render: {MODULE} not built ({type(exc).__name__}: {exc}); "
                      "the raster uses its NumPy path", file=sys.stderr)
                return
            if version == "editable":
                # an editable install imports from the source folder
                shutil.copy2(built, root / "glyph_render" / built.name)
                return
            kept = Path(self.directory) / ".accel" / built.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, kept)
        build_data["force_include"][str(kept)] = f"glyph_render/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def _compile(root: Path, tmp: Path) -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    ext = Extension(MODULE, [str(root / SOURCE)], extra_compile_args=_flags())
    dist = Distribution({"name": "glyph-render", "ext_modules": [ext]})
    cmd = build_ext(dist)
    cmd.build_lib = str(tmp / "lib")
    cmd.build_temp = str(tmp / "temp")
    cmd.ensure_finalized()
    cmd.run()
    return Path(cmd.get_ext_fullpath(MODULE))


def _flags() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    return ["-O2", "-ffp-contract=off"]  # no fused multiply-add: the same doubles as NumPy
