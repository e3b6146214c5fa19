"""``glyph-render doctor``: is this endpoint ready for Glyph, the way glyph-render talks to it?

Each check prints one line, OK / WARN / FAIL, and a fix when it is not OK:

* **reachable**, **model**, **max_model_len**: the client's own discovery (``/v1/models``);
* **server**, **prefix caching**: vLLM's ``/metrics`` (``vllm:cache_config_info``) or SGLang's
  ``/get_server_info`` (``disable_radix_cache``). Every document's pages are new images, so a
  prefix cache never hits and only costs hashing and KV memory (docs/serving.md);
* **images**, **vision tokens**: one rendered page sent as glyph-render sends pages; the
  server's ``usage.prompt_tokens`` must equal the prediction, or every budget glyph-render
  computes is wrong. A mismatch is split, with a text-only request, into the image's share (the
  server's image processor differs from the profile: FAIL) and the text's (a tokenizer
  stand-in: WARN);
* **reasoning**: where the thinking arrives (``reasoning``, ``reasoning_content``, inline
  ``<think>`` or none); **latency**: the probe's time to first token and total.

Exit status 1 when any check FAILs, else 0. See docs/operations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..client import DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_TOKENS, ModelInfo
from ..config import RenderConfig, detect_preset
from ..errors import (
    AuthError,
    ClientError,
    GlyphRenderError,
    ReplyTooLarge,
    RequestRejected,
    RequestTimeout,
)
from ..render import RenderedPage, iter_pages
from ..settings import EndpointSettings, Parser, add_endpoint_flags, add_model_flags
from .bench_request import ChatEndpoint, Timed

__all__ = ["Check", "diagnose", "main"]

PROG = "glyph-render doctor"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample.txt"
PROBE_QUESTION = "What is the first sentence on this page?"
PROBE_MAX_TOKENS = 32
DEFAULT_DEADLINE = 300.0  # seconds per request: a 32-token probe takes seconds
DOCS = "docs/serving.md#why-caching-is-off"
_CACHE_INFO = re.compile(r"^vllm:cache_config_info\{([^}]*)\}", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Check:
    """One line of the report; ``data`` holds the figures behind it (for ``--json``)."""

    name: str
    status: str  # OK, WARN or FAIL
    message: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Server:
    """What the server's own (non-OpenAI) endpoints say about it."""

    engine: str | None = None  # "vLLM" or "SGLang"
    version: str | None = None
    prefix_caching: bool | None = None
    evidence: str = ""
    context_length: int | None = None


def probe_page() -> RenderedPage:
    """The first page of the bundled sample, rendered as glyph-render renders prose."""
    text = SAMPLE.read_text(encoding="utf-8")
    return next(iter_pages(text, RenderConfig.preset(detect_preset(text))))


async def diagnose(endpoint: str | None, *, model: str | None = None,
                   tokenizer: str | None = None, profile: str = "glyph",
                   timeout: float = 120.0, deadline: float | None = DEFAULT_DEADLINE,
                   max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
                   api_key: str | None = None) -> tuple[str, list[Check]]:
    """Run every check against ``endpoint``; returns (the endpoint as shown, the checks).
    Each request is bounded: ``timeout`` idle seconds, ``deadline`` in all, ``max_reply_bytes``
    per reply; a server past them fails its check (or, for a plain GET such as ``/metrics``,
    the whole run with a :class:`~glyph_render.errors.ClientError`)."""
    ep = ChatEndpoint(endpoint, model=model, tokenizer=tokenizer, profile=profile,
                      max_tokens=PROBE_MAX_TOKENS, timeout=timeout, deadline=deadline,
                      max_reply_bytes=max_reply_bytes, api_key=api_key)
    try:
        return ep.url, await _checks(ep)
    finally:
        await ep.close()


async def _checks(ep: ChatEndpoint) -> list[Check]:
    checks: list[Check] = []
    t0 = time.perf_counter()
    try:
        info = await ep.model_info()
    except RequestRejected as exc:  # it answered, but not with the model asked for
        checks.append(Check("reachable", "OK", f"{ep.url} answers"))
        checks.append(Check("model", "FAIL", str(exc),
                            "pass --model with one of the served names, or serve that model"))
        return checks
    except ClientError as exc:
        fix = ("set OPENAI_API_KEY to the server's API key" if isinstance(exc, AuthError) else
               _BOUND_FIX if isinstance(exc, _BOUND_ERRORS) else
               "start the server (glyph-render serve prints the command, docs/serving.md) or "
               "point --endpoint at it")
        checks.append(Check("reachable", "FAIL", str(exc), fix))
        return checks
    seconds = time.perf_counter() - t0
    checks.append(Check("reachable", "OK", f"{ep.url} answered GET /v1/models in "
                        f"{seconds * 1000:.0f} ms", data={"seconds": round(seconds, 4)}))
    checks.append(await _model_check(ep, info))
    server = await _server_facts(ep)
    page = probe_page()
    checks.append(_context_check(info, server, page, ep))
    checks.append(_server_check(server))
    checks.append(_prefix_check(server))
    checks += await _probe_checks(ep, info, page)
    return checks


async def _model_check(ep: ChatEndpoint, info: ModelInfo) -> Check:
    resp = await ep.get("/v1/models")
    names: list[str] = []
    with contextlib.suppress(ValueError, KeyError, TypeError):
        names = [m["id"] for m in resp.json()["data"]] if resp is not None else []
    others = [n for n in names if n != info.name]
    note = f" (also serves {', '.join(others)}; --model picks one)" if others else ""
    return Check("model", "OK", f"serves {info.name}{note}",
                 data={"model": info.name, "served": names or [info.name]})


async def _server_facts(ep: ChatEndpoint) -> _Server:
    """vLLM by its /metrics, else SGLang by its /get_server_info, else unknown."""
    resp = await ep.get("/metrics")
    if resp is not None and resp.status == 200 and "vllm:" in resp.text:
        server = _Server("vLLM")
        version = await ep.get("/version")
        with contextlib.suppress(ValueError, AttributeError):
            server.version = version.json().get("version") if version is not None else None
        match = _CACHE_INFO.search(resp.text)
        if match:
            value = dict(_LABEL.findall(match.group(1))).get("enable_prefix_caching")
            if value in ("True", "False"):
                server.prefix_caching = value == "True"
                server.evidence = (f'/metrics: vllm:cache_config_info '
                                   f'enable_prefix_caching="{value}"')
        return server
    resp = await ep.get("/get_server_info")
    try:
        body = resp.json() if resp is not None and resp.status == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _Server()
    args = body.get("server_args") if isinstance(body.get("server_args"), dict) else body
    server = _Server("SGLang", str(body.get("version") or args.get("version") or "") or None)
    radix_off = args.get("disable_radix_cache")
    if isinstance(radix_off, bool):
        server.prefix_caching = not radix_off
        server.evidence = f"/get_server_info: disable_radix_cache={str(radix_off).lower()}"
    ctx = args.get("context_length")
    server.context_length = ctx if isinstance(ctx, int) and ctx > 0 else None
    return server


def _context_check(info: ModelInfo, server: _Server, page: RenderedPage,
                   ep: ChatEndpoint) -> Check:
    ctx = info.max_model_len or server.context_length
    if ctx is None:
        return Check("max_model_len", "WARN", "the server does not say (no max_model_len in "
                     "/v1/models): glyph-render cannot fit documents to the context before "
                     "uploading them", "pass max_model_len= to GlyphClient")
    per_page = page.vision_tokens + ep.client.profile.image_wrapper_tokens
    fit = max(0, (ctx - DEFAULT_MAX_TOKENS - 64) // per_page)
    data = {"max_model_len": ctx, "page_tokens": page.vision_tokens, "pages_fit": fit}
    room = (f"about {fit} full pages ({page.width}x{page.height} px, {page.vision_tokens:,} "
            f"tokens each) beside a {DEFAULT_MAX_TOKENS:,}-token answer")
    if fit < 1:
        return Check("max_model_len", "WARN", f"{ctx:,} tokens: room for no full page "
                     f"({page.vision_tokens:,} tokens) beside a {DEFAULT_MAX_TOKENS:,}-token "
                     "answer", "raise the server's --max-model-len (vLLM) / --context-length "
                     "(SGLang), or ask with a smaller max_tokens", data)
    return Check("max_model_len", "OK", f"{ctx:,} tokens: room for {room}", data=data)


def _server_check(server: _Server) -> Check:
    if server.engine is None:
        return Check("server", "OK", "not recognised as vLLM or SGLang (no vLLM /metrics, no "
                     "SGLang /get_server_info); OpenAI-compatible checks only")
    name = f"{server.engine} {server.version}" if server.version else server.engine
    return Check("server", "OK", name, data={"engine": server.engine,
                                             "version": server.version})


def _prefix_check(server: _Server) -> Check:
    flag = {"vLLM": "--no-enable-prefix-caching", "SGLang": "--disable-radix-cache"}
    why = ("each document's pages are new images, so the cache never hits; it only costs "
           "hashing every page and KV memory held in cached blocks")
    data = {"prefix_caching": server.prefix_caching}
    if server.prefix_caching is None:
        where = f"{server.engine} does not report it" if server.engine else "unknown server"
        return Check("prefix caching", "WARN", f"cannot tell ({where})",
                     "start vLLM with --no-enable-prefix-caching, SGLang with "
                     f"--disable-radix-cache; see {DOCS}", data)
    if not server.prefix_caching:
        return Check("prefix caching", "OK", f"off ({server.evidence})", data=data)
    return Check("prefix caching", "WARN", f"on ({server.evidence}): {why}",
                 f"restart {server.engine} with {flag[server.engine or 'vLLM']} (keep it on "
                 f"only to ask many questions about the same pages; see {DOCS})", data)


async def _probe_checks(ep: ChatEndpoint, info: ModelInfo, page: RenderedPage) -> list[Check]:
    size = f"{page.width}x{page.height} px"
    prep = await ep.prepare_pages([page], PROBE_QUESTION)
    probe = await ep.stream(prep, inspect=True)
    if not probe.ok and isinstance(probe.exception, _BOUND_ERRORS):
        return [Check("images", "FAIL", f"the 1-page probe ({size}) did not complete: "
                      f"{probe.error}", _BOUND_FIX,
                      {"error": probe.error, "error_type": probe.error_type})]
    if not probe.ok:
        base = await ep.stream(await ep.prepare_text(PROBE_QUESTION, max_tokens=1))
        also = (" A text-only request works, so it is the image it refuses."
                if base.ok else f" A text-only request failed too: {base.error}")
        return [Check("images", "FAIL", f"the server refused a 1-page probe ({size}): "
                      f"{probe.error}.{also}",
                      "serve a vision model that reads images (zai-org/Glyph, docs/serving.md)"
                      "; vLLM must not limit images to 0 (--limit-mm-per-prompt)",
                      {"error": probe.error, "error_type": probe.error_type})]
    checks = [Check("images", "OK", f"accepted a 1-page probe ({size}, {prep.payload_bytes:,} "
                    "bytes of request)")]
    checks.append(await _token_check(ep, info, page, prep.predicted_prompt_tokens, probe))
    checks.append(_reasoning_check(probe))
    ttft = f"{probe.ttft * 1000:.0f} ms" if probe.ttft is not None else "n/a (no text)"
    out = f", {probe.completion_tokens} tokens out" if probe.completion_tokens else ""
    checks.append(Check("latency", "OK", f"probe: time to first token {ttft}, total "
                        f"{probe.e2e * 1000:.0f} ms{out}",
                        data={"ttft": probe.ttft, "e2e": round(probe.e2e, 4),
                              "completion_tokens": probe.completion_tokens}))
    return checks


async def _token_check(ep: ChatEndpoint, info: ModelInfo, page: RenderedPage, predicted: int,
                       probe: Timed) -> Check:
    served = probe.prompt_tokens
    tok = ep.client.tokenizer.name
    prof = ep.client.profile.name
    data: dict[str, Any] = {"server": served, "predicted": predicted, "profile": prof,
                            "tokenizer": tok, "image_tokens_predicted": page.vision_tokens}
    if served is None:
        return Check("vision tokens", "WARN", "the server sent no usage with the streamed "
                     "reply, so its token count cannot be checked",
                     "vLLM and SGLang send it for stream_options.include_usage; check any "
                     "proxy in between", data)
    if served == predicted:
        return Check("vision tokens", "OK", f"server counted {served:,} prompt tokens for the "
                     f"1-page probe, as predicted (page {page.width}x{page.height}: "
                     f"{page.vision_tokens:,} image tokens; profile {prof}, tokenizer {tok})",
                     data=data)
    both = f"server counted {served:,} prompt tokens for the 1-page probe, glyph-render " \
           f"predicted {predicted:,} (profile {prof}, tokenizer {tok})"
    base_prep = await ep.prepare_text(PROBE_QUESTION, max_tokens=1)
    base, base_pred = await ep.stream(base_prep), base_prep.predicted_prompt_tokens
    if not base.ok or base.prompt_tokens is None:
        return Check("vision tokens", "FAIL", f"{both}; the server's image processor may "
                     "differ from the profile (a text-only request to tell image from text "
                     f"failed: {base.error or 'no usage'})", _PROFILE_FIX, data)
    wrap = ep.client.profile.image_wrapper_tokens  # <|begin_of_image|>, <|end_of_image|>
    image_served = served - base.prompt_tokens - wrap
    image_pred = predicted - base_pred - wrap
    data.update(text_server=base.prompt_tokens, text_predicted=base_pred,
                image_server=image_served, image_predicted=image_pred)
    if image_served != image_pred:
        return Check("vision tokens", "FAIL", f"{both}: the {page.width}x{page.height} page "
                     f"costs {image_served:,} image tokens on the server but {image_pred:,} by "
                     f"profile {prof}, so the server's image processor differs from the profile",
                     _PROFILE_FIX, data)
    return Check("vision tokens", "WARN", f"{both}; the page's image tokens agree "
                 f"({image_pred:,}), the text differs: the question alone costs "
                 f"{base.prompt_tokens:,} on the server, {base_pred:,} by tokenizer {tok}",
                 "pass --tokenizer with the model's tokenizer.json (bytes for the tiny test "
                 "model) for exact counts", data)


#: a server that answers but never finishes (or not within the limits): not a refusal
_BOUND_ERRORS = (RequestTimeout, ReplyTooLarge)
_BOUND_FIX = ("the server answered but did not finish its reply within --timeout/--deadline "
              "(or sent more than --max-reply-mb): check its logs and any proxy in between; "
              "raise the limits only if it is just slow")

_PROFILE_FIX = ("serve the model with zai-org/Glyph's own preprocessor_config.json, or pass "
                "--profile with the served model's preprocessor_config.json so budgets are "
                "priced as the server counts")


def _reasoning_check(probe: Timed) -> Check:
    fields = sorted(probe.delta_fields & {"reasoning", "reasoning_content"})
    data = {"fields": fields}
    if fields == ["reasoning"]:
        return Check("reasoning", "OK", "separate field `reasoning` (vLLM >= 0.11 with "
                     "--reasoning-parser glm45)", data=data)
    if fields == ["reasoning_content"]:
        return Check("reasoning", "OK", "separate field `reasoning_content` (SGLang, or vLLM "
                     "< 0.11, with --reasoning-parser glm45)", data=data)
    if fields:
        return Check("reasoning", "OK", "separate fields " + " and ".join(
            f"`{f}`" for f in fields), data=data)
    if "<think>" in probe.content or "</think>" in probe.content:
        return Check("reasoning", "WARN", "inline: <think>...</think> inside the answer text "
                     "(no reasoning parser); glyph-render splits it, other clients show it",
                     "start the server with --reasoning-parser glm45", data)
    return Check("reasoning", "OK", "no reasoning field and no <think> tag in the probe's "
                 "reply: thinking is off, or the chat template opens <think> itself and the "
                 "answer text carries it (--reasoning-parser glm45 would separate it)",
                 data=data)


# --- output ---------------------------------------------------------------------------------


def format_report(url: str, checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0) + 2
    lines = [f"{PROG}: {url}"]
    for c in checks:
        lines.append(f"{c.status:<5} {c.name:<{width}}{c.message}")
        if c.fix:
            lines.append(f"{'':<5} {'':<{width}}fix: {c.fix}")
    fails = sum(c.status == "FAIL" for c in checks)
    warns = sum(c.status == "WARN" for c in checks)
    lines.append(f"{fails} failure{'s' * (fails != 1)}, {warns} warning{'s' * (warns != 1)}")
    return "\n".join(lines)


def _parser() -> Parser:
    p = Parser(
        prog=PROG, description="Check that an OpenAI-compatible endpoint (vLLM, SGLang or "
        "serve-ocr) serves Glyph the way glyph-render expects: reachable, the model, its "
        "context, prefix caching off, images accepted, vision tokens counted as predicted, "
        "where reasoning arrives, and the latency of a 1-page probe. Exit status 1 on any "
        "FAIL. The API key comes from $OPENAI_API_KEY (see --api-key-env).")
    add_endpoint_flags(p, timeout=120.0, deadline=DEFAULT_DEADLINE, asking=False)
    add_model_flags(p, tokenizer=None)
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        endpoint = EndpointSettings.from_args(args)
        url, checks = asyncio.run(diagnose(endpoint.endpoint, model=endpoint.served_model,
                                           tokenizer=args.tokenizer, profile=args.profile,
                                           timeout=endpoint.timeout,
                                           deadline=endpoint.deadline,
                                           max_reply_bytes=endpoint.max_reply_bytes,
                                           api_key=endpoint.api_key()))
    except GlyphRenderError as exc:  # bad flags, --tokenizer/--profile and the like
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    failed = any(c.status == "FAIL" for c in checks)
    if args.json:
        print(json.dumps({"endpoint": url, "ok": not failed,
                          "failures": sum(c.status == "FAIL" for c in checks),
                          "warnings": sum(c.status == "WARN" for c in checks),
                          "checks": [asdict(c) for c in checks]}, ensure_ascii=False))
    else:
        print(format_report(url, checks))
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
