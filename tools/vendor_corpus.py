"""Rebuild ``glyph_render/data/corpus/``, the small haystack corpus shipped in the package,
from the full benchmark corpus it excerpts (a folder with its own ``MANIFEST.tsv``).

    python tools/vendor_corpus.py /path/to/full/corpus

Each excerpt is a span of one source file, cut by the rules in ``EXCERPTS`` below and kept
byte for byte (BOM, CRLF, odd characters as found); the Project Gutenberg header, credits
and licence are left out, so what ships is the public-domain text alone. The source's sha256
is checked against its MANIFEST row before anything is cut, and the new ``MANIFEST.tsv``
records for every excerpt the character spans taken (offsets into the source read with
``newline=""``), the source and its licence. ``README.md`` and ``LICENSES/`` are kept by hand.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "glyph_render" / "data" / "corpus"
COLUMNS = ["file", "bytes", "chars", "language/script", "kind", "license", "source", "sha256",
           "notes"]
PG = "the Project Gutenberg header, credits and licence are not included"


@dataclass(frozen=True)
class Excerpt:
    """``start``: the line where the excerpt begins (searched after the source's recorded
    header), or None for the file's start; then either ``end`` (the excerpt stops before the
    line holding it) or ``size`` (it stops at the last blank line, or line end, within that
    many bytes).
    ``tail``: a line from which the rest of the file is appended (a colophon)."""

    name: str
    start: str | None = None
    end: str | None = None
    size: int | None = None
    tail: str | None = None
    license: str | None = None  # replaces the source's licence column


EXCERPTS = [
    Excerpt("en_alice_in_wonderland.txt", "ALICE\u2019S ADVENTURES IN WONDERLAND", size=64_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #11); {PG}"),
    Excerpt("en_frankenstein.txt", "Frankenstein;", size=32_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #84); {PG}"),
    Excerpt("en_pride_and_prejudice.txt", "PRIDE AND PREJUDICE", size=40_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #1342); {PG}"),
    Excerpt("en_adventures_of_sherlock_holmes.txt", "THE ADVENTURES OF SHERLOCK HOLMES",
            size=32_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #1661); {PG}"),
    Excerpt("en_art_of_war_giles.txt", "I.  LAYING PLANS", size=20_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #132); {PG}"),
    Excerpt("en_war_of_the_worlds.txt", "by H. G. Wells", size=20_000,
            license=f"Public domain in the USA (Project Gutenberg eBook #36); {PG}"),
    Excerpt("zh_hongloumeng.txt", end="\u7b2c\u4e09\u56de"),  # chapters 1-2 (up to 第三回)
    Excerpt("zh_luxun_zhaohua_xishi.txt", "\u8303\u611b\u8fb2",  # 范愛農 and the afterword
            end="End of the Project Gutenberg",
            license="Public domain in the USA (Project Gutenberg eBook #25271; repo "
                    "LICENSE.txt: confirmed public domain in the US); the trailing Project "
                    "Gutenberg line is not included"),
    Excerpt("zh_hans_rust_book_ch02_guessing_game.md", end="#### _Cargo.lock_"),
    Excerpt("ja_natsume_kokoro.txt", end="\uff3b\uff03\uff15\u5b57\u4e0b\u3052\uff3d\u4e5d",
            tail="\u5e95\u672c\uff1a"),  # sections 1-8 of part 1, then the colophon (底本：)
    Excerpt("ru_pushkin_kapitanskaya_dochka.txt", size=36_000),
    Excerpt("code_click_core.py", end="class Command:"),  # up to the Context class's end
    Excerpt("code_stb_image.h", size=24_000),
    Excerpt("docs_ytdlp_README.md", size=20_000),
    Excerpt("docs_pep0484_type_hints.rst", size=12_000),
    Excerpt("mixed_antd_changelog_zh-CN.md", end="## 6.5.2"),  # 6.6.1 to 6.5.3
]

_HEADER = re.compile(r"header[^=;]*= chars \[(\d+),(\d+)\)")
_BLANK = re.compile(r"\r?\n[ \t]*\r?\n")


def _line_start(text: str, needle: str, after: int) -> int:
    i = text.find(needle, after)
    if i < 0:
        sys.exit(f"{needle!r} not found after char {after}")
    return text.rfind("\n", 0, i) + 1


def spans(ex: Excerpt, text: str, notes: str) -> list[tuple[int, int]]:
    """The character spans of the source that make up the excerpt, in order."""
    m = _HEADER.search(notes)
    header_end = int(m.group(2)) if m else 0
    start = _line_start(text, ex.start, header_end) if ex.start else 0
    if ex.end:
        end = _line_start(text, ex.end, start)
    else:
        assert ex.size
        limit = start + len(text[start:].encode()[:ex.size].decode("utf-8", "ignore"))
        # the last blank line within the size; where paragraphs are single lines (no blank
        # line near the limit), the last line end
        ends = [b.start() for b in _BLANK.finditer(text, start, limit)]
        end = ends[-1] if ends and ends[-1] - start > 0.9 * (limit - start) else \
            text.rindex("\n", start, limit - 1)
        end = text.index("\n", end) + 1  # keep the newline that ends the last line
    out = [(start, end)]
    if ex.tail:
        out.append((_line_start(text, ex.tail, end), len(text)))
    return out


def build(source: Path, out: Path) -> list[dict[str, str]]:
    with (source / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}
    manifest = []
    for ex in EXCERPTS:
        row = rows[ex.name]
        data = (source / ex.name).read_bytes()
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            sys.exit(f"{ex.name}: sha256 differs from its MANIFEST row")
        text = data.decode("utf-8")
        parts = spans(ex, text, row["notes"])
        bom = text.startswith("\ufeff") and parts[0][0] > 0
        body = ("\ufeff" if bom else "") + "".join(text[a:b] for a, b in parts)
        if "Gutenberg" in body:
            sys.exit(f"{ex.name}: the excerpt still names Project Gutenberg")
        blob = body.encode("utf-8")
        (out / ex.name).write_bytes(blob)
        manifest.append(_row(ex, row, parts, body, blob, bom))
    with (out / "MANIFEST.tsv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(manifest)
    return manifest


def _row(ex: Excerpt, src: dict[str, str], parts: list[tuple[int, int]], body: str,
         blob: bytes, bom: bool) -> dict[str, str]:
    taken = " + ".join(f"[{a},{b})" for a, b in parts)
    notes = [f"excerpt: chars {taken} of the source file (sha256 {src['sha256'][:16]}...), "
             "bytes unchanged"]
    if bom:
        notes.append("starts with the source's UTF-8 BOM (U+FEFF counted as char 0)")
    lines = body.count("\n")
    if lines and body.count("\r\n") == lines:
        notes.append(f"CRLF line endings ({lines} of {lines} lines)")
    if ex.tail:  # the kept front matter and colophon, as niah.load_text reads them
        m = _HEADER.search(src["notes"])
        if m and parts[0][0] == 0:
            notes.append(f"Aozora header (title, author, notation legend) = chars "
                         f"[0,{m.group(2)})")
        tail_at = len(body) - (parts[-1][1] - parts[-1][0])
        notes.append(f"colophon from char {tail_at} (line starting {ex.tail})")
    pua = sum(1 for ch in body if 0xE000 <= ord(ch) <= 0xF8FF)
    if pua:
        notes.append(f"contains {pua} Private Use Area chars, as found; no standard glyph")
    return {
        "file": ex.name, "bytes": str(len(blob)), "chars": str(len(body)),
        "language/script": src["language/script"], "kind": src["kind"],
        "license": ex.license or src["license"], "source": src["source"],
        "sha256": hashlib.sha256(blob).hexdigest(), "notes": "; ".join(notes),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="the full corpus folder (with MANIFEST.tsv)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for row in build(args.source, args.out):
        total += int(row["bytes"])
        print(f"{row['file']:45} {int(row['bytes']):>8,} bytes {int(row['chars']):>8,} chars")
    print(f"{'total':45} {total:>8,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
