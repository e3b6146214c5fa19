"""``glyph-render eval mrcr``: OpenAI's multi-round co-reference test, conversation as pages.

Each entry (openai/mrcr's format) holds ``prompt`` (a JSON list of chat messages, as a string
or a list), ``answer`` and ``random_string_to_prepend``. As Glyph evaluates it, every message
but the last becomes a ``User: ...`` / ``Assistant: ...`` block of the rendered context, and the
last (the request, "Prepend XXXX to the 2nd poem about tapirs...") is sent as text. Grading is
openai/mrcr's (:func:`glyph_render.scoring.mrcr_score`): 0 without the prefix, else the
``SequenceMatcher`` ratio. Results are split by needle count and by context length, as OpenAI
reports them.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from ..scoring import mrcr_score
from ..text_tokens import get_tokenizer
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
    tokens_label,
    write_outputs,
)

__all__ = ["add_arguments", "build_items", "length_bin", "read_entries", "render_conversation",
           "run"]

ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mrcr")
    g.add_argument("--data", required=True, metavar="FILE",
                   help="MRCR entries: JSONL, or a JSON list (fields prompt, answer, "
                        "random_string_to_prepend; n_needles optional)")
    g.add_argument("--needles", metavar="N,...",
                   help="only entries with these n_needles (e.g. 2,4,8)")


def render_conversation(messages: list[dict[str, Any]]) -> str:
    """``User: ...`` / ``Assistant: ...`` blocks, one per message, in order."""
    return "\n".join(f"{ROLES.get(m['role'], str(m['role']).title())}: {m['content']}"
                     for m in messages)


def length_bin(tokens: int) -> str:
    """OpenAI's bins: (4K, 8K], (8K, 16K], ... by context tokens; "<=4K" below."""
    hi = 4096
    while hi < tokens:
        hi *= 2
    return f"<={tokens_label(hi)}" if hi == 4096 else f"{tokens_label(hi // 2)}-{tokens_label(hi)}"


def read_entries(path: str) -> list[tuple[int, Any]]:
    """(line or index, parsed object) pairs from a JSONL file or a JSON list."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"--data {path}: no such file (MRCR JSONL or JSON)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"--data {path}: cannot read ({exc})") from None
    head = text.lstrip()[:1]
    if head == "[":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EvalError(f"--data {path}: not JSON ({exc})") from None
        return list(enumerate(data, 1))
    out: list[tuple[int, Any]] = []
    for number_, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((number_, json.loads(line)))
        except ValueError as exc:
            out.append((number_, ValueError(f"invalid JSON ({exc})")))
    return out


def _parse(obj: Any) -> tuple[list[dict[str, Any]], str, str]:
    """(messages, answer, prefix); ValueError says what is wrong with the entry."""
    if isinstance(obj, Exception):
        raise obj
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    messages = obj.get("prompt")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError as exc:
            raise ValueError(f"'prompt' is not a JSON list of messages ({exc})") from None
    if not isinstance(messages, list) or len(messages) < 2 or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("'prompt' must be a list of at least two {role, content} messages")
    if messages[-1]["role"] != "user":
        raise ValueError("the last message must be the user's request")
    answer, prefix = obj.get("answer"), obj.get("random_string_to_prepend")
    if not isinstance(answer, str) or not isinstance(prefix, str):
        raise ValueError("'answer' and 'random_string_to_prepend' must be strings")
    return messages, answer, prefix


def build_items(args: argparse.Namespace,
                s: EvalSettings) -> tuple[list[EvalItem], list[dict[str, Any]]]:
    wanted = None
    if args.needles:
        try:
            wanted = {int(n) for n in args.needles.split(",")}
        except ValueError:
            raise EvalError(f"--needles {args.needles!r}: expected numbers like 2,4,8") from None
    tok = get_tokenizer(args.tokenizer or "cl100k_base")
    items: list[EvalItem] = []
    invalid: list[dict[str, Any]] = []
    for line, obj in read_entries(args.data):
        raw_id = obj.get("_id", obj.get("id")) if isinstance(obj, dict) else None
        try:
            messages, answer, prefix = _parse(obj)
        except ValueError as exc:
            invalid.append({"id": raw_id, "line": line, "status": INVALID,
                            "error": {"type": "InputLineError",
                                      "message": f"line {line}: {exc}"}})
            continue
        needles = obj.get("n_needles")
        if wanted is not None and needles not in wanted:
            continue
        context = render_conversation(messages[:-1])
        tokens = tok.count(context)
        items.append(EvalItem(
            id=str(raw_id if raw_id is not None else f"line-{line}"), context=context,
            question=messages[-1]["content"],
            grade=lambda pred, a=answer, p=prefix: mrcr_score(pred, a, p),
            answers=[answer],
            meta={"line": line, "n_needles": needles, "context_tokens": tokens,
                  "length_bin": length_bin(tokens), "messages": len(messages),
                  "desired_msg_index": obj.get("desired_msg_index"),
                  "random_string_to_prepend": prefix},
        ))
    if s.limit is not None and len(items) > s.limit:
        if s.seed is None:
            items = items[: s.limit]
        else:
            picked = sorted(random.Random(s.seed).sample(range(len(items)), s.limit))
            items = [items[i] for i in picked]
    return items, invalid


def _bin_order(records: list[dict[str, Any]]) -> list[str]:
    """Length bins shortest first (bins are disjoint ranges: order by their smallest item)."""
    low: dict[str, int] = {}
    for r in records:
        if r.get("length_bin"):
            tokens = r.get("context_tokens") or 0
            low[r["length_bin"]] = min(low.get(r["length_bin"], tokens), tokens)
    return sorted(low, key=low.__getitem__)


def table(results: dict[str, Any]) -> str:
    def rows(groups: dict[str, dict[str, Any]]) -> list[list[Any]]:
        return [[k, d["n"], d["errors"], pct(d["score"]), ratio_text(d["compression_ratio"]),
                 number(d["prompt_tokens_mean"])] for k, d in groups.items()]

    head = ["n", "errors", "score %", "ratio", "prompt tokens (mean)"]
    c = results["compression"]
    total = [["**all**", results["items"], results["errors"], pct(results["score"]),
              ratio_text(c["compression_ratio"]), number(c["prompt_tokens_mean"])]]
    return (f"{summary_line(results)}\n\n"
            f"{markdown_table(['needles', *head], rows(results['by_needles']) + total)}\n\n"
            f"{markdown_table(['context tokens', *head], rows(results['by_length']) + total)}")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    s = settings_from_args(args)
    prepare_output(s)
    items, invalid = build_items(args, s)
    if not items:
        raise EvalError(f"--data {args.data}: no usable entries"
                        + (f" ({len(invalid)} invalid; the first: "
                           f"{invalid[0]['error']['message']})" if invalid else ""))
    result = run_items(items, s, task="mrcr", invalid=invalid)
    results = base_results("mrcr", result, s)
    valid = [r for r in result.records if r.get("status") != INVALID]
    results["by_needles"] = group(valid, lambda r: r.get("n_needles"))
    results["by_length"] = group(valid, lambda r: r.get("length_bin"), _bin_order(valid))
    results["settings"].update(data=str(args.data), needles=args.needles)
    text = table(results)
    write_outputs(s, results, text)
    return results, text
