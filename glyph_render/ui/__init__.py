"""``glyph-render ui``: the web demo (Gradio, ``pip install 'glyph-render[ui]'``).

Paste or upload a document, see its pages with their source spans, text against vision tokens
and the compressor's ladder, download the pages or a PDF, and ask an endpoint (vLLM, SGLang or
``glyph-render serve-ocr``) with the thinking and the answer streamed apart, optionally beside
the same question asked with the document as plain text.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from glyph_render.errors import GlyphRenderError

PROG = "glyph-render ui"
EXTRA_HINT = "the web demo needs Gradio: pip install 'glyph-render[ui]'"


def _port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port number (0-65535)")
    return n


def build_parser() -> argparse.ArgumentParser:
    from glyph_render.settings import Parser, add_endpoint_flags, add_model_flags, at_least

    p = Parser(
        prog=PROG, description="Serve the web demo: pages, tokens, the compressor's ladder, "
        "and questions to a Glyph endpoint (editable in the page), in a browser. The API key "
        "comes from $OPENAI_API_KEY (see --api-key-env) and goes only to --endpoint.")
    add_endpoint_flags(p, asking=False)
    add_model_flags(p, tokenizer=None)  # --tokenizer: the model's tokenizer.json for exact counts
    g = p.add_argument_group("web server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 to share on a network)")
    g.add_argument("--port", type=_port, default=7860, help="port to listen on (default 7860)")
    g.add_argument("--workers", type=at_least(1), default=None, metavar="N",
                   help="render threads shared by all users (default: one per CPU)")
    g.add_argument("--concurrency", type=at_least(1), default=32, metavar="N",
                   help="events served at once across users (default 32)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from glyph_render import get_profile, get_tokenizer
    from glyph_render.settings import EndpointSettings

    args = build_parser().parse_args(argv)
    get_profile(args.profile)  # a bad profile or tokenizer fails now, not at the first question
    if args.tokenizer is not None:
        get_tokenizer(args.tokenizer)
    endpoint = EndpointSettings.from_args(args)
    client_kwargs = {**endpoint.client_kwargs(), "profile": args.profile,
                     "tokenizer": args.tokenizer}
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    # Token counts run in threads: forking a process that serves many threads is unsafe.
    os.environ.setdefault("GLYPH_RENDER_NO_FORK", "1")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise GlyphRenderError(EXTRA_HINT) from None
    from .app import serve

    def ready(url: str) -> None:
        print(f"{PROG}: running on {url} (Ctrl+C stops it)", flush=True)

    try:
        serve(endpoint.endpoint, args.host, args.port, args.workers, args.concurrency, ready,
              client_kwargs=client_kwargs, profile=args.profile)
    except OSError as exc:  # Gradio's "Cannot find empty port" names its own API; say what to do
        why = "the port is in use, pick another with --port" if "empty port" in str(exc) \
            else str(exc)
        raise GlyphRenderError(f"cannot listen on {args.host}:{args.port}: {why}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
