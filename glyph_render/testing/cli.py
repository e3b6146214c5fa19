"""``glyph-render serve-ocr`` / ``python -m glyph_render.testing``: run the stand-in until a signal.

Flag names copy ``vllm serve`` where vLLM has the concept (``--served-model-name``,
``--max-model-len``, ``--reasoning-parser``, ``--allowed-local-media-path``, ``--api-key``,
``--enable-prefix-caching``), so scripts can swap one server for the other.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from glyph_render.errors import GlyphRenderError
from glyph_render.settings import Parser, add_model_flags, at_least, non_negative, positive

from .config import DEFAULT_MODEL, REASONING_FIELDS, REASONING_PARSERS, TOKEN_RULES, ServerConfig
from .ocr import TesseractReader
from .server import OcrServer

__all__ = ["build_parser", "config_from_args", "main", "serve"]

PROG = "glyph-render serve-ocr"


def _scale(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="A local stand-in for a Glyph endpoint (vLLM's OpenAI protocol): OCRs the "
        "page images with Tesseract and answers with the best-matching sentences. A "
        "development tool for clients, benchmarks and reliability tests, not a model.",
    )
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    g.add_argument("--served-model-name", nargs="+", default=[DEFAULT_MODEL], metavar="NAME",
                   help=f"model id(s) to answer to; the first is listed (default {DEFAULT_MODEL})")
    g.add_argument("--max-model-len", type=at_least(1), default=65536,
                   help="context length; longer prompts get vLLM's 400 (default 65536)")
    g.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY") or None,
                   help="require 'Authorization: Bearer KEY' on /v1 routes (default: "
                   "$VLLM_API_KEY, else none)")
    g.add_argument("--allowed-local-media-path", metavar="DIR",
                   help="allow file:// image URLs under DIR")
    g.add_argument("--enable-prefix-caching", action="store_true",
                   help='report enable_prefix_caching="True" in vllm:cache_config_info')
    g.add_argument("--block-size", type=at_least(1), default=16, help="reported KV block size")

    g = p.add_argument_group("token accounting")
    # the client's own flags and defaults, so glyph-render doctor agrees out of the box
    add_model_flags(g)  # type: ignore[arg-type]  # an argument group takes the same calls
    g.add_argument("--token-rule", choices=TOKEN_RULES, default="glyph",
                   help="'wrong' bills each image its unmerged patch count (4x), to test "
                   "mismatch detection")
    g.add_argument("--image-token-scale", type=positive, default=1.0,
                   help="multiply every image's token count (rounded up), another mismatch knob")

    g = p.add_argument_group("answers")
    g.add_argument("--reasoning-parser", choices=REASONING_PARSERS,
                   help="put the working in message.reasoning / reasoning_content instead of "
                   "inline <think>...</think>")
    g.add_argument("--reasoning-field", choices=list(REASONING_FIELDS), default="both",
                   help="with --reasoning-parser: 'reasoning' (vLLM >= 0.11), "
                   "'reasoning_content' (SGLang, older vLLM) or both (default)")
    g.add_argument("--box", action="store_true",
                   help="wrap the answer in <|begin_of_box|>...<|end_of_box|> like GLM-4.1V")
    g.add_argument("--top-k", type=at_least(1), default=1, help="sentences per answer (default 1)")
    g.add_argument("--stream-words", type=at_least(1), default=3,
                   help="words per streamed delta (default 3)")
    g.add_argument("--no-ocr", dest="ocr", action="store_false",
                   help="skip OCR (fixed short answer): measures client overhead only")
    g.add_argument("--ocr-scale", type=_scale, default=None, metavar="X|auto",
                   help="upscale pages before OCR; auto (default) brings text lines to ~20 px")
    g.add_argument("--ocr-psm", type=at_least(0), default=6,
                   help="Tesseract page segmentation mode")
    g.add_argument("--ocr-lang", default="eng", help="Tesseract language(s), e.g. eng+deu")
    g.add_argument("--ocr-workers", type=at_least(1), default=min(4, os.cpu_count() or 1),
                   help="pages OCR'd in parallel")

    g = p.add_argument_group(
        "faults", "RULE: a probability in [0,1], @N (the Nth chat request), @N+ (the Nth and "
        "later), or a comma list; requests are counted per server")
    g.add_argument("--delay", type=non_negative, default=0.0,
                   help="seconds to wait before answering")
    g.add_argument("--chunk-delay", type=non_negative, default=0.0,
                   help="seconds between streamed chunks")
    g.add_argument("--fail-429", metavar="RULE", help="answer 429 with Retry-After")
    g.add_argument("--retry-after", type=non_negative, default=1.0,
                   help="Retry-After seconds on 429s (default 1)")
    g.add_argument("--fail-500", metavar="RULE", help="answer 500")
    g.add_argument("--drop-stream", metavar="RULE",
                   help="close the connection halfway through the reply")
    g.add_argument("--drop-connection", metavar="RULE",
                   help="close the connection without any reply")
    g.add_argument("--seed", type=int, help="seed for probabilistic faults")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        served_model_names=tuple(args.served_model_name),
        max_model_len=args.max_model_len,
        profile=args.profile,
        tokenizer=args.tokenizer,
        token_rule=args.token_rule,
        image_token_scale=args.image_token_scale,
        reasoning_parser=args.reasoning_parser,
        reasoning_field=args.reasoning_field,
        box=args.box,
        stream_words=args.stream_words,
        ocr=args.ocr,
        ocr_scale=args.ocr_scale,
        ocr_psm=args.ocr_psm,
        ocr_lang=args.ocr_lang,
        ocr_workers=args.ocr_workers,
        top_k=args.top_k,
        allowed_local_media_path=args.allowed_local_media_path,
        api_key=args.api_key,
        enable_prefix_caching=args.enable_prefix_caching,
        block_size=args.block_size,
        delay=args.delay,
        chunk_delay=args.chunk_delay,
        fail_429=args.fail_429,
        retry_after=args.retry_after,
        fail_500=args.fail_500,
        drop_stream=args.drop_stream,
        drop_connection=args.drop_connection,
        seed=args.seed,
        quiet=args.quiet,
    )


def serve(
    config: ServerConfig,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[OcrServer], None] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); prints the listening URL first."""
    stop = stop or threading.Event()
    server = OcrServer(config).start()
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"serve-ocr listening on {server.base_url}", flush=True)
        if not config.quiet:
            print(_banner(server), file=sys.stderr, flush=True)
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        if not config.quiet:
            print("serve-ocr: stopped", file=sys.stderr, flush=True)
    return 0


def _banner(server: OcrServer) -> str:
    c = server.config
    bits = [
        f"model={','.join(c.served_model_names)}",
        f"max_model_len={c.max_model_len}",
        f"profile={c.profile}",
        f"tokenizer={c.tokenizer}",
        f"token_rule={c.token_rule}",
        f"ocr={'off' if not c.ocr else 'auto' if c.ocr_scale is None else c.ocr_scale}",
        f"reasoning={'parser:' + c.reasoning_field if c.reasoning_parser else 'inline'}",
        f"auth={'on' if c.api_key else 'off'}",  # never the key itself
    ]
    faults = [server.faults.describe()] if server.faults.describe() else []
    faults += [f"{name}={value:g}" for name, value in (("delay", c.delay),
                                                       ("chunk_delay", c.chunk_delay)) if value]
    if faults:
        bits.append("faults: " + " ".join(faults))
    return "serve-ocr: " + " ".join(bits)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exit 0 after a signal, 2 on a bad flag or a missing Tesseract."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config = config_from_args(args)
        if config.ocr:
            TesseractReader(lang=config.ocr_lang, scale=config.ocr_scale).check()
        return serve(config)
    except (GlyphRenderError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
