"""Compression by file and DPI: text tokens vs vision tokens for every corpus file.

For each file of the corpus (prose in Latin, Cyrillic and CJK scripts, docs, code, mixed) with the
default config (``detect_preset``: glyph-en or glyph-zh): its cl100k text tokens, and its vision
tokens at each DPI from ONE geometry-only layout (layout is in points, so DPI only rescales the
pages, priced by ``page_sizes`` + ``image_tokens``). Ratio = text tokens / vision tokens: how many
times fewer tokens the model reads. Files are taken whole, as stored (BOM dropped), including
any boilerplate (the full texts' Project Gutenberg headers), since that is what a user would
hand over. The corpus is the one shipped in the package (excerpts) unless ``--corpus`` or
``$GLYPH_CORPUS`` names another, e.g. the full texts.

    python benchmarks/compression.py [--dpi 60,72,96,120] [--plot ratio.png] [--json out.json]
    python benchmarks/compression.py --files en_alice_in_wonderland.txt code_click_core.py \
        --chars 20000 --dpi 72
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glyph_render.config import RenderConfig, detect_preset  # noqa: E402
from glyph_render.layout import layout  # noqa: E402
from glyph_render.niah import default_corpus_dir, read_manifest  # noqa: E402
from glyph_render.render import page_sizes  # noqa: E402
from glyph_render.text_tokens import get_tokenizer  # noqa: E402
from glyph_render.vision_tokens import get_profile, image_tokens  # noqa: E402

GROUPS = ("prose (Latin/Cyrillic)", "prose (CJK)", "docs", "code", "mixed")


@dataclass
class Row:
    file: str
    group: str
    preset: str
    chars: int
    text_tokens: int
    pages: int
    vision_tokens: dict[float, int] = field(default_factory=dict)
    seconds: float = 0.0

    def ratio(self, dpi: float) -> float:
        vt = self.vision_tokens[dpi]
        return self.text_tokens / vt if vt else 0.0


def group_of(name: str, kind: str, preset: str) -> str:
    """Plot/summary group from the MANIFEST kind (or the file prefix) and the script."""
    base = (kind.split()[0] if kind else name.split("_")[0]).lower()
    if base in ("prose", "en", "ru", "zh", "ja"):
        return "prose (CJK)" if preset == "glyph-zh" else "prose (Latin/Cyrillic)"
    return base if base in GROUPS else "mixed"


def measure(path: Path, kind: str, dpis: list[float], chars: int | None, tokenizer: str,
            profile: str) -> Row:
    with path.open(encoding="utf-8", newline="") as f:
        text = f.read().removeprefix("\ufeff")
    if chars:
        text = text[:chars]
    t0 = time.perf_counter()
    preset = detect_preset(text)
    cfg = RenderConfig.preset(preset)
    pages = list(layout(text, cfg, geometry_only=True))
    prof = get_profile(profile)
    row = Row(path.name, group_of(path.name, kind, preset), preset, len(text),
              get_tokenizer(tokenizer).count(text), len(pages))
    for dpi in dpis:
        row.vision_tokens[dpi] = sum(image_tokens(w, h, prof)
                                     for w, h in page_sizes(pages, cfg, dpi=dpi))
    row.seconds = time.perf_counter() - t0
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus_dir(),
                    help="corpus folder (default: $GLYPH_CORPUS, else the package's)")
    ap.add_argument("--files", nargs="+", metavar="NAME",
                    help="corpus file names or globs (default: every file)")
    ap.add_argument("--chars", type=int, help="only the first N characters of each file")
    ap.add_argument("--dpi", default="60,72,96,120", help="comma-separated DPIs")
    ap.add_argument("--tokenizer", default="cl100k_base")
    ap.add_argument("--profile", default="glyph", help="vision-token profile (model)")
    ap.add_argument("--plot", type=Path, help="write ratio vs DPI per file to this PNG")
    ap.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = ap.parse_args(argv)

    dpis = [float(d) for d in args.dpi.split(",")]
    manifest = read_manifest(args.corpus)
    names = sorted(manifest) or sorted(
        p.name for p in args.corpus.iterdir() if p.is_file() and p.suffix != ".tsv"
        and p.name != "README.md")
    if args.files:
        names = [n for n in names if any(fnmatch.fnmatch(n, pat) for pat in args.files)]
        if not names:
            ap.error(f"no corpus file matches {args.files} in {args.corpus}")
    if not names:
        ap.error(f"no corpus files in {args.corpus}")

    rows = [measure(args.corpus / n, manifest.get(n, {}).get("kind", ""), dpis, args.chars,
                    args.tokenizer, args.profile) for n in names]
    print_table(rows, dpis, args.tokenizer, args.profile)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
        print(f"rows -> {args.json}")
    if args.plot:
        plot(rows, dpis, args.plot)
    return 0


def print_table(rows: list[Row], dpis: list[float], tokenizer: str, profile: str) -> None:
    print(f"text tokens: {tokenizer}; vision tokens: profile {profile!r}; ratio = text/vision\n")
    head = (f"{'file':40} {'group':22} {'preset':8} {'chars':>9} {'text tok':>9} {'pages':>6}"
            + "".join(f" {f'{d:g} dpi: vis':>14} {'ratio':>6}" for d in dpis) + f" {'s':>5}")
    print(head)
    print("-" * len(head))
    order = sorted(rows, key=lambda r: (GROUPS.index(r.group), r.file))
    for r in order:
        cells = "".join(f" {r.vision_tokens[d]:14d} {r.ratio(d):6.2f}" for d in dpis)
        print(f"{r.file:40} {r.group:22} {r.preset:8} {r.chars:9d} {r.text_tokens:9d} "
              f"{r.pages:6d}{cells} {r.seconds:5.1f}")
    print("\nby group (sum of text tokens / sum of vision tokens):")
    for g in GROUPS:
        got = [r for r in rows if r.group == g]
        if not got:
            continue
        text = sum(r.text_tokens for r in got)
        ratios = "  ".join(
            f"{d:g} dpi {text / max(1, sum(r.vision_tokens[d] for r in got)):5.2f}x"
            for d in dpis)
        print(f"  {g:22} ({len(got)} files)  {ratios}")


def plot(rows: list[Row], dpis: list[float], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install matplotlib, or the 'bench' "
              "extra: pip install -e '.[bench]')", file=sys.stderr)
        return
    groups = [g for g in GROUPS if any(r.group == g for r in rows)]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 4.2), sharey=True,
                             squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        for r in sorted((r for r in rows if r.group == g), key=lambda r: r.file):
            ax.plot(dpis, [r.ratio(d) for d in dpis], marker="o", label=r.file.split(".")[0])
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(g)
        ax.set_xlabel("DPI")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("text tokens / vision tokens")
    fig.suptitle("Compression ratio vs DPI (default config, one layout per file)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot -> {path}")


if __name__ == "__main__":
    sys.exit(main())
