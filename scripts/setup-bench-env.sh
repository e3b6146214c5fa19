#!/usr/bin/env bash
# Installs what the benchmarks under benchmarks/ need beyond the package on a Debian/Ubuntu
# machine: poppler (the reference renderer's rasteriser), Tesseract with English, Russian and
# Chinese data (the OCR proxies of fidelity.py and legibility.py), a CJK font for the Chinese
# fidelity checks on both sides (Glyph's own Source Han Sans HW cannot be had: WenQuanYi Micro
# Hei and Noto CJK stand in), and the package with its bench extras (reportlab, pdf2image,
# matplotlib). Fonts are installed here, for the benchmarks, never by the package.
#
# Glyph's original script and Verdana are not downloaded: pass them to the benchmarks, e.g.
#   python benchmarks/fidelity.py --font path/to/Verdana.ttf \
#       --original path/to/Glyph/scripts/word2png_function.py
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

want=(poppler-utils tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus tesseract-ocr-chi-sim
      tesseract-ocr-chi-tra tesseract-ocr-jpn fonts-wqy-microhei fonts-noto-cjk)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,bench]"
if fc-list | grep -i "wqy\|noto sans cjk" >/dev/null; then
  echo "setup-bench-env: CJK font ready for fidelity.py"
fi
