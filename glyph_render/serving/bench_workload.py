"""Workloads for ``bench serve``: documents of a set length and when each request arrives.

Documents are slices of a corpus folder's real texts (default: ``$GLYPH_CORPUS``, else the
corpus shipped in the package; English files), or generated words; each request gets its own
document, so no request shares a prefix with another and a prefix cache cannot flatter either
arm. A length in tokens (``--input-len``) is the longest slice of a corpus text that the
client's tokenizer counts at most that many tokens. A user's JSONL (``--dataset``) replaces
the corpus: one document per line (schema in :func:`load_dataset`). Arrivals follow a
Poisson process at ``--request-rate`` (exponential gaps), as ``vllm bench serve`` and
``sglang.bench_serving`` schedule them; ``inf`` sends everything at once.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..document import read_document
from ..errors import InputError
from ..text_tokens import TextTokenizer

__all__ = ["DEFAULT_GLOB", "Document", "arrivals", "documents", "fit_tokens", "load_corpus",
           "load_dataset", "token_documents"]

DEFAULT_GLOB = "en_*"
_SKIP = {"README.md", "MANIFEST.tsv"}
_SYLLABLES = ("ka", "lo", "mi", "ten", "ra", "vo", "sul", "de", "pan", "ri", "bo", "el", "nu",
              "ta", "gor", "in", "sa", "me", "ul", "fe", "dri", "on", "ko", "la", "ver", "is")


@dataclass(frozen=True)
class Document:
    """One benchmark document and where it came from (``file@offset`` or ``generated``)."""

    text: str
    source: str
    question: str | None = None  # a dataset line's own question (else --question)
    output_len: int | None = None  # a dataset line's own max_tokens (else --output-len)


def load_corpus(folder: str | Path, pattern: str = DEFAULT_GLOB) -> list[tuple[str, str]]:
    """``(name, text)`` of the folder's files matching ``pattern``, in name order, with CRLF
    line ends made LF (a text arm should not pay a token for every ``\r``)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"corpus folder {str(root)!r} does not exist")
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.name not in _SKIP)
    if not files:
        raise InputError(f"no files matching {pattern!r} in corpus folder {str(root)!r}")
    return [(p.name, read_document(p, fmt="text").lstrip("\ufeff").replace("\r\n", "\n"))
            for p in files]


def documents(chars: int, count: int, rng: random.Random,
              corpus: list[tuple[str, str]] | None = None) -> list[Document]:
    """``count`` documents of exactly ``chars`` characters (slices at random offsets, each
    starting at a line start where one is near, or generated text)."""
    if chars < 1:
        raise InputError(f"document length must be >= 1 character, got {chars}")
    if not corpus:
        return [Document(_generated(chars, rng), "generated") for _ in range(count)]
    long_enough = [(n, t) for n, t in corpus if len(t) >= chars]
    if not long_enough:  # shorter than the request: all files end to end, as one text
        long_enough = [("+".join(n for n, _ in corpus), "\n\n".join(t for _, t in corpus))]
        if len(long_enough[0][1]) < chars:
            raise InputError(f"the corpus holds {len(long_enough[0][1]):,} characters, "
                             f"fewer than one {chars:,}-character document")
    out = []
    for _ in range(count):
        name, text = rng.choice(long_enough)
        start = rng.randint(0, len(text) - chars)
        line = text.find("\n", start, start + 200)
        if 0 <= line < len(text) - chars:
            start = line + 1
        out.append(Document(text[start:start + chars], f"{name}@{start}"))
    return out


def fit_tokens(text: str, tokens: int, tokenizer: TextTokenizer) -> str:
    """The longest prefix of ``text`` that ``tokenizer`` counts at most ``tokens`` tokens."""
    if tokenizer.count(text) <= tokens:
        return text
    lo, hi = 0, len(text)  # count(text[:lo]) <= tokens < count(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tokenizer.count(text[:mid]) <= tokens:
            lo = mid
        else:
            hi = mid
    return text[:lo]


#: Characters a token spans at most in the texts sliced for a token length (English ~4.5,
#: CJK ~1): the slice cut to ``tokens`` is taken this many times longer.
_CHARS_PER_TOKEN_MAX = 8


def token_documents(tokens: int, count: int, rng: random.Random, tokenizer: TextTokenizer,
                    corpus: list[tuple[str, str]] | None = None) -> list[Document]:
    """``count`` documents of at most ``tokens`` tokens each (as many as the text allows):
    slices as :func:`documents` cuts them, trimmed with :func:`fit_tokens`."""
    if tokens < 1:
        raise InputError(f"document length must be >= 1 token, got {tokens}")
    chars = tokens * _CHARS_PER_TOKEN_MAX
    if corpus:
        chars = min(chars, max(sum(len(t) for _, t in corpus) + 2 * (len(corpus) - 1), 1))
    return [replace(d, text=fit_tokens(d.text, tokens, tokenizer))
            for d in documents(chars, count, rng, corpus)]


def load_dataset(path: str | Path) -> list[Document]:
    """A user's benchmark documents: JSON Lines, one object per line, UTF-8.

    ``document`` (or ``text``, ``context``): the document, a non-empty string (required);
    ``question`` (or ``prompt``): asked after it (default ``--question``); ``output_len`` (or
    ``max_tokens``): the reply's token limit (default ``--output-len``); ``id``: named in the
    results (default ``file:line``). Blank lines are skipped; anything else is an error
    naming the line.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"--dataset {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--dataset {path}: cannot be read as UTF-8 ({exc})") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--dataset {path}: line {number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{where}: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        text = _field(obj, ("document", "text", "context"), str, where)
        if text is None or not text.strip():
            raise InputError(f"{where}: needs a non-empty 'document' (or 'text', 'context')")
        question = _field(obj, ("question", "prompt"), str, where)
        output_len = _field(obj, ("output_len", "max_tokens"), int, where)
        if output_len is not None and output_len < 1:
            raise InputError(f"{where}: 'output_len' must be >= 1, got {output_len}")
        source = str(obj["id"]) if obj.get("id") is not None else f"{p.name}:{number}"
        out.append(Document(text, source, question, output_len))
    if not out:
        raise InputError(f"--dataset {path}: no documents (one JSON object per line)")
    return out


def _field(obj: dict[str, Any], names: tuple[str, ...], kind: type, where: str) -> Any:
    """The first of ``names`` present, checked to be a ``kind``."""
    for name in names:
        if name in obj and obj[name] is not None:
            value = obj[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InputError(f"{where}: {name!r} must be a {kind.__name__}, got "
                                 f"{type(value).__name__}")
            return value
    return None


def _generated(chars: int, rng: random.Random) -> str:
    """Pronounceable nonsense in sentences and paragraphs (like a random-token dataset, but
    text a renderer and a tokenizer treat as prose)."""
    parts: list[str] = []
    size = 0
    while size < chars:
        words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
                 for _ in range(rng.randint(6, 18))]
        sentence = " ".join(words).capitalize() + "."
        sep = "\n\n" if rng.random() < 0.2 else " "
        parts.append(sentence + sep)
        size += len(sentence) + len(sep)
    return "".join(parts)[:chars]


def arrivals(count: int, rate: float, rng: random.Random) -> list[float]:
    """Send times in seconds from the start: Poisson at ``rate`` per second, 0s for ``inf``."""
    if not rate > 0:
        raise InputError(f"request rate must be > 0 (or inf), got {rate}")
    if math.isinf(rate):
        return [0.0] * count
    out, t = [], 0.0
    for _ in range(count):
        out.append(t)
        t += rng.expovariate(rate)
    return out
