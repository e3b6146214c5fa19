"""The local engine: render worker processes and request threads, with bounded memory.

Items flow ``input -> render pool (--workers processes) -> request threads (--concurrency) ->
writer thread``. The two pools are separate, so rendering runs ahead while requests wait on the
server and requests never wait for a free render worker. Back-pressure is one semaphore of
``2 x workers + 2 x concurrency`` slots: an item takes a slot when it is read and gives it back
when its record is on disk, so however long the input, at most that many items (texts and
pages) are in memory, and reading stops while the pipeline is full.

Request threads are daemon threads, so Ctrl-C (or SIGTERM) ends the job at once: records are
appended atomically, and whatever was in flight is simply redone on restart. An endpoint outage
past ``--outage-wait`` ends the job the same way: reading stops, the items it caught are left
without a record (undone, not failed), the records already made are all written.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import EndpointOutage, GlyphRenderError
from .endpoints import EndpointPool
from .inputs import BadLine, Item
from .options import JobSettings
from .stages import Failure, Prepared, ask, invalid_record, prepare, record

__all__ = ["LocalEngine"]

_STOP = object()


def _worker_init(parent: int) -> None:
    """Render workers leave Ctrl-C to the parent, which shuts them down, and exit by
    themselves if the parent is killed (kill -9 gives it no chance to stop them; their task
    queue stays open, so they would otherwise wait forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # pid reused by another user's process: parent is gone
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="glyph-parent-watch").start()


def _mp_context() -> Any:
    """forkserver where there is one: workers fork from a clean, pre-imported server (fast
    start, and no copy of the parent's threads or sockets), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["glyph_render.jobs.stages"])
        return ctx
    return multiprocessing.get_context("spawn")


class LocalEngine:
    """Runs a job's items on this machine; ``emit`` is called from one writer thread only."""

    def __init__(self, settings: JobSettings, *, workers: int | None, concurrency: int,
                 pool: EndpointPool | None) -> None:
        self.s = settings
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.concurrency = concurrency
        self.pool = pool
        self.max_pending = 2 * max(1, self.workers) + 2 * concurrency
        self._render: Executor | None = None
        self._requests: queue.Queue[Any] = queue.Queue()
        self._out: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(self.max_pending)
        self._fatal: BaseException | None = None
        self._stopped: EndpointOutage | None = None  # the outage that ended the job

    # --- pools ---------------------------------------------------------------------------

    def _new_render_pool(self) -> Executor:
        if self.workers == 0:
            return ThreadPoolExecutor(1, thread_name_prefix="glyph-render")
        return ProcessPoolExecutor(self.workers, mp_context=_mp_context(),
                                   initializer=_worker_init, initargs=(os.getpid(),))

    def _submit_render(self, item: Item) -> Future[Prepared | Failure]:
        assert self._render is not None
        try:
            return self._render.submit(prepare, item, self.s)
        except (BrokenProcessPool, OSError, RuntimeError):
            # A worker died (OOM killer, segfault) and took the pool with it: the items it held
            # are recorded as WorkerCrashed; start a fresh pool for the rest.
            self._render.shutdown(wait=False, cancel_futures=True)
            self._render = self._new_render_pool()
            return self._render.submit(prepare, item, self.s)

    def _request_thread(self) -> None:
        while True:
            task = self._requests.get()
            if task is _STOP:
                return
            item, prep, t0 = task
            try:
                asked: dict[str, Any] | Failure = ask(item, prep, self.pool, self.s)
            except EndpointOutage as exc:  # the job stops; this item stays undone
                self._stopped = self._stopped or exc
                self._slots.release()
                continue
            except Exception as exc:  # typed ClientErrors, and bugs: recorded, job goes on
                asked = Failure.of(exc, "request")
            self._out.put(record(item, self.s, prep, asked, time.perf_counter() - t0))

    def _writer_thread(self, emit: Callable[[dict[str, Any]], None]) -> None:
        while True:
            rec = self._out.get()
            if rec is _STOP:
                return
            try:
                if self._fatal is None:
                    emit(rec)
            except BaseException as exc:  # disk full, file gone: stop the job, keep the error
                self._fatal = exc
            finally:
                self._slots.release()

    def _rendered(self, item: Item, t0: float, fut: Future[Prepared | Failure]) -> None:
        """Runs in the render pool's callback thread: hand over, never block."""
        try:
            prep = fut.result()
        except BrokenProcessPool as exc:
            prep = Failure("WorkerCrashed", f"the render worker died ({exc})", "render")
        except BaseException as exc:  # cancelled at shutdown, or unpicklable result
            prep = Failure.of(exc, "render")
        if isinstance(prep, Prepared) and self.s.needs_endpoint:
            self._requests.put((item, prep, t0))
        else:
            self._out.put(record(item, self.s, prep, None, time.perf_counter() - t0))

    # --- the run -------------------------------------------------------------------------

    def run(self, entries: Iterable[Item | BadLine],
            emit: Callable[[dict[str, Any]], None]) -> None:
        self._render = self._new_render_pool()
        threads = [threading.Thread(target=self._writer_thread, args=(emit,), daemon=True,
                                    name="glyph-writer")]
        if self.s.needs_endpoint:
            threads += [threading.Thread(target=self._request_thread, daemon=True,
                                         name=f"glyph-request-{i}")
                        for i in range(self.concurrency)]
        for t in threads:
            t.start()
        clean = False
        try:
            for entry in entries:
                self._slots.acquire()
                if self._fatal is not None or self._stopped is not None:
                    self._slots.release()
                    break
                if isinstance(entry, BadLine):
                    self._out.put(invalid_record(entry, self.s))
                    continue
                t0 = time.perf_counter()
                fut = self._submit_render(entry)
                fut.add_done_callback(lambda f, item=entry, t0=t0: self._rendered(item, t0, f))
            for _ in range(self.max_pending):  # every slot back: every record written
                self._slots.acquire()
            clean = True
        finally:
            self._render.shutdown(wait=clean, cancel_futures=not clean)
            for _ in range(self.concurrency if self.s.needs_endpoint else 0):
                self._requests.put(_STOP)
            self._out.put(_STOP)
            if clean:
                for t in threads:
                    t.join()
        if self._fatal is not None:
            if isinstance(self._fatal, GlyphRenderError):
                raise self._fatal
            raise GlyphRenderError(f"writing the output failed: {self._fatal}") from self._fatal
        if self._stopped is not None:
            raise self._stopped
