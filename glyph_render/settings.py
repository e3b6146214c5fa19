"""One home for the settings the commands share: their flags, their checks, what they build.

Two groups, each adding its own flags and validating them once:

* :class:`RenderSettings`: the vision-token profile (``--profile``), the text tokenizer, the
  rendering config (``--preset``, ``--config`` and every config key as a flag) and the budget
  (``--budget``, ``--min-px-per-em``, ``--max-dpi``, ``--overflow``). It chooses the config for
  a text (:meth:`~RenderSettings.config_for`) and plans a budget (:meth:`~RenderSettings.plan`)
  the same way in ``render``, ``plan``, ``ask``, ``batch`` and ``eval``.
* :class:`EndpointSettings`: the server (``--endpoint``), the served model (``--model``), the
  API key's variable, time and retry limits, and the answer's settings; it gives the client its
  arguments.

One name and one meaning per flag on every command: ``--profile`` is the vision-token profile,
``--model`` the served model. Every bad value is one :class:`~glyph_render.errors.ConfigError`
naming the flag and the value, raised before any output exists; the CLI prints it as one line
and exits 2 (:class:`Parser` prints argparse's own complaints the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from .compress import DEFAULT_MAX_DPI, Plan, compress
from .config import PRESETS, RenderConfig, detect_preset, number
from .document import FORMATS
from .errors import ConfigError

if TYPE_CHECKING:
    from .text_tokens import TextTokenizer
    from .vision_tokens import VisionProfile

__all__ = ["PROG", "EndpointSettings", "Parser", "RenderSettings", "add_document_flags",
           "add_endpoint_flags", "add_model_flags", "add_render_flags", "at_least",
           "check_number", "comma_list", "non_empty", "non_negative", "percent", "positive",
           "positive_or_inf"]

PROG = "glyph-render"
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3
DEFAULT_DEADLINE = 1800.0  # the client's own defaults (glyph_render.client.core)
DEFAULT_MAX_REPLY_MB = 64.0
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

# Config keys whose flags are on/off switches.
_BOOL_FLAGS = ("auto-crop-width", "auto-crop-last-page", "remove-line-breaks",
               "split-blank-line")
_NUMBER = re.compile(r"-\d|-\.\d|-inf|-nan", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """argparse with the project's error style: a bad flag is one line naming it and exit 2,
    as a :class:`ConfigError` is in the CLI, not a usage screen; a flag's value may start with ``-``
    (``--page-size -595,842`` reaches the check that names it instead of "expected one
    argument"); every command has ``-q/--quiet``."""

    def __init__(self, *args: Any, quiet: bool = True, **kwargs: Any) -> None:
        """Every command built here takes ``-q/--quiet`` (``quiet=False`` leaves it out)."""
        super().__init__(*args, **kwargs)
        if quiet:
            self.add_argument("-q", "--quiet", action="store_true",
                              help="no progress or status lines on stderr (errors, warnings "
                                   "and the results themselves still show)")

    def error(self, message: str) -> NoReturn:
        """One line, ``glyph-render: error: ...`` as every other failure, and exit 2."""
        sys.stderr.write(f"{PROG}: error: {message}\n")
        sys.exit(2)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> Any:
        ns, rest = super().parse_known_args(self._glue_values(args), namespace)
        if getattr(ns, "quiet", False) and getattr(ns, "progress", False) is None:
            ns.progress = False  # --quiet: no progress bar unless --progress asks for one
        return ns, rest

    def _glue_values(self, args: Sequence[str] | None) -> list[str] | None:
        """``--flag -value`` -> ``--flag=-value`` for flags taking one value, when the value
        looks like a number or is no flag of this parser."""
        if args is None:
            return None
        out: list[str] = []
        items = list(args)
        i = 0
        while i < len(items):
            a = items[i]
            action = self._option_string_actions.get(a)
            if (a.startswith("--") and action is not None and action.nargs is None
                    and action.option_strings and i + 1 < len(items)
                    and items[i + 1].startswith("-") and items[i + 1] != "--"
                    and (_NUMBER.match(items[i + 1])
                         or items[i + 1].split("=")[0] not in self._option_string_actions)):
                out.append(f"{a}={items[i + 1]}")
                i += 2
                continue
            out.append(a)
            i += 1
        return out


# ---- value checks (argparse types: the error names the flag and the value) ----------------


def at_least(low: int) -> Callable[[str], int]:
    """A whole number >= ``low``."""
    def check(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {low}, got {value!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value!r}")
        return n
    check.__name__ = "whole number"
    return check


def _finite(value: str, *, zero: bool, infinite: bool = False) -> float:
    try:
        return number(value, zero=zero, infinite=infinite)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_number(name: str, value: Any, *, zero: bool = False) -> float:
    """A number setting given from Python (a keyword, not a flag), checked as its flag is
    (:func:`positive`, or :func:`non_negative` with ``zero``): the value as a float, or a
    :class:`ConfigError` ``"name: must be a finite number > 0, got ..."``."""
    try:
        return number(value, zero=zero)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def positive(value: str) -> float:
    """A finite number > 0."""
    return _finite(value, zero=False)


def non_negative(value: str) -> float:
    """A finite number >= 0 (a wait or a limit that 0 switches off)."""
    return _finite(value, zero=True)


def positive_or_inf(value: str) -> float:
    """A number > 0, or ``inf`` for "no limit" (a request rate: all at once)."""
    return _finite(value, zero=False, infinite=True)


def percent(value: str) -> float:
    """A percentile: a number in (0, 100]."""
    x = _finite(value, zero=False)
    if x > 100:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 100], got {value!r}")
    return x


def comma_list(check: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """Values separated by commas (``2000,8000``), each passing ``check``; its error names
    the item."""
    def parse(value: str) -> list[Any]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(
                f"expected values separated by commas, got {value!r}")
        return [check(v) for v in items]
    parse.__name__ = "list"
    return parse


def non_empty(value: str) -> str:
    """A path or name that is not the empty string."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {value!r}")
    return value


# ---- flags ---------------------------------------------------------------------------------


def add_document_flags(p: argparse.ArgumentParser) -> None:
    """The document and how to read it: ``--encoding``, ``--format`` (Markdown, HTML, PDF and
    Word files are turned into text; the ``docs`` extra) and ``--dump-text`` (that text, whose
    offsets the page spans index)."""
    p.add_argument("document", help="document to render (text, Markdown, HTML, PDF or .docx), "
                                    "or - for standard input")
    p.add_argument("--encoding", default="utf-8",
                   help="text encoding of a text, Markdown or HTML document (default utf-8)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="how to read the document (default auto: by suffix, else PDF/DOCX by "
                        "content, else plain text)")
    p.add_argument("--dump-text", metavar="FILE", type=non_empty,
                   help="also write the text the pages are rendered from (- for stdout); page "
                        "spans index it")


def add_model_flags(p: argparse.ArgumentParser, *,
                    tokenizer: str | None = "cl100k_base") -> None:
    """``--profile`` (how images are priced) and ``--tokenizer`` (how text is counted)."""
    p.add_argument("--profile", default="glyph",
                   help="vision-token profile: glyph, qwen2.5-vl, qwen3-vl or a "
                        "preprocessor_config.json")
    p.add_argument("--tokenizer", default=tokenizer,
                   help="text tokenizer: a tiktoken name, 'bytes' or a tokenizer.json "
                        f"(default {tokenizer or 'the profile stand-in, cl100k_base'})")


def add_render_flags(p: argparse.ArgumentParser, *, budget: bool = True,
                     budget_required: bool = False, overflow: str = "error") -> None:
    """``--profile``, ``--tokenizer``, the budget flags (unless ``budget=False``), and the
    rendering config: ``--preset``, ``--config`` and each config key as a flag."""
    add_model_flags(p)
    if budget:
        g = p.add_argument_group("vision-token budget")
        g.add_argument("--budget", type=at_least(1), required=budget_required,
                       metavar="TOKENS",
                       help="choose the most legible config whose vision tokens (and image "
                            "wrapper tokens) fit this budget")
        g.add_argument("--min-px-per-em", type=positive, default=None, metavar="PX",
                       help="legibility floor: never draw text smaller than this many pixels "
                            "per em (default 7; 9 for CJK text)")
        g.add_argument("--max-dpi", type=positive, default=None, metavar="DPI",
                       help=f"most legible DPI the budget search may pick "
                            f"(default {DEFAULT_MAX_DPI:g})")
        g.add_argument("--overflow", choices=("error", "split"), default=overflow,
                       help="when nothing fits: fail, or split into chunks that each fit "
                            f"(default {overflow})")
    g = p.add_argument_group("rendering config (Glyph's JSON keys as flags; override --config)")
    g.add_argument("--preset", default="auto",
                   help=f"base config: {', '.join(PRESETS)} or auto (CJK text -> glyph-zh)")
    g.add_argument("--config", metavar="FILE", type=non_empty,
                   help="a Glyph rendering config JSON")
    for f in dataclasses.fields(RenderConfig):
        if f.name in ("preset_name", "font_note"):
            continue
        key = f.name.replace("_", "-")
        dest = "cfg_" + f.name
        if key in _BOOL_FLAGS:
            g.add_argument("--" + key, dest=dest, action=argparse.BooleanOptionalAction,
                           default=None)
        elif key == "font-path":
            g.add_argument("--font", "--font-path", dest=dest, metavar="PATH",
                           help="any TTF/OTF (e.g. your own Verdana.ttf)")
        else:
            g.add_argument("--" + key, dest=dest, metavar=key.split("-")[-1].upper())


def add_endpoint_flags(p: argparse.ArgumentParser, *, many: bool = False,
                       timeout: float = DEFAULT_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                       asking: bool = True) -> None:
    """The server and how to ask it. ``many``: ``--endpoint`` may repeat (batch). ``asking``
    adds the answer's settings (``--max-tokens``, ``--system``, ``--thinking``) and
    ``--retries``; tools that measure the first reply (doctor, bench) leave them out. Every
    command bounds its waits and replies: ``--timeout`` (idle), ``--deadline`` (total) and
    ``--max-reply-mb``."""
    g = p.add_argument_group("endpoint")
    g.add_argument("--endpoint", metavar="URL", type=non_empty,
                   action="append" if many else "store", default=[] if many else None,
                   help="OpenAI-compatible base URL of vLLM or SGLang"
                        + ("; repeat to share the load" if many else
                           " (default $GLYPH_BASE_URL, $OPENAI_BASE_URL, else "
                           "http://127.0.0.1:8000/v1)"))
    g.add_argument("--model", dest="served_model", metavar="NAME",
                   help="served model name (default: the first one /v1/models lists); the "
                        "vision-token profile is --profile")
    g.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV, metavar="VAR",
                   help=f"environment variable holding the API key (default "
                        f"{DEFAULT_API_KEY_ENV}); the key itself is never printed")
    g.add_argument("--timeout", type=positive, default=timeout, metavar="S",
                   help=f"idle limit: seconds the server may stay silent (default {timeout:g})")
    g.add_argument("--deadline", type=positive, default=deadline, metavar="S",
                   help="total seconds per request or stream, "
                        + ("retries included, " if asking else "") + "however steadily the "
                        f"server sends (default {deadline:g})")
    g.add_argument("--max-reply-mb", type=positive, default=DEFAULT_MAX_REPLY_MB, metavar="MB",
                   help="refuse a reply (or a stream) larger than this, unread "
                        f"(default {DEFAULT_MAX_REPLY_MB:g})")
    if not asking:
        return
    g.add_argument("--retries", "--max-retries", dest="retries", type=at_least(0),
                   default=DEFAULT_RETRIES, metavar="N",
                   help=f"retries of a 429/5xx/dropped request (default {DEFAULT_RETRIES})")
    g.add_argument("--max-tokens", type=at_least(1), metavar="N",
                   help="answer length limit (default 8192, Glyph's)")
    g.add_argument("--system", metavar="TEXT", help="system prompt")
    g.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                   help="switch the model's reasoning on or off (default: the server's)")


# ---- render settings -----------------------------------------------------------------------


def _flag_value(name: str, v: Any) -> Any:
    """A config flag's text as the config expects it (the config checks the value)."""
    if not isinstance(v, str):
        return v
    if name == "tab_size":
        try:
            return int(v)
        except ValueError:
            return v
    if name in ("page_size", "newline_markup", "font_path", "alignment", "fallback_fonts") \
            or name.endswith("_color"):
        return v
    try:
        return float(v)
    except ValueError:
        return v


@dataclass
class RenderSettings:
    """How texts are rendered and priced; picklable (batch workers receive it)."""

    preset: str = "auto"
    profile: str = "glyph"
    tokenizer: str = "cl100k_base"
    budget: int | None = None
    min_px_per_em: float | None = None  # None: compress's script-aware default
    max_dpi: float = DEFAULT_MAX_DPI
    overflow: str = "error"
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # config keys given as flags
    bases: dict[str, RenderConfig] = field(default_factory=dict)  # preset -> built config

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, every_preset: bool = False,
                  check_fonts: bool = True) -> RenderSettings:
        """Validate the render flags; every error here comes before anything is read or
        written. The config is built for one preset (``every_preset``: for each one ``auto``
        may pick, as jobs over many documents need); others are built on first use."""
        budget = getattr(args, "budget", None)
        if budget is not None and getattr(args, "cfg_dpi", None) is not None:
            raise ConfigError("give --dpi or --budget, not both")
        if args.preset != "auto" and args.preset not in PRESETS:
            raise ConfigError(f"--preset {args.preset!r}: expected auto or one of "
                              f"{', '.join(PRESETS)}")
        overrides = {f.name.replace("_", "-"): _flag_value(f.name, getattr(args, "cfg_" + f.name))
                     for f in dataclasses.fields(RenderConfig)
                     if getattr(args, "cfg_" + f.name, None) is not None}
        s = cls(preset=args.preset, profile=args.profile, tokenizer=args.tokenizer,
                budget=budget, min_px_per_em=getattr(args, "min_px_per_em", None),
                max_dpi=getattr(args, "max_dpi", None) or DEFAULT_MAX_DPI,
                overflow=getattr(args, "overflow", "error"), config_file=args.config,
                overrides=overrides)
        names = list(PRESETS) if args.preset == "auto" else [args.preset]
        for name in names if every_preset else names[:1]:
            s.base(name)
        s.check(fonts=check_fonts)
        return s

    def base(self, preset: str) -> RenderConfig:
        """A preset with ``--config`` and the flags over it (preset < ``--config`` < flags),
        built once."""
        cfg = self.bases.get(preset)
        if cfg is None:
            # a --font flag wins over the preset's font: no system-wide search for the latter
            # (fontconfig and a walk of the font folders, ~40 ms of a short render)
            cfg = RenderConfig.preset(preset, font_path=self.overrides.get("font-path"))
            if self.config_file:
                cfg = RenderConfig.from_json(self.config_file, base=cfg)
            if self.overrides:
                cfg = cfg.replace(**self.overrides)
            self.bases[preset] = cfg
        return cfg

    def check(self, *, fonts: bool = True) -> None:
        """Load the profile, the tokenizer and the fonts now, so a bad one fails first."""
        from .fonts import load_face
        from .text_tokens import get_tokenizer
        from .vision_tokens import get_profile

        get_profile(self.profile)
        get_tokenizer(self.tokenizer)
        if fonts:
            for path in dict.fromkeys(p for cfg in self.bases.values() for p in cfg.font_chain):
                load_face(path)

    @property
    def vision_profile(self) -> VisionProfile:
        from .vision_tokens import get_profile

        return get_profile(self.profile)

    @property
    def text_tokenizer(self) -> TextTokenizer:
        from .text_tokens import get_tokenizer

        return get_tokenizer(self.tokenizer)

    def config_for(self, text: str, overrides: dict[str, Any] | None = None,
                   ) -> tuple[RenderConfig, str]:
        """The config for ``text`` and its preset's name: the run's preset (``auto`` picks
        glyph-zh for CJK text), then an item's own overrides (Glyph's JSON keys)."""
        name = self.preset if self.preset != "auto" else detect_preset(text)
        cfg = self.base(name)
        if overrides:
            cfg = RenderConfig.from_dict(overrides, base=cfg)
        return cfg, name

    def plan(self, text: str, config: RenderConfig, *, budget: int | None = None,
             overflow: str | None = None) -> Plan:
        """:func:`~glyph_render.compress.compress` with these settings. The budget counts each
        page's image wrapper tokens, as the model's prompt does, so one budget is one plan in
        every command."""
        chosen = self.budget if budget is None else budget
        if chosen is None:
            raise ConfigError("no --budget to plan for")
        profile = self.vision_profile
        return compress(text, chosen, model=profile, config=config, tokenizer=self.tokenizer,
                        min_px_per_em=self.min_px_per_em, max_dpi=self.max_dpi,
                        overflow=overflow or self.overflow,  # type: ignore[arg-type]
                        per_image_tokens=profile.image_wrapper_tokens)

    def to_json(self) -> dict[str, Any]:
        """What a results file records about the rendering (not the configs themselves)."""
        out: dict[str, Any] = {"budget": self.budget, "overflow": self.overflow,
                               "profile": self.profile, "tokenizer": self.tokenizer,
                               "preset": self.preset}
        if self.config_file:
            out["config"] = str(self.config_file)
        return out


# ---- endpoint settings ---------------------------------------------------------------------


@dataclass
class EndpointSettings:
    """Where and how to ask; the API key is read from ``api_key_env`` when a client is made,
    never stored here or printed."""

    endpoints: list[str] = field(default_factory=list)  # empty: the client's default
    served_model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    max_tokens: int | None = None
    system: str | None = None
    thinking: bool | None = None
    deadline: float = DEFAULT_DEADLINE
    max_reply_bytes: int = int(DEFAULT_MAX_REPLY_MB * 2**20)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EndpointSettings:
        ep = args.endpoint
        return cls(endpoints=list(ep) if isinstance(ep, list) else ([ep] if ep else []),
                   served_model=args.served_model, api_key_env=args.api_key_env,
                   timeout=args.timeout, retries=getattr(args, "retries", DEFAULT_RETRIES),
                   max_tokens=getattr(args, "max_tokens", None),
                   system=getattr(args, "system", None), thinking=getattr(args, "thinking", None),
                   deadline=getattr(args, "deadline", DEFAULT_DEADLINE),
                   max_reply_bytes=max(1, int(getattr(args, "max_reply_mb",
                                                      DEFAULT_MAX_REPLY_MB) * 2**20)))

    @property
    def endpoint(self) -> str | None:
        return self.endpoints[0] if self.endpoints else None

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def client_kwargs(self, render: RenderSettings | None = None) -> dict[str, Any]:
        """Keywords for :class:`~glyph_render.client.GlyphClient` (and the async one), but the
        base URL: the render settings' profile, tokenizer and budget limits with these."""
        kw: dict[str, Any] = {"api_key": self.api_key(), "model": self.served_model,
                              "timeout": self.timeout, "max_retries": self.retries,
                              "deadline": self.deadline, "max_reply_bytes": self.max_reply_bytes}
        if render is not None:
            kw.update(profile=render.profile, tokenizer=render.tokenizer,
                      min_px_per_em=render.min_px_per_em, max_dpi=render.max_dpi)
        return kw

    def ask_kwargs(self) -> dict[str, Any]:
        """The answer settings that were given (the client's defaults stand for the rest)."""
        kw = {"max_tokens": self.max_tokens, "system": self.system, "thinking": self.thinking}
        return {k: v for k, v in kw.items() if v is not None}

