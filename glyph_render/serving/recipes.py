"""``glyph-render serve``: the launch (and install, and benchmark) commands for a Glyph server.

Why one command: the vLLM guide and the SGLang cookbook page for Glyph each show a few commands
and a generator; users need the right one for their engine x GPU x quantization, with the flags
that matter for Glyph (prefix and processor caching off: every document's pages are new images,
so hashing and caching them costs time and memory and never hits). Every recipe is a row of
``data/recipes.json``; this module only renders rows, so the table is reviewed and tested in one
place (``tests/test_recipes.py`` checks it against the seed pages line by line).

    glyph-render serve --engine vllm --hardware h100 --quant bf16          # print the command
    glyph-render serve --engine sglang --hardware mi355x --install         # install + launch
    glyph-render serve --engine vllm --hardware h100 --local-media ~/pages --run   # exec it
    glyph-render serve --engine sglang --hardware L40S --gpus 1 -- --context-length 32768

Any GPU: names are case-insensitive; a GPU outside the seed pages (``data/recipes.json``
"gpus", or any with ``--gpu-memory GB``) gets its vendor's base row (H100's or MI300X's command)
with the smallest tensor-parallel size whose memory holds the weights; ``--gpus N`` keeps TP
within the box. Engine flags after ``--`` are appended as they are.

``--seed-exact`` prints the seed pages' own commands byte for byte; the default is our
recommended variant (the same command plus, on SGLang, ``--disable-radix-cache``). See
docs/serving.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ConfigError, GlyphRenderError
from ..settings import Parser

__all__ = [
    "DATA_PATH",
    "ENGINES",
    "HARDWARE",
    "QUANTS",
    "Command",
    "Gpu",
    "LaunchError",
    "Recipe",
    "ServeOptions",
    "bench_commands",
    "exec_command",
    "fit_tp",
    "gpu",
    "install_lines",
    "launch_command",
    "load_table",
    "main",
    "markdown_table",
    "recipe",
    "recipes",
]

PROG = "glyph-render serve"
DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "recipes.json"

# Group roles: when a flag group of a form is emitted (see _active). Origins: "seed" (the seed's
# command always has it), "seed-option" (the seed's generator toggles it), "ours" (our addition,
# never in --seed-exact output).
ROLES = ("always", "model", "tp", "reasoning", "tool-calls", "no-cache", "local-media", "port")
ORIGINS = ("seed", "seed-option", "ours")
PLACEHOLDERS = ("{model}", "{tp}", "{port}", "{local_media}", "{model_flag}", "{tp_flag}")
# The CLI option that turns each role on or off, for error messages.
_ROLE_OPTION = {
    "tp": "--tp", "reasoning": "--no-reasoning", "tool-calls": "--tool-calls",
    "no-cache": "--prefix-caching", "local-media": "--local-media", "port": "--port",
}


class LaunchError(GlyphRenderError, OSError):
    """The server program cannot be started (not on PATH, not executable)."""


@dataclass(frozen=True)
class Recipe:
    """One row of the table: how one engine serves one quantization on one GPU."""

    engine: str
    hardware: str
    quant: str
    model: str
    tp: int
    env: tuple[tuple[str, str], ...]
    launcher: tuple[str, ...]
    model_flag: str | None
    tp_flag: str
    tp_when: str  # "gt1": emit the TP flag only above 1 (engine default); "always"
    install: str
    seed: str | None  # where a seed page shows this command; None: our extrapolation
    note: str


@dataclass(frozen=True)
class Command:
    """A command as argv plus environment (for exec) and as the seeds lay it out (for print)."""

    env: tuple[tuple[str, str], ...]
    head: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    indent: str

    @property
    def argv(self) -> list[str]:
        return [*self.head, *(tok for g in self.groups for tok in g)]

    def text(self) -> str:
        """One ``VAR=value \\`` line per variable, the program line, one option per line."""
        lines = [f"{k}={shlex.quote(v)}" for k, v in self.env]
        lines.append(shlex.join(self.head))
        lines += [self.indent + shlex.join(g) for g in self.groups]
        return " \\\n".join(lines)


@dataclass(frozen=True)
class ServeOptions:
    """What the user asked for; mirrors the CLI flags."""

    engine: str
    hardware: str
    quant: str = "bf16"
    reasoning: bool = True
    tool_calls: bool = False
    tp: int | None = None  # None: the table's
    port: int | None = None  # None: the engine's default, no flag
    model: str | None = None  # a local checkpoint instead of the table's Hugging Face id
    local_media: str | None = None
    prefix_caching: bool = False
    seed_exact: str | None = None  # None: our variant; "": the engine's first form; or a form
    gpus: int | None = None  # GPUs on the box: TP stays within them (None: the table's TP)
    gpu_memory: float | None = None  # GB per GPU, for a GPU the table does not know
    vendor: str | None = None  # nvidia or amd, for such a GPU (default: by its name)
    engine_args: tuple[str, ...] = ()  # appended as given (what follows ``--``)


@dataclass(frozen=True)
class Gpu:
    """A GPU as ``serve`` sees it: a row of the table, a catalogue entry, or the user's own."""

    key: str
    label: str
    vendor: str
    memory_gb: float
    in_table: bool


# ---------------------------------------------------------------- the table


@functools.cache
def load_table(path: str | None = None) -> dict[str, Any]:
    """The parsed, checked recipes.json (a broken table fails here, not mid-command)."""
    data = json.loads(Path(path or DATA_PATH).read_text(encoding="utf-8"))
    _validate(data)
    return data


def _validate(data: Mapping[str, Any]) -> None:
    def bad(msg: str) -> NoReturn:
        raise ValueError(f"recipes.json: {msg}")

    keys = [(r["engine"], r["hardware"], r["quant"]) for r in data["recipes"]]
    want = {(e, h, q) for e in data["engines"] for h in data["hardware"] for q in data["quant"]}
    if len(keys) != len(set(keys)) or set(keys) != want:
        bad("recipes must hold exactly one row per engine x hardware x quant")
    for r in data["recipes"]:
        if r["install"] not in data["install"]:
            bad(f"unknown install {r['install']!r}")
        if r["tp_when"] not in ("gt1", "always") or int(r["tp"]) < 1:
            bad(f"bad tp in {r}")
        if r["seed"] is not None and r["seed"].split(":")[0] not in data["seeds"]:
            bad(f"unknown seed in {r['seed']!r}")
    for name, g in {**data["hardware"], **data["gpus"]}.items():
        if g["vendor"] not in data["base_hardware"] or not float(g["memory_gb"]) > 0:
            bad(f"GPU {name}: needs a vendor of {', '.join(data['base_hardware'])} and "
                f"memory_gb > 0")
    if set(data["base_hardware"].values()) - set(data["hardware"]):
        bad("base_hardware names a GPU that has no rows")
    if not all(float(q["weights_gb"]) > 0 for q in data["quant"].values()):
        bad("every quant needs weights_gb > 0")
    for name, eng in data["engines"].items():
        for form_name, form in eng["forms"].items():
            for g in form["groups"]:
                if g["role"] not in ROLES or g["origin"] not in ORIGINS:
                    bad(f"{name}/{form_name}: bad group {g}")
                for tok in g["args"]:
                    if tok.startswith("{") and tok not in PLACEHOLDERS:
                        bad(f"{name}/{form_name}: unknown placeholder {tok}")
    for name, benches in data["bench"].items():
        if name not in data["engines"]:
            bad(f"bench for unknown engine {name!r}")
        for b in benches:
            for tok in (t for g in b["groups"] for t in g):
                if tok.startswith("{") and tok != "{model}":
                    bad(f"bench {b['name']}: unknown placeholder {tok}")


def _table() -> dict[str, Any]:
    return load_table(None)


ENGINES: tuple[str, ...] = tuple(_table()["engines"])
HARDWARE: tuple[str, ...] = tuple(_table()["hardware"])
QUANTS: tuple[str, ...] = tuple(_table()["quant"])


def recipes() -> tuple[Recipe, ...]:
    """Every row, in table order."""
    return tuple(_recipe_from(r) for r in _table()["recipes"])


def _recipe_from(r: Mapping[str, Any]) -> Recipe:
    return Recipe(
        engine=r["engine"], hardware=r["hardware"], quant=r["quant"], model=r["model"],
        tp=int(r["tp"]), env=tuple(r["env"].items()), launcher=tuple(r["launcher"]),
        model_flag=r["model_flag"], tp_flag=r["tp_flag"], tp_when=r["tp_when"],
        install=r["install"], seed=r["seed"], note=r["note"],
    )


def recipe(engine: str, hardware: str, quant: str) -> Recipe:
    """The row for one engine x hardware x quantization of the table (names in any case)."""
    engine, quant = engine.lower(), quant.lower()
    hardware = _table_key(hardware, HARDWARE) or hardware
    for name, value, choices in (("engine", engine, ENGINES), ("hardware", hardware, HARDWARE),
                                 ("quant", quant, QUANTS)):
        if value not in choices:
            raise ConfigError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
    key = (engine, hardware, quant)
    return next(r for r in recipes() if (r.engine, r.hardware, r.quant) == key)


def _squash(name: str) -> str:
    """``H100``, ``a100-40GB``, ``RTX 4090`` -> ``h100``, ``a10040gb``, ``rtx4090``."""
    return re.sub(r"[\s_-]+", "", name.lower())


def _table_key(name: str, keys: Sequence[str]) -> str | None:
    return next((k for k in keys if _squash(k) == _squash(name)), None)


def gpu(name: str | None, memory_gb: float | None = None, vendor: str | None = None) -> Gpu:
    """The GPU called ``name`` (any case; a table row or a catalogue entry), or any GPU given
    its memory. ``memory_gb`` overrides a known GPU's; ``vendor`` names an unknown one's."""
    t = _table()
    if memory_gb is not None and not memory_gb > 0:
        raise ConfigError(f"--gpu-memory must be a number of GB above 0, got {memory_gb:g}")
    if vendor is not None and vendor not in t["base_hardware"]:
        raise ConfigError(f"--vendor {vendor!r}: choose from {', '.join(t['base_hardware'])}")
    for table, in_table in ((t["hardware"], True), (t["gpus"], False)):
        key = _table_key(name or "", list(table))
        if key is not None:
            g = table[key]
            if vendor is not None and vendor != g["vendor"]:
                raise ConfigError(f"--vendor {vendor}: the {g['label']} is {g['vendor']}")
            return Gpu(key, g["label"], g["vendor"], float(memory_gb or g["memory_gb"]),
                       in_table)
    if memory_gb is None:
        known = ", ".join([*t["hardware"], *t["gpus"]])
        raise ConfigError(f"unknown hardware {name!r}; choose from {known}, or give any GPU's "
                          f"memory: --gpu-memory GB (and --vendor amd for ROCm)")
    label = name or "GPU"
    guessed = "amd" if re.match(r"(?i)(mi\d|radeon|rx\d)", label) else "nvidia"
    return Gpu(_squash(label) or "gpu", label, vendor or guessed, float(memory_gb), False)


def fit_tp(quant: str, memory_gb: float) -> int:
    """The smallest power-of-two tensor-parallel size whose GPUs hold ``quant``'s weights in
    their ``weights_share`` of memory (the rest is KV cache and activations)."""
    t = _table()
    weights = float(t["quant"][quant]["weights_gb"])
    share, most = float(t["fit"]["weights_share"]), int(t["fit"]["max_tp"])
    tp = 1
    while tp * memory_gb * share < weights:
        tp *= 2
        if tp > most:
            hint = "; try --quant fp8" if quant != "fp8" else ""
            raise ConfigError(f"the {quant} weights (about {weights:g} GB) need more than "
                              f"{most} GPUs of {memory_gb:g} GB{hint}")
    return tp


def _seed_title(citation: str | None) -> str:
    if not citation:
        return "no seed page"
    return _table()["seeds"][citation.split(":")[0]]["title"]


# ---------------------------------------------------------------- commands


def _row(opts: ServeOptions) -> tuple[Recipe, Gpu]:
    """The table's row for a GPU it has; else the vendor's base row, fitted to the GPU."""
    g = gpu(opts.hardware, opts.gpu_memory, opts.vendor)
    quant = opts.quant.lower()
    if g.in_table:
        return recipe(opts.engine, g.key, quant), g
    base = recipe(opts.engine, _table()["base_hardware"][g.vendor], quant)
    tp = fit_tp(quant, g.memory_gb)
    weights = _table()["quant"][quant]["weights_gb"]
    note = (f"{_table()['hardware'][base.hardware]['label']}'s command for the {g.label} "
            f"({g.memory_gb:g} GB): TP {tp} holds the {quant} weights (about {weights} GB)")
    return dataclasses.replace(base, hardware=g.key, tp=tp, seed=None, note=note), g


def _tp(opts: ServeOptions, row: Recipe, g: Gpu) -> int:
    """``--tp``, else the row's, within ``--gpus``: a table TP the box cannot hold becomes the
    smallest that fits the weights (a 9B model needs no 4 GPUs)."""
    tp = row.tp if opts.tp is None else opts.tp
    if opts.gpus is None or tp <= opts.gpus:
        return tp
    if opts.tp is None:
        tp = fit_tp(row.quant, g.memory_gb)
    if tp > opts.gpus:
        if opts.tp is not None:
            raise ConfigError(f"--tp {tp} needs {tp} GPUs, but --gpus is {opts.gpus}")
        weights = _table()["quant"][row.quant]["weights_gb"]
        raise ConfigError(f"the {row.quant} weights (about {weights} GB) need {tp} GPUs of "
                          f"{g.memory_gb:g} GB, but --gpus is {opts.gpus}"
                          + ("; try --quant fp8" if row.quant != "fp8" else ""))
    return tp


def _check(opts: ServeOptions) -> tuple[Recipe, Gpu]:
    row, g = _row(opts)
    if opts.tp is not None and opts.tp < 1:
        raise ConfigError(f"--tp must be at least 1, got {opts.tp}")
    if opts.gpus is not None and opts.gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {opts.gpus}")
    if opts.port is not None and not 1 <= opts.port <= 65535:
        raise ConfigError(f"--port must be 1-65535, got {opts.port}")
    if opts.seed_exact is not None:
        ours = [flag for flag, v in (("--port", opts.port), ("--model", opts.model),
                                     ("--local-media", opts.local_media),
                                     ("--prefix-caching", opts.prefix_caching or None))
                if v is not None]
        if opts.engine_args:
            ours.append("engine flags after --")
        if ours:
            raise ConfigError(f"--seed-exact reproduces the seed pages' commands, which have no "
                              f"{', '.join(ours)}; drop one or the other")
    return row, g


def _form(opts: ServeOptions) -> tuple[str, dict[str, Any]]:
    forms = _table()["engines"][opts.engine.lower()]["forms"]
    name = opts.seed_exact or next(iter(forms))
    if name not in forms:
        raise ConfigError(f"--seed-exact {name}: {opts.engine} has the forms "
                          f"{', '.join(forms)}")
    return name, forms[name]


def _local_media(opts: ServeOptions) -> str | None:
    if opts.local_media is None:
        return None
    if not any(g["role"] == "local-media" for g in _form(opts)[1]["groups"]):
        raise ConfigError(f"--local-media with {opts.engine}: "
                          + _table()["engines"][opts.engine].get("no_local_media", "no flag"))
    path = Path(opts.local_media).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--local-media {opts.local_media}: not a folder")
    return str(path)


def launch_command(opts: ServeOptions) -> Command:
    """The server command for ``opts``: the seed's form, plus our groups unless seed-exact."""
    row, g = _check(opts)
    opts = dataclasses.replace(opts, engine=row.engine, hardware=row.hardware, quant=row.quant)
    form = _form(opts)[1]
    engine = _table()["engines"][opts.engine]
    exact = opts.seed_exact is not None
    if exact and row.seed is None:
        shown = [f"{r.hardware} x {r.quant}" for r in recipes()
                 if r.engine == opts.engine and r.seed]
        raise ConfigError(f"--seed-exact: {_seed_title(form['seed'])} shows no {engine['label']} "
                          f"command for {opts.hardware} x {opts.quant} (only {', '.join(shown)})"
                          f"; without --seed-exact you get our extrapolation ({row.note})")
    tp = _tp(opts, row, g)
    tp_when = form.get("tp_when", row.tp_when)
    values = {
        "{model}": opts.model or row.model, "{tp}": str(tp), "{port}": str(opts.port),
        "{local_media}": _local_media(opts), "{model_flag}": form.get("model_flag", row.model_flag),
        "{tp_flag}": row.tp_flag,
    }
    active = {
        "always": True, "model": True, "tp": tp > 1 or tp_when == "always",
        "reasoning": opts.reasoning, "tool-calls": opts.tool_calls,
        "no-cache": not opts.prefix_caching, "local-media": opts.local_media is not None,
        "port": opts.port is not None,
    }
    groups: list[tuple[str, ...]] = []
    for g in form["groups"]:
        role, origin = g["role"], g["origin"]
        flag = values.get(g["args"][0]) or g["args"][0]
        if not active[role]:
            # The user turned off what the seed always passes (a TP of 1 is not that: the
            # generator itself omits --tp 1).
            if exact and origin == "seed" and role in _ROLE_OPTION and role != "tp":
                raise ConfigError(f"--seed-exact: {_seed_title(form['seed'])} always passes "
                                  f"{flag}; drop {_ROLE_OPTION[role]} or --seed-exact")
            continue
        if exact and origin == "ours":
            if role == "no-cache":  # our default addition: the seed's command simply lacks it
                continue
            raise ConfigError(f"--seed-exact: {_seed_title(form['seed'])} has no {flag}; "
                              f"drop {_ROLE_OPTION.get(role, role)} or --seed-exact")
        groups.append(tuple(values.get(tok, tok) for tok in g["args"]))
    groups += _engine_groups(opts.engine_args, groups)
    launcher = tuple(form.get("launcher", row.launcher))
    head = (*launcher, values["{model}"]) if form["head_model"] else launcher
    return Command(env=row.env, head=head, groups=tuple(groups), indent=form["indent"])


def _engine_groups(extra: Sequence[str], ours: Sequence[tuple[str, ...]],
                   ) -> list[tuple[str, ...]]:
    """The flags after ``--``, one per line with their values; a flag the command already has
    is refused (the engine would silently take the last one)."""
    have = {g[0] for g in ours if g and g[0].startswith("--")}
    out: list[tuple[str, ...]] = []
    for tok in extra:
        if tok.startswith("-") and not _NUMBER.match(tok):
            flag = tok.split("=", 1)[0]
            if flag in have:
                raise ConfigError(f"engine flag {flag} after -- is already in the command; "
                                  f"drop it, or use this command's own option for it")
            out.append((tok,))
        elif out:
            out[-1] += (tok,)
        else:
            raise ConfigError(f"after --: expected an engine flag first, got {tok!r}")
    return out


_NUMBER = re.compile(r"-\d|-\.\d")


def install_lines(opts: ServeOptions) -> list[str]:
    """Shell lines that install the engine for this row (``seed_lines`` under --seed-exact)."""
    row = _check(opts)[0]
    inst = _table()["install"][row.install]
    if opts.seed_exact is not None:
        if inst["seed"] is None:
            raise ConfigError(f"--seed-exact --install: the seed pages give no {row.install} "
                              f"install command; {inst['note']}")
        return list(inst.get("seed_lines", inst["lines"]))
    return list(inst["lines"])


def bench_commands(opts: ServeOptions) -> list[tuple[str, Command]]:
    """(title, command) for each benchmark the engine's seed page runs against the server."""
    row = _check(opts)[0]
    model = opts.model or row.model
    out = []
    for b in _table()["bench"][row.engine]:
        if opts.seed_exact is not None and b["seed_model"] not in (None, model):
            raise ConfigError(f"--seed-exact --bench: the seed benchmarks only "
                              f"{b['seed_model']}, not {model}")
        groups = [tuple(model if t == "{model}" else t for t in g) for g in b["groups"]]
        if opts.port is not None:
            groups.append(("--port", str(opts.port)))
        out.append((b["title"], Command(env=(), head=tuple(b["head"]), groups=tuple(groups),
                                        indent=b["indent"])))
    return out


def markdown_table() -> str:
    """The table as Markdown (docs/serving.md embeds it; ``serve --list`` prints it)."""
    t = _table()
    lines = ["| engine | hardware | quant | model | TP | program | environment | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in recipes():
        env = " ".join(f"{k}={v}" for k, v in r.env) or "-"
        prog = " ".join(r.launcher) + (f" {r.model_flag}" if r.model_flag else "")
        if r.seed:
            seed, section = r.seed.split(": ", 1)
            src = f"{t['seeds'][seed]['short']}: {section}"
        else:
            src = f"ours: {r.note}"
        lines.append(f"| {t['engines'][r.engine]['label']} | {t['hardware'][r.hardware]['label']}"
                     f" | {t['quant'][r.quant]['label']} | `{r.model}` | {r.tp} | `{prog}` | "
                     + (f"`{env}`" if r.env else env) + f" | {src} |")
    return "\n".join(lines)


def exec_command(cmd: Command, environ: Mapping[str, str] | None = None) -> NoReturn:
    """Replace this process with ``cmd`` (same PID, so signals reach the server directly).

    The recipe's variables override the inherited environment, as they do in the printed
    ``VAR=value cmd`` form.
    """
    env = dict(os.environ if environ is None else environ)
    env.update(cmd.env)
    exe = cmd.argv[0]
    if shutil.which(exe, path=env.get("PATH", os.defpath)) is None:
        raise LaunchError(f"{exe} not found on PATH; '{PROG} ... --install' prints how to "
                          "install the engine")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(exe, cmd.argv, env)
    except OSError as exc:
        raise LaunchError(f"cannot run {exe}: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- CLI


def _parser() -> Parser:
    p = Parser(
        prog=PROG,
        description="Print (or run) the command that serves zai-org/Glyph with vLLM or SGLang. "
                    "The recipes are one table (glyph_render/data/recipes.json); see "
                    "docs/serving.md.",
        epilog="Default: our recommended variant of the seed pages' commands (prefix/radix and "
               "processor caching off). --seed-exact [FORM] prints the seed's own command "
               "byte for byte (forms: vllm 'guide'; sglang 'generator' (3.1) or 'usage' (4.2)).")
    p.add_argument("--engine", type=str.lower, choices=ENGINES)
    p.add_argument("--hardware", metavar="GPU",
                   help=f"the GPU, any case: {', '.join(HARDWARE)} (the seed pages'), "
                        f"{', '.join(_table()['gpus'])}, or any with --gpu-memory")
    p.add_argument("--quant", type=str.lower, choices=QUANTS, default="bf16",
                   help="default: bf16")
    p.add_argument("--gpus", type=int, metavar="N",
                   help="GPUs on this box: tensor parallelism stays within them (default: the "
                        "table's TP)")
    p.add_argument("--gpu-memory", type=float, metavar="GB",
                   help="memory per GPU, for a GPU not in the table: TP is sized to fit")
    p.add_argument("--vendor", choices=tuple(_table()["base_hardware"]),
                   help="such a GPU's vendor (default: amd for MI..., else nvidia)")
    p.add_argument("--no-reasoning", dest="reasoning", action="store_false",
                   help="no --reasoning-parser glm45 (thinking stays inline in the content)")
    p.add_argument("--tool-calls", action="store_true",
                   help="add the glm45 tool-call parser (off by default: glyph-render sends "
                        "no tools, so it would never run)")
    p.add_argument("--tp", type=int, metavar="N", help="tensor parallel size (default: table)")
    p.add_argument("--port", type=int, metavar="P",
                   help="listen port (default: the engine's, vLLM 8000, SGLang 30000)")
    p.add_argument("--model", metavar="PATH",
                   help="serve this checkpoint (e.g. a local copy) instead of the table's id")
    p.add_argument("--local-media", metavar="DIR",
                   help="vLLM --allowed-local-media-path: clients on this host may send "
                        "file:// page paths under DIR instead of base64")
    p.add_argument("--prefix-caching", action="store_true",
                   help="keep prefix/radix and processor caching on (many questions about "
                        "the same pages)")
    p.add_argument("--seed-exact", nargs="?", const="", metavar="FORM",
                   help="the seed page's command byte for byte, nothing of ours added")
    p.add_argument("--install", action="store_true", help="also print the install commands")
    p.add_argument("--bench", action="store_true",
                   help="print the seed page's benchmark commands for this server instead")
    p.add_argument("--run", action="store_true",
                   help="exec the launch command (this process becomes the server)")
    p.add_argument("--list", action="store_true", help="print the recipes table and exit")
    p.add_argument("engine_args", nargs="*", metavar="-- ENGINE_FLAGS",
                   help="after --: flags passed to the engine as they are "
                        "(e.g. -- --max-model-len 32768 --gpu-memory-utilization 0.9)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``glyph-render serve ARGS``; errors raise GlyphRenderError (the CLI prints one line)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:  # tolerate being handed the subcommand name too
        args_list = args_list[1:]
    engine_args: list[str] = []
    if "--" in args_list:
        at = args_list.index("--")
        args_list, engine_args = args_list[:at], args_list[at + 1:]
    p = _parser()
    args = p.parse_args(args_list)
    if args.engine_args:
        p.error(f"unexpected {args.engine_args[0]!r}; engine flags go after --")
    if args.list:
        print(markdown_table())
        return 0
    if not args.engine or not (args.hardware or args.gpu_memory):
        p.error("--engine and --hardware (or --gpu-memory) are required (or --list)")
    opts = ServeOptions(
        engine=args.engine, hardware=args.hardware, quant=args.quant, reasoning=args.reasoning,
        tool_calls=args.tool_calls, tp=args.tp, port=args.port, model=args.model,
        local_media=args.local_media, prefix_caching=args.prefix_caching,
        seed_exact=args.seed_exact, gpus=args.gpus, gpu_memory=args.gpu_memory,
        vendor=args.vendor, engine_args=tuple(engine_args),
    )
    if args.run and (args.install or args.bench):
        raise ConfigError("--run execs the server only; print --install/--bench without --run")
    if args.bench:
        print("\n\n".join(f"# {title}\n{cmd.text()}" for title, cmd in bench_commands(opts)))
        return 0
    cmd = launch_command(opts)
    row, g = _check(opts)
    if not g.in_table:  # our extrapolation: say from what, apart from the command itself
        print(f"{PROG}: note: {row.note}", file=sys.stderr)
    elif args.tp is None and _tp(opts, row, g) != row.tp:
        print(f"{PROG}: note: TP {_tp(opts, row, g)} instead of the table's {row.tp}: "
              f"--gpus {args.gpus}", file=sys.stderr)
    if args.install:
        print("# install\n" + "\n".join(install_lines(opts)) + "\n\n# launch")
    print(cmd.text())
    if args.run:
        exec_command(cmd)
    return 0


def _entry() -> int:  # pragma: no cover - ``python -m glyph_render.serving.recipes``
    try:
        return main()
    except GlyphRenderError as exc:
        print(f"glyph-render: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_entry())
