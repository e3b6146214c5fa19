"""Progress while a job runs, and the summary when it ends: counts, errors, accuracy, CER.

Scores use :mod:`glyph_render.scoring` (LongBench's metrics), picked per item: its ``metric``
field (``f1``, ``rouge``/``rouge_l``, ``em``/``exact_match`` or any name ``scoring.score``
knows), else its LongBench ``dataset``, else token F1. The summary is computed from the newest
record of every id in the whole output, so a job resumed five times reports the whole job;
throughput figures are this run's.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import atomic_write, json_bytes
from ..scoring import DATASET_METRICS, METRICS, score

if TYPE_CHECKING:
    from .inputs import Item

__all__ = ["METRIC_ALIASES", "Progress", "format_summary", "score_answer", "summarize",
           "summary_path", "write_summary"]

METRIC_ALIASES = {
    "f1": "qa_f1_score", "qa_f1": "qa_f1_score", "f1_zh": "qa_f1_zh_score",
    "rouge": "rouge_l_score", "rouge_l": "rouge_l_score", "rouge-l": "rouge_l_score",
    "rougel": "rouge_l_score", "rouge_zh": "rouge_zh_score",
    # the _zh metrics cut words with jieba, as LongBench does; per character: the _char ones
    "f1_zh_char": "qa_f1_zh_char_score", "rouge_zh_char": "rouge_zh_char_score",
    "em": "exact_match", "exact": "exact_match",
}
DEFAULT_METRIC = "qa_f1_score"


def _metric_name(item: Item) -> str:
    if item.metric:
        name = METRIC_ALIASES.get(item.metric.lower(), item.metric)
        if name in METRICS or name in DATASET_METRICS:
            return name
    if item.extra.get("dataset") in DATASET_METRICS:
        return str(item.extra["dataset"])
    return DEFAULT_METRIC


def score_answer(prediction: str, item: Item) -> dict[str, Any] | None:
    """``{"metric": name, "value": 0..1}`` when the item has gold answers, else None."""
    if not item.answers:
        return None
    if item.metric and METRIC_ALIASES.get(item.metric.lower(), item.metric) not in METRICS \
            and item.metric not in DATASET_METRICS:
        return {"metric": item.metric, "value": None,
                "note": f"unknown metric {item.metric!r}; known: {', '.join(sorted(METRICS))}"}
    name = _metric_name(item)
    value = score(prediction, item.answers, name, all_classes=item.all_classes)
    return {"metric": name, "value": round(float(value), 5)}


class Progress:
    """A tqdm bar on stderr: items/s and ETA from tqdm, pages/s, tokens saved and errors."""

    def __init__(self, total: int | None, enabled: bool | None, desc: str) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.items = self.pages = self.saved = self.errors = 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc=desc, file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.05, mininterval=0.5)

    def update(self, rec: dict[str, Any]) -> None:
        self.items += 1
        if rec.get("status") == "ok":
            self.pages += rec.get("pages") or 0
            tt, vt = rec.get("text_tokens") or 0, rec.get("vision_tokens") or 0
            self.saved += tt - vt
        else:
            self.errors += 1
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(
                f"{self.pages / elapsed:.1f} pages/s, {_si(self.saved)} tokens saved, "
                f"{self.errors} errors", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _si(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _dist(values: list[float]) -> dict[str, Any]:
    """count, mean, min, p50, p90, max (nearest-rank percentiles)."""
    if not values:
        return {"count": 0}
    v = sorted(values)

    def pct(q: float) -> float:
        return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]

    return {"count": len(v), "mean": round(sum(v) / len(v), 5), "min": round(v[0], 5),
            "p50": round(pct(0.5), 5), "p90": round(pct(0.9), 5), "max": round(v[-1], 5)}


def summarize(records: Iterable[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """The job's summary from the newest record per id, plus this run's figures ``run``."""
    status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_stages: Counter[str] = Counter()
    scores: dict[str, list[float]] = defaultdict(list)
    cer_pages: dict[str, list[float]] = defaultdict(list)
    cer_items: dict[str, list[float]] = defaultdict(list)
    pages = text_tokens = vision_tokens = 0
    ratios: list[float] = []
    request_s = work_s = 0.0
    latencies: list[float] = []
    mismatch = 0
    for rec in records:
        st = rec.get("status", "?")
        status[st] += 1
        if st != "ok":
            err = rec.get("error") or {}
            errors[str(err.get("type", "?"))] += 1
            error_stages[str(err.get("stage", "?"))] += 1
            continue
        pages += rec.get("pages") or 0
        text_tokens += rec.get("text_tokens") or 0
        vision_tokens += rec.get("vision_tokens") or 0
        if rec.get("compression_ratio"):
            ratios.append(rec["compression_ratio"])
        sc = rec.get("score")
        if isinstance(sc, dict) and isinstance(sc.get("value"), (int, float)):
            scores[str(sc.get("metric"))].append(float(sc["value"]))
        ocr = rec.get("ocr")
        if isinstance(ocr, dict):
            label = str(rec.get("config_label", "default"))
            cer_items[label].append(ocr.get("cer", 0.0))
            cer_pages[label].extend(p.get("cer", 0.0) for p in ocr.get("pages", []))
        t = rec.get("timings") or {}
        if t.get("request") is not None:
            request_s += t["request"]
            work_s += sum(t.get(k) or 0.0 for k in ("render", "encode", "request"))
            latencies.append(t["request"])
        usage = rec.get("usage") or {}
        if isinstance(usage.get("prompt_tokens"), int) and rec.get("predicted_prompt_tokens") \
                and usage["prompt_tokens"] != rec["predicted_prompt_tokens"] \
                and not rec.get("calls", 1) > 1:
            mismatch += 1
    out: dict[str, Any] = {
        "records": sum(status.values()), "ok": status["ok"], "error": status["error"],
        "invalid": status["invalid"], "error_types": dict(errors.most_common()),
        "error_stages": dict(error_stages),
        "pages": pages, "text_tokens": text_tokens, "vision_tokens": vision_tokens,
        "tokens_saved": text_tokens - vision_tokens,
        "compression_ratio": round(text_tokens / vision_tokens, 4) if vision_tokens else None,
        "compression_ratio_per_item": _dist(ratios),
    }
    if scores:
        out["accuracy"] = {m: {**_dist(v), "mean": round(sum(v) / len(v), 5)}
                           for m, v in sorted(scores.items())}
    if cer_pages:
        out["cer_by_config"] = {
            label: {"pages": _dist(cer_pages[label]), "items": _dist(cer_items[label])}
            for label in sorted(cer_pages)
        }
    if latencies:
        out["request_seconds"] = _dist(latencies)
        out["client_wait_share"] = round(request_s / work_s, 4) if work_s else None
        out["prompt_token_mismatches"] = mismatch
    out["run"] = run
    return out


def summary_path(output: str | os.PathLike[str]) -> Path:
    """``out.jsonl`` -> ``out.summary.json`` (beside the output)."""
    p = Path(output)
    return p.with_name(p.name.removesuffix(".jsonl") + ".summary.json")


def write_summary(summary: dict[str, Any], output: str | os.PathLike[str]) -> Path:
    return atomic_write(summary_path(output), json_bytes(summary, indent=2) + b"\n")


def format_summary(s: dict[str, Any]) -> str:
    """A few human lines; the JSON file has everything."""
    run = s.get("run", {})
    lines = [
        f"{s['records']} records: {s['ok']} ok, {s['error']} failed, {s['invalid']} invalid "
        f"input lines ({run.get('processed', 0)} done in this run, {run.get('skipped', 0)} "
        f"skipped as finished earlier)",
    ]
    if run.get("seconds"):
        lines.append(f"this run: {run['seconds']:.1f} s, {run.get('items_per_s', 0):.2f} items/s,"
                     f" {run.get('pages_per_s', 0):.2f} pages/s")
    if s["error_types"]:
        lines.append("errors: " + ", ".join(f"{k} x{v}" for k, v in s["error_types"].items()))
    if s.get("vision_tokens"):
        lines.append(f"{s['pages']} pages, {s['text_tokens']:,} text tokens -> "
                     f"{s['vision_tokens']:,} vision tokens ({s['compression_ratio']}x, "
                     f"{s['tokens_saved']:,} saved)")
    for metric, d in (s.get("accuracy") or {}).items():
        lines.append(f"accuracy {metric}: mean {d['mean']:.4f} over {d['count']} items")
    for label, d in (s.get("cer_by_config") or {}).items():
        pg = d["pages"]
        lines.append(f"CER [{label}]: mean {pg['mean']:.4f}, p50 {pg['p50']:.4f}, "
                     f"p90 {pg['p90']:.4f}, max {pg['max']:.4f} over {pg['count']} pages")
    outage = run.get("outage") or {}
    if outage.get("outages"):
        n = outage["outages"]
        lines.append(f"waited {outage['waited_seconds']:.1f} s for the endpoints to come back "
                     f"({n} outage{'s' if n != 1 else ''}; no item failed for it)")
    if s.get("client_wait_share") is not None:
        lines.append(f"client waiting on the server: {s['client_wait_share']:.0%} of item time")
    return "\n".join(lines)
