"""``glyph-render eval niah``: RULER-style needle-in-a-haystack, generated on the fly.

Cases come from :func:`glyph_render.niah.make_cases` (corpus prose cut to each length, needles
planted at each depth; nothing is downloaded). As in Glyph's RULER runs, only the haystack is
rendered: RULER's instruction and the question travel as text. A reply scores RULER's
``string_match_all`` (the share of the expected values it contains; ``--strict``: all or
nothing). Results are a depth x length grid, drawn as heatmap.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..niah import KINDS, NiahCase, make_cases, score_niah
from .heatmap import draw_heatmap
from .runner import (
    EvalError,
    EvalItem,
    EvalSettings,
    base_results,
    group,
    markdown_table,
    number,
    pct,
    prepare_output,
    ratio_text,
    run_items,
    settings_from_args,
    summary_line,
    tokens_label,
    write_outputs,
)

__all__ = ["add_arguments", "build_items", "instruction", "parse_depths", "parse_lengths", "run"]

#: RULER's niah template, the part before the context (its "following text" is the pages).
INSTRUCTION = ("Some special magic {what}s are hidden within the following text. Make sure to "
               "memorize it. I will quiz you about the {what}s afterwards.")
DEFAULT_LENGTHS = "4K,8K,16K,32K,64K,128K"
DEFAULT_DEPTHS = "0,0.25,0.5,0.75,1"
NIAH_MAX_TOKENS = 128  # RULER's tokens_to_generate for niah


def parse_lengths(text: str) -> list[int]:
    """``"2000,8K,128k"`` -> [2000, 8192, 131072]: K means 1024, as RULER's lengths do."""
    out = []
    for part in text.split(","):
        part = part.strip()
        scale = 1024 if part[-1:] in ("k", "K") else 1
        try:
            value = int(float(part[:-1] if scale > 1 else part) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a length in tokens: {part!r}") from None
        if value < 100:
            raise argparse.ArgumentTypeError(f"length {part!r} is under 100 tokens")
        out.append(value)
    return sorted(set(out))


def parse_depths(text: str) -> list[float]:
    """``"0.1,0.5,0.9"`` (fractions) or ``"10,50,90"`` (percentages) -> fractions."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"depths must be numbers: {text!r}") from None
    if values and max(values) > 1:
        values = [v / 100 for v in values]
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"depths must lie in [0, 1] (or 0-100 %): {text!r}")
    return sorted(set(values))


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"unknown needle kind(s) {', '.join(bad) or text!r}; "
                                         f"choose from {', '.join(KINDS)}")
    return kinds


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("niah")
    g.add_argument("--haystack", metavar="DIR|FILE",
                   help="prose to hide needles in: a corpus folder (its MANIFEST.tsv picks the "
                        "prose), a folder of .txt files, or one file (default $GLYPH_CORPUS, "
                        "else the corpus shipped in the package)")
    g.add_argument("--language", default="en",
                   help="corpus language (MANIFEST's language/script column, default en)")
    g.add_argument("--lengths", type=parse_lengths, default=DEFAULT_LENGTHS, metavar="N,...",
                   help=f"context lengths in text tokens; K = 1024 (default {DEFAULT_LENGTHS})")
    g.add_argument("--depths", type=parse_depths, default=DEFAULT_DEPTHS, metavar="D,...",
                   help=f"needle depths as fractions of the text (default {DEFAULT_DEPTHS})")
    g.add_argument("--kinds", type=_kinds, default=",".join(KINDS), metavar="KIND,...",
                   help=f"needle kinds (default all: {', '.join(KINDS)})")
    g.add_argument("--needles", type=int, default=4, metavar="N",
                   help="needles of a multikey/multivalue case (default 4)")
    g.add_argument("--samples", type=int, default=1, metavar="N",
                   help="cases per cell and kind, each from its own seed (default 1)")
    g.add_argument("--strict", action="store_true",
                   help="a reply scores 1 only with every expected value (default: the share "
                        "found, RULER's string_match_all)")


def instruction(kind: str) -> str:
    return INSTRUCTION.format(what={"uuid": "uuid", "word": "word"}.get(kind, "number"))


def _corpus(haystack: str | None) -> Any:
    """What make_cases takes: None (default corpus), a corpus folder, or a list of files."""
    if haystack is None:
        return None
    p = Path(haystack).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        if (p / "MANIFEST.tsv").is_file():
            return p
        files = sorted(p.glob("*.txt"))
        if not files:
            raise EvalError(f"--haystack {haystack}: no MANIFEST.tsv and no .txt files")
        return files
    raise EvalError(f"--haystack {haystack}: no such file or folder")


def build_items(args: argparse.Namespace, s: EvalSettings) -> list[EvalItem]:
    """Every (sample, length, depth, kind) case as an item, ``--limit`` applied."""
    if args.samples < 1 or args.needles < 1:
        raise EvalError("--samples and --needles must be at least 1")
    seed = s.seed or 0
    tokenizer = args.tokenizer or "cl100k_base"
    cases: list[NiahCase] = []
    try:
        for k in range(args.samples):
            cases += make_cases(args.lengths, args.depths, args.kinds, seed=seed + k,
                                corpus=_corpus(args.haystack), tokenizer=tokenizer,
                                n_needles=args.needles, language=args.language)
    except (OSError, ValueError) as exc:  # missing corpus, corpus too small, bad counts
        raise EvalError(f"cannot build the haystacks: {exc}") from None
    if s.limit is not None:
        cases = cases[: s.limit]
    items = []
    for c in cases:
        lead = instruction(c.kind)
        items.append(EvalItem(
            id=f"{c.length}-{c.depth:g}-{c.kind}-s{c.seed}", context=c.context,
            question=f"{lead}\n{c.question}", head=lead + "\n", tail="\n" + c.question,
            grade=lambda pred, c=c: score_niah(pred, c, partial=not args.strict),
            answers=list(c.answers), max_tokens=NIAH_MAX_TOKENS,
            meta={"length": c.length, "depth": c.depth, "kind": c.kind, "seed": c.seed,
                  "context_tokens": c.tokens, "key": c.key,
                  "needle_at": round(c.needle_offsets[0] / max(1, len(c.context)), 4)},
        ))
    return items


def aggregate(records: list[dict[str, Any]], lengths: list[int],
              depths: list[float]) -> dict[str, Any]:
    """Per-cell scores (depth x length) and the margins by length, depth and kind."""
    cells = []
    for depth in depths:
        for length in lengths:
            sub = [r for r in records if r.get("length") == length and r.get("depth") == depth]
            if sub:
                g = group(sub, lambda r: 0)["0"]
                cells.append({"length": length, "depth": depth, **g})
    return {
        "cells": cells,
        "by_length": group(records, lambda r: r.get("length"), lengths),
        "by_depth": group(records, lambda r: r.get("depth"), depths),
        "by_kind": group(records, lambda r: r.get("kind")),
    }


def table(results: dict[str, Any]) -> str:
    lengths = results["lengths"]
    by_length = results["by_length"]
    cells = {(c["depth"], c["length"]): c for c in results["cells"]}
    rows = []
    for depth in results["depths"]:
        row = [f"{depth:g}"]
        row += [pct(cells[(depth, n)]["score"]) if (depth, n) in cells else "-" for n in lengths]
        row.append(pct(results["by_depth"].get(str(depth), {}).get("score")))
        rows.append(row)
    rows.append(["**mean**"] + [pct(by_length.get(str(n), {}).get("score")) for n in lengths]
                + [pct(results["score"])])
    rows.append(["ratio"] + [ratio_text(by_length.get(str(n), {}).get("compression_ratio"))
                             for n in lengths]
                + [ratio_text(results["compression"]["compression_ratio"])])
    rows.append(["prompt tokens"] + [number(by_length.get(str(n), {}).get("prompt_tokens_mean"))
                                     for n in lengths]
                + [number(results["compression"]["prompt_tokens_mean"])])
    grid = markdown_table(["depth \\ length"] + [tokens_label(n) for n in lengths] + ["mean"],
                          rows)
    kinds = markdown_table(
        ["kind", "n", "errors", "score %", "ratio", "prompt tokens (mean)"],
        [[k, v["n"], v["errors"], pct(v["score"]), ratio_text(v["compression_ratio"]),
          number(v["prompt_tokens_mean"])] for k, v in results["by_kind"].items()])
    return f"{summary_line(results)}\n\n{grid}\n\n{kinds}"


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    s = settings_from_args(args)
    prepare_output(s)
    items = build_items(args, s)
    if not items:
        raise EvalError("no cases to ask (--limit 0?)")
    result = run_items(items, s, task="niah")
    results = base_results("niah", result, s)
    lengths = [n for n in args.lengths if any(i.meta["length"] == n for i in items)]
    depths = [d for d in args.depths if any(i.meta["depth"] == d for i in items)]
    results.update(lengths=lengths, depths=depths, kinds=args.kinds,
                   strict=bool(args.strict), **aggregate(result.records, lengths, depths))
    results["settings"].update(seed=s.seed or 0, haystack=args.haystack, language=args.language,
                               samples=args.samples, needles=args.needles)
    if s.output is not None:
        cells = {(c["depth"], c["length"]): c["score"] for c in results["cells"]}
        grid = [[cells.get((d, n)) for n in lengths] for d in depths]
        cols = [f"{tokens_label(n)}\n"
                f"{ratio_text(results['by_length'][str(n)]['compression_ratio'])}"
                for n in lengths]
        c = results["compression"]
        mode = "as text" if s.as_text else f"{ratio_text(c['compression_ratio'])} compression"
        draw_heatmap(s.output / "heatmap.png", grid, [f"{d:.0%}" for d in depths], cols,
                     title=f"NIAH {results['model']}: score {results['score']:.2f}, {mode}")
    text = table(results)
    write_outputs(s, results, text, **({"heatmap": "heatmap.png"} if s.output else {}))
    return results, text
