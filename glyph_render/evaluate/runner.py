"""What every ``glyph-render eval`` task shares: flags, asking, records, aggregates, output.

A task turns its data into :class:`EvalItem`\\s (a context to render, the instruction and
question that travel as text, a grader); :func:`run_items` asks the endpoint about all of them,
``--concurrency`` at a time, and returns one record per item. Every record carries the
compression figures beside the score (text tokens, vision tokens, ratio, prompt tokens), so an
accuracy number is never reported without the compression that bought it.

Image mode (the default) renders the context into pages and sends them with the text, as Glyph
is evaluated. Text mode (``--as-text``) is the baseline through the same harness and endpoint:
the context goes into the message as plain text (LongBench's middle truncation when it would
not fit the model's context), so the two runs differ in nothing but the representation.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RenderConfig
from ..errors import ContextOverflow, GlyphRenderError, OutputError
from ..files import RecordWriter, atomic_write, json_bytes
from ..jobs.summary import Progress
from ..settings import (
    EndpointSettings,
    RenderSettings,
    add_endpoint_flags,
    add_render_flags,
    at_least,
    non_empty,
)
from ..text_tokens import TextTokenizer
from ..vision_tokens import prompt_tokens

if TYPE_CHECKING:
    from ..client import Answer, AsyncGlyphClient, ModelInfo

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EvalError",
    "EvalItem",
    "EvalSettings",
    "RunResult",
    "add_common_args",
    "base_results",
    "group",
    "markdown_table",
    "number",
    "pct",
    "prepare_output",
    "ratio_text",
    "run_items",
    "settings_from_args",
    "score_summary",
    "summary_line",
    "tokens_label",
    "truncate_middle",
    "write_outputs",
]

#: Glyph's published answer limit, used unless thinking is off (then the task's own limit).
DEFAULT_MAX_TOKENS = 8192
OK, ERROR, INVALID = "ok", "error", "invalid"


class EvalError(GlyphRenderError):
    """An evaluation cannot run: bad data file, bad task option, unusable haystack."""


@dataclass
class EvalItem:
    """One question about one context, and how to grade the reply.

    Image mode sends the pages of ``context`` and then ``question`` (the instruction and the
    question, the context left out). Text mode sends ``head + context + tail``; ``tail``
    defaults to a blank line and ``question``.
    """

    id: str
    context: str
    question: str
    grade: Callable[[str], float]
    head: str = ""
    tail: str | None = None
    answers: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None  # the task's answer limit when thinking is off
    config: dict[str, Any] | None = None  # the item's own rendering overrides (Glyph's keys)

    def __post_init__(self) -> None:
        if self.tail is None:
            self.tail = "\n\n" + self.question

    def text_prompt(self, context: str | None = None) -> str:
        return self.head + (self.context if context is None else context) + (self.tail or "")


@dataclass
class EvalSettings:
    """The flags every task shares, validated: the shared render and endpoint settings
    (:mod:`glyph_render.settings`) and the run's own."""

    render: RenderSettings
    endpoint: EndpointSettings
    as_text: bool = False
    concurrency: int = 4
    limit: int | None = None
    seed: int | None = None
    truncate: bool = True
    output: Path | None = None
    json: bool = False
    progress: bool | None = None
    used: set[str] = field(default_factory=set)  # presets the items were rendered with

    def config_for(self, item: EvalItem) -> RenderConfig:
        """The item's config: the run's (by preset; auto picks glyph-zh for CJK text), then
        the item's own overrides."""
        cfg, name = self.render.config_for(item.context, item.config)
        self.used.add(name)
        return cfg

    def answer_tokens(self, item: EvalItem) -> int:
        """``--max-tokens``; else the task's limit when thinking is off (a short answer needs no
        room for reasoning); else Glyph's 8,192."""
        if self.endpoint.max_tokens is not None:
            return self.endpoint.max_tokens
        if self.endpoint.thinking is False and item.max_tokens:
            return item.max_tokens
        return DEFAULT_MAX_TOKENS

    def to_json(self) -> dict[str, Any]:
        e = self.endpoint
        return {
            "mode": "text" if self.as_text else "image", "concurrency": self.concurrency,
            "limit": self.limit, "seed": self.seed, "max_tokens": e.max_tokens,
            "thinking": e.thinking, "system": e.system is not None,
            **self.render.to_json(), "truncate": self.truncate,
            "render_configs": {} if self.as_text else {
                name: self.render.base(name).to_dict() for name in sorted(self.used)},
        }


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Endpoint, run, output and rendering flags (the shared ones from :mod:`..settings`)."""
    add_endpoint_flags(p)
    g = p.add_argument_group("run")
    g.add_argument("--as-text", action="store_true",
                   help="text-only baseline: send the context as plain text instead of pages")
    g.add_argument("--no-truncate", dest="truncate", action="store_false",
                   help="--as-text: fail an item that does not fit the context instead of "
                        "cutting its middle (LongBench's rule)")
    g.add_argument("--concurrency", type=at_least(1), default=4, metavar="N",
                   help="requests in flight at once (default 4)")
    g.add_argument("--limit", type=at_least(0), metavar="N", help="ask about at most N items")
    g.add_argument("--seed", type=int, metavar="N",
                   help="generation seed (niah); with --limit, a seeded sample instead of the "
                        "first N items (longbench, mrcr)")
    g.add_argument("-o", "--output", metavar="DIR", type=non_empty,
                   help="write results.json, results.md, items.jsonl (and heatmap.png) here")
    g.add_argument("--json", action="store_true",
                   help="print results.json on stdout instead of the table")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    add_render_flags(p)


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """Check the shared flags and build each preset's config once (bad flags fail here)."""
    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise OutputError(f"-o {args.output}: exists and is not a folder")
    if args.as_text and (args.budget is not None or args.cfg_dpi is not None):
        warnings.warn("--dpi and --budget have no effect with --as-text (no pages are sent)",
                      stacklevel=2)
    return EvalSettings(
        render=RenderSettings.from_args(args, every_preset=True,
                                       check_fonts=not args.as_text),
        endpoint=EndpointSettings.from_args(args), as_text=args.as_text,
        concurrency=args.concurrency, limit=args.limit, seed=args.seed, truncate=args.truncate,
        output=Path(args.output) if args.output else None, json=args.json,
        progress=args.progress,
    )


# ---- asking -------------------------------------------------------------------------------


@dataclass
class RunResult:
    """The records in item order, and what the endpoint said about itself."""

    records: list[dict[str, Any]]
    endpoint: str
    model: str
    max_model_len: int | None
    seconds: float


def truncate_middle(text: str, keep: int, tokenizer: TextTokenizer) -> str:
    """``text`` cut in the middle to at most ``keep`` tokens, head and tail halves kept.

    LongBench's rule for prompts longer than the model's window (it cuts token ids; the
    tokenizer here has no decoder, so the cut points are found by bisecting on characters).
    """
    if keep <= 0:
        return ""
    if tokenizer.count(text) <= keep:
        return text

    def longest(fits: Callable[[int], bool]) -> int:
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    head = longest(lambda n: tokenizer.count(text[:n]) <= keep // 2)
    rest = keep - tokenizer.count(text[:head])
    tail = longest(lambda n: n <= len(text) - head
                   and tokenizer.count(text[len(text) - n:]) <= rest)
    return text[:head] + text[len(text) - tail:]


def _fit_text(client: AsyncGlyphClient, info: ModelInfo, item: EvalItem, s: EvalSettings,
              max_tokens: int) -> tuple[str, int, int]:
    """(context to send, its text tokens before any cut, tokens cut) for text mode."""
    tok = client.tokenizer
    text_tokens = tok.count(item.context)
    if not s.truncate or not info.max_model_len:
        return item.context, text_tokens, 0

    def over(context: str) -> int:
        return (prompt_tokens([], item.text_prompt(context), profile=client.profile,
                             system=s.endpoint.system, tokenizer=tok)
                - (info.max_model_len - max_tokens))

    context, excess, keep = item.context, over(item.context), text_tokens
    for _ in range(4):  # tokens merge across the cut and the joins: re-measure, re-cut
        if excess <= 0:
            break
        keep -= excess
        context = truncate_middle(item.context, keep, tok)
        excess = over(context)
    cut = text_tokens - tok.count(context) if context is not item.context else 0
    return context, text_tokens, cut


async def _ask_text(client: AsyncGlyphClient, info: ModelInfo, item: EvalItem,
                    s: EvalSettings, max_tokens: int) -> tuple[Answer, int, int]:
    """The context as plain text in one user message; (answer, text tokens, tokens cut)."""
    context, text_tokens, cut = await asyncio.to_thread(_fit_text, client, info, item, s,
                                                        max_tokens)
    answer = await client.ask_text(item.text_prompt(context), text_tokens=text_tokens - cut,
                                   system=s.endpoint.system, thinking=s.endpoint.thinking,
                                   max_tokens=max_tokens)
    return answer, text_tokens, cut


def _usage(answer: Answer, key: str) -> int | None:
    usage = answer.total_usage if answer.parts else (answer.usage or {})
    value = usage.get(key)
    return value if isinstance(value, int) else None


async def _ask_one(client: AsyncGlyphClient, info: ModelInfo, item: EvalItem,
                   s: EvalSettings) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item.id, **item.meta, "mode": "text" if s.as_text else "image",
                           "question": item.question, "answers": item.answers}
    max_tokens = s.answer_tokens(item)
    t0 = time.perf_counter()
    try:
        if s.as_text:
            answer, text_tokens, cut = await _ask_text(client, info, item, s, max_tokens)
            figures: dict[str, Any] = {
                "text_tokens": text_tokens, "vision_tokens": 0, "compression_ratio": 1.0,
                "pages": 0, "dpi": None, "truncated_tokens": cut}
        else:
            answer = await client.ask(
                item.context, item.question, config=s.config_for(item), budget=s.render.budget,
                overflow=s.render.overflow, **{**s.endpoint.ask_kwargs(), "max_tokens": max_tokens})
            figures = {
                "text_tokens": answer.text_tokens, "vision_tokens": answer.vision_tokens,
                "compression_ratio": round(answer.compression_ratio, 4),
                "pages": len(answer.pages), "dpi": answer.dpi}
    except GlyphRenderError as exc:
        err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, ContextOverflow) and (exc.fitting_budget or 0) > 0:
            err["fitting_budget"] = exc.fitting_budget
        return {**rec, "status": ERROR, "score": 0.0, "error": err,
                "seconds": round(time.perf_counter() - t0, 3)}
    try:
        score = float(item.grade(answer.text))
    except ValueError as exc:  # a gold answer the metric cannot read (data, not the model)
        return {**rec, "status": ERROR, "score": 0.0, "prediction": answer.text,
                "error": {"type": "ScoringError", "message": str(exc)}}
    return {
        **rec, "status": OK, "score": round(score, 5), "prediction": answer.text, **figures,
        "prompt_tokens": _usage(answer, "prompt_tokens"),
        "predicted_prompt_tokens": answer.predicted_prompt_tokens,
        "completion_tokens": _usage(answer, "completion_tokens"),
        "calls": answer.calls, "finish_reason": answer.finish_reason,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def run_items(items: Sequence[EvalItem], s: EvalSettings, *, task: str,
              invalid: Iterable[dict[str, Any]] = ()) -> RunResult:
    """Ask about every item (``--concurrency`` at a time); items.jsonl grows as they finish.

    ``invalid`` are records of input entries that never became items (kept in items.jsonl and
    counted apart). An item's failure is its record (score 0); a failure of the endpoint itself
    (unreachable, refused key, unknown model) is raised before any item is sent.
    """
    return asyncio.run(_run(list(items), s, task, list(invalid)))


async def _run(items: list[EvalItem], s: EvalSettings, task: str,
               invalid: list[dict[str, Any]]) -> RunResult:
    from ..client import AsyncGlyphClient

    t0 = time.perf_counter()
    writer = None
    if s.output is not None:
        path = s.output / "items.jsonl"
        writer = RecordWriter(path, fsync=False)  # locked: a second run into DIR fails here
        try:
            writer.truncate()  # a fresh run: never mix with an earlier run's items
        except OutputError:
            writer.close()
            raise
    client = AsyncGlyphClient(s.endpoint.endpoint, max_concurrency=s.concurrency,
                              **s.endpoint.client_kwargs(s.render))
    progress = Progress(len(items), s.progress, f"eval {task}")
    try:
        async with client:
            info = await client.model_info()
            gate = asyncio.Semaphore(s.concurrency)
            records: list[dict[str, Any] | None] = [None] * len(items)

            async def one(index: int, item: EvalItem) -> None:
                async with gate:
                    rec = await _ask_one(client, info, item, s)
                records[index] = rec
                if writer is not None:
                    writer.write(rec)
                progress.update(rec)

            for rec in invalid:
                if writer is not None:
                    writer.write(rec)
            await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    done = [r for r in records if r is not None]
    return RunResult(done + invalid, client.url, info.name, info.max_model_len,
                     time.perf_counter() - t0)


# ---- aggregates ---------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 5) if values else None


def score_summary(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Score and compression of some records.

    ``score`` is the mean over answered and failed items (a failure scores 0); invalid input
    lines are counted apart. ``compression_ratio`` is the pooled ratio, all text tokens over
    all vision tokens (1.0 in text mode); prompt tokens are the server's counts.
    """
    recs = [r for r in records if r.get("status") != INVALID]
    ok = [r for r in recs if r.get("status") == OK]
    text = sum(r.get("text_tokens") or 0 for r in ok)
    vision = sum(r.get("vision_tokens") or 0 for r in ok)
    prompts = [r["prompt_tokens"] for r in ok if isinstance(r.get("prompt_tokens"), int)]
    text_mode = bool(ok) and all(r.get("mode") == "text" for r in ok)
    ratio = 1.0 if text_mode else (round(text / vision, 4) if vision else None)
    return {
        "score": _mean([float(r.get("score") or 0.0) for r in recs]),
        "n": len(recs), "errors": len(recs) - len(ok),
        "compression_ratio": ratio, "text_tokens": text, "vision_tokens": vision,
        "prompt_tokens": sum(prompts), "prompt_tokens_mean": _mean(prompts),
        "text_tokens_mean": _mean([r.get("text_tokens") or 0 for r in ok]),
    }


def group(records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any],
          order: Sequence[Any] | None = None) -> dict[str, dict[str, Any]]:
    """:func:`score_summary` per value of ``key`` (invalid lines left out), in ``order`` if given,
    else sorted; keys become strings for JSON."""
    buckets: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("status") != INVALID:
            buckets.setdefault(key(r), []).append(r)
    if order is not None:
        keys = [k for k in order if k in buckets]
    else:  # numbers in numeric order, then anything else by its text
        keys = sorted(buckets, key=lambda k: (0, k, "") if isinstance(k, (int, float))
                      else (1, 0, str(k)))
    return {str(k): score_summary(buckets[k]) for k in keys}


def base_results(task: str, run: RunResult, s: EvalSettings) -> dict[str, Any]:
    """The fields every task's results.json starts with."""
    total = score_summary(run.records)
    invalid = sum(r.get("status") == INVALID for r in run.records)
    compression = {k: total[k] for k in ("compression_ratio", "text_tokens", "vision_tokens",
                                         "prompt_tokens", "prompt_tokens_mean",
                                         "text_tokens_mean")}
    ok = [r for r in run.records if r.get("status") == OK]
    compression["predicted_prompt_tokens"] = sum(r.get("predicted_prompt_tokens") or 0
                                                 for r in ok)
    compression["completion_tokens"] = sum(r.get("completion_tokens") or 0 for r in ok)
    compression["pages"] = sum(r.get("pages") or 0 for r in ok)
    compression["dpi"] = sorted({r["dpi"] for r in ok if r.get("dpi")})
    if s.as_text:
        compression["truncated_items"] = sum(bool(r.get("truncated_tokens")) for r in ok)
    failed = [r for r in run.records if r.get("status") in (ERROR, INVALID)]
    kinds = Counter(f"{r['status']}:{(r.get('error') or {}).get('type', '?')}" for r in failed)
    first = next((r for r in failed if r.get("status") == ERROR), failed[0] if failed else None)
    return {
        "task": task, "score": total["score"] if total["score"] is not None else 0.0,
        "mode": "text" if s.as_text else "image", "endpoint": run.endpoint, "model": run.model,
        "max_model_len": run.max_model_len, "items": total["n"], "ok": total["n"] -
        total["errors"], "errors": total["errors"], "invalid": invalid,
        "compression": compression, "settings": s.to_json(), "seconds": round(run.seconds, 2),
        "error_types": dict(kinds.most_common()),
        "first_error": None if first is None else {"id": first.get("id"), **first["error"]},
    }


# ---- output -------------------------------------------------------------------------------


def pct(score: float | None) -> str:
    """A score in [0, 1] as a percentage for tables (LongBench's convention)."""
    return "-" if score is None else f"{100 * score:.1f}"


def ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def tokens_label(n: int) -> str:
    """4096 -> "4K" (RULER's lengths), 2000 -> "2k", 900 -> "900"."""
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def summary_line(results: dict[str, Any]) -> str:
    """Score, counts and the compression beside it, in one line."""
    c = results["compression"]
    mode = results["mode"]
    if mode == "text":
        how = f"context as text, {number(c['text_tokens'])} text tokens"
        if c.get("truncated_items"):
            how += f", {c['truncated_items']} items cut to fit"
    else:
        dpi = "/".join(f"{d:g}" for d in c["dpi"]) or "-"
        how = (f"compression {ratio_text(c['compression_ratio'])} "
               f"({number(c['text_tokens'])} text tokens in {number(c['vision_tokens'])} vision "
               f"tokens, {c['pages']} pages at {dpi} DPI)")
    line = (f"{results['task']}: score {results['score']:.4f} over {results['items']} items "
            f"({results['errors']} failed, {results['invalid']} invalid); {mode} mode, {how}; "
            f"prompt tokens {number(c['prompt_tokens'])} (mean "
            f"{number(c['prompt_tokens_mean'])}); model {results['model']} at "
            f"{results['endpoint']}")
    first = results.get("first_error")
    if first:
        kinds = ", ".join(f"{k} x{v}" for k, v in results["error_types"].items())
        message = first["message"] if len(first["message"]) <= 200 else \
            first["message"][:197] + "..."
        line += f"\nfailures: {kinds}; e.g. item {first['id']}: {message}"
    return line


def write_outputs(s: EvalSettings, results: dict[str, Any], table: str,
                  **extra_files: str) -> None:
    """results.json and results.md into ``-o DIR`` (items.jsonl is already there); the
    ``files`` field names them, and ``extra_files`` (e.g. heatmap="heatmap.png")."""
    if s.output is None:
        return
    results["files"] = {"results": "results.json", "table": "results.md",
                        "items": "items.jsonl", **extra_files}
    prepare_output(s)
    atomic_write(s.output / "results.json", json_bytes(results, indent=2) + b"\n")
    atomic_write(s.output / "results.md", table.encode("utf-8") + b"\n")


def prepare_output(s: EvalSettings) -> None:
    """Create ``-o DIR`` before any request, so an unwritable folder fails first."""
    if s.output is None:
        return
    try:
        s.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"-o {s.output}: cannot create ({exc.strerror})") from None
