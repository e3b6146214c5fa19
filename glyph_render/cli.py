"""Command line: ``glyph-render doc.txt --dpi 72`` and its subcommands.

Every expected failure (bad input, bad config, unwritable output, server trouble) prints one
line ``glyph-render: error: ...`` and exits 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import PRESETS, RenderConfig, detect_preset
from .document import STDIN, read_document
from .errors import GlyphRenderError

PROG = "glyph-render"

# Config keys exposed as flags: (flag, type, help).
_BOOL_FLAGS = ("auto-crop-width", "auto-crop-last-page", "remove-line-breaks",
               "split-blank-line")


def _config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering config (Glyph's JSON keys as flags; override --config)")
    g.add_argument("--preset", default="auto",
                   help=f"base config: {', '.join(PRESETS)} or auto (CJK text -> glyph-zh)")
    g.add_argument("--config", metavar="FILE", help="a Glyph rendering config JSON")
    for f in dataclasses.fields(RenderConfig):
        if f.name == "preset_name":
            continue
        key = f.name.replace("_", "-")
        dest = "cfg_" + f.name
        if key in _BOOL_FLAGS:
            g.add_argument("--" + key, dest=dest, action=argparse.BooleanOptionalAction,
                           default=None)
        elif key == "font-path":
            g.add_argument("--font", "--font-path", dest=dest, metavar="PATH",
                           help="any TTF/OTF (e.g. your own Verdana.ttf)")
        else:
            g.add_argument("--" + key, dest=dest, metavar=key.split("-")[-1].upper())


def _build_config(args: argparse.Namespace, text: str) -> RenderConfig:
    preset = args.preset
    if preset == "auto":
        preset = detect_preset(text)
    cfg = RenderConfig.preset(preset)
    if args.config:
        cfg = RenderConfig.from_json(args.config, base=cfg)
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(RenderConfig):
        v = getattr(args, "cfg_" + f.name, None)
        if v is None:
            continue
        overrides[f.name.replace("_", "-")] = _flag_value(f.name, v)
    return cfg.replace(**overrides) if overrides else cfg


def preset_bases(args: argparse.Namespace) -> dict[str, RenderConfig]:
    """The flags' config on each preset ``--preset auto`` may choose between, for jobs that
    pick per document (batch, eval): flags and ``--config`` apply over each."""
    import copy

    names = list(PRESETS) if args.preset == "auto" else [args.preset]
    bases = {}
    for name in names:
        ns = copy.copy(args)
        ns.preset = name
        bases[name] = _build_config(ns, "")
    return bases


def _flag_value(name: str, v: Any) -> Any:
    if not isinstance(v, str):
        return v
    if name == "tab_size":
        try:
            return int(v)
        except ValueError:
            return v  # the config reports it
    if name in ("page_size", "newline_markup", "font_path", "alignment", "fallback_fonts") \
            or name.endswith("_color"):
        return v
    try:
        return float(v)
    except ValueError:
        return v


def _doc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("document", help="text file to render, or - for standard input")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the document")


def _token_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "--profile", dest="profile", default="glyph",
                   help="vision-token profile: glyph, qwen2.5-vl, qwen3-vl or a "
                        "preprocessor_config.json")
    p.add_argument("--tokenizer", default="cl100k_base",
                   help="text tokenizer for the ratio: a tiktoken name, 'bytes' or a "
                        "tokenizer.json")


def _budget_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("vision-token budget")
    g.add_argument("--budget", type=int, required=required, metavar="TOKENS",
                   help="choose the most legible config whose vision tokens fit this budget")
    g.add_argument("--min-px-per-em", type=float, default=None, metavar="PX",
                   help="legibility floor: never draw text smaller than this many pixels per "
                        "em (default 7; 9 for CJK text)")
    g.add_argument("--max-dpi", type=float, default=None, metavar="DPI",
                   help="most legible DPI the budget search may pick (default 120)")
    g.add_argument("--overflow", choices=("error", "split"), default="error",
                   help="when nothing fits: fail, or split into chunks that each fit")


def _plan(args: argparse.Namespace, text: str, cfg: RenderConfig):
    from .compress import DEFAULT_MAX_DPI, compress

    return compress(
        text, args.budget, model=args.profile, config=cfg, tokenizer=args.tokenizer,
        min_px_per_em=args.min_px_per_em, max_dpi=args.max_dpi or DEFAULT_MAX_DPI,
        overflow=args.overflow,
    )


def _render_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Render a long text into dense page images for Glyph.",
        epilog="Subcommands: demo, layout, plan, ask, batch, serve, serve-ocr, doctor, bench, eval "
               "(run 'glyph-render SUBCOMMAND -h').",
    )
    _doc_args(p)
    p.add_argument("-o", "--output", metavar="DIR",
                   help="folder for page_001.png ... (default: <name>_pages)")
    p.add_argument("--pdf", metavar="FILE", help="also write all pages into one PDF")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: for long documents on a terminal)")
    _token_args(p)
    _budget_args(p)
    _config_flags(p)
    return p


def cmd_render(argv: Sequence[str]) -> int:
    from .render import render_to_dir

    args = _render_parser().parse_args(argv)
    text = read_document(args.document, args.encoding)
    cfg = _build_config(args, text)
    plan = _plan(args, text, cfg) if args.budget is not None else None
    if plan is not None:
        cfg = plan.config
    out = args.output or (
        "stdin_pages" if args.document == STDIN else f"{Path(args.document).stem}_pages"
    )
    res = render_to_dir(text, cfg, out, profile=args.profile, tokenizer=args.tokenizer,
                        pdf=args.pdf, progress=args.progress)
    if args.json:
        report = res.to_json()
        if plan is not None:
            report["plan"] = plan.to_json()
        _print_json(report)
    else:
        if plan is not None:
            print(_plan_line(plan))
        sizes = sorted({(p.width, p.height) for p in res.pages})
        shown = ", ".join(f"{w}x{h}" for w, h in sizes[:4]) + (" ..." if len(sizes) > 4 else "")
        print(f"{len(res.pages)} pages -> {out}/ ({shown} px at {cfg.dpi:g} DPI)")
        print(f"{res.chars:,} characters, {res.text_tokens:,} text tokens ({res.tokenizer}), "
              f"{res.vision_tokens:,} vision tokens ({res.profile})")
        print(f"compression {res.ratio:.2f}x, {res.seconds:.2f} s"
              + (f", {res.missing} characters without a glyph" if res.missing else ""))
        if cfg.font_note:
            print(f"font: {cfg.font_note}")
    return 0


def cmd_layout(argv: Sequence[str]) -> int:
    from .layout import layout
    from .render import page_sizes
    from .text_tokens import get_tokenizer
    from .vision_tokens import get_profile, image_tokens

    p = argparse.ArgumentParser(prog=f"{PROG} layout",
                                description="Print the layout (lines and pages) without "
                                            "rastering.")
    _doc_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _token_args(p)
    _config_flags(p)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    text = read_document(args.document, args.encoding)
    cfg = _build_config(args, text)
    pages = list(layout(text, cfg))
    sizes = page_sizes(pages, cfg)
    prof = get_profile(args.profile)
    tok = get_tokenizer(args.tokenizer)
    out_pages = []
    for pg, (w, h) in zip(pages, sizes, strict=False):
        out_pages.append({
            "file": None, "width": w, "height": h, "start": pg.start, "end": pg.end,
            "chars": pg.chars, "vision_tokens": image_tokens(w, h, prof),
            "missing_chars": pg.missing, "lines": [[ln.start, ln.end] for ln in pg.lines],
        })
    vt = sum(p["vision_tokens"] for p in out_pages)
    tt = tok.count(text)
    report = {
        "pages": out_pages, "page_count": len(out_pages), "chars": len(text), "text_tokens": tt,
        "vision_tokens": vt, "ratio": round(tt / vt, 4) if vt else 0.0, "tokenizer": tok.name,
        "profile": prof.name, "config": cfg.to_dict(),
        "seconds": round(time.perf_counter() - t0, 4),
    }
    if args.json:
        _print_json(report)
    else:
        for number, pg in enumerate(out_pages, 1):
            print(f"page {number}: chars "
                  f"[{pg['start']}, {pg['end']}), {len(pg['lines'])} lines, "
                  f"{pg['width']}x{pg['height']} px, {pg['vision_tokens']} vision tokens")
        print(f"{len(out_pages)} pages, {tt:,} text tokens, {vt:,} vision tokens, "
              f"ratio {report['ratio']}")
    return 0


def _plan_line(plan) -> str:
    return (f"plan: {plan.vision_tokens:,} of {plan.budget:,} vision tokens "
            f"({plan.cost / plan.budget:.0%}) at {plan.dpi:g} DPI, rung "
            f"{plan.rungs[-1]['rung']}, limited by {plan.limited_by}"
            + (f", {len(plan.chunks)} chunks" if plan.chunks else ""))


def cmd_plan(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} plan",
                                description="Choose the rendering config for a vision-token "
                                            "budget, without rastering.")
    _doc_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    _token_args(p)
    _budget_args(p, required=True)
    _config_flags(p)
    args = p.parse_args(argv)
    text = read_document(args.document, args.encoding)
    plan = _plan(args, text, _build_config(args, text))
    if args.json:
        _print_json(plan.to_json())
    else:
        print(_plan_line(plan))
        print(f"{len(plan.pages)} pages, {plan.text_tokens:,} text tokens ({plan.tokenizer}), "
              f"ratio {plan.ratio:.2f}x")
        for r in plan.rungs:
            print(f"  rung {r['rung']}: " + ", ".join(
                f"{k}={v}" for k, v in r.items() if k != "rung"))
    return 0


SAMPLE = Path(__file__).resolve().parent / "data" / "sample.txt"


def cmd_demo(argv: Sequence[str]) -> int:
    """Render the embedded sample (Alice in Wonderland, chapters I-II) with any render flags."""
    rest = list(argv)
    if not any(a in ("-o", "--output") or a.startswith("--output=") for a in rest):
        rest += ["-o", "demo_pages"]
    return cmd_render([str(SAMPLE), *rest])


def cmd_serve_ocr(argv: Sequence[str]) -> int:
    from .testing import main as serve_main

    return int(serve_main(list(argv)) or 0)


def cmd_ask(argv: Sequence[str]) -> int:
    """Render a document and ask a Glyph endpoint (vLLM/SGLang) a question about it."""
    from .client import GlyphClient
    from .compress import DEFAULT_MAX_DPI

    p = argparse.ArgumentParser(
        prog=f"{PROG} ask", conflict_handler="resolve",
        description="Render a document into pages and ask a Glyph endpoint about them. The "
                    "pages are fitted to the model's context (read from /v1/models); a document "
                    "that cannot fit is answered chunk by chunk and the answers combined "
                    "(N+1 calls). The API key comes from $OPENAI_API_KEY.",
    )
    _doc_args(p)
    p.add_argument("question", help="what to ask about the document")
    p.add_argument("--endpoint", metavar="URL",
                   help="OpenAI-compatible base URL (default $GLYPH_BASE_URL, $OPENAI_BASE_URL, "
                        "else http://127.0.0.1:8000/v1)")
    p.add_argument("--stream", action="store_true",
                   help="print the answer as it arrives (reasoning dimmed on stderr)")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                   help="turn the model's thinking on or off (default: the server's)")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--max-tokens", type=int, default=8192, metavar="N",
                   help="answer length limit (default 8192, Glyph's)")
    p.add_argument("--fit", choices=("auto", "error"), default="auto",
                   help="when the pages do not fit the context: re-plan them (auto) or fail")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds to wait for a reply (default 600)")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="retries of 429/5xx replies (default 3)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N",
                   help="chunks asked at once when a document is split (default 4)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    _token_args(p)
    p.add_argument("--model", dest="served_model", metavar="NAME",
                   help="served model name (default: the first one /v1/models lists)")
    _budget_args(p)
    p.set_defaults(overflow="split")
    _config_flags(p)
    args = p.parse_args(argv)
    if args.budget is not None and args.cfg_dpi is not None:
        p.error("give --dpi or --budget, not both")
    for flag, value in (("--max-tokens", args.max_tokens), ("--concurrency", args.concurrency)):
        if value < 1:
            p.error(f"{flag} must be at least 1")
    if args.retries < 0 or not args.timeout > 0:
        p.error("--retries must be >= 0 and --timeout > 0")
    text = read_document(args.document, args.encoding)
    cfg = _build_config(args, text)
    client = GlyphClient(
        args.endpoint, model=args.served_model, profile=args.profile, tokenizer=args.tokenizer,
        timeout=args.timeout, max_retries=args.retries, max_concurrency=args.concurrency,
        min_px_per_em=args.min_px_per_em,
        max_dpi=args.max_dpi or DEFAULT_MAX_DPI,
    )
    ask_kw: dict[str, Any] = dict(
        config=cfg, budget=args.budget, system=args.system, thinking=args.thinking,
        max_tokens=args.max_tokens, overflow=args.overflow, fit=args.fit,
    )

    def show_stream(events: Any, out: Any) -> Any:
        """Print deltas live: reasoning dimmed (or marked) on stderr, the answer on ``out``."""
        dim = sys.stderr.isatty()
        in_reasoning = False
        answer = None
        for ev in events:
            if ev.kind == "reasoning":
                if not in_reasoning:
                    sys.stderr.write("\x1b[2m" if dim else "[thinking] ")
                    in_reasoning = True
                sys.stderr.write(ev.text)
                sys.stderr.flush()
                continue
            if in_reasoning:
                sys.stderr.write("\x1b[0m\n" if dim else "\n")
                in_reasoning = False
            if ev.kind == "content":
                out.write(ev.text)
                out.flush()
            elif ev.kind == "part":
                first, last = ev.answer.pages[0].number, ev.answer.pages[-1].number
                sys.stderr.write(f"[pages {first}-{last}] {ev.text}\n")
            elif ev.kind == "done":
                answer = ev.answer
        if in_reasoning:
            sys.stderr.write("\x1b[0m\n" if dim else "\n")
        out.write("\n")
        out.flush()
        return answer

    with client:
        if args.stream:
            answer = show_stream(client.ask_stream(text, args.question, **ask_kw),
                                 sys.stderr if args.json else sys.stdout)
        else:
            answer = client.ask(text, args.question, **ask_kw)
            if not args.json:
                print(answer.text)
    if args.json:
        _print_json(answer.to_json())
    else:
        usage = answer.usage or {}
        calls = f" in {answer.calls} calls" if answer.calls > 1 else ""
        print(f"{PROG}: {len(answer.pages)} pages at {answer.dpi or 0:g} DPI{calls}, "
              f"{usage.get('prompt_tokens', '?')} prompt tokens (predicted "
              f"{answer.predicted_prompt_tokens}), {usage.get('completion_tokens', '?')} "
              f"completion tokens, {answer.timings.get('total') or 0:.1f} s", file=sys.stderr)
    return 0


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "ask": cmd_ask,
    "render": cmd_render,
    "layout": cmd_layout,
    "plan": cmd_plan,
    "demo": cmd_demo,
    "serve-ocr": cmd_serve_ocr,
    "serve": lambda argv: _lazy_main("recipes", argv),
    "batch": lambda argv: _lazy_main("jobs", argv),
    "doctor": lambda argv: _lazy_main("doctor", argv),
    "bench": lambda argv: _lazy_main("bench_serve", argv),
    "eval": lambda argv: _lazy_main("evaluate", argv),
}


def _lazy_main(module: str, argv: Sequence[str]) -> int:
    """Subcommands living in their own modules, imported only when used."""
    import importlib

    return int(importlib.import_module(f".{module}", __package__).main(list(argv)) or 0)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    # No command multiplies matrices: one BLAS thread makes numpy's import ~30% faster.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        handler, rest = SUBCOMMANDS[args[0]], args[1:]
    else:
        handler, rest = cmd_render, args
    warnings.formatwarning = lambda msg, *a, **k: f"{PROG}: warning: {msg}\n"
    try:
        return handler(rest)
    except GlyphRenderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
