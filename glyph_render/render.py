"""The render pipeline: text -> layout -> raster -> encode, page by page, plus the report.

Pages flow one at a time, so a 10 MB text renders with memory bounded by one page (unless the
caller keeps them, as :func:`render` does).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .config import RenderConfig
from .document import check_text
from .encode import encode_png, write_pdf
from .errors import OutputError
from .fonts import font_chain
from .layout import Page, layout
from .raster import page_pixel_size, rasterize
from .text_tokens import count_in_background
from .vision_tokens import get_profile, image_tokens


@dataclass
class RenderedPage:
    """One output page: where it came from in the source, its pixels and what it costs."""

    number: int
    start: int
    end: int
    lines: int
    width: int
    height: int
    vision_tokens: int
    missing: int = 0
    png: bytes | None = field(default=None, repr=False)
    image: Image.Image | None = field(default=None, repr=False)
    file: str | None = None

    @property
    def chars(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "width": self.width, "height": self.height, "start": self.start,
            "end": self.end, "chars": self.chars, "lines": self.lines,
            "vision_tokens": self.vision_tokens, "missing_chars": self.missing,
        }


@dataclass
class RenderResult:
    pages: list[RenderedPage]
    chars: int
    text_tokens: int
    vision_tokens: int
    tokenizer: str
    profile: str
    config: RenderConfig
    seconds: float
    output_dir: str | None = None

    @property
    def ratio(self) -> float:
        """Compression ratio: text tokens (with ``tokenizer``) per vision token."""
        return self.text_tokens / self.vision_tokens if self.vision_tokens else 0.0

    @property
    def missing(self) -> int:
        return sum(p.missing for p in self.pages)

    def to_json(self) -> dict[str, Any]:
        return {
            "pages": [p.to_json() for p in self.pages],
            "page_count": len(self.pages),
            "chars": self.chars,
            "text_tokens": self.text_tokens,
            "vision_tokens": self.vision_tokens,
            "ratio": round(self.ratio, 4),
            "tokenizer": self.tokenizer,
            "profile": self.profile,
            "missing_chars": self.missing,
            "config": self.config.to_dict(),
            "font": font_report(self.config),
            "seconds": round(self.seconds, 4),
            "output_dir": self.output_dir,
        }


def font_report(cfg: RenderConfig) -> dict[str, Any]:
    """The font files the pages were drawn with, and how a named font was found."""
    chain = font_chain(cfg.font_chain)
    primary = chain.primary
    return {"path": primary.path, "family": primary.family, "note": cfg.font_note,
            "fallbacks": list(cfg.font_chain[1:])}


def with_last(pages: Iterator[Page]) -> Iterator[tuple[Page, bool]]:
    """Pair each page with 'is it the last one', looking one page ahead."""
    prev: Page | None = None
    for p in pages:
        if prev is not None:
            yield prev, False
        prev = p
    if prev is not None:
        yield prev, True


def iter_pages(text: str, cfg: RenderConfig, *, profile: str = "glyph", encode: bool = True,
               keep_image: bool = False) -> Iterator[RenderedPage]:
    """Render lazily: one page laid out, drawn and encoded at a time."""
    check_text(text)
    prof = get_profile(profile)
    for page, last in with_last(layout(text, cfg)):
        img = rasterize(page, cfg, last=last)
        w, h = img.size
        yield RenderedPage(
            number=page.number, start=page.start, end=page.end, lines=len(page.lines),
            width=w, height=h, vision_tokens=image_tokens(w, h, prof), missing=page.missing,
            png=encode_png(img, cfg.dpi) if encode else None,
            image=img if keep_image else None,
        )


def page_sizes(pages: list[Page], cfg: RenderConfig, dpi: float | None = None) -> list[
        tuple[int, int]]:
    """Pixel sizes of laid-out pages at ``dpi``: arithmetic, no rastering."""
    n = len(pages)
    return [page_pixel_size(p, cfg, last=(i == n - 1), dpi=dpi) for i, p in enumerate(pages)]


def render(text: str, config: RenderConfig | None = None, *, profile: str = "glyph",
           tokenizer: str = "cl100k_base", keep_image: bool = False) -> RenderResult:
    """Render ``text`` to PNG pages in memory, with the token report."""
    cfg = config or RenderConfig.preset("glyph-en")
    t0 = time.perf_counter()
    counted = count_in_background(text, tokenizer)
    pages = list(iter_pages(text, cfg, profile=profile, keep_image=keep_image))
    return _result(text, cfg, pages, profile, counted, t0, None)


def _result(text: str, cfg: RenderConfig, pages: list[RenderedPage], profile: str,
            counted: Callable[[], tuple[str, int]], t0: float, out: str | None) -> RenderResult:
    name, count = counted()
    return RenderResult(
        pages=pages, chars=len(text), text_tokens=count,
        vision_tokens=sum(p.vision_tokens for p in pages), tokenizer=name,
        profile=get_profile(profile).name, config=cfg, seconds=time.perf_counter() - t0,
        output_dir=out,
    )


def _staging_dir(out: Path) -> Path:
    """A new hidden folder in ``out`` (``tempfile.mkdtemp`` without its ~10 ms of imports)."""
    for n in range(1000):
        stage = out / f".glyph-render-{os.getpid()}-{time.monotonic_ns() % 10**9}-{n}"
        try:
            stage.mkdir(mode=0o700)
            return stage
        except FileExistsError:
            continue
    raise FileExistsError(f"{out}: no free staging folder name")


def _remove_staging(stage: Path) -> None:
    """Remove the staging folder and the page files a failed render left in it."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(stage):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        os.rmdir(stage)


def render_to_dir(text: str, cfg: RenderConfig, out_dir: str | Path, *,
                  profile: str = "glyph", tokenizer: str = "cl100k_base",
                  pdf: str | Path | None = None, progress: bool | None = None,
                  on_page: Callable[[RenderedPage], None] | None = None) -> RenderResult:
    """Write ``page_001.png`` ... into ``out_dir`` (and optionally one PDF).

    Pages are written into a hidden staging folder beside the output and moved into place only
    when every page succeeded, so a failure leaves nothing half-written; page files left over
    from an earlier, longer render of the same folder are removed.
    """
    t0 = time.perf_counter()
    check_text(text)
    font_chain(cfg.font_chain)  # a bad font fails here, before any folder exists
    # the text-token count runs beside the rendering (tiktoken releases the GIL)
    counted = count_in_background(text, tokenizer)
    out = Path(out_dir)
    created = _missing_dirs(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = _staging_dir(out)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output folder ({exc.strerror or exc})") from None
    pdf_pngs: list[bytes] = []  # the PDF's pages are the PNGs, not encoded a second time
    pages: list[RenderedPage] = []
    bar = _progress(len(text), progress)
    done = False
    try:
        for rp in iter_pages(text, cfg, profile=profile):
            name = f"page_{rp.number:03d}.png"
            assert rp.png is not None
            _write(stage / name, rp.png, out)
            rp.file = str(out / name)
            if pdf is not None:
                pdf_pngs.append(rp.png)
            rp.png = None
            pages.append(rp)
            if on_page:
                on_page(rp)
            if bar is not None:
                bar.update(rp.chars)
        counted()  # a bad tokenizer fails here, before any page is moved into place
        if pdf is not None:
            part = Path(str(pdf) + ".part")
            try:
                write_pdf(pdf_pngs, part, cfg.dpi)
                os.replace(part, pdf)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    part.unlink()
                raise OutputError(f"{pdf}: cannot write PDF ({exc.strerror or exc})") from None
        keep = set()
        try:
            for rp in pages:
                name = Path(rp.file or "").name
                os.replace(stage / name, out / name)
                keep.add(name)
            for old in out.glob("page_*.png"):
                if old.name not in keep:
                    old.unlink()
        except OSError as exc:
            raise OutputError(f"{out}: cannot write pages ({exc.strerror or exc})") from None
        done = True
    finally:
        if bar is not None:
            bar.close()
        _remove_staging(stage)
        if not done:
            for d in created:  # folders this call made, deepest first, if still empty
                try:
                    d.rmdir()
                except OSError:
                    break
    return _result(text, cfg, pages, profile, counted, t0, str(out))


def _missing_dirs(path: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create, deepest first."""
    out = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def _write(path: Path, data: bytes, out: Path) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write pages ({exc.strerror or exc})") from None


def _progress(total: int, enabled: bool | None):
    """A tqdm bar on stderr for long documents; None when off or not a terminal."""
    if enabled is False or (enabled is None and (total < 300_000 or not sys.stderr.isatty())):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="char", unit_scale=True, file=sys.stderr, leave=False,
                desc="rendering")
