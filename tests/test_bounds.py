"""Bounded waits and sizes (issue 12): deadlines, reply size limits, stalled and endless
streams, dropped streams retried, plain 400s sent once, batch jobs riding out an outage.

Endpoints are real servers on 127.0.0.1: ``serve-ocr`` as a real process wherever it can
produce the fault, and, for the faults it cannot (a server trickling one byte at a time, an
event stream that never ends, a 400 MB body, a stream that stalls or drops before its first
delta, an error status with a huge or endless body), a small real HTTP server:
:class:`~fault_server.FaultServer`, a fault server (tests/fault_server.py).
Every scenario runs through both faces, ``GlyphClient`` and ``AsyncGlyphClient``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from glyph_render import AsyncGlyphClient, GlyphClient
from glyph_render.errors import (
    ConfigError,
    DeadlineExceeded,
    EndpointOutage,
    ReplyTooLarge,
    RequestRejected,
    RequestTimeout,
    ServerError,
    StreamDropped,
    StreamInterrupted,
    StreamStalled,
)
from glyph_render.jobs.endpoints import Outage

try:
    from fault_server import FaultServer, fault_servers
    from ocr_server_process import serve_ocr
except ImportError:  # tests/ imported as a package
    from tests.fault_server import FaultServer, fault_servers
    from tests.ocr_server_process import serve_ocr

FACES = ("sync", "async")
FAST = {"backoff": 0.01, "max_backoff": 0.05}
MODEL = {"model": "zai-org/Glyph", "max_model_len": 65536, "tokenizer": "bytes"}  # no listing


# --- the fault server --------------------------------------------------------------------------


@pytest.fixture()
def faults() -> Iterator[Callable[..., FaultServer]]:
    with fault_servers() as make:
        yield make


# --- one call, either face ----------------------------------------------------------------------


def call(face: str, url: str, *, stream: bool = False, seen: list[Any] | None = None,
         sent: list[float] | None = None, prompt: str = "Q?", **kw: Any) -> Any:
    """A text-only request through ``face``; streamed events go into ``seen`` as they come,
    the moment it is sent (the client made, the request prepared) into ``sent``."""
    seen = [] if seen is None else seen
    sent = [] if sent is None else sent
    options = {**FAST, **MODEL, **kw}
    extra = options.pop("extra_body", None)
    if face == "sync":
        with GlyphClient(url, **options) as c:
            req = c.prepare(prompt, extra_body=extra)
            sent.append(time.monotonic())
            if not stream:
                return c.send(req)
            for event in c.stream(req):
                seen.append(event)
            return seen[-1].answer

    async def run() -> Any:
        async with AsyncGlyphClient(url, **options) as c:
            req = await c.prepare(prompt, extra_body=extra)
            sent.append(time.monotonic())
            if not stream:
                return await c.send(req)
            async for event in c.stream(req):
                seen.append(event)
            return seen[-1].answer

    return asyncio.run(run())


# --- deadlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_trickling_server_meets_the_deadline(face: str, faults) -> None:
    """A byte every 1.2 s trips no per-read limit (the read timeout is at most the 1.5 s
    deadline); the deadline ends the call at 1.5 s: the sync face's watchdog cuts the read
    blocked then (the per-chunk check alone would see it only at the byte of 2.4 s), the async
    face's wait_for cancels it."""
    srv = faults("trickle")
    sent: list[float] = []
    with pytest.raises(DeadlineExceeded, match=r"deadline of 1.5 s") as exc:
        call(face, srv.url, sent=sent, timeout=10, deadline=1.5)
    took = time.monotonic() - sent[0]
    assert 1.45 <= took < 2.0, took
    assert isinstance(exc.value, RequestTimeout) and exc.value.deadline == 1.5
    assert srv.requests == 1  # a deadline is never retried


@pytest.mark.parametrize("face", FACES)
def test_endless_stream_meets_the_deadline_with_its_partial_text(face: str, faults) -> None:
    srv = faults("endless")
    seen: list[Any] = []
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="stream had sent") as exc:
        call(face, srv.url, stream=True, seen=seen, timeout=10, deadline=1.0)
    assert time.monotonic() - t0 < 2.5
    assert len(seen) > 5 and all(e.kind == "content" for e in seen)
    assert exc.value.partial_text.startswith("more more")
    assert srv.requests == 1


@pytest.mark.parametrize("face", FACES)
def test_stalled_stream_is_a_typed_error(face: str, faults) -> None:
    srv = faults("stall")
    seen: list[Any] = []
    t0 = time.monotonic()
    with pytest.raises(StreamStalled, match=r"stalled: nothing for 0.5 s") as exc:
        call(face, srv.url, stream=True, seen=seen, timeout=0.5, deadline=30)
    assert time.monotonic() - t0 < 3
    assert [e.text for e in seen] == ["Once upon"]
    assert exc.value.partial_text == "Once upon"
    assert isinstance(exc.value, StreamInterrupted) and isinstance(exc.value, RequestTimeout)
    assert srv.requests == 1  # its start was shown: not retried


@pytest.mark.parametrize("face", FACES)
def test_retries_stop_at_the_deadline(face: str, tmp_path: Path) -> None:
    with serve_ocr(tmp_path, "--no-ocr", "--fail-500", "1") as srv:
        t0 = time.monotonic()
        # the last 500, or the deadline passing during the last attempt
        with pytest.raises((ServerError, DeadlineExceeded), match="deadline of 1 s") as exc:
            call(face, srv.base_url, max_retries=50, backoff=0.3, max_backoff=0.3,
                 deadline=1.0)
        assert time.monotonic() - t0 < 1.5
        assert 2 <= exc.value.attempts < 10 and srv.chat_requests(exc.value.attempts) \
            == exc.value.attempts


def raw_lines(face: str, url: str, **kw: Any) -> list[str]:
    """The public raw-line path (``stream_lines``, what bench and doctor time)."""
    options = {**FAST, **MODEL, **kw}
    if face == "sync":
        with GlyphClient(url, **options) as c:
            req = c.prepare("Q?")
            return list(c.stream_lines(req, c.stream_reader(req)))

    async def run() -> list[str]:
        async with AsyncGlyphClient(url, **options) as c:
            req = await c.prepare("Q?")
            return [line async for line in c.stream_lines(req, c.stream_reader(req))]

    return asyncio.run(run())


@pytest.mark.parametrize("face", FACES)
def test_stream_lines_opening_retried_and_bounded(face: str, tmp_path: Path, faults) -> None:
    with serve_ocr(tmp_path, "--no-ocr", "--fail-429", "@1", "--retry-after", "0") as srv:
        lines = [line for line in raw_lines(face, srv.base_url) if line]
        assert lines[-1] == "data: [DONE]" and srv.chat_requests(2) == 2
    endless = faults("endless")
    with pytest.raises(DeadlineExceeded, match="deadline of 1 s"):
        raw_lines(face, endless.url, deadline=1.0)


# --- reply size --------------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_400_mb_reply_is_refused_unread(face: str, faults) -> None:
    srv = faults("huge")
    t0 = time.monotonic()
    with pytest.raises(ReplyTooLarge, match=r"419,430,400 bytes declared") as exc:
        call(face, srv.url)
    assert time.monotonic() - t0 < 3
    assert exc.value.size == 400 * 2**20 and exc.value.limit == 64 * 2**20
    time.sleep(0.3)
    assert srv.sent < 32 * 2**20  # what the socket buffers took before the client hung up


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("stream", [False, True])
def test_reply_without_length_is_cut_at_the_limit(face: str, stream: bool, faults) -> None:
    srv = faults("huge_chunked")
    with pytest.raises(ReplyTooLarge, match="arrived before reading stopped") as exc:
        call(face, srv.url, stream=stream, max_reply_bytes=2**20)
    assert 2**20 < exc.value.size <= 2**20 + 65536 + 16
    time.sleep(0.3)
    assert srv.sent < 32 * 2**20


# --- error replies: their bodies bounded too ----------------------------------------------------


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("stream", [False, True])
def test_error_reply_with_a_400_mb_body_is_not_read_whole(face: str, stream: bool,
                                                         faults) -> None:
    """openai reads a non-2xx body whole before raising (1.76 GB resident for 400 MB); the
    client's response hook reads its first 64 KiB and hangs up. The server saw the client go
    before it had sent the body, and had sent no more than socket buffers hold."""
    srv = faults("error_huge", "error_huge")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"HTTP 500: xxxx") as exc:
        call(face, srv.url, stream=stream, max_retries=1)
    assert time.monotonic() - t0 < 3
    assert exc.value.status_code == 500 and exc.value.attempts == 2 and srv.requests == 2
    time.sleep(0.3)
    assert srv.hung_up == 2 and srv.sent < 2 * 32 * 2**20


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("stream", [False, True])
def test_error_reply_with_an_endless_body_is_cut(face: str, stream: bool, faults) -> None:
    srv = faults("error_endless")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"HTTP 500: \{\"error") as exc:
        call(face, srv.url, stream=stream, max_retries=0)
    assert time.monotonic() - t0 < 3 and exc.value.status_code == 500
    assert len(str(exc.value)) < 1000  # the body's start, not the body
    time.sleep(0.3)
    assert srv.hung_up == 1 and srv.sent < 32 * 2**20


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("fault", ["redirect_huge", "redirect_endless"])
def test_redirect_with_a_huge_or_endless_body_is_refused(face: str, fault: str,
                                                         faults) -> None:
    """httpx reads a redirect's body whole before it follows the redirect (openai's client
    follows them): a 400 MB or endless one is refused after 64 KiB at most, as an error
    reply's body is, and the connection dropped."""
    srv = faults(fault)
    t0 = time.monotonic()
    with pytest.raises(ReplyTooLarge, match=r"redirect \(HTTP 307\)") as exc:
        call(face, srv.url, max_retries=0, timeout=10, deadline=20)
    assert time.monotonic() - t0 < 3
    assert exc.value.limit == 64 * 2**10
    time.sleep(0.3)
    assert srv.requests == 1 and srv.hung_up == 1 and srv.sent < 32 * 2**20


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_the_redirect_bound_speaks_either_http_library(library: str) -> None:
    """openai's client is httpx, or httpx2 in newer releases; each checks a response's stream
    against its own classes, so the bound is made as a stream of the library at hand."""
    lib = pytest.importorskip(library)
    from glyph_render.client.core import RedirectBody, _redirect_body_class

    cls = _redirect_body_class(library)
    assert issubclass(cls, (RedirectBody)) and issubclass(cls, lib.SyncByteStream)
    assert issubclass(cls, lib.AsyncByteStream)


@pytest.mark.parametrize("face", FACES)
def test_redirect_with_a_short_body_is_followed(face: str, faults) -> None:
    srv = faults("redirect_small")
    assert call(face, srv.url).text == "all good"
    assert srv.requests == 2  # the redirect, then the request again at its location


@pytest.mark.parametrize("face", FACES)
def test_error_reply_trickling_meets_the_deadline(face: str, faults) -> None:
    srv = faults("error_trickle")
    sent: list[float] = []
    with pytest.raises(DeadlineExceeded, match=r"deadline of 1.5 s"):
        call(face, srv.url, sent=sent, timeout=10, deadline=1.5)
    assert time.monotonic() - sent[0] < 2.4
    assert srv.requests == 1


# --- dropped streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_stream_dropped_before_any_text_is_retried(face: str, faults) -> None:
    srv = faults("drop_early", "drop_early")
    seen: list[Any] = []
    answer = call(face, srv.url, stream=True, seen=seen)
    assert answer.text == "all good" and srv.requests == 3
    assert [e.kind for e in seen] == ["content", "done"]  # nothing of the cut attempts


@pytest.mark.parametrize("face", FACES)
def test_dropped_streams_retried_until_their_bound(face: str, faults) -> None:
    srv = faults(*["drop_early"] * 5)
    with pytest.raises(StreamDropped, match="cut mid-way.*gave up after 3 attempts"):
        call(face, srv.url, stream=True, max_retries=2)
    assert srv.requests == 3


@pytest.mark.parametrize("face", FACES)
def test_cut_reply_retried_but_a_stream_cut_after_text_is_not(face: str, tmp_path: Path) -> None:
    with serve_ocr(tmp_path, "--no-ocr", "--drop-stream", "@1,@3") as srv:
        assert call(face, srv.base_url).text.startswith("OCR is off")  # #1 cut, #2 whole
        assert srv.chat_requests(2) == 2
        seen: list[Any] = []
        with pytest.raises(StreamDropped, match="cut mid-way") as exc:
            call(face, srv.base_url, stream=True, seen=seen)  # #3 cut after its first delta
        assert seen and (exc.value.partial_text or exc.value.partial_reasoning)
        assert srv.chat_requests(3) == 3


# --- a plain 400 is sent once ------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("stream", [False, True])
def test_plain_400_is_sent_exactly_once(face: str, stream: bool, tmp_path: Path) -> None:
    """``max_completion_tokens: 0`` is out of range: the server answers 400, and a 400 would
    fail again, so it is never retried (max_retries=3 would allow 4 sends)."""
    with serve_ocr(tmp_path, "--no-ocr") as srv:
        with pytest.raises(RequestRejected, match=r"HTTP 400.*max_tokens must be at least 1") \
                as exc:
            call(face, srv.base_url, stream=stream, max_retries=3,
                 extra_body={"max_completion_tokens": 0})
        assert exc.value.status_code == 400 and exc.value.attempts == 1
        assert srv.chat_requests(1) == 1


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"deadline": 0}, {"deadline": float("nan")},
                                 {"deadline": float("inf")}, {"timeout": -1},
                                 {"max_reply_bytes": 0}, {"max_reply_bytes": 1.5}])
def test_bad_bounds_are_config_errors(bad: dict[str, Any]) -> None:
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        GlyphClient("http://127.0.0.1:9/v1", **bad)


def test_cli_deadline_and_reply_limit_flags(faults, tmp_path: Path, run_cli) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("A short document about nothing much.", encoding="utf-8")
    srv = faults("trickle", "huge_chunked")
    # --quiet: no progress lines, so the error is the whole of stderr
    base = ["ask", doc, "Q?", "--endpoint", srv.url, "--model", "m", "--tokenizer", "bytes",
            "--quiet"]
    t0 = time.monotonic()
    res = run_cli([*base, "--deadline", "1", "--timeout", "10"], cwd=tmp_path)
    assert res.returncode == 2 and "deadline of 1 s" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and time.monotonic() - t0 < 20
    res = run_cli([*base, "--max-reply-mb", "0.5", "--stream"], cwd=tmp_path)
    assert res.returncode == 2 and "larger than the limit of 524,288 bytes" in res.stderr
    res = run_cli([*base, "--deadline", "0"], cwd=tmp_path)
    assert res.returncode == 2 and "--deadline" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# --- batch jobs and outages --------------------------------------------------------------------


def test_outage_gate_waits_probes_and_gives_up() -> None:
    """The gate alone, with a probe that answers on its third call: waiters block, one probes,
    all go on; a second outage that outlasts the bound raises EndpointOutage for everyone."""
    answers = iter([False, False, True])
    gate = Outage(30, lambda: next(answers), "http://x", sleep=lambda s: None)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: (gate.wait(0), out.append("on")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert out == ["on"] * 4 and gate.count == 1 and gate.epoch == 1
    gate.wait(0)  # a request that failed before the recovery: straight back to work
    never = Outage(0.2, lambda: False, "http://x")
    with pytest.raises(EndpointOutage, match="no endpoint answered for 0 s"):
        never.wait(0)
    with pytest.raises(EndpointOutage):
        never.wait(0)  # the job is over for every other request too
    assert never.count == 1 and 0.2 <= never.waited < 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve_ocr(port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "glyph_render.testing", "--port", str(port),
                             "--no-ocr", *args], stdout=subprocess.PIPE,
                            stderr=open(log, "ab"))  # noqa: SIM115 - the child holds it
    assert proc.stdout is not None
    assert "listening on" in proc.stdout.readline().decode()
    return proc


def _qa_input(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "context": f"Item {i}. The code is K{i}.",
                                "question": "What is the code?"}) + "\n")
    return path


def _batch_through_outage(tmp_path: Path, n: int, kill_after: int, down_for: float | None,
                          outage_wait: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """A qa job of ``n`` items against serve-ocr on a fixed port; the server is SIGKILLed after
    ``kill_after`` answers and restarted on the same port ``down_for`` seconds later (None:
    never). Returns the job's result and how long the server was down."""
    port = _free_port()
    log = tmp_path / "serve.log"
    log.write_text("")
    src = _qa_input(tmp_path / "in.jsonl", n)
    server = _start_serve_ocr(port, log, "--delay", "0.05")
    job = subprocess.Popen(
        [sys.executable, "-m", "glyph_render.cli", "batch", "qa", str(src), "-o",
         str(tmp_path / "out.jsonl"), "--endpoint", f"http://127.0.0.1:{port}/v1",
         "--workers", "0", "--concurrency", "2", "--tokenizer", "bytes", "--no-progress",
         "--outage-wait", str(outage_wait)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    down = 0.0
    try:
        limit = time.monotonic() + 60
        while log.read_text().count("POST /v1/chat/completions") < kill_after:
            assert time.monotonic() < limit and job.poll() is None, job.communicate()
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        down_at = time.monotonic()
        if down_for is not None:
            time.sleep(down_for)
            server = _start_serve_ocr(port, log, "--delay", "0.05")
        stdout, stderr = job.communicate(timeout=120)
        down = time.monotonic() - down_at
    finally:
        job.kill()
        server.kill()
        server.wait()
    return subprocess.CompletedProcess(job.args, job.returncode, stdout, stderr), down


def test_batch_rides_out_a_killed_and_restarted_server(tmp_path: Path) -> None:
    """serve-ocr is SIGKILLed after 8 answers and restarted on the same port 2 s later: every
    item ends ok (none burnt as EndpointUnreachable) and the summary reports the wait."""
    res, down = _batch_through_outage(tmp_path, 30, 8, 2.0, 60)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out.jsonl"
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 30 and {r["id"] for r in recs} == {f"d{i}" for i in range(30)}
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs if r["error"]]
    outage = json.loads(out.with_name("out.summary.json").read_text())["run"]["outage"]
    assert outage["outages"] == 1 and 1.5 <= outage["waited_seconds"] <= down
    assert re.search(r"waited \d+\.\d s for the endpoints to come back \(1 outage", res.stdout)


def test_batch_outage_past_its_bound_stops_with_items_undone(tmp_path: Path) -> None:
    """The server never comes back: after --outage-wait the job stops (exit 2, one line);
    the items it did not finish have no record, so the same command finishes them later."""
    res, _ = _batch_through_outage(tmp_path, 20, 5, None, 1)
    assert res.returncode == 2, res.stderr
    assert "no endpoint answered for 1 s" in res.stderr and "resume" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    out = tmp_path / "out.jsonl"
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert 3 <= len(recs) < 20 and all(r["status"] == "ok" for r in recs)
    summary = json.loads(out.with_name("out.summary.json").read_text())
    assert summary["run"]["outage"]["outages"] == 1 and summary["error"] == 0
    with serve_ocr(tmp_path, "--no-ocr") as srv:  # the same job, resumed
        res = subprocess.run(
            [sys.executable, "-m", "glyph_render.cli", "batch", "qa", str(tmp_path / "in.jsonl"),
             "-o", str(out), "--endpoint", srv.base_url, "--workers", "0", "--tokenizer",
             "bytes", "--no-progress"], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 20 and all(r["status"] == "ok" for r in recs)


def test_batch_retries_dropped_replies(tmp_path: Path) -> None:
    """Replies cut mid-body are asked again, not recorded as MalformedReply."""
    src = _qa_input(tmp_path / "in.jsonl", 12)
    out = tmp_path / "out.jsonl"
    with serve_ocr(tmp_path, "--no-ocr", "--drop-stream", "@2,@5,@6,@9") as srv:
        res = subprocess.run(
            [sys.executable, "-m", "glyph_render.jobs", "qa", str(src), "-o", str(out),
             "--endpoint", srv.base_url, "--workers", "0", "--concurrency", "2",
             "--tokenizer", "bytes", "--no-progress"],
            capture_output=True, text=True, timeout=120, check=False)
        assert srv.chat_requests(16) == 16
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 12 and all(r["status"] == "ok" for r in recs)
