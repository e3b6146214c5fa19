"""What happens to one item, in two stages that any engine can schedule.

* :func:`prepare` (CPU-bound: read, choose the config, plan, render, encode) runs in a render
  worker process (local engine) or a Ray CPU task. It never raises: a failure comes back as a
  :class:`Failure`, because exception objects with keyword-only constructors do not always
  survive pickling between processes.
* :func:`ask` (I/O-bound: the endpoint calls) runs in a request thread (local) or a Ray actor.
  It returns the record fields of the answer, or raises the client's typed error.

:func:`record` turns either outcome into the output line. Both engines call the same three
functions, so they write the same records.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RenderConfig
from ..errors import (
    BudgetError,
    ClientError,
    ContextOverflow,
    GlyphRenderError,
    InputError,
)
from ..files import atomic_write, json_bytes
from ..layout import layout
from ..render import RenderedPage, iter_pages, page_sizes, render_to_dir
from ..scoring import character_error_rate
from ..vision_tokens import image_tokens, prompt_tokens
from .inputs import BadLine, Item, load_text
from .naming import item_dir
from .options import JobSettings
from .summary import score_answer

if TYPE_CHECKING:  # the client (and openai) load only where requests are made, not in workers
    from ..client import GlyphClient
    from .endpoints import EndpointPool

__all__ = ["Failure", "Prepared", "ask", "invalid_record", "prepare", "record"]


@dataclass
class Failure:
    """Why an item failed: the error's class name and message, and the stage it failed in."""

    type: str
    message: str
    stage: str
    status_code: int | None = None

    @classmethod
    def of(cls, exc: BaseException, stage: str) -> Failure:
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, GlyphRenderError):  # a bug: keep where it happened
            tb = traceback.extract_tb(exc.__traceback__)
            if tb:
                message += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
        code = exc.status_code if isinstance(exc, ClientError) else None
        return cls(type(exc).__name__, message, stage, code)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message, "stage": self.stage}
        if self.status_code is not None:
            out["status_code"] = self.status_code
        return out


@dataclass
class Prepared:
    """An item rendered (or planned): figures for the record, and pages to send."""

    config: RenderConfig
    preset: str
    chars: int
    text_tokens: int
    vision_tokens: int
    page_count: int
    seconds: float
    pages: list[RenderedPage] | None = None  # with PNG bytes (qa, ocr)
    sources: list[str] | None = None  # the source text of each page (ocr)
    extra: dict[str, Any] = field(default_factory=dict)  # mode-specific record fields
    predicted_prompt_tokens: int | None = None
    cpu_seconds: float | None = None  # CPU time of the rendering thread: load-independent cost

    @property
    def ratio(self) -> float:
        return self.text_tokens / self.vision_tokens if self.vision_tokens else 0.0


def config_label(item: Item) -> str:
    """Groups items in the summary: ``config_name``, else the item's overrides, else default."""
    if item.config_name:
        return item.config_name
    if item.config:
        return json.dumps(item.config, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "default"


def prepare(item: Item, s: JobSettings) -> Prepared | Failure:
    """Stage one: never raises (see the module docstring)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        text = load_text(item)
        cfg, preset = s.render.config_for(text, item.config)
        if s.mode == "plan":
            prep = _plan_only(item, text, cfg, preset, s, t0)
        elif s.mode == "render":
            prep = _render(item, text, cfg, preset, s, t0)
        else:
            prep = _pages(item, text, cfg, preset, s, t0)
        prep.cpu_seconds = time.thread_time() - c0
        return prep
    except GlyphRenderError as exc:
        return Failure.of(exc, "input" if isinstance(exc, InputError) else "render")
    except Exception as exc:  # a bug must not end an overnight job: record it, go on
        return Failure.of(exc, "render")


def _plan_only(item: Item, text: str, cfg: RenderConfig, preset: str, s: JobSettings,
          t0: float) -> Prepared:
    prof = s.render.vision_profile
    if s.render.budget is not None:
        plan = s.render.plan(text, cfg)
        sizes = [(p.width, p.height) for p in plan.pages]
        extra = {"plan": {"budget": plan.budget, "cost": plan.cost,
                          "budget_used": round(plan.cost / plan.budget, 4),
                          "limited_by": plan.limited_by, "rung": plan.rungs[-1]["rung"],
                          "chunks": len(plan.chunks) or None,
                          "config": plan.config.to_dict()}}
        cfg, tt, vt = plan.config, plan.text_tokens, plan.vision_tokens
    else:
        sizes = page_sizes(list(layout(text, cfg, geometry_only=True)), cfg)
        vt = sum(image_tokens(w, h, prof) for w, h in sizes)
        tt = s.render.text_tokenizer.count(text)
        extra = {"plan": {"config": cfg.to_dict()}}
    predicted = prompt_tokens(sizes, item.question or "", profile=prof)
    return Prepared(cfg, preset, len(text), tt, vt, len(sizes), time.perf_counter() - t0,
                    extra=extra, predicted_prompt_tokens=predicted)


def _render(item: Item, text: str, cfg: RenderConfig, preset: str, s: JobSettings,
            t0: float) -> Prepared:
    assert s.pages_dir is not None
    if s.render.budget is not None:
        cfg = s.render.plan(text, cfg, overflow="error").config
    folder = item_dir(s.pages_dir, item.id)
    res = render_to_dir(text, cfg, folder, profile=s.render.profile, tokenizer=s.render.tokenizer,
                        progress=False)
    manifest = folder / "manifest.json"
    body = {"id": item.id, "line": item.line, **res.to_json()}
    atomic_write(manifest, json_bytes(body, indent=1))
    extra = {"render": {"dir": str(folder), "manifest": str(manifest),
                        "files": [Path(p.file or "").name for p in res.pages],
                        "spans": [[p.start, p.end] for p in res.pages],
                        "missing_chars": res.missing}}
    return Prepared(cfg, preset, len(text), res.text_tokens, res.vision_tokens, len(res.pages),
                    time.perf_counter() - t0, extra=extra)


def _pages(item: Item, text: str, cfg: RenderConfig, preset: str, s: JobSettings,
           t0: float) -> Prepared:
    tt = s.render.text_tokenizer.count(text)
    if s.render.budget is not None:
        try:
            cfg = s.render.plan(text, cfg, overflow="split" if s.mode == "ocr" else "error").config
        except BudgetError:
            if s.mode == "ocr":
                raise
            # qa: too long for the budget; the client splits it (map-reduce) in stage two
            return Prepared(cfg, preset, len(text), tt, 0, 0, time.perf_counter() - t0)
    pages = list(iter_pages(text, cfg, profile=s.render.profile))
    sources = [text[p.start:p.end] for p in pages] if s.mode == "ocr" else None
    return Prepared(cfg, preset, len(text), tt, sum(p.vision_tokens for p in pages), len(pages),
                    time.perf_counter() - t0, pages=pages, sources=sources)


# --- stage two --------------------------------------------------------------------------------


def ask(item: Item, prep: Prepared, pool: EndpointPool, s: JobSettings) -> dict[str, Any]:
    """Stage two: the endpoint calls; returns record fields or raises a ClientError."""
    if s.mode == "ocr":
        return _ocr(prep, pool, s)
    kw = s.endpoint.ask_kwargs()
    question = item.question or ""
    fitted = False
    try:
        if not prep.pages:  # stage one found the budget too small: let the client split it
            raise ContextOverflow("no pages rendered within the budget")
        pages = prep.pages
        answer, url = pool.call(lambda c: c.ask_pages(pages, question, **kw))
    except ContextOverflow:
        # Too big for the model as rendered: the client fits (or splits) it to the context.
        text = load_text(item)
        cfg = prep.config

        def fit(c: GlyphClient):
            return c.ask(text, question, config=cfg, budget=s.render.budget, **kw)

        answer, url = pool.call(fit)
        fitted = True
    out: dict[str, Any] = {
        "answer": answer.text, "reasoning": answer.reasoning,
        "finish_reason": answer.finish_reason, "model": answer.model, "endpoint": url,
        "usage": answer.total_usage if answer.parts else answer.usage,
        "predicted_prompt_tokens": answer.predicted_prompt_tokens, "calls": answer.calls,
        "timings": {k: answer.timings.get(k) for k in ("encode", "request")},
    }
    if fitted:
        out.update(fitted=True, pages=len(answer.pages), vision_tokens=answer.vision_tokens,
                   dpi=answer.dpi)
        if answer.timings.get("render"):
            out["timings"]["render_in_client"] = answer.timings["render"]
    scored = score_answer(answer.text, item)
    if scored is not None:
        out["score"] = scored
    return out


def _ocr(prep: Prepared, pool: EndpointPool, s: JobSettings) -> dict[str, Any]:
    assert prep.pages is not None and prep.sources is not None
    kw = s.endpoint.ask_kwargs()
    ws = "remove" if prep.preset == "glyph-zh" else "collapse"
    pages, usage = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    predicted, encode, request, errs, chars = 0, 0.0, 0.0, 0.0, 0
    url = None
    for page, source in zip(prep.pages, prep.sources, strict=True):
        answer, url = pool.call(lambda c, p=page: c.ask_pages([p], s.ocr_prompt, **kw))
        cer = character_error_rate(answer.text, source, whitespace=ws)
        ref = len(" ".join(source.split())) if ws == "collapse" else len("".join(source.split()))
        errs += cer * ref
        chars += ref
        entry = {"page": page.number, "start": page.start, "end": page.end, "cer": round(cer, 5)}
        if s.keep_transcripts:
            entry["transcript"] = answer.text
        pages.append(entry)
        for k in usage:
            v = (answer.usage or {}).get(k)
            usage[k] += v if isinstance(v, int) else 0
        predicted += answer.predicted_prompt_tokens
        encode += answer.timings.get("encode") or 0.0
        request += answer.timings.get("request") or 0.0
    return {
        "endpoint": url, "usage": usage, "predicted_prompt_tokens": predicted,
        "calls": len(pages), "timings": {"encode": encode, "request": request},
        "ocr": {"cer": round(errs / chars, 5) if chars else 0.0, "whitespace": ws,
                "pages": pages},
    }


# --- records ----------------------------------------------------------------------------------


def _base(item: Item, s: JobSettings) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item.id, "line": item.line, "mode": s.mode}
    if s.mode == "qa" and item.question:
        rec["question"] = item.question
    rec.update(item.extra)
    rec["config_label"] = config_label(item)
    return rec


def record(item: Item, s: JobSettings, prep: Prepared | Failure,
           asked: dict[str, Any] | Failure | None, total_seconds: float) -> dict[str, Any]:
    """The output line for one item, whatever happened to it."""
    rec = _base(item, s)
    failure = prep if isinstance(prep, Failure) else asked if isinstance(asked, Failure) else None
    timings: dict[str, Any] = {}
    if isinstance(prep, Prepared):
        rec.update(pages=prep.page_count, chars=prep.chars, text_tokens=prep.text_tokens,
                   vision_tokens=prep.vision_tokens, compression_ratio=round(prep.ratio, 4),
                   dpi=prep.config.dpi, preset=prep.preset)
        if prep.predicted_prompt_tokens is not None:
            rec["predicted_prompt_tokens"] = prep.predicted_prompt_tokens
        rec.update(prep.extra)
        timings["render"] = prep.seconds
        timings["render_cpu"] = prep.cpu_seconds
    if isinstance(asked, dict):
        asked = dict(asked)
        timings.update(asked.pop("timings", {}))
        rec.update(asked)
        if asked.get("fitted") and rec.get("vision_tokens"):
            rec["compression_ratio"] = round(rec["text_tokens"] / rec["vision_tokens"], 4)
    timings["total"] = total_seconds
    rec["timings"] = {k: round(v, 4) for k, v in timings.items() if v is not None}
    if item.answers is not None:
        rec["gold"] = item.answers
    rec["status"] = "error" if failure else "ok"
    rec["error"] = failure.to_json() if failure else None
    rec["time"] = round(time.time(), 3)
    return rec


def invalid_record(bad: BadLine, s: JobSettings) -> dict[str, Any]:
    """The output line for an input line that was not an item (keyed by its line number)."""
    return {"id": bad.id, "line": bad.line, "mode": s.mode, "status": "invalid",
            "error": {"type": bad.error_type, "message": bad.message, "stage": "input"},
            "time": round(time.time(), 3)}
