"""Command line: ``glyph-render doc.txt --dpi 72`` and its subcommands.

Every expected failure (bad input, bad config, unwritable output, server trouble) prints one
line ``glyph-render: error: ...`` and exits 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import RenderConfig
from .document import STDIN, dump_text, read_document
from .errors import ConfigError, GlyphRenderError
from .settings import (
    PROG,
    EndpointSettings,
    Parser,
    RenderSettings,
    add_document_flags,
    add_endpoint_flags,
    add_render_flags,
    at_least,
    non_empty,
)


class _ModelIsServed(argparse.Action):
    """``--model`` on a command with no endpoint: it once named the vision profile here."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        raise ConfigError(f"--model {values}: --model names the served model (ask, batch, "
                          f"eval, doctor, bench); the vision-token profile is --profile")


def _refuse_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action=_ModelIsServed, help=argparse.SUPPRESS)


def _render_parser() -> Parser:
    p = Parser(
        prog=PROG, description="Render a long text into dense page images for Glyph.",
        epilog=f"Subcommands: {', '.join(SUBCOMMANDS)} (run 'glyph-render SUBCOMMAND -h').",
    )
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    add_document_flags(p)
    p.add_argument("-o", "--output", metavar="DIR", type=non_empty,
                   help="folder for page_001.png ... (default: <name>_pages)")
    p.add_argument("--pdf", metavar="FILE", type=non_empty,
                   help="also write all pages into one PDF")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: for long documents on a terminal)")
    add_render_flags(p)
    _refuse_model(p)
    return p


def _document(args: argparse.Namespace, s: RenderSettings) -> tuple[str, RenderConfig]:
    """The document's text and its config (the flags are checked before it is read)."""
    text = read_document(args.document, args.encoding, fmt=args.format)
    if args.dump_text:
        dump_text(text, args.dump_text)
    return text, s.config_for(text)[0]


def cmd_render(argv: Sequence[str]) -> int:
    from .render import render_to_dir

    args = _render_parser().parse_args(argv)
    s = RenderSettings.from_args(args)
    text, cfg = _document(args, s)
    plan = s.plan(text, cfg) if s.budget is not None else None
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
    from .vision_tokens import image_tokens

    p = Parser(prog=f"{PROG} layout",
               description="Print the layout (lines and pages) without rastering.")
    add_document_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_render_flags(p, budget=False)
    _refuse_model(p)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    s = RenderSettings.from_args(args)
    text, cfg = _document(args, s)
    pages = list(layout(text, cfg))
    sizes = page_sizes(pages, cfg)
    prof, tok = s.vision_profile, s.text_tokenizer
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
    p = Parser(prog=f"{PROG} plan",
               description="Choose the rendering config for a vision-token budget, without "
                           "rastering.")
    add_document_flags(p)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    add_render_flags(p, budget_required=True)
    _refuse_model(p)
    args = p.parse_args(argv)
    s = RenderSettings.from_args(args)
    plan = s.plan(*_document(args, s))
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


def _ask_parser() -> Parser:
    p = Parser(
        prog=f"{PROG} ask",
        description="Render a document into pages and ask a Glyph endpoint about them, or ask "
                    "about pages rendered earlier (--pages). The pages are fitted to the "
                    "model's context (read from /v1/models); a document that cannot fit is "
                    "answered chunk by chunk and the answers combined (N+1 calls). Progress "
                    "goes to stderr (-q silences it). The API key comes from $OPENAI_API_KEY "
                    "(see --api-key-env).",
    )
    add_document_flags(p)
    doc = next(a for a in p._actions if a.dest == "document")
    doc.nargs, doc.required, doc.default = "?", False, None  # none with --pages
    doc.help = f"{doc.help} (none with --pages)"
    p.add_argument("question", help="what to ask about the document")
    p.add_argument("--pages", action="append", metavar="PATH", type=non_empty,
                   help="ask about page images already rendered instead of a document: a "
                        "folder, a file or a quoted glob such as 'out/page_*.png' (repeat "
                        "for more), in page order")
    p.add_argument("--local-media", action="store_true",
                   help="with --pages: send file:// URLs the server reads itself (vLLM "
                        "--allowed-local-media-path, on the same filesystem) instead of "
                        "uploading the images")
    p.add_argument("--stream", action="store_true",
                   help="print the answer as it arrives (reasoning dimmed on stderr)")
    p.add_argument("--fit", choices=("auto", "error"), default="auto",
                   help="when the pages do not fit the context: re-plan them (auto) or fail")
    p.add_argument("--concurrency", type=at_least(1), default=4, metavar="N",
                   help="chunks asked at once when a document is split (default 4)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    add_endpoint_flags(p)
    add_render_flags(p, overflow="split")
    return p


def _ask_source(args: argparse.Namespace) -> None:
    """A document, or --pages, not both (the flags are checked before anything is read)."""
    if args.pages and args.document is not None:
        raise ConfigError(f"give a document or --pages, not both (got {args.document!r} and "
                          f"--pages)")
    if not args.pages and args.document is None:
        raise ConfigError("give a document to render, or --pages with images rendered "
                          "earlier, before the question")
    if args.local_media and not args.pages:
        raise ConfigError("--local-media sends pages already on disk: use it with --pages")
    if args.pages and args.dump_text:
        raise ConfigError("--dump-text writes a document's text; --pages has none")
    if args.pages and args.budget is not None:
        raise ConfigError("--budget plans a document's rendering; pages given with --pages "
                          "are sent as they are")


def cmd_ask(argv: Sequence[str]) -> int:
    """Render a document (or take rendered pages) and ask a Glyph endpoint (vLLM/SGLang) a
    question about it."""
    from .client import GlyphClient

    args = _ask_parser().parse_args(argv)
    _ask_source(args)
    render = RenderSettings.from_args(args)
    endpoint = EndpointSettings.from_args(args)
    feedback = None if args.quiet else _Feedback(show_streaming=not args.stream)
    client = GlyphClient(endpoint.endpoint, max_concurrency=args.concurrency,
                         progress=feedback, local_media=args.local_media,
                         **endpoint.client_kwargs(render))
    out = sys.stderr if args.json else sys.stdout
    with client:
        if args.pages:
            req = client.prepare_images(args.pages, args.question, **endpoint.ask_kwargs())
            answer = (_show_stream(client.stream(req), out) if args.stream
                      else client.send(req))
        else:
            text, cfg = _document(args, render)
            ask_kw: dict[str, Any] = dict(config=cfg, budget=render.budget,
                                          overflow=render.overflow, fit=args.fit,
                                          **endpoint.ask_kwargs())
            answer = (_show_stream(client.ask_stream(text, args.question, **ask_kw), out)
                      if args.stream else client.ask(text, args.question, **ask_kw))
        if feedback is not None:
            feedback.finish()
        if not args.stream and not args.json:
            print(answer.text)
    if args.json:
        _print_json(answer.to_json())
    elif not args.quiet:
        print(_answer_line(answer), file=sys.stderr)
    return 0


class _Feedback:
    """The client's progress events (:mod:`glyph_render.client.progress`) as lines on stderr:
    rendering as one updating line on a terminal (a count when it is done elsewhere), then
    the re-plan, the upload, the wait and the first token as they happen."""

    LOG_EVERY = 10.0  # seconds between rendering lines when stderr is not a terminal

    def __init__(self, *, show_streaming: bool = True) -> None:
        self.tty = sys.stderr.isatty()
        self.show_streaming = show_streaming  # --stream: the answer itself shows it
        self._lock = threading.Lock()
        self._rendered = 0
        self._render_started: float | None = None
        self._open_line = False
        self._last_line = time.perf_counter()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if event.stage == "render":
                if self._render_started is None:
                    self._render_started = time.perf_counter()
                self._rendered = event.done
                now = time.perf_counter()
                if self.tty:
                    sys.stderr.write(f"\r\x1b[K{PROG}: {event.message}")
                    sys.stderr.flush()
                    self._open_line = True
                elif now - self._last_line >= self.LOG_EVERY:  # a log: a line now and then
                    sys.stderr.write(f"{PROG}: {event.message}\n")
                    sys.stderr.flush()
                    self._last_line = now
                return
            if event.stage == "streaming" and not self.show_streaming:
                return
            if event.stage == "answered" and not event.parts:
                return  # the closing summary line says it
            self._end_render()
            sys.stderr.write(f"{PROG}: {event.message}\n")
            sys.stderr.flush()

    def _end_render(self) -> None:
        if self._open_line:
            sys.stderr.write("\r\x1b[K")
            self._open_line = False
        if self._render_started is not None:
            seconds = time.perf_counter() - self._render_started
            sys.stderr.write(f"{PROG}: rendered {self._rendered} pages in {seconds:.1f} s\n")
            self._render_started = None

    def finish(self) -> None:
        with self._lock:
            self._end_render()


def _show_stream(events: Any, out: Any) -> Any:
    """Print deltas live: reasoning dimmed (or marked) on stderr, the answer on ``out``;
    returns the final answer."""
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


def _answer_line(answer: Any) -> str:
    usage = answer.usage or {}
    calls = f" in {answer.calls} calls" if answer.calls > 1 else ""
    at = f" at {answer.dpi:g} DPI" if answer.dpi else ""
    return (f"{PROG}: {len(answer.pages)} pages{at}{calls}, "
            f"{usage.get('prompt_tokens', '?')} prompt tokens (predicted "
            f"{answer.predicted_prompt_tokens}), {usage.get('completion_tokens', '?')} "
            f"completion tokens, {answer.timings.get('total') or 0:.1f} s")


def _lazy(module: str) -> Callable[[Sequence[str]], int]:
    """A subcommand living in its own module (``main(argv)``), imported only when used."""
    def run(argv: Sequence[str]) -> int:
        import importlib

        return int(importlib.import_module(f".{module}", __package__).main(list(argv)) or 0)
    return run


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "ask": cmd_ask,
    "render": cmd_render,
    "layout": cmd_layout,
    "plan": cmd_plan,
    "demo": cmd_demo,
    "serve-ocr": cmd_serve_ocr,
    "serve": _lazy("serving.recipes"),
    "batch": _lazy("jobs"),
    "doctor": _lazy("serving.doctor"),
    "bench": _lazy("serving.bench_serve"),
    "eval": _lazy("evaluate"),
    "gateway": _lazy("gateway"),
    "ui": _lazy("ui"),
}
"""Subcommand name -> handler(argv) -> exit status. A new command adds one entry (its parser
and handler live together, in its own module when it has one: ``_lazy("pkg.module")``)."""


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


#: Set when the render command finished (successfully or with its own exit code): ``run``
#: may then skip the interpreter's teardown.
_RENDERED = False


def _check_not_a_mistyped_command(word: str) -> None:
    """``glyph-render rendr`` names no file: it is a mistyped subcommand, not a document. A file
    of that name still renders (checked first); a word close to no command is left to render,
    whose error names the missing file."""
    if word.startswith("-") or os.sep in word or "." in word or Path(word).exists():
        return
    import difflib  # only here: a document's name returns above, before its import

    near = difflib.get_close_matches(word, SUBCOMMANDS, n=1, cutoff=0.6)
    if near:
        raise ConfigError(f"unknown command {word!r}; did you mean {near[0]!r}?")


def main(argv: Sequence[str] | None = None) -> int:
    # No command multiplies matrices: one BLAS thread makes numpy's import ~30% faster.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        print(f"{PROG} {__version__}")
        return 0
    if args and args[0] in SUBCOMMANDS:
        handler, rest = SUBCOMMANDS[args[0]], args[1:]
    else:
        handler, rest = cmd_render, args
    warnings.formatwarning = lambda msg, *a, **k: f"{PROG}: warning: {msg}\n"
    try:
        if args and args[0] not in SUBCOMMANDS:
            _check_not_a_mistyped_command(args[0])
        code = handler(rest)
        if handler is cmd_render:
            global _RENDERED
            _RENDERED = True
        return code
    except GlyphRenderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def run() -> None:
    """The ``glyph-render`` command: :func:`main`, then exit.

    After the render command (the one run on every document) the process leaves with
    ``os._exit`` once its output is flushed: tearing the interpreter down frees every object
    one by one (the word caches, the glyph atlas), ~5% of a whole render for nothing. Other
    commands may hold pools, servers or clusters whose exit handlers must run, so they exit
    normally.
    """
    code = main()
    if _RENDERED:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass
        else:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
