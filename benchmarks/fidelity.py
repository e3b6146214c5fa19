"""Layout fidelity: glyph-render's line breaks and page counts against the reportlab reference.

Why: glyph-render must lay text out the way Glyph's reportlab renderer does (the VLM was trained
on those pages), so this compares, on LEFT-aligned prose from the benchmark corpus, where each
side ends its lines and how many pages it needs.

How a break is located, identically on both sides. The text both renderers get is mapped to an
*ink stream*: Glyph's clean-up is applied (U+00AD and U+200B deleted, runs of 2+ spaces made
non-breaking), and every character reportlab does not treat as whitespace is ink, including the
non-breaking spaces of those runs. A line break's position is the number of ink characters before
it. Lines only break between words (reportlab's whitespace-separated words, where a run of 2+
spaces glues its neighbours into one word), so this equals "after word #i", printed as such;
only when a word wider than the line is split by character does a break fall inside a word, and
then the character offset within it is compared too. Reference lines come from the paragraphs
reportlab actually drew (see ``reference_glyph.reference_layout``); ours from ``Line.end``
mapped through the same stream.

Forced breaks (a source newline: a ``<br/>`` or the end of one of Glyph's 30-line paragraphs)
sit at the same position on both sides by construction, so the headline metric (a) counts only
*wrap* breaks: reference line ends that are not at a source newline (nor at the end of the text).
Share = wrap breaks of the reference that ours also has; "extra" counts ours that the reference
lacks. The variant "all" compares every distinct line-end position, newline breaks included
(blank lines collapse onto their newline position, so blank-line counts do not enter it).
(b) page counts, ours vs reference (pdfinfo); also the share of reference page starts (after
page 1) that ours starts at the same ink position.

Targets: (a) >= 99.5 %, (b) within 2 %, per file and overall; ``--check`` exits 1 on a miss.
Usage: ``python benchmarks/fidelity.py [--chars 200000] [--files en_frankenstein.txt,...]``.
"""

from __future__ import annotations

import argparse
import bisect
import fnmatch
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import reference_glyph as ref  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus")
DEFAULT_FILES = (
    "en_adventures_of_sherlock_holmes.txt",
    "en_alice_in_wonderland.txt",
    "en_art_of_war_giles.txt",
    "en_frankenstein.txt",
    "en_pride_and_prejudice.txt",
    "en_war_of_the_worlds.txt",
    "ru_pushkin_kapitanskaya_dochka.txt",
)
TARGET_SHARE = 0.995
TARGET_PAGES = 0.02

_WS_CODES = np.array(sorted(ord(c) for c in ref.RL_WHITESPACE), dtype=np.uint32)


# --------------------------------------------------------------------------- corpus


def manifest_body_span(corpus: Path, name: str) -> tuple[int, int | None]:
    """(start, end) of the body per MANIFEST.tsv notes: after the Project Gutenberg header, before
    its footer; the whole file when the notes name neither."""
    start, end = 0, None
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.exists():
        return start, end
    for row in manifest.read_text(encoding="utf-8").splitlines():
        cols = row.split("\t")
        if cols and cols[0] == name:
            notes = cols[-1]
            if m := re.search(r"PG header = chars \[0,(\d+)\)", notes):
                start = int(m.group(1))
            if m := re.search(r"PG footer/license = chars \[(\d+),end\)", notes):
                end = int(m.group(1))
    return start, end


def load_sample(corpus: Path, name: str, chars: int | None, keep_crlf: bool = False) -> str:
    """The first ``chars`` characters of a corpus file's body, CRLF -> LF unless ``keep_crlf``.

    Offsets from the MANIFEST index the raw file read with ``newline=""``.
    """
    with open(corpus / name, encoding="utf-8", newline="") as f:
        raw = f.read()
    start, end = manifest_body_span(corpus, name)
    body = raw[start:end].lstrip("\r\n")
    if not keep_crlf:
        body = body.replace("\r\n", "\n")
    return body[:chars] if chars else body


def reflow(text: str) -> str:
    """Join hard-wrapped lines: a lone newline becomes a space, blank lines stay.

    Why: Project Gutenberg texts are wrapped at ~70 characters, which fit a 563 pt line at 9 pt,
    so as given almost every break is a forced one; reflowed paragraphs exercise the wrapping.
    """
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)


# --------------------------------------------------------------------------- ink stream


class InkIndex:
    """Source offset -> ink position (count of ink characters before it), plus word bounds."""

    def __init__(self, text: str):
        keep = np.array([ch not in "\xad\u200b" for ch in text], dtype=bool)
        # Glyph's clean-up; its &nbsp; runs are ink (U+00A0 is no reportlab whitespace)
        proc = re.sub(r" {2,}", lambda m: "\xa0" * len(m.group()), ref.preprocess_text(text))
        codes = np.frombuffer(proc.encode("utf-32-le"), dtype=np.uint32)
        ink = ~np.isin(codes, _WS_CODES)
        flags = np.zeros(len(text), dtype=np.int64)
        flags[np.flatnonzero(keep)] = ink
        self.cum = np.concatenate([[0], np.cumsum(flags)])
        self.total = int(self.cum[-1])
        self.stream = "".join(ch for ch, k in zip(proc, ink, strict=True) if k)
        pcum = np.cumsum(ink)
        ends = ink & ~np.concatenate([ink[1:], [False]])
        self.word_ends = pcum[ends].tolist()  # ink position just after each word
        self.newlines = {int(self.cum[m.start()]) for m in re.finditer("\n", text)}

    def at(self, offset: int) -> int:
        return int(self.cum[offset])

    def word_of(self, pos: int) -> tuple[int, int]:
        """(number of whole words before ``pos``, characters into the next word)."""
        k = bisect.bisect_right(self.word_ends, pos)
        prev_end = self.word_ends[k - 1] if k else 0
        return k, pos - prev_end if pos != prev_end else 0

    def word_text(self, k: int) -> str:
        """The k-th word (0-based), from the ink stream."""
        if not 0 <= k < len(self.word_ends):
            return ""
        a = self.word_ends[k - 1] if k else 0
        return self.stream[a : self.word_ends[k]]


# --------------------------------------------------------------------------- both sides


@dataclass
class SideLine:
    """A non-blank drawn line reduced to what both renderers share."""

    start: int  # ink position of its first character
    end: int  # ink position after its last character
    page: int  # 1-based
    text: str  # for display
    width: float  # the renderer's own idea of its width, pt
    max_width: float


def reference_side(text: str, cfg: dict[str, Any]) -> tuple[list[SideLine], list[int], int, str]:
    """(non-blank lines, page start positions, page count, ink stream) from reportlab."""
    lay = ref.reference_layout(text, cfg)
    lines: list[SideLine] = []
    starts: list[int] = []
    pos = 0
    ink = []
    for page_no, page in enumerate(lay.pages, 1):
        if page_no > 1:
            starts.append(pos)
        for ln in page:
            t = ln.ink
            if t:
                ink.append(t)
                lines.append(
                    SideLine(pos, pos + len(t), page_no, " ".join(ln.words), ln.used, ln.max_width)
                )
                pos += len(t)
    return lines, starts, len(lay.pages), "".join(ink)


def our_side(
    text: str, cfg: dict[str, Any], idx: InkIndex
) -> tuple[list[SideLine], list[int], int]:
    """(non-blank lines, page start positions, page count) from glyph_render.layout."""
    from glyph_render import RenderConfig, layout

    rc = RenderConfig.from_dict(dict(cfg))
    lines: list[SideLine] = []
    starts: list[int] = []
    n_pages = 0
    max_w = ref.frame_geometry(cfg)["avail_width"]
    for page in layout(text, rc):
        n_pages += 1
        first = page.lines[0].start if page.lines else page.start
        if n_pages > 1:
            starts.append(idx.at(first))
        for ln in page.lines:
            a, b = idx.at(ln.start), idx.at(ln.end)
            if b > a:
                lines.append(SideLine(a, b, page.number, text[ln.start : ln.end], ln.width, max_w))
    return lines, starts, n_pages


def rl_line_width(words: Sequence[str], cfg: dict[str, Any]) -> tuple[float, float]:
    """(reportlab's width of ``words`` set with single spaces, its fit limit incl. shrinkage)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    name = ref.register_font(cfg["font-path"])
    size = float(cfg["font-size"])
    space = stringWidth(" ", name, size)
    width = stringWidth(" ".join(words), name, size)
    limit = ref.frame_geometry(cfg)["avail_width"] + 0.05 * space * max(len(words) - 1, 0)
    return width, limit


def _rl_words(s: str) -> list[str]:
    """Source slice -> reportlab's words (2+ space runs non-breaking)."""
    s = ref.preprocess_text(s)
    s = re.sub(r" {2,}", lambda m: "\xa0" * len(m.group()), s)
    return [w for w in re.split("[" + re.escape("".join(ref.RL_WHITESPACE)) + "]+", s) if w]


# --------------------------------------------------------------------------- compare


@dataclass
class FileResult:
    name: str
    chars: int
    ref_lines: int
    our_lines: int
    ref_wrap: int
    our_wrap: int
    matched_wrap: int
    ref_all: int
    matched_all: int
    ref_pages: int
    our_pages: int
    ref_pages_noquirk: int
    ref_page_starts: int
    matched_page_starts: int
    ref_s: float
    our_s: float
    ink_consistent: bool
    mismatches: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def share_wrap(self) -> float:
        return self.matched_wrap / self.ref_wrap if self.ref_wrap else 1.0

    @property
    def share_all(self) -> float:
        return self.matched_all / self.ref_all if self.ref_all else 1.0

    @property
    def page_diff(self) -> float:
        return (self.our_pages - self.ref_pages) / self.ref_pages if self.ref_pages else 0.0

    @property
    def page_diff_noquirk(self) -> float:
        n = self.ref_pages_noquirk
        return (self.our_pages - n) / n if n else 0.0

    @property
    def share_page_starts(self) -> float:
        n = self.ref_page_starts
        return self.matched_page_starts / n if n else 1.0


def _covering(lines: list[SideLine], ends: list[int], pos: int) -> int:
    """Index of the line that ends at or runs across ``pos``."""
    return min(bisect.bisect_left(ends, pos), len(lines) - 1)


def _describe(
    kind: str,
    pos: int,
    idx: InkIndex,
    rlines: list[SideLine],
    olines: list[SideLine],
    cfg: dict[str, Any],
) -> str:
    rends = [ln.end for ln in rlines]
    oends = [ln.end for ln in olines]
    k, into = idx.word_of(pos)
    word = idx.word_text(k - 1) if not into else idx.word_text(k)
    where = f"after word #{k} {word!r}" if not into else f"{into} chars into word #{k + 1} {word!r}"
    out = [f"  [{kind}] break {where} (ink pos {pos})"]
    ri, oi = _covering(rlines, rends, pos), _covering(olines, oends, pos)
    for label, lines, i in (("ref ", rlines, ri), ("ours", olines, oi)):
        for j in range(i, min(i + 2, len(lines))):
            ln = lines[j]
            words = _rl_words(ln.text) if label == "ours" else ln.text.split(" ")
            rw, lim = rl_line_width(words, cfg)
            own = f"own {ln.width:.2f}/{ln.max_width:.2f}, " if label == "ours" else ""
            shown = ln.text.replace("\xa0", "·").replace("\n", "⏎")
            out.append(f"    {label} p{ln.page:<3} {own}rl {rw:.2f} (limit {lim:.2f}) | {shown}")
            if j == i and label == "ref " and kind == "ref-only" and j + 1 < len(lines):
                nxt = _rl_words(lines[j + 1].text)[:1]
                if nxt:
                    rw2, lim2 = rl_line_width(words + nxt, cfg)
                    out.append(
                        f"         + next word {nxt[0]!r} would make rl {rw2:.2f}"
                        f" > limit {lim2:.2f}"
                    )
    return "\n".join(out)


def compare_text(name: str, text: str, cfg: dict[str, Any], show: int = 5) -> FileResult:
    """Measure one text on both sides."""
    idx = InkIndex(text)
    t0 = time.perf_counter()
    rlines, rstarts, rpages, rink = reference_side(text, cfg)
    t1 = time.perf_counter()
    res = FileResult(
        name,
        len(text),
        len(rlines),
        0,
        0,
        0,
        0,
        0,
        0,
        rpages,
        0,
        len(ref.paginate(ref.wrapped_lines(text, cfg),
                         int(ref.frame_geometry(cfg)["lines_per_page"]),
                         br_split_quirk=False)),
        len(rstarts),
        0,
        t1 - t0,
        0.0,
        rink == idx.stream,
    )
    final = idx.total
    rwrap = {ln.end for ln in rlines if ln.end not in idx.newlines and ln.end != final}
    rall = {ln.end for ln in rlines}
    res.ref_wrap, res.ref_all = len(rwrap), len(rall)
    try:
        t2 = time.perf_counter()
        olines, ostarts, opages = our_side(text, cfg, idx)
        res.our_s = time.perf_counter() - t2
    except ImportError as e:  # our layout not importable (yet)
        res.error = f"glyph_render.layout unavailable: {e}"
        return res
    except Exception as e:  # a layout bug must not hide the other files' numbers
        res.error = f"glyph_render.layout failed: {e!r}"
        return res
    owrap = {ln.end for ln in olines if ln.end not in idx.newlines and ln.end != final}
    oall = {ln.end for ln in olines}
    res.our_lines, res.our_wrap, res.our_pages = len(olines), len(owrap), opages
    res.matched_wrap = len(rwrap & owrap)
    res.matched_all = len(rall & oall)
    res.matched_page_starts = len(set(rstarts) & set(ostarts))
    bad = sorted(
        [(p, "ref-only") for p in rwrap - owrap] + [(p, "ours-only") for p in owrap - rwrap]
    )
    res.mismatches = [_describe(k, p, idx, rlines, olines, cfg) for p, k in bad[:show]]
    return res


# --------------------------------------------------------------------------- report


def _row(r: FileResult) -> str:
    def opt(value: object, fmt: str = "") -> str:
        return format(value, fmt) if not r.error else "-"

    return (
        f"{r.name[-38:]:38} {r.chars:>8} {r.ref_lines:>6} {opt(r.our_lines):>6} "
        f"{r.ref_wrap:>6} {opt(r.matched_wrap):>6} {opt(r.share_wrap, '.2%'):>8} "
        f"{opt(r.our_wrap - r.matched_wrap):>5} {opt(r.share_all, '.2%'):>8} "
        f"{r.ref_pages:>5} {r.ref_pages_noquirk:>5} {opt(r.our_pages):>5} "
        f"{opt(r.page_diff, '+.1%'):>7} {opt(r.page_diff_noquirk, '+.1%'):>7} "
        f"{opt(r.share_page_starts, '.0%'):>6} {r.ref_s:>6.2f} {r.our_s:>6.2f}"
    )


HEADER = (
    f"{'file':38} {'chars':>8} {'refLn':>6} {'ourLn':>6} {'refWr':>6} {'match':>6} "
    f"{'share':>8} {'extra':>5} {'allBrk':>8} {'refPg':>5} {'rfPgQ':>5} {'ourPg':>5} "
    f"{'pgDiff':>7} {'pgDifQ':>7} "
    f"{'pgStrt':>6} {'ref_s':>6} {'our_s':>6}"
)


def total_of(results: list[FileResult]) -> FileResult:
    """Sum of the per-file counts (shares are then pooled, weighted by breaks)."""
    t = FileResult("OVERALL", *([0] * 13), 0.0, 0.0, all(r.ink_consistent for r in results))
    for r in results:
        for f in (
            "chars",
            "ref_lines",
            "our_lines",
            "ref_wrap",
            "our_wrap",
            "matched_wrap",
            "ref_all",
            "matched_all",
            "ref_pages",
            "ref_pages_noquirk",
            "our_pages",
            "ref_page_starts",
            "matched_page_starts",
            "ref_s",
            "our_s",
        ):
            setattr(t, f, getattr(t, f) + getattr(r, f))
    t.error = next((r.error for r in results if r.error), "")
    return t


def misses(r: FileResult) -> list[str]:
    out = []
    if r.error:
        out.append(f"{r.name}: {r.error}")
        return out
    if r.share_wrap < TARGET_SHARE:
        out.append(f"{r.name}: wrap-break share {r.share_wrap:.3%} < {TARGET_SHARE:.1%}")
    if abs(r.page_diff) > TARGET_PAGES and abs(r.page_diff_noquirk) > TARGET_PAGES:
        out.append(f"{r.name}: pages {r.our_pages} vs {r.ref_pages} ({r.page_diff:+.2%}), "
                   f"{r.ref_pages_noquirk} without the <br/>-split quirk "
                   f"({r.page_diff_noquirk:+.2%})")
    if not r.ink_consistent:
        out.append(f"{r.name}: reference lines do not reproduce the ink stream (extraction bug)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument(
        "--files",
        action="append",
        help="comma-separated file names or globs (default: 6 English books + Russian)",
    )
    ap.add_argument("--chars", type=int, default=200_000, help="characters per file (0: all)")
    ap.add_argument("--keep-crlf", action="store_true", help="feed CRLF line ends unchanged")
    ap.add_argument(
        "--reflow",
        choices=("off", "on", "both"),
        default="both",
        help="also/only measure with hard-wrapped lines joined (default: both)",
    )
    ap.add_argument("--config", help="Glyph JSON config for both sides")
    ap.add_argument("--set", action="append", help="KEY=VALUE override (JSON value or string)")
    ap.add_argument("--show", type=int, default=5, help="mismatches to print per file")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)

    cfg_in: dict[str, Any] = {}
    if args.config:
        cfg_in.update(json.loads(Path(args.config).read_text()))
    for kv in args.set or []:
        k, _, v = kv.partition("=")
        try:
            cfg_in[k] = json.loads(v)
        except json.JSONDecodeError:
            cfg_in[k] = v
    cfg = ref.normalise_config(cfg_in)

    names: list[str] = []
    available = sorted(p.name for p in args.corpus.iterdir())
    for spec in args.files or [",".join(DEFAULT_FILES)]:
        for pat in filter(None, (s.strip() for s in spec.split(","))):
            hits = [n for n in available if fnmatch.fnmatch(n, pat)]
            if not hits:
                ap.error(f"no corpus file matches {pat!r}")
            names.extend(h for h in hits if h not in names)

    results: list[FileResult] = []
    print(HEADER)
    for name in names:
        text = load_sample(args.corpus, name, args.chars or None, args.keep_crlf)
        variants = {"off": [False], "on": [True], "both": [False, True]}[args.reflow]
        for joined in variants:
            label = f"{name} [reflow]" if joined else name
            r = compare_text(label, reflow(text) if joined else text, cfg, args.show)
            results.append(r)
            print(_row(r), flush=True)
    total = total_of(results)
    print("-" * len(HEADER))
    print(_row(total))
    print(
        "\nshare = reference wrap breaks (not at a source newline) that ours shares; extra = ours "
        "not in the reference;\nallBrk = same over all distinct line-end positions; pgStrt = "
        "reference page starts ours matches;\nrfPgQ/pgDifQ = reference pages as reportlab would "
        "paginate without its <br/>-split quirk (a page split right after a <br/> inside one of "
        "Glyph's 30-line paragraphs opens the next page with an empty line: not copied). The "
        "page target holds against either count."
    )
    for r in results:
        if r.error:
            print(f"\n{r.name}: {r.error}")
        if not r.ink_consistent:
            print(f"\n{r.name}: WARNING reference lines do not reproduce the ink stream")
        if r.mismatches:
            print(f"\n{r.name}: first {len(r.mismatches)} mismatches")
            print("\n".join(r.mismatches))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    asdict(r)
                    | {
                        "share_wrap": r.share_wrap,
                        "share_all": r.share_all,
                        "page_diff": r.page_diff,
                    }
                    for r in [*results, total]
                ],
                indent=1,
                ensure_ascii=False,
            )
        )
    problems = [m for r in [*results, total] for m in misses(r)]
    if problems:
        print("\nTARGETS MISSED:\n  " + "\n  ".join(problems))
    else:
        print(
            f"\nall targets met (wrap share >= {TARGET_SHARE:.1%}, pages within {TARGET_PAGES:.0%})"
        )
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
