"""``glyph-render eval longbench``: LongBench JSONL the user has, scored as LongBench scores it.

Prompts are LongBench's ``config/dataset2prompt.json``. In image mode (as Glyph is evaluated)
the ``{context}`` slot is cut out: the context is rendered into the pages and the rest of the
template (instruction before the context, question after it) is sent as text, joined by a blank
line where the context was. Text mode (``--as-text``) sends the full template. ``--prompts
FILE`` replaces the templates (e.g. Glyph's own ``dataset2vlmprompt.json``; a template without
``{context}`` is sent as is after the pages).

Metrics are LongBench's ``dataset2metric`` (:data:`glyph_render.scoring.DATASET_METRICS`), best
over the gold answers, first line only for trec/triviaqa/samsum/lsht; with ``--no-thinking`` the
answer limit is LongBench's ``dataset2maxlen``. Results: per-dataset scores and their average
(the headline ``score``), LongBench-E's length buckets where items carry ``length``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import GlyphRenderError
from ..jobs.inputs import BadLine, Item, iter_entries
from ..jobs.inputs import load_text as item_text
from ..scoring import DATASET_METRICS, ZH_TOKENS, check_zh_tokens, score
from .runner import (
    INVALID,
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
    write_outputs,
)

__all__ = ["DATASET2MAXLEN", "DATASET2PROMPT", "add_arguments", "build_items", "image_prompt",
           "run", "split_template"]

#: THUDM/LongBench config/dataset2prompt.json, verbatim.
DATASET2PROMPT: dict[str, str] = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. Answer the question as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",  # noqa: E501
    "qasper": "You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",  # noqa: E501
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：",  # noqa: E501
    "hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "2wikimqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "musique": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",  # noqa: E501
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",  # noqa: E501
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",  # noqa: E501
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",  # noqa: E501
    "vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",  # noqa: E501
    "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",  # noqa: E501
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",  # noqa: E501
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",  # noqa: E501
    "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",  # noqa: E501
    "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",  # noqa: E501
    "passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",  # noqa: E501
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}

#: THUDM/LongBench config/dataset2maxlen.json (LongBench v1 branch): answer tokens.
DATASET2MAXLEN: dict[str, int] = {
    "narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "multifieldqa_zh": 64,
    "hotpotqa": 32, "2wikimqa": 32, "musique": 32, "dureader": 128, "gov_report": 512,
    "qmsum": 512, "multi_news": 512, "vcsum": 512, "trec": 64, "triviaqa": 32, "samsum": 128,
    "lsht": 64, "passage_count": 32, "passage_retrieval_en": 32, "passage_retrieval_zh": 32,
    "lcc": 64, "repobench-p": 64,
}

#: Metrics that cut Chinese into words (``--zh-tokens`` applies to them).
ZH_WORD_METRICS = frozenset({"qa_f1_zh_score", "rouge_zh_score"})

#: LongBench-E's length buckets (eval.py's scorer_e, over the items' ``length`` field).
LENGTH_BUCKETS = ("0-4k", "4-8k", "8k+")


def split_template(template: str) -> tuple[str, str]:
    """(text before the context, text after it); a template without ``{context}`` is all
    after (the pages come first, as Glyph sends them)."""
    if "{context}" not in template:
        return "", "\n\n" + template
    head, tail = template.split("{context}", 1)
    return head, tail


def image_prompt(template: str, question: str) -> str:
    """The text that goes with the pages: the template with its ``{context}`` slot removed
    (blank line where it was), ``{input}`` filled in, stripped (as Glyph does)."""
    head, tail = split_template(template)
    head, tail = head.rstrip(), tail.lstrip()
    joined = f"{head}\n\n{tail}" if head and tail else head or tail
    return joined.replace("{input}", question).strip()


def length_bucket(length: Any) -> str | None:
    if not isinstance(length, (int, float)) or isinstance(length, bool):
        return None
    return LENGTH_BUCKETS[0] if length < 4000 else LENGTH_BUCKETS[1] if length < 8000 \
        else LENGTH_BUCKETS[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("longbench")
    g.add_argument("--data", required=True, metavar="FILE",
                   help="LongBench JSONL (input, context, answers, length, dataset, language, "
                        "all_classes, _id); several datasets may share one file")
    g.add_argument("--dataset", metavar="NAME",
                   help="dataset of lines without a 'dataset' field (default: the file's name "
                        "when it is one, e.g. hotpotqa.jsonl)")
    g.add_argument("--datasets", metavar="NAME,...",
                   help="only these datasets (default: every one in the file)")
    g.add_argument("--prompts", metavar="FILE",
                   help="JSON object dataset -> prompt template ({context}, {input}) replacing "
                        "LongBench's dataset2prompt.json (e.g. Glyph's dataset2vlmprompt.json)")
    g.add_argument("--zh-tokens", choices=ZH_TOKENS, default="jieba",
                   help="how Chinese answers are cut into words for F1 and ROUGE: jieba "
                        "(default: as LongBench does, so scores compare with the paper's; the "
                        "longbench extra) or char (per character, dictionary-free; compares "
                        "only with other per-character numbers)")


def _templates(path: str | None) -> dict[str, str]:
    if path is None:
        return dict(DATASET2PROMPT)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"--prompts {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise EvalError(f"--prompts {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise EvalError(f"--prompts {path}: expected an object of dataset -> template string")
    return {**DATASET2PROMPT, **data}


def _invalid(line: int, why: str, raw_id: Any = None, kind: str = "InputLineError") -> dict:
    return {"id": raw_id, "line": line, "status": INVALID,
            "error": {"type": kind, "message": f"line {line}: {why}"}}


def _entries(args: argparse.Namespace) -> Iterator[Item | BadLine]:
    path = Path(args.data)
    if not path.is_file():
        raise EvalError(f"--data {args.data}: no such file (a LongBench JSONL)")
    return iter_entries(path, "render")


def build_items(args: argparse.Namespace,
                s: EvalSettings) -> tuple[list[EvalItem], list[dict[str, Any]]]:
    """Items per dataset in file order (``--limit`` per dataset), and invalid-line records."""
    templates = _templates(args.prompts)
    wanted = {d.strip() for d in args.datasets.split(",")} if args.datasets else None
    if wanted and (bad := wanted - set(DATASET_METRICS)):
        raise EvalError(f"unknown LongBench dataset(s) {', '.join(sorted(bad))}; known: "
                        f"{', '.join(DATASET_METRICS)}")
    stem = Path(args.data).stem.removesuffix("_e")
    fallback = args.dataset or (stem if stem in DATASET_METRICS else None)
    by_dataset: dict[str, list[EvalItem]] = {}
    invalid: list[dict[str, Any]] = []
    for entry in _entries(args):
        if isinstance(entry, BadLine):
            invalid.append(_invalid(entry.line, entry.message.split(": ", 1)[-1], entry.id,
                                    entry.error_type))
            continue
        dataset = str(entry.extra.get("dataset") or fallback or "").removesuffix("_e")
        if dataset not in DATASET_METRICS:
            invalid.append(_invalid(entry.line, f"unknown LongBench dataset {dataset!r} (give "
                                    "a 'dataset' field or --dataset)", entry.id))
            continue
        if wanted is not None and dataset not in wanted:
            continue
        if not entry.answers:
            invalid.append(_invalid(entry.line, "no answers", entry.id))
            continue
        try:
            context = item_text(entry)
        except GlyphRenderError as exc:
            invalid.append(_invalid(entry.line, str(exc), entry.id, type(exc).__name__))
            continue
        template = templates.get(dataset, "{context}\n\n{input}")
        question = (entry.question or "").strip()
        head, tail = split_template(template)
        all_classes = entry.all_classes

        def grade(pred: str, answers: list[str] = entry.answers, ds: str = dataset,
                  classes: list[str] | None = all_classes) -> float:
            return score(pred, answers, ds, all_classes=classes, zh_tokens=args.zh_tokens)

        by_dataset.setdefault(dataset, []).append(EvalItem(
            id=str(entry.id), context=context, question=image_prompt(template, question),
            head=head.replace("{input}", question),
            tail=tail.replace("{input}", question).rstrip(),
            grade=grade, answers=list(entry.answers), max_tokens=DATASET2MAXLEN.get(dataset),
            config=entry.config,
            meta={"dataset": dataset, "metric": DATASET_METRICS[dataset], "line": entry.line,
                  **{k: entry.extra[k] for k in ("length", "language") if k in entry.extra}},
        ))
    items: list[EvalItem] = []
    for dataset in _order(by_dataset):
        group_items = by_dataset[dataset]
        if s.limit is not None and len(group_items) > s.limit:
            if s.seed is None:
                group_items = group_items[: s.limit]
            else:
                picked = sorted(random.Random(f"{s.seed}:{dataset}").sample(
                    range(len(group_items)), s.limit))
                group_items = [group_items[i] for i in picked]
        items += group_items
    return items, invalid


def _order(names: Any) -> list[str]:
    """LongBench's own dataset order (its prompt file's)."""
    rank = {name: i for i, name in enumerate(DATASET2PROMPT)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-dataset figures, their macro average (LongBench's "Avg") and the item mean."""
    datasets = group(records, lambda r: r.get("dataset"),
                     _order({r.get("dataset") for r in records if r.get("dataset")}))
    for name, d in datasets.items():
        d["metric"] = DATASET_METRICS.get(name)
        mine = [r for r in records if r.get("dataset") == name]
        buckets = group(mine, lambda r: length_bucket(r.get("length")), LENGTH_BUCKETS)
        if buckets:
            d["by_length"] = buckets
    scores = [d["score"] for d in datasets.values() if d["score"] is not None]
    return {"datasets": datasets,
            "average": round(sum(scores) / len(scores), 5) if scores else 0.0}


def table(results: dict[str, Any]) -> str:
    rows = [[name, d["metric"], d["n"], d["errors"], pct(d["score"]),
             ratio_text(d["compression_ratio"]), number(d["prompt_tokens_mean"]),
             number(d["text_tokens_mean"])] for name, d in results["datasets"].items()]
    c = results["compression"]
    rows.append(["**average**", "", results["items"], results["errors"],
                 pct(results["average"]), ratio_text(c["compression_ratio"]),
                 number(c["prompt_tokens_mean"]), number(c["text_tokens_mean"])])
    grid = markdown_table(["dataset", "metric", "n", "errors", "score %", "ratio",
                           "prompt tokens (mean)", "text tokens (mean)"], rows)
    return f"{summary_line(results)}\n\n{grid}"


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    s = settings_from_args(args)
    prepare_output(s)
    items, invalid = build_items(args, s)
    if any(DATASET_METRICS[i.meta["dataset"]] in ZH_WORD_METRICS for i in items):
        check_zh_tokens(args.zh_tokens)  # jieba missing: one line now, not after the answers
    if not items:
        raise EvalError(f"--data {args.data}: no usable items"
                        + (f" ({len(invalid)} invalid lines; the first: "
                           f"{invalid[0]['error']['message']})" if invalid else ""))
    result = run_items(items, s, task="longbench", invalid=invalid)
    results = base_results("longbench", result, s)
    results.update(aggregate(result.records))
    results["micro_score"] = results["score"]
    results["score"] = results["average"]  # the headline: LongBench's average over datasets
    results["settings"].update(data=str(args.data), prompts=args.prompts,
                               zh_tokens=args.zh_tokens)
    text = table(results)
    write_outputs(s, results, text)
    return results, text
