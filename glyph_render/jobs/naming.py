"""File and folder names derived from item ids.

Ids come from users' data and may be anything: ``../x``, ``/etc/passwd``, empty, 10 kB long,
unicode, NUL, ``CON``. A name keeps a readable prefix of the id (letters, digits, ``-`` and
``_`` only: no dots, so no ``..``, no hidden files, no extensions that make ``CON.txt``
reserved on Windows) and always ends with a hash of the raw id's JSON form, so distinct ids
never share a name (``"17"`` and ``17``, ``Doc`` and ``doc`` on a case-insensitive disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from ..errors import OutputError

__all__ = ["HASH_CHARS", "PREFIX_CHARS", "id_key", "item_dir", "safe_name"]

PREFIX_CHARS = 48  # readable part; at most 3 bytes each in UTF-8, far under NAME_MAX (255)
HASH_CHARS = 16  # 64 bits: a collision among 10^6 ids has odds of about 3e-8


def id_key(raw_id: Any) -> str:
    """Canonical text of an id (its JSON form): tells ``17`` from ``"17"``."""
    return json.dumps(raw_id, ensure_ascii=False, separators=(",", ":"))


def safe_name(raw_id: Any) -> str:
    """A file-system-safe, collision-free, deterministic name for ``raw_id``."""
    digest = hashlib.sha256(id_key(raw_id).encode("utf-8", "surrogatepass")).hexdigest()
    text = unicodedata.normalize("NFKC", raw_id if isinstance(raw_id, str) else id_key(raw_id))
    out: list[str] = []
    for ch in text:
        ok = ch.isascii() and (ch.isalnum() or ch in "-_") or (not ch.isascii() and ch.isalnum())
        c = ch if ok else "_"
        if c == "_" and out and out[-1] == "_":
            continue
        out.append(c)
        if len(out) >= PREFIX_CHARS:
            break
    prefix = "".join(out).strip("_-") or "item"
    return f"{prefix}-{digest[:HASH_CHARS]}"


def item_dir(root: str | os.PathLike[str], raw_id: Any) -> Path:
    """``root/<safe_name>``, checked to lie directly inside ``root`` (belt and braces)."""
    base = Path(root).resolve()
    path = base / safe_name(raw_id)
    if path.parent != base:  # cannot happen with safe_name; refuse rather than trust it
        raise OutputError(f"id {id_key(raw_id)[:80]} maps outside {base}")
    return path
