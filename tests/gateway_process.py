"""``glyph-render gateway`` as a real process (``python -m glyph_render.gateway --port 0``)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    from ocr_server_process import ServeOcr
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import ServeOcr


class GatewayProcess(ServeOcr):
    """A running gateway with its stderr (access log) in a file; ``base_url`` ends in /v1.

    Stopping and reading the log work as for serve-ocr (the base class)."""

    def __init__(self, tmp: Path, upstream: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / f"gateway-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glyph_render.gateway", "--upstream", upstream, "--port", "0",
             *args],
            stdout=subprocess.PIPE, stderr=self._log, env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"the gateway did not start: {line!r} {self.log()}")
        self.base_url = m.group(1)
        self.url = self.base_url.removesuffix("/v1")


@contextlib.contextmanager
def gateway(tmp: Path, upstream: str, *args: str,
            env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp, upstream, *args, env=env)
    try:
        yield gw
    finally:
        gw.stop()
