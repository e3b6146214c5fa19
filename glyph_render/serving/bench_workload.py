"""Workloads for ``bench serve``: documents of a set length and when each request arrives.

Documents are slices of a corpus folder's real texts (default: ``$GLYPH_CORPUS``, else the
corpus shipped in the package; English files), or generated words; each request gets its own
document, so no request shares a prefix with another and a prefix cache cannot flatter either
arm. Arrivals follow a Poisson process at ``--request-rate`` (exponential gaps), as
``vllm bench serve`` and ``sglang.bench_serving`` schedule them; ``inf`` sends everything at
once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from ..document import read_document
from ..errors import InputError

__all__ = ["DEFAULT_GLOB", "Document", "arrivals", "documents", "load_corpus"]

DEFAULT_GLOB = "en_*"
_SKIP = {"README.md", "MANIFEST.tsv"}
_SYLLABLES = ("ka", "lo", "mi", "ten", "ra", "vo", "sul", "de", "pan", "ri", "bo", "el", "nu",
              "ta", "gor", "in", "sa", "me", "ul", "fe", "dri", "on", "ko", "la", "ver", "is")


@dataclass(frozen=True)
class Document:
    """One benchmark document and where it came from (``file@offset`` or ``generated``)."""

    text: str
    source: str


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
