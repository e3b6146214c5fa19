"""``glyph-render gateway``: serve the app with uvicorn until a signal.

``main(argv)`` is both ``glyph-render gateway ...`` (the CLI's ``SUBCOMMANDS`` entry) and
``python -m glyph_render.gateway ...``. The listening socket is bound here (so ``--port 0`` works
and the first line on stdout says where), then handed to uvicorn.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from glyph_render.config import RenderConfig
from glyph_render.errors import ConfigError, GlyphRenderError
from glyph_render.settings import Parser, add_model_flags, at_least, non_negative, positive

from .settings import MODES, UPSTREAM_KEY_ENV, GatewaySettings

__all__ = ["add_arguments", "main", "run", "settings_from_args"]

PROG = "glyph-render gateway"
DESCRIPTION = ("An OpenAI-compatible endpoint in front of a Glyph server (vLLM/SGLang): long text "
               "in chat requests is rendered into pages, fitted to the model's context, and "
               "forwarded; point OPENAI_BASE_URL at it.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("serving")
    g.add_argument("--upstream", required=True, metavar="URL",
                   help="the Glyph endpoint, e.g. http://127.0.0.1:8000/v1; its key comes from "
                   f"${UPSTREAM_KEY_ENV}, never from callers")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 to serve other hosts)")
    g.add_argument("--port", type=int, default=8100, help="0 picks a free port (default 8100)")
    g.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="a key callers must send as 'Authorization: Bearer KEY' (repeatable)")
    g.add_argument("--api-key-file", metavar="FILE",
                   help="keys, one per line ('#' comments); with --api-key, both are accepted")

    g = p.add_argument_group("policy")
    g.add_argument("--mode", choices=MODES, default="auto",
                   help="auto: text over --threshold becomes pages; always; never")
    g.add_argument("--threshold", type=at_least(0), default=2000, metavar="TOKENS",
                   help="text parts longer than this many text tokens become pages (2000)")
    g.add_argument("--keep-turns", type=at_least(0), default=2, metavar="N",
                   help="the last N messages before the latest user turn stay text (2)")
    g.add_argument("--question-tokens", type=at_least(0), default=512, metavar="TOKENS",
                   help="a leading/closing paragraph up to this long stays text (512)")
    g.add_argument("--config", metavar="FILE", help="a Glyph rendering config (JSON)")
    g.add_argument("--dpi", type=positive, help="render at this DPI (default the config's)")
    # the shared flags: the model's tokenizer.json makes the fitting exact
    add_model_flags(g, tokenizer=None)  # type: ignore[arg-type]  # a group takes the same calls
    g.add_argument("--min-px-per-em", type=positive, help="legibility floor when compressing")
    g.add_argument("--max-model-len", type=at_least(1), help="the model's context (default: the "
                   "upstream's /v1/models)")
    g.add_argument("--answer-reserve", type=at_least(1), default=1024, metavar="TOKENS",
                   help="tokens kept for the answer when a request sets no max_tokens (1024)")

    g = p.add_argument_group("throughput")
    g.add_argument("--render-workers", type=at_least(1), default=GatewaySettings.render_workers,
                   metavar="N", help="render processes (default: the cores)")
    g.add_argument("--cache-mb", type=positive, default=512.0,
                   help="page cache size in MB (512)")
    g.add_argument("--max-concurrency", type=at_least(1), default=64, metavar="N",
                   help="requests served at once; more get 429 + Retry-After (64)")
    g.add_argument("--max-body-mb", type=positive, default=64.0,
                   help="largest request body in MB (64); larger get 413")
    g.add_argument("--timeout", type=positive, default=600.0,
                   help="seconds to wait for the upstream per call (600)")
    g.add_argument("--render-timeout", type=positive, default=120.0,
                   help="seconds one request's rendering may take (120); then 504")
    g.add_argument("--max-retries", type=at_least(0), default=3,
                   help="retries of upstream 429/5xx (3), with backoff honouring Retry-After")
    g.add_argument("--backoff", type=non_negative, default=0.5, help="first retry wait in s (0.5)")


def _keys(args: argparse.Namespace) -> tuple[str, ...]:
    keys = [k.strip() for k in args.api_key if k.strip()]
    if args.api_key_file:
        path = Path(args.api_key_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"--api-key-file {path}: cannot read it ({exc.strerror})") \
                from None
        keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not keys:
            raise ConfigError(f"--api-key-file {path}: no keys in it")
    return tuple(keys)


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    config = RenderConfig.from_json(args.config) if args.config else None
    return GatewaySettings(
        upstream=args.upstream, host=args.host, port=args.port, api_keys=_keys(args),
        mode=args.mode, threshold=args.threshold, keep_turns=args.keep_turns,
        question_tokens=args.question_tokens, config=config, dpi=args.dpi,
        profile=args.profile, tokenizer=args.tokenizer, min_px_per_em=args.min_px_per_em,
        max_model_len=args.max_model_len, answer_reserve=args.answer_reserve,
        render_workers=args.render_workers, cache_mb=args.cache_mb,
        max_concurrency=args.max_concurrency, max_body_mb=args.max_body_mb,
        timeout=args.timeout, render_timeout=args.render_timeout,
        max_retries=args.max_retries, backoff=args.backoff, quiet=args.quiet)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(settings: GatewaySettings) -> int:
    """Bind, say where on stdout, serve until SIGINT/SIGTERM."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the gateway needs its extra: pip install 'glyph-render[gateway]' "
                          "(in a clone: pip install '.[gateway]')") from None
    from .app import create_app

    app = create_app(settings)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--host {settings.host} --port {settings.port}: cannot bind "
                          f"({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    shown = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    print(f"glyph-render gateway listening on http://{shown}:{port}/v1 "
          f"(upstream {app.state.gateway.upstream.url})", flush=True)
    if not settings.api_keys and not _loopback(settings.host):
        print(f"glyph-render gateway: warning: serving {settings.host} with no --api-key: "
              "anyone who can reach it can use the upstream", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_keep_alive=30, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=PROG, description=DESCRIPTION)  # -q/--quiet: no access-log lines
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(settings_from_args(args))
    except GlyphRenderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
