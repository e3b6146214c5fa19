"""``glyph-render serve-ocr`` as a real process, for the tests that talk to an endpoint."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CHAT = "POST /v1/chat/completions"


class ServeOcr:
    """A running ``python -m glyph_render.testing --port 0 ARGS`` with its access log in a file."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / f"serve-ocr-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            # bytes: the count the tests' clients use (tokenizer="bytes", as the tiny vLLM
            # test model counts); serve-ocr's default is the client's cl100k_base
            [sys.executable, "-m", "glyph_render.testing", "--port", "0", "--tokenizer", "bytes",
             *args],
            stdout=subprocess.PIPE, stderr=self._log, env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # "serve-ocr listening on URL"
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"serve-ocr did not start: {line!r} {self.log()}")
        self.url = self.base_url = m.group(1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def chat_lines(self) -> list[str]:
        return [ln for ln in self.log().splitlines() if CHAT in ln]

    def chat_requests(self, expect: int | None = None, timeout: float = 3.0) -> int:
        """Chat requests in the access log (a line is written as each request finishes);
        with ``expect``, wait up to ``timeout`` for that many, then check no more arrive."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.log().count(CHAT)
            if expect is None or n >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if expect is not None:
            time.sleep(0.1)
            n = self.log().count(CHAT)
        return n

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


@contextlib.contextmanager
def serve_ocr(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[ServeOcr]:
    srv = ServeOcr(tmp, *args, env=env)
    try:
        yield srv
    finally:
        srv.stop()
