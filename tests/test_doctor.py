"""``glyph-render doctor`` against real serve-ocr processes (and a port nothing listens on).

Each server is a real ``python -m glyph_render.testing --port 0 --no-ocr`` process: the doctor
only needs its protocol, metrics and token accounting, not its OCR. The doctor runs as the real
CLI in a subprocess. ``serve_ocr`` is shared with test_bench_serve.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from glyph_render.serving.doctor import main as doctor_main

try:
    from fault_server import FaultServer, fault_servers
except ImportError:  # tests/ imported as a package
    from tests.fault_server import FaultServer, fault_servers

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serve_ocr(*args: str, command: Sequence[str] | None = None) -> Iterator[str]:
    """A serve-ocr process with ``args``; yields its OpenAI base URL, stops it after.

    ``command``: how to start it, when not ``python -m glyph_render.testing --port 0 -q
    --tokenizer bytes`` (bytes: the tests pass --tokenizer bytes to the doctor, as for the tiny
    vLLM test model; serve-ocr's default, cl100k_base, is checked in test_cli_misc.py).
    """
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    start = command or [sys.executable, "-m", "glyph_render.testing", "--port", "0", "-q",
                        "--tokenizer", "bytes"]
    proc = subprocess.Popen([*start, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=REPO, env=env, text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(30)
        match = re.search(r"listening on (http://\S+/v1)", line[0] if line else "")
        assert match, f"serve-ocr did not start: {line!r}"
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


@pytest.fixture()
def doctor(capsys):
    """``doctor --json`` in this process (the servers are the real processes; the CLI's own
    process is covered by the text-output tests): (exit status, the report, stderr)."""
    def run(url: str, *extra: str) -> tuple[int, dict, str]:
        capsys.readouterr()
        code = doctor_main(["--endpoint", url, "--json", *extra])
        out, err = capsys.readouterr()
        return code, json.loads(out), err
    return run


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_prefix_caching_off_all_ok(run_cli, doctor):
    with serve_ocr("--no-ocr", "--reasoning-parser", "glm45") as url:
        code, report, err = doctor(url, "--tokenizer", "bytes")
        text = run_cli(["doctor", "--endpoint", url, "--tokenizer", "bytes"], cwd=REPO)
    checks = by_name(report)
    assert code == 0, (report, err)
    assert [c["status"] for c in report["checks"]] == ["OK"] * len(report["checks"]), report
    assert list(checks) == ["reachable", "model", "max_model_len", "server", "prefix caching",
                            "images", "vision tokens", "reasoning", "latency"]
    assert checks["model"]["data"]["model"] == "zai-org/Glyph"
    assert checks["max_model_len"]["data"]["max_model_len"] == 65536
    assert "off" in checks["prefix caching"]["message"]
    tokens = checks["vision tokens"]["data"]
    assert tokens["server"] == tokens["predicted"] > tokens["image_tokens_predicted"] > 0
    assert checks["reasoning"]["data"]["fields"] == ["reasoning", "reasoning_content"]
    latency = checks["latency"]["data"]
    assert 0 < latency["ttft"] <= latency["e2e"]
    # the same verdicts as text lines, and no API key or Authorization header anywhere
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0] == f"glyph-render doctor: {url}"
    assert re.match(r"OK\s+prefix caching\s+off ", lines[5]), lines
    assert lines[-1] == "0 failures, 0 warnings"


def test_prefix_caching_on_warns_with_the_fix(doctor):
    with serve_ocr("--no-ocr", "--enable-prefix-caching") as url:
        code, report, _ = doctor(url, "--tokenizer", "bytes")
    checks = by_name(report)
    assert code == 0  # a warning is not a failure
    prefix = checks["prefix caching"]
    assert prefix["status"] == "WARN"
    assert 'enable_prefix_caching="True"' in prefix["message"]
    assert "--no-enable-prefix-caching" in prefix["fix"]
    # no reasoning parser on this server: thinking arrives inline
    assert checks["reasoning"]["status"] == "WARN"
    assert "--reasoning-parser glm45" in checks["reasoning"]["fix"]
    assert report["warnings"] == 2 and report["failures"] == 0


def test_wrong_token_rule_fails_with_both_numbers(doctor):
    with serve_ocr("--no-ocr", "--token-rule", "wrong") as url:
        code, report, _ = doctor(url, "--tokenizer", "bytes")
    check = by_name(report)["vision tokens"]
    data = check["data"]
    assert code == 1 and not report["ok"]
    assert check["status"] == "FAIL"
    assert data["server"] != data["predicted"]
    assert f"server counted {data['server']:,} prompt tokens" in check["message"]
    assert f"predicted {data['predicted']:,}" in check["message"]
    assert "image processor differs from the profile" in check["message"]
    # the text part agrees, so the whole difference is the image's: unmerged patches (4x)
    assert data["text_server"] == data["text_predicted"]
    assert data["image_server"] == 4 * data["image_predicted"] == 4 * data[
        "image_tokens_predicted"]
    assert "--profile" in check["fix"]


def test_stand_in_tokenizer_only_warns(doctor):
    """cl100k_base counts the question differently from the server's bytes: text, not image."""
    with serve_ocr("--no-ocr") as url:
        code, report, _ = doctor(url)
    check = by_name(report)["vision tokens"]
    assert code == 0
    assert check["status"] == "WARN"
    assert check["data"]["image_server"] == check["data"]["image_predicted"]
    assert "--tokenizer" in check["fix"]


def test_unreachable_endpoint_fails(run_cli, doctor):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    code, report, _ = doctor(url)
    assert code == 1
    assert [c["name"] for c in report["checks"]] == ["reachable"]
    check = report["checks"][0]
    assert check["status"] == "FAIL" and url in check["message"]
    assert check["fix"]
    text = run_cli(["doctor", "--endpoint", url], cwd=REPO)
    assert text.returncode == 1
    assert text.stdout.splitlines()[1].startswith("FAIL  reachable")


def test_api_key_is_used_and_never_printed(run_cli, doctor, monkeypatch):
    key = "s3cret-doctor-KEY-77"
    with serve_ocr("--no-ocr", "--api-key", key) as url:
        refused = run_cli(["doctor", "--endpoint", url], cwd=REPO)
        monkeypatch.setenv("OPENAI_API_KEY", key)
        code, report, err = doctor(url, "--tokenizer", "bytes")
    assert refused.returncode == 1
    assert "FAIL  reachable" in refused.stdout and "OPENAI_API_KEY" in refused.stdout
    assert code == 0, report
    assert key not in refused.stdout + refused.stderr + json.dumps(report) + err


@pytest.mark.parametrize("flag", [["--tokenizer", "no-such-tokenizer"], ["--profile", "nope"]])
def test_bad_option_exits_2(capsys, flag):
    assert doctor_main(["--endpoint", "http://127.0.0.1:9/v1", *flag]) == 2
    assert capsys.readouterr().err.startswith("glyph-render doctor: error:")


def test_model_not_served_fails(doctor):
    with serve_ocr("--no-ocr") as url:
        code, report, _ = doctor(url, "--model", "no-such-model")
    checks = by_name(report)
    assert code == 1
    assert checks["reachable"]["status"] == "OK"
    assert checks["model"]["status"] == "FAIL"
    assert "no-such-model" in checks["model"]["message"]
    assert "zai-org/Glyph" in checks["model"]["message"]


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "server_args"])
def test_sglang_server_info(nested):
    """SGLang cannot run here: its /get_server_info bodies (flat, or under server_args) come
    from a stdlib HTTP server; /metrics is 404 as without --enable-metrics."""
    import asyncio
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from glyph_render.serving.bench_request import ChatEndpoint
    from glyph_render.serving.doctor import _prefix_check, _server_facts

    args = {"disable_radix_cache": False, "context_length": 32768, "tp_size": 4}
    body = {"server_args": args, "version": "0.5.6.post1"} if nested else {
        **args, "version": "0.5.6.post1", "max_total_num_tokens": 500000}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode() if self.path == "/get_server_info" else b"{}"
            self.send_response(200 if self.path == "/get_server_info" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    async def facts():
        ep = ChatEndpoint(f"http://127.0.0.1:{httpd.server_address[1]}/v1")
        try:
            return await _server_facts(ep)
        finally:
            await ep.close()

    try:
        server = asyncio.run(facts())
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (server.engine, server.version) == ("SGLang", "0.5.6.post1")
    assert server.prefix_caching is True and server.context_length == 32768
    check = _prefix_check(server)
    assert check.status == "WARN"
    assert "disable_radix_cache=false" in check.message
    assert "--disable-radix-cache" in check.fix


# --- bounded waits: a server that answers but never finishes -----------------------------------


@pytest.fixture()
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    with fault_servers() as make:
        yield make


def test_trickling_model_listing_fails_within_the_deadline(doctor, fault_server):
    """/v1/models a byte every 1.2 s: the reachable check fails at --deadline, naming it."""
    srv = fault_server(get={"/v1/models": "trickle"})
    t0 = time.monotonic()
    code, report, _ = doctor(srv.url, "--deadline", "1.5", "--timeout", "10")
    assert time.monotonic() - t0 < 4
    assert code == 1 and [c["name"] for c in report["checks"]] == ["reachable"]
    check = report["checks"][0]
    assert check["status"] == "FAIL" and "deadline of 1.5 s" in check["message"]
    assert "--deadline" in check["fix"]


def test_endless_probe_stream_fails_within_the_deadline(doctor, fault_server):
    """The probe's stream never ends: "images" fails at the deadline, as an unfinished reply
    (not an image refused, and no second request to tell image from text)."""
    srv = fault_server("endless")
    t0 = time.monotonic()
    code, report, _ = doctor(srv.url, "--deadline", "1", "--tokenizer", "bytes")
    assert time.monotonic() - t0 < 6
    check = by_name(report)["images"]
    assert code == 1 and check["status"] == "FAIL"
    assert "did not complete" in check["message"] and "deadline of 1 s" in check["message"]
    assert check["data"]["error_type"] == "DeadlineExceeded" and srv.requests == 1


@pytest.mark.parametrize(("fault", "flags", "said"), [
    ("trickle", ["--deadline", "1.5", "--timeout", "10"],
     "GET http://127.0.0.1:{port}/metrics did not finish within the deadline of 1.5 s"),
    ("huge_chunked", ["--max-reply-mb", "1"],
     "the reply to GET http://127.0.0.1:{port}/metrics is larger than the limit of "
     "1,048,576 bytes"),
])
def test_endless_metrics_is_one_line_and_exit_2(run_cli, fault_server, fault, flags, said):
    """The doctor's plain GETs (/metrics, /version, /get_server_info) are bounded as the
    client's requests are: past a bound, the run stops with one line and exit 2."""
    srv = fault_server(get={"/metrics": fault})
    t0 = time.monotonic()
    res = run_cli(["doctor", "--endpoint", srv.url, "--quiet", *flags], cwd=REPO)
    assert time.monotonic() - t0 < 15
    port = srv.url.split(":")[2].split("/")[0]
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        res.stderr.strip()] and said.format(port=port) in res.stderr, res.stderr
    assert res.stderr.startswith("glyph-render doctor: error: ")


@pytest.mark.parametrize("flags", [["--deadline", "0"], ["--deadline", "nan"],
                                   ["--max-reply-mb", "-1"], ["--max-reply-mb", "x"]])
def test_bound_flags_checked_in_one_line(capsys, flags):
    with pytest.raises(SystemExit) as exc:
        doctor_main(["--endpoint", "http://127.0.0.1:9/v1", *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert flags[0] in err and repr(flags[1]) in err
