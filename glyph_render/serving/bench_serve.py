"""``glyph-render bench serve``: the same documents sent as text and as pages, timed.

This is what Glyph is for: a long document read as rendered pages costs far fewer prompt
tokens than as text. The seed pages' benchmarks (``vllm bench serve``, ``sglang.bench_serving``)
send random text only; this one keeps their workload knobs (input length, output length,
number of prompts, max concurrency, Poisson request rate) and result layout, and runs two
arms per document length:

* **text**: the document itself as the user message, to ``--text-endpoint`` (a text model) or
  to the Glyph endpoint;
* **pages**: the document rendered (before the clock starts; render time is reported apart)
  and sent as page images the way :class:`~glyph_render.client.GlyphClient` sends them.

Every request streams (``max_tokens = --output-len``, ``ignore_eos`` like the seeds'
``--ignore-eos``), so each chunk is timed. Failures (a text arm over the context, say) are
counted, not retried. Document lengths are given in characters (``--input-chars``) or in
tokens of the client's tokenizer (``--input-len``), or the documents are the user's own
(``--dataset FILE.jsonl``). ``--save-result`` writes each run as ``vllm bench serve
--save-result`` does, ``--percentiles`` choosing the percentiles. Workloads:
:mod:`.bench_workload`; figures, table, JSON and plot: :mod:`.bench_report`; the wire:
:mod:`.bench_request`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..client import ModelInfo, PreparedRequest
from ..config import RenderConfig, detect_preset
from ..errors import ConfigError, GlyphRenderError
from ..niah import default_corpus_dir
from ..render import RenderedPage, iter_pages
from ..settings import (
    EndpointSettings,
    Parser,
    add_endpoint_flags,
    add_model_flags,
    at_least,
    comma_list,
    percent,
    positive,
    positive_or_inf,
)
from .bench_report import (
    ARMS,
    RequestRecord,
    Run,
    format_comparison,
    format_result,
    plot,
    require_matplotlib,
    vllm_result,
)
from .bench_request import ChatEndpoint, Timed
from .bench_workload import (
    DEFAULT_GLOB,
    Document,
    arrivals,
    documents,
    load_corpus,
    load_dataset,
    token_documents,
)

__all__ = ["main"]

PROG = "glyph-render bench serve"
DEFAULT_QUESTION = "Summarize the document."
DEFAULT_CHARS = (2000, 8000, 32000)
DEFAULT_PROMPTS = 10


def _parser() -> Parser:
    p = Parser(prog="glyph-render bench",
               description="Serving benchmarks against a running endpoint.")
    sub = p.add_subparsers(dest="command", required=True, metavar="serve")
    s = sub.add_parser(
        "serve", prog=PROG, help="text vs pages against a vLLM/SGLang endpoint",
        description="Send the same documents as text and as rendered pages to OpenAI-"
        "compatible endpoints and report, per arm and document length, what the SGLang Glyph "
        "page's benchmarks report: requests, duration, input tokens (text vs vision), "
        "throughput, TTFT/TPOT/ITL/E2E. The API key comes from $OPENAI_API_KEY (see "
        "--api-key-env).")
    add_endpoint_flags(s, asking=False)
    g = s.add_argument_group("text arm")
    g.add_argument("--text-endpoint", metavar="URL",
                   help="send the text arm here, e.g. a text-only LLM (default: --endpoint)")
    g.add_argument("--text-model", help="model name at --text-endpoint")
    g = s.add_argument_group("workload (the seed benchmarks' knobs)")
    g.add_argument("--input-chars", type=comma_list(at_least(1)), default=None,
                   metavar="N[,N...]", help="document lengths in characters, one run per arm "
                   f"each (default {','.join(map(str, DEFAULT_CHARS))})")
    g.add_argument("--input-len", "--input-tokens", dest="input_len", type=comma_list(at_least(1)),
                   metavar="N[,N...]", help="document lengths in tokens of --tokenizer instead "
                   "(each document the longest slice that many tokens hold)")
    g.add_argument("--output-len", type=at_least(1), default=256, metavar="N",
                   help="max_tokens per request (default 256)")
    g.add_argument("--num-prompts", type=at_least(1), default=None, metavar="N",
                   help="requests per arm and length, each its own document (default 10; "
                   "with --dataset: every line)")
    g.add_argument("--max-concurrency", type=at_least(1), default=None, metavar="N",
                   help="requests in flight at most (default: no limit)")
    g.add_argument("--request-rate", type=positive_or_inf, default=math.inf, metavar="RATE",
                   help="Poisson arrivals per second, or inf: all at once (default inf)")
    g.add_argument("--arms", default="text,pages",
                   help="which arms to run: text, pages or both (default text,pages)")
    g.add_argument("--question", default=DEFAULT_QUESTION,
                   help=f"asked after each document (default {DEFAULT_QUESTION!r})")
    g.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="let the model stop early (default: ignore_eos, every reply runs to "
                   "--output-len, as the seeds' --ignore-eos)")
    g.add_argument("--warmup", type=at_least(0), default=1, metavar="N",
                   help="untimed requests before each run (default 1)")
    g.add_argument("--seed", type=int, default=0, help="documents and arrivals (default 0)")
    g = s.add_argument_group("documents")
    g.add_argument("--corpus", metavar="DIR", help="folder of texts to slice documents from "
                   "(default $GLYPH_CORPUS, else the corpus shipped in the package)")
    g.add_argument("--corpus-glob", default=DEFAULT_GLOB,
                   help=f"which corpus files (default {DEFAULT_GLOB!r})")
    g.add_argument("--generated", action="store_true", help="generated text, no corpus")
    g.add_argument("--dataset", metavar="FILE.jsonl",
                   help="your own documents, one JSON object per line: document (or text, "
                   "context; required), question (or prompt), output_len (or max_tokens), id; "
                   "one run per arm (see docs/serving.md)")
    g.add_argument("--dpi", type=positive, help="render at this DPI (default: the preset's)")
    add_model_flags(s, tokenizer=None)
    g = s.add_argument_group("output")
    g.add_argument("--json", metavar="OUT", help="write settings, summaries and every "
                   "request's raw figures here")
    g.add_argument("--save-result", metavar="FILE",
                   help="write each run as 'vllm bench serve --save-result' does (its field "
                   "names), one JSON object per line")
    g.add_argument("--save-detailed", action="store_true",
                   help="with --save-result: also the per-request lists (input_lens, ttfts, "
                   "itls, ...), as vLLM's --save-detailed")
    g.add_argument("--percentiles", "--metric-percentiles", dest="percentiles",
                   type=comma_list(percent), metavar="P[,P...]",
                   help="percentiles of TTFT, TPOT, ITL and E2E in the table and --save-result, "
                   "e.g. 50,90,99 (default: the table's P99 (and P95 for ITL), vLLM's 99)")
    g.add_argument("--plot", metavar="OUT.png",
                   help="plot input tokens, TTFT and throughput against document length")
    return p


def _arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ConfigError(f"--arms takes text and/or pages, got {text!r}")
    return [a for a in ARMS if a in arms]


class _Bench:
    """One benchmark invocation: endpoints, workload, runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.arms = _arms(args.arms)
        extra = {"ignore_eos": True} if args.ignore_eos else None
        endpoint = EndpointSettings.from_args(args)
        self.limits = {"timeout": _json_number(endpoint.timeout),
                       "deadline": _json_number(endpoint.deadline),
                       "max_reply_bytes": endpoint.max_reply_bytes}
        common: dict[str, Any] = dict(tokenizer=args.tokenizer, profile=args.profile,
                                      max_tokens=args.output_len, extra_body=extra,
                                      timeout=endpoint.timeout, deadline=endpoint.deadline,
                                      max_reply_bytes=endpoint.max_reply_bytes,
                                      api_key=endpoint.api_key())
        self.glyph = ChatEndpoint(endpoint.endpoint, model=endpoint.served_model, **common)
        self.text = (ChatEndpoint(args.text_endpoint, model=args.text_model, **common)
                     if args.text_endpoint else self.glyph)
        self.dataset = load_dataset(args.dataset) if args.dataset else None
        if self.dataset is not None:
            args.num_prompts = args.num_prompts or len(self.dataset)
            if args.num_prompts > len(self.dataset):
                raise ConfigError(f"--num-prompts {args.num_prompts}: --dataset {args.dataset} "
                                  f"holds {len(self.dataset)} documents")
        args.num_prompts = args.num_prompts or DEFAULT_PROMPTS
        self.corpus_label, self.corpus = self._corpus()
        self.runs: list[Run] = []

    def _corpus(self) -> tuple[str, list[tuple[str, str]] | None]:
        a = self.args
        if a.dataset:
            return f"dataset {a.dataset}", None
        if a.generated:
            return "generated", None
        folder = Path(a.corpus) if a.corpus else default_corpus_dir()
        return f"{folder} ({a.corpus_glob})", load_corpus(folder, a.corpus_glob)

    def say(self, message: str) -> None:
        if not self.args.quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        await self.glyph.close()
        if self.text is not self.glyph:
            await self.text.close()

    async def run(self) -> None:
        a = self.args
        infos = {arm: await (self.glyph if arm == "pages" else self.text).model_info()
                 for arm in self.arms}
        rng = random.Random(a.seed)
        tokenizer = self.glyph.client.tokenizer
        sizes: list[tuple[str, int]] = (
            [("dataset", 0)] if self.dataset is not None
            else [("tokens", n) for n in a.input_len] if a.input_len
            else [("chars", n) for n in a.input_chars or DEFAULT_CHARS])
        for unit, size in sizes:
            n = a.num_prompts + a.warmup
            if self.dataset is not None:
                docs = self._dataset_docs(rng)
            elif unit == "tokens":
                docs = await asyncio.to_thread(token_documents, size, n, rng, tokenizer,
                                               self.corpus)
            else:
                docs = documents(size, n, rng, self.corpus)
            times = arrivals(a.num_prompts, a.request_rate, rng)
            timed = docs[:a.num_prompts]
            chars = size if unit == "chars" else round(sum(len(d.text) for d in timed)
                                                       / len(timed))
            what = Path(a.dataset).name if unit == "dataset" else f"{size:,} {unit}"
            for arm in self.arms:
                run = await self._run_arm(arm, f"{what}, {arm}", chars, docs, times,
                                          infos[arm])
                run.tokens = size if unit == "tokens" else None
                run.dataset = Path(a.dataset).name if unit == "dataset" else None
                run.percentiles = a.percentiles
                self.runs.append(run)

    def _dataset_docs(self, rng: random.Random) -> list[Document]:
        """The dataset's first --num-prompts documents, then its next ones for the warm-up
        (generated text of their mean length when the file has no more)."""
        a = self.args
        assert self.dataset is not None
        docs = self.dataset[:a.num_prompts + a.warmup]
        missing = a.num_prompts + a.warmup - len(docs)
        if missing:
            mean = round(sum(len(d.text) for d in docs) / len(docs))
            docs += documents(mean, missing, rng, None)
        return docs

    async def _run_arm(self, arm: str, label: str, chars: int, docs: list[Document],
                       times: list[float], info: ModelInfo) -> Run:
        a = self.args
        ep = self.glyph if arm == "pages" else self.text
        t0 = time.perf_counter()
        if arm == "pages":
            rendered = await asyncio.to_thread(self._render_all, docs)
            preps = [await ep.prepare_pages(pages, d.question or a.question,
                                            max_tokens=d.output_len)
                     for (pages, _), d in zip(rendered, docs, strict=True)]
            render_s: list[float | None] = [s for _, s in rendered]
        else:
            preps = [await ep.prepare_text(f"{d.text}\n\n{d.question or a.question}",
                                           max_tokens=d.output_len) for d in docs]
            render_s = [None] * len(docs)
        self.say(f"{label}: prepared {len(preps)} requests in {time.perf_counter() - t0:.1f} s"
                 + (f" ({sum(len(p.pages) for p in preps):,} pages)" if arm == "pages" else ""))
        for prep in preps[a.num_prompts:]:  # warm-up: its own documents, untimed
            await ep.stream(prep)
        start, results = await self._send_all(ep, preps[:a.num_prompts], times)
        duration = max((r.t_send + r.e2e for r in results), default=start) - start
        records = [self._record(i, docs[i], preps[i], render_s[i], r, start, ep)
                   for i, r in enumerate(results)]
        ok = sum(r.ok for r in results)
        self.say(f"{label}: {ok}/{len(results)} ok in {duration:.2f} s")
        return Run(arm, chars, ep.url, info.name, a.request_rate, a.max_concurrency, duration,
                   records)

    def _render_all(self, docs: list[Document]) -> list[tuple[list[RenderedPage], float]]:
        """Every document's pages (PNG bytes), in a few threads; seconds per document."""
        def one(doc: Document) -> tuple[list[RenderedPage], float]:
            t0 = time.perf_counter()
            cfg = RenderConfig.preset(detect_preset(doc.text))
            if self.args.dpi:
                cfg = cfg.replace(dpi=float(self.args.dpi))
            pages = list(iter_pages(doc.text, cfg, profile=self.args.profile))
            return pages, time.perf_counter() - t0

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, docs))

    async def _send_all(self, ep: ChatEndpoint, preps: list[PreparedRequest],
                        times: list[float]) -> tuple[float, list[Timed]]:
        """Each request at its arrival time, at most --max-concurrency in flight."""
        limit = self.args.max_concurrency
        gate = asyncio.Semaphore(limit) if limit else None
        start = time.perf_counter()

        async def one(prep: PreparedRequest, at: float) -> Timed:
            delay = at - (time.perf_counter() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            if gate is None:
                return await ep.stream(prep)
            async with gate:
                return await ep.stream(prep)

        results = await asyncio.gather(*(one(p, t) for p, t in zip(preps, times, strict=True)))
        return start, list(results)

    def _record(self, index: int, doc: Document, prep: PreparedRequest, render_s: float | None,
                r: Timed, start: float, ep: ChatEndpoint) -> RequestRecord:
        reply = r.reasoning + r.content
        return RequestRecord(
            index=index, source=doc.source, chars=len(doc.text), ok=r.ok,
            start=r.t_send - start, e2e=r.e2e, ttft=r.ttft, chunk_times=r.chunk_times,
            prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            retokenized=ep.client.tokenizer.count(reply) if reply else 0,
            pages=len(prep.pages), vision_tokens=sum(p.vision_tokens for p in prep.pages),
            predicted_prompt_tokens=prep.predicted_prompt_tokens if prep.pages else None,
            payload_bytes=prep.payload_bytes, render_seconds=render_s,
            finish_reason=r.finish_reason, error=r.error,
            document_tokens=ep.client.tokenizer.count(doc.text))

    def settings(self) -> dict[str, Any]:
        a = self.args
        return {"endpoint": self.glyph.url, "text_endpoint": self.text.url,
                "input_chars": None if a.input_len or a.dataset else
                list(a.input_chars or DEFAULT_CHARS), "input_len": a.input_len,
                "dataset": a.dataset, "percentiles": a.percentiles, "output_len": a.output_len,
                "num_prompts": a.num_prompts, "max_concurrency": a.max_concurrency,
                "request_rate": _json_number(a.request_rate),
                "arms": self.arms, "question": a.question, "ignore_eos": a.ignore_eos,
                "warmup": a.warmup, "seed": a.seed, "corpus": self.corpus_label,
                "dpi": a.dpi, "profile": a.profile,
                "tokenizer": self.glyph.client.tokenizer.name, **self.limits}


def _json_number(v: float) -> float | str:
    """A limit as JSON has it: ``inf`` (no limit) as the string, as ``request_rate`` does."""
    return "inf" if math.isinf(v) else v


def _write_json(path: str, bench: _Bench) -> None:
    data = {"tool": PROG, "version": __version__,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings": bench.settings(), "runs": [r.to_json() for r in bench.runs]}
    try:
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot write ({exc.strerror or exc})") from None


def _save_result(path: str, bench: _Bench) -> None:
    """Each run as vLLM's ``--save-result`` JSON, one object per line (its --append-result
    layout): a one-run benchmark is exactly vLLM's file."""
    date = datetime.now().strftime("%Y%m%d-%H%M%S")
    tokenizer = bench.glyph.client.tokenizer.name
    lines = [json.dumps(vllm_result(r, tokenizer=tokenizer, date=date,
                                    detailed=bench.args.save_detailed), ensure_ascii=False)
             for r in bench.runs]
    try:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--save-result {path}: cannot write ({exc.strerror or exc})") from None


async def _main(args: argparse.Namespace) -> int:
    bench = _Bench(args)
    try:
        await bench.run()
    finally:
        await bench.close()
    for run in bench.runs:
        print(format_result(run))
        print()
    if len(bench.runs) > 1:
        print(format_comparison(bench.runs))
    if args.json:
        _write_json(args.json, bench)
        bench.say(f"wrote {args.json}")
    if args.save_result:
        _save_result(args.save_result, bench)
        bench.say(f"wrote {args.save_result}")
    if args.plot:
        concurrency = args.max_concurrency or "no limit"
        plot(bench.runs, args.plot, f"{bench.runs[0].model}: text vs pages "
             f"({args.num_prompts} prompts, concurrency {concurrency}, output {args.output_len})")
        bench.say(f"wrote {args.plot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``argv`` starts with the subcommand (``serve``), as ``glyph-render bench`` passes it."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.percentiles:
            args.percentiles = tuple(sorted(set(args.percentiles)))
        sizes = [f for f, v in (("--input-chars", args.input_chars),
                                ("--input-len", args.input_len)) if v]
        if len(sizes) > 1:
            raise ConfigError("give document lengths in characters (--input-chars) or in "
                              "tokens (--input-len), not both")
        if args.dataset:
            clash = sizes + [f for f, v in (("--corpus", args.corpus),
                                            ("--generated", args.generated)) if v]
            if clash:
                raise ConfigError(f"--dataset brings its own documents; drop {clash[0]}")
        if args.save_detailed and not args.save_result:
            raise ConfigError("--save-detailed adds to --save-result FILE; give that too")
        if args.plot:
            require_matplotlib()
        for flag, path in (("--json", args.json), ("--plot", args.plot),
                           ("--save-result", args.save_result)):
            if path and not Path(path).resolve().parent.is_dir():
                raise ConfigError(f"{flag} {path}: its folder does not exist")
        return asyncio.run(_main(args))
    except GlyphRenderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
