"""``glyph-render batch --engine ray`` on a real local Ray cluster (``ray start --head``).

Skipped when Ray Data is not installed (it is the optional ``ray`` extra; CI installs it).
Endpoints are serve-ocr processes; jobs run as real CLI processes that join the cluster with
``--ray-address``, exactly as on a multi-node cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.data",
                    reason="Ray Data is not installed (pip install 'glyph-render[ray]')")

from test_jobs import (  # noqa: E402 - after the skip: helpers shared with the local tests
        one_per_id,
    qa_rows,
    read_records,
    run_batch,
    serve_ocr,
    write_jsonl,
)

from glyph_render.jobs.summary import summary_path  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray >= 2.5x turns on token authentication at ``ray start`` and refuses to start without a
# token, while a driver's default mode is off: both sides are told "token", and both read the
# cluster's own token from a file in the head's temp folder (RAY_AUTH_TOKEN_PATH), so a fresh
# machine needs no ~/.ray/auth_token and the test never reads or writes the user's.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2"}  # a test head: no 30 s drain at exit


Cluster = tuple[str, dict[str, str]]  # address, environment of a driver joining it


def make_token(folder: Path) -> Path:
    """A new cluster token (256 random bits, hex, as ``ray get-auth-token --generate`` makes),
    readable by this user only."""
    path = folder / "auth_token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """A two-CPU head node in the foreground (``--block``): stopping it stops its processes,
    and only those (never ``ray stop``, which would end every cluster on the machine).

    Yields the address and the environment a driver needs to join it (token mode and path).
    """
    ray_cli = shutil.which("ray")
    cmd = [ray_cli] if ray_cli else [sys.executable, "-m", "ray.scripts.scripts"]
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="grray-", dir="/tmp")  # short: Ray's socket paths < 108
    env = {**RAY_ENV, "RAY_AUTH_TOKEN_PATH": str(make_token(Path(temp)))}
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*cmd, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **env})
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            text = (Path(temp) / "head.log").read_text(errors="replace")
            if "Ray runtime started" in text:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head failed:\n{text[-3000:]}")
            time.sleep(0.2)
        yield address, env
    finally:
        if proc.poll() is None:
            proc.terminate()  # --block: it stops the processes it started, then exits
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
                proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {json.dumps(r["id"]): r for r in records}


def test_ray_gives_the_same_answers_as_local(tmp_path: Path, ray_cluster: Cluster) -> None:
    ray_address, ray_env = ray_cluster
    rows = qa_rows(6)
    rows[2]["id"] = "../evil/id"
    rows[3]["config"] = {"dpi": 96}
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    with serve_ocr(tmp_path, "--ocr-workers", "1", "--ocr-scale", "1") as srv:
        common = ["qa", src, "--endpoint", srv.url, "--concurrency", "2", "--tokenizer",
                  "bytes"]
        local = run_batch(*common, "-o", tmp_path / "local.jsonl", "--workers", "0")
        assert local.returncode == 0, local.stderr
        ray = run_batch(*common, "-o", tmp_path / "ray.jsonl", "--engine", "ray",
                        "--ray-address", ray_address, env=ray_env, timeout=240)
        assert ray.returncode == 0, ray.stderr
    a, b = by_id(read_records(tmp_path / "local.jsonl")), by_id(read_records(tmp_path /
                                                                             "ray.jsonl"))
    assert a.keys() == b.keys() and len(a) == 6
    for key, rec in a.items():
        other = b[key]
        for field in ("id", "line", "status", "answer", "pages", "text_tokens", "vision_tokens",
                      "compression_ratio", "dpi", "predicted_prompt_tokens", "score",
                      "config_label", "error"):
            assert rec.get(field) == other.get(field), (key, field)
        assert rec["usage"]["prompt_tokens"] == other["usage"]["prompt_tokens"]
    assert any("K" in r["answer"] for r in a.values())  # real answers, read off the pages
    assert b['"doc-3"']["dpi"] == 96
    assert json.loads(summary_path(tmp_path / "ray.jsonl").read_text())["run"]["engine"] == "ray"


def test_ray_resumes_and_shares_endpoints(tmp_path: Path, ray_cluster: Cluster) -> None:
    ray_address, ray_env = ray_cluster
    rows = qa_rows(40)
    src = write_jsonl(tmp_path / "in.jsonl", [*rows[:20], "{not json", *rows[20:]])
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr") as a, serve_ocr(tmp_path, "--no-ocr") as b:
        first = run_batch("qa", src, "-o", out, "--endpoint", a.url, "--workers", "0",
                          "--limit", "15")
        assert first.returncode == 0, first.stderr
        assert len(read_records(out)) == 15
        r = run_batch("qa", src, "-o", out, "--endpoint", a.url, "--endpoint", b.url,
                      "--engine", "ray", "--ray-address", ray_address, "--concurrency", "4",
                      env=ray_env, timeout=240)
        calls = (a.chat_requests(), b.chat_requests())
    assert r.returncode == 1, r.stderr  # the broken line is recorded as invalid
    recs = read_records(out)
    assert len(recs) == 41 and len(one_per_id(recs)) == 40
    assert [x["line"] for x in recs if x["status"] == "invalid"] == [21]
    assert all(x["status"] == "ok" for x in recs if x["status"] != "invalid")
    run = json.loads(summary_path(out).read_text())["run"]
    assert run["skipped"] == 15 and run["processed"] == 26
    assert (calls[0] - 15) + calls[1] == 25, calls  # each new item asked once
    assert calls[1] > 0 and calls[0] - 15 > 0, calls  # both endpoints took a share


def test_ray_render_mode(tmp_path: Path, ray_cluster: Cluster) -> None:
    ray_address, ray_env = ray_cluster
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": i, "text": "Pages rendered by Ray tasks. " * 200} for i in ("a", "/etc/passwd")])
    out = tmp_path / "out.jsonl"
    r = run_batch("render", src, "-o", out, "--engine", "ray", "--ray-address", ray_address,
                  env=ray_env, timeout=240)
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    one_per_id(recs)
    for rec in recs:
        folder = Path(rec["render"]["dir"])
        assert folder.parent == (tmp_path / "out.pages").resolve()
        assert sorted(p.name for p in folder.glob("page_*.png")) == rec["render"]["files"]
