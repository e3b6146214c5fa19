"""Make the CUDA build of torchvision from PyPI importable on a CPU-only machine.

torchvision/_meta_registrations.py registers fake (meta) kernels for ``torchvision::nms`` and
``torchvision::qnms`` unconditionally. When torchvision's compiled ops cannot be loaded (the PyPI
wheel is a CUDA build and this machine has no CUDA libraries), those operators do not exist and
``import torchvision`` fails with ``operator torchvision::nms does not exist``. The other
registrations in that file are already guarded by ``torchvision.extension._has_ops()``; this
script guards these two the same way.

Run with the Python of the environment to patch. Idempotent; exits non-zero when the file does
not look as expected (rather than silently doing nothing).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

MARKER = "# glyph-render: nms/qnms fake registrations made conditional (tools/vllm_cpu)"
OPS = ("nms", "qnms")


def patch_source(src: str) -> str:
    if MARKER in src:
        return src
    out = src
    for op in OPS:
        pattern = re.compile(
            r"^(?P<indent>[ \t]*)@torch\.library\.register_fake\("
            + re.escape(f'"torchvision::{op}"')
            + r"\)[ \t]*$",
            re.MULTILINE,
        )
        matches = pattern.findall(out)
        if len(matches) != 1:
            raise SystemExit(
                f"neutralise_cuda: expected exactly one register_fake for torchvision::{op}, "
                f"found {len(matches)}; torchvision changed: update tools/vllm_cpu/"
                "neutralise_cuda.py"
            )
        out = pattern.sub(
            lambda m: f'{m["indent"]}@_glyph_register_fake_if_ops("torchvision::{op}")',  # noqa: B023
            out,
        )
    helper = (
        f"\n\n{MARKER}\n"
        "def _glyph_register_fake_if_ops(name):\n"
        "    import torchvision.extension\n"
        "\n"
        "    if torchvision.extension._has_ops():\n"
        "        return torch.library.register_fake(name)\n"
        "    return lambda fn: fn\n\n"
    )
    # Put the helper right after the imports: before the first top-level decorator/def.
    first = re.search(r"^(@|def )", out, re.MULTILINE)
    if first is None:
        raise SystemExit("neutralise_cuda: no top-level definition found in _meta_registrations.py")
    return out[: first.start()] + helper.lstrip("\n") + "\n" + out[first.start() :]


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("neutralise_cuda: torchvision is not installed; nothing to do")
        return 0
    path = Path(spec.origin).parent / "_meta_registrations.py"
    src = path.read_text()
    new = patch_source(src)
    if new != src:
        path.write_text(new)
        for pyc in (path.parent / "__pycache__").glob("_meta_registrations.*.pyc"):
            pyc.unlink()
        print(f"neutralise_cuda: patched {path}")
    else:
        print(f"neutralise_cuda: already patched {path}")
    # Prove it: a fresh interpreter must import what vLLM's GLM-4.1V processor imports.
    check = subprocess.run(
        [sys.executable, "-c", "import torchvision.transforms.v2.functional"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        sys.stderr.write(check.stderr[-3000:])
        print("neutralise_cuda: torchvision still fails to import", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
