"""``bench serve`` results: per-request records, the seed pages' result table, JSON and a plot.

The table copies ``sglang.bench_serving``'s layout (the SGLang Glyph page's "Serving Benchmark
Result" blocks: 40-column labels, the same line names and section rules), with the lines that
matter for Glyph added: the arm, the document length, failed requests and, for pages, pages
per request and render time. Definitions follow the same tool: TTFT from send to the first
chunk carrying text (reasoning counts), TPOT = (E2E - TTFT) / (output tokens - 1) per request,
ITL = gaps between successive text chunks, percentiles by linear interpolation (numpy's).

:func:`vllm_result` lays one run out as ``vllm bench serve --save-result`` does (its field
names, latencies in ms, ``p{N}_{metric}_ms`` for the chosen percentiles), with Glyph's figures
as extra keys, so tools that read vLLM's results read ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["RequestRecord", "Run", "format_comparison", "format_result", "plot",
           "require_matplotlib", "vllm_result"]

ARMS = ("text", "pages")


@dataclass
class RequestRecord:
    """One request's raw figures; times in seconds (``start`` from the run's start)."""

    index: int
    source: str
    chars: int
    ok: bool
    start: float
    e2e: float
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # since send, one per text chunk
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retokenized: int | None = None  # the reply's text counted with the client's tokenizer
    pages: int = 0
    vision_tokens: int = 0  # image tokens of the pages (our arithmetic; doctor checks it)
    predicted_prompt_tokens: int | None = None
    payload_bytes: int = 0
    render_seconds: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    document_tokens: int | None = None  # the document counted with the client's tokenizer

    @property
    def itl(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:], strict=False)]

    @property
    def tpot(self) -> float | None:
        n = self.completion_tokens
        if not self.ok or self.ttft is None or n is None or n < 2:
            return None
        return (self.e2e - self.ttft) / (n - 1)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "chunk_times"}
        out.update(chunk_times=[round(t, 6) for t in self.chunk_times],
                   itl=[round(t, 6) for t in self.itl], tpot=self.tpot)
        return out


@dataclass
class Run:
    """One arm at one document length: its settings, duration and every request."""

    arm: str
    chars: int
    endpoint: str
    model: str
    request_rate: float
    max_concurrency: int | None
    duration: float
    records: list[RequestRecord]
    tokens: int | None = None  # the requested document length in tokens (--input-len)
    dataset: str | None = None  # the user's JSONL (--dataset); chars is then the mean length
    percentiles: tuple[float, ...] | None = None  # None: median, P99 (and P95 for ITL)

    @property
    def length_label(self) -> str:
        """How the documents were sized: ``2,000 chars``, ``500 tokens`` or the dataset."""
        if self.dataset is not None:
            return self.dataset
        return f"{self.tokens:,} tokens" if self.tokens is not None else f"{self.chars:,} chars"

    def summary(self) -> dict[str, Any]:
        """The table's figures (latencies in ms); None where there is nothing to measure."""
        ok = [r for r in self.records if r.ok]
        dur = self.duration if self.duration > 0 else math.nan
        total_in = sum(r.prompt_tokens or 0 for r in ok)
        vision = sum(r.vision_tokens for r in ok if r.prompt_tokens is not None)
        out_tokens = sum(r.completion_tokens or 0 for r in ok)
        s: dict[str, Any] = {
            "successful_requests": len(ok),
            "failed_requests": len(self.records) - len(ok),
            "duration_s": self.duration,
            "total_input_tokens": total_in,
            "total_input_text_tokens": total_in - vision,
            "total_input_vision_tokens": vision,
            "total_generated_tokens": out_tokens,
            "total_generated_tokens_retokenized": sum(r.retokenized or 0 for r in ok),
            "request_throughput": len(ok) / dur,
            "input_throughput": total_in / dur,
            "output_throughput": out_tokens / dur,
            "peak_output_throughput": _peak_output(ok),
            "peak_concurrent_requests": _peak_concurrency(self.records),
            "total_throughput": (total_in + out_tokens) / dur,
            "concurrency": sum(r.e2e for r in ok) / dur,
            "mean_input_tokens": total_in / len(ok) if ok else None,
            "mean_document_chars": _mean([r.chars for r in self.records]),
            "mean_document_tokens": _mean([r.document_tokens for r in self.records
                                           if r.document_tokens is not None]),
            "mean_pages": (sum(r.pages for r in ok) / len(ok)) if ok else None,
            "mean_render_ms": _mean_ms([r.render_seconds for r in self.records
                                        if r.render_seconds is not None]),
        }
        for name, values in self.latencies().items():
            points = self.percentiles or ((95, 99) if name == "itl" else (99,))
            s[f"mean_{name}_ms"] = _mean_ms(values)
            s[f"median_{name}_ms"] = float(np.median(values)) * 1000 if values else None
            for p in points:
                s[f"p{_p_word(p)}_{name}_ms"] = (float(np.percentile(values, p)) * 1000
                                                 if values else None)
        itls = [x for r in ok for x in r.itl]
        s["max_itl_ms"] = max(itls) * 1000 if itls else None
        errors = [r.error for r in self.records if r.error]
        s["first_error"] = errors[0] if errors else None
        return s

    def latencies(self) -> dict[str, list[float]]:
        """Seconds per metric over the successful requests: e2e, ttft, tpot, itl."""
        ok = [r for r in self.records if r.ok]
        return {"e2e": [r.e2e for r in ok],
                "ttft": [r.ttft for r in ok if r.ttft is not None],
                "tpot": [t for r in ok if (t := r.tpot) is not None],
                "itl": [x for r in ok for x in r.itl]}

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "input_chars": self.chars, "input_tokens": self.tokens,
                "dataset": self.dataset, "endpoint": self.endpoint,
                "model": self.model, "request_rate": _rate_json(self.request_rate),
                "max_concurrency": self.max_concurrency, "summary": self.summary(),
                "requests": [r.to_json() for r in self.records]}


def _p_word(p: float) -> str:
    """``99`` -> ``99``, ``99.9`` -> ``99.9``: vLLM's percentile key spelling."""
    return str(int(p)) if int(p) == p else str(p)


def vllm_result(run: Run, *, tokenizer: str, date: str, detailed: bool = False,
                ) -> dict[str, Any]:
    """One run as ``vllm bench serve --save-result`` writes it (``--save-detailed``: with the
    per-request lists), plus the arm, the document sizes and the vision tokens."""
    ok = [r for r in run.records if r.ok]
    s = run.summary()
    out: dict[str, Any] = {
        "date": date, "endpoint_type": "openai-chat", "backend": "openai-chat",
        "label": f"glyph-render {run.arm} {run.length_label}", "model_id": run.model,
        "tokenizer_id": tokenizer, "num_prompts": len(run.records),
        "request_rate": _rate_json(run.request_rate), "burstiness": 1.0,
        "max_concurrency": run.max_concurrency,
        "duration": run.duration, "completed": len(ok), "failed": len(run.records) - len(ok),
        "total_input_tokens": s["total_input_tokens"],
        "total_output_tokens": s["total_generated_tokens"],
        "request_throughput": s["request_throughput"], "request_goodput": None,
        "output_throughput": s["output_throughput"],
        "total_token_throughput": s["total_throughput"],
        "max_output_tokens_per_s": s["peak_output_throughput"],
        "max_concurrent_requests": s["peak_concurrent_requests"],
    }
    for name, values in run.latencies().items():
        key = "e2el" if name == "e2e" else name
        data = values or [0.0]  # vLLM's convention: no values -> 0
        out[f"mean_{key}_ms"] = float(np.mean(data)) * 1000
        out[f"median_{key}_ms"] = float(np.median(data)) * 1000
        out[f"std_{key}_ms"] = float(np.std(data)) * 1000
        for p in run.percentiles or (99,):
            out[f"p{_p_word(p)}_{key}_ms"] = float(np.percentile(data, p)) * 1000
    if detailed:
        out.update(
            input_lens=[r.prompt_tokens or 0 for r in run.records],
            output_lens=[r.completion_tokens or 0 for r in run.records],
            ttfts=[r.ttft or 0.0 for r in run.records], itls=[r.itl for r in run.records],
            latencies=[r.e2e for r in run.records], start_times=[r.start for r in run.records],
            errors=[r.error or "" for r in run.records])
    out.update({  # glyph-render's own, beside vLLM's
        "glyph_arm": run.arm, "glyph_input_chars": run.chars, "glyph_input_tokens": run.tokens,
        "glyph_dataset": run.dataset, "glyph_mean_document_chars": s["mean_document_chars"],
        "glyph_mean_document_tokens": s["mean_document_tokens"],
        "glyph_total_input_vision_tokens": s["total_input_vision_tokens"],
        "glyph_mean_pages": s["mean_pages"]})
    return out


def _rate_json(rate: float) -> float | str:
    return "inf" if math.isinf(rate) else rate


def _mean_ms(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) * 1000 if values else None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _peak_output(records: Sequence[RequestRecord]) -> float:
    """Most output tokens finished in one wall-clock second (each request's tokens spread
    evenly over its chunks: servers batch several tokens into a chunk)."""
    buckets: dict[int, float] = {}
    for r in records:
        if not r.chunk_times or not r.completion_tokens:
            continue
        share = r.completion_tokens / len(r.chunk_times)
        for t in r.chunk_times:
            second = int(r.start + t)
            buckets[second] = buckets.get(second, 0.0) + share
    return max(buckets.values(), default=0.0)


def _peak_concurrency(records: Sequence[RequestRecord]) -> int:
    events = sorted([(r.start, 1) for r in records] + [(r.start + r.e2e, -1) for r in records],
                    key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


# --- the table ------------------------------------------------------------------------------


def _line(label: str, value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "n/a"
    elif isinstance(value, float):
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{label:<40} {text}"


def _rule(title: str, char: str = "-") -> str:
    return f"{title:{char}^50}"


def format_result(run: Run) -> str:
    """One arm's block, in the SGLang page's "Serving Benchmark Result" layout."""
    s = run.summary()
    rate = "inf" if math.isinf(run.request_rate) else f"{run.request_rate:g}"
    lines = [
        _rule(" Serving Benchmark Result ", "="),
        _line("Arm:", run.arm),
        *([_line("Dataset:", run.dataset)] if run.dataset is not None else []),
        *([_line("Document length (tokens):", run.tokens)] if run.tokens is not None else []),
        _line("Document length (chars):" if run.tokens is None and run.dataset is None
              else "Document length (chars, mean):",
              run.chars if run.tokens is None and run.dataset is None
              else s["mean_document_chars"]),
        _line("Document tokens (mean):", s["mean_document_tokens"]),
        _line("Model:", run.model),
        _line("Traffic request rate:", rate),
        _line("Max request concurrency:", run.max_concurrency or "not set"),
        _line("Successful requests:", s["successful_requests"]),
        _line("Failed requests:", s["failed_requests"]),
        _line("Benchmark duration (s):", s["duration_s"]),
        _line("Total input tokens:", s["total_input_tokens"]),
        _line("Total input text tokens:", s["total_input_text_tokens"]),
        _line("Total input vision tokens:", s["total_input_vision_tokens"]),
        _line("Total generated tokens:", s["total_generated_tokens"]),
        _line("Total generated tokens (retokenized):", s["total_generated_tokens_retokenized"]),
        _line("Request throughput (req/s):", s["request_throughput"]),
        _line("Input token throughput (tok/s):", s["input_throughput"]),
        _line("Output token throughput (tok/s):", s["output_throughput"]),
        _line("Peak output token throughput (tok/s):", s["peak_output_throughput"]),
        _line("Peak concurrent requests:", s["peak_concurrent_requests"]),
        _line("Total token throughput (tok/s):", s["total_throughput"]),
        _line("Concurrency:", s["concurrency"]),
    ]
    if run.arm == "pages":
        lines += [_line("Pages per request (mean):", s["mean_pages"]),
                  _line("Render time per document (ms, mean):", s["mean_render_ms"])]
    for name, label, title in (("e2e", "E2E Latency", "End-to-End Latency"),
                               ("ttft", "TTFT", "Time to First Token"),
                               ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
                               ("itl", "ITL", "Inter-Token Latency")):
        lines.append(_rule(title))
        keys = [("Mean", "mean"), ("Median", "median")] + [
            (f"P{_p_word(p)}", f"p{_p_word(p)}")
            for p in run.percentiles or ((95, 99) if name == "itl" else (99,))]
        if name == "itl":
            keys.append(("Max", "max"))
        lines += [_line(f"{k} {label} (ms):", s[f"{p}_{name}_ms"]) for k, p in keys]
    lines.append("=" * 50)
    if s["first_error"]:
        lines.append(f"{s['failed_requests']} request(s) failed; the first: {s['first_error']}")
    return "\n".join(lines)


def format_comparison(runs: Sequence[Run]) -> str:
    """Text vs pages side by side, one row per arm and document length."""
    top = _p_word(max(runs[0].percentiles or (99,))) if runs else "99"
    head = ("documents", "arm", "ok", "input tok/req", "vs text", "TTFT mean", f"TTFT p{top}",
            "E2E mean", "req/s", "out tok/s")
    rows = [head]
    text_input = {r.length_label: r.summary()["mean_input_tokens"]
                  for r in runs if r.arm == "text"}
    for run in sorted(runs, key=lambda r: (r.tokens or 0, r.chars, ARMS.index(r.arm))):
        s = run.summary()
        base = text_input.get(run.length_label)
        mine = s["mean_input_tokens"]
        ratio = f"{mine / base:.2f}x" if mine is not None and base else "-"
        rows.append((run.length_label, run.arm,
                     f"{s['successful_requests']}/{len(run.records)}", _num(mine, 0), ratio,
                     _num(s["mean_ttft_ms"], 1), _num(s[f"p{top}_ttft_ms"], 1),
                     _num(s["mean_e2e_ms"], 1), _num(s["request_throughput"], 2),
                     _num(s["output_throughput"], 1)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = [_rule(" Text vs pages ", "=")]
    for row in rows:
        out.append("  ".join(c.rjust(w) if i not in (1,) else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    out.append("(latencies in ms; 'vs text': input tokens per request relative to the text arm)")
    return "\n".join(out)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


# --- the plot -------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Fail before a long run, not after it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'glyph-render[bench]'") from None


def plot(runs: Sequence[Run], path: str, title: str) -> None:
    """Input tokens, TTFT and request throughput against document length, text vs pages."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("mean_input_tokens", "input tokens per request", None),
              ("mean_ttft_ms", "TTFT (ms): mean, p99 dashed", "p99_ttft_ms"),
              ("request_throughput", "request throughput (req/s)", None))
    in_tokens = any(r.tokens is not None for r in runs)

    def size(r: Run) -> int:
        return r.tokens if in_tokens and r.tokens is not None else r.chars

    all_chars = sorted({size(r) for r in runs})
    for arm, color, marker in (("text", "tab:blue", "o"), ("pages", "tab:orange", "s")):
        mine = sorted((r for r in runs if r.arm == arm), key=size)
        if not mine:
            continue
        xs = [size(r) for r in mine]
        sums = [r.summary() for r in mine]
        for ax, (key, label, extra) in zip(axes, panels, strict=True):
            ys = [_nan(s[key]) if s["successful_requests"] else math.nan for s in sums]
            ax.plot(xs, ys, color=color, marker=marker, label=arm)
            if extra:
                ax.plot(xs, [_nan(s[extra]) for s in sums], color=color, linestyle="--",
                        alpha=0.6)
            ax.set_ylabel(label)
    for ax in axes:
        ax.set_xlabel(f"document length ({'tokens' if in_tokens else 'characters'})")
        if all_chars and all_chars[-1] >= 10 * all_chars[0]:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
