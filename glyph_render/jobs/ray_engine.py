"""The Ray engine: the same job on Ray Data, from one machine to a cluster.

Pipeline: the driver streams the input and drops finished ids (the resume rule), keeping a
few hundred bytes per pending item (its id, line and byte offset, not its text) ->
``from_items`` -> render in CPU tasks (``map_batches``, one CPU each; each task reads its own
lines back from the input file) -> endpoint calls from a pool of actors, each with
``concurrency / actors`` requests in flight in threads -> rows stream back to the driver,
the single writer, through ``iter_rows``. Ray Data's streaming executor bounds the memory in
flight (object-store back-pressure). Records are built by the same :mod:`.stages` functions as
the local engine, so the output is the same.

On several nodes the input file, any ``path`` an item names and ``--pages-dir`` must be at
the same path on every node (a shared file system), and glyph-render installed on each.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..errors import EndpointOutage, GlyphRenderError
from ..files import dumps_record
from .inputs import BadLine, Item
from .options import JobSettings
from .stages import Failure, Prepared, ask, invalid_record, prepare, record

__all__ = ["RayEngine", "require_ray"]

ROWS_PER_RENDER_TASK = 4
REQUESTS_PER_ACTOR = 8


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is the part we need
    except ImportError:
        raise GlyphRenderError(
            "--engine ray needs Ray Data: pip install 'glyph-render[ray]' (or 'ray[data]')"
        ) from None
    return ray


def _render_batch(batch: dict[str, Any], *, settings: JobSettings) -> dict[str, Any]:
    """CPU task: items (without text: each is read back from the input) in, rendered items
    (or, when no endpoint is needed, finished records) out."""
    keep = settings.needs_endpoint
    out: dict[str, list[Any]] = {"item": [], "prep": [], "record": [], "t0": []}
    for blob in batch["item"]:
        t0 = time.time()
        item: Item = pickle.loads(blob)
        prep = prepare(item, settings)
        if keep and isinstance(prep, Prepared):
            out["item"].append(blob)
            out["prep"].append(pickle.dumps(prep))
            out["record"].append("")
        else:
            out["item"].append(b"")
            out["prep"].append(b"")
            out["record"].append(dumps_record(record(item, settings, prep, None,
                                                     time.time() - t0)).decode("utf-8"))
        out["t0"].append(t0)
    return out


class _AskActor:
    """Holds the endpoint clients; answers each batch's items in parallel threads."""

    def __init__(self, settings: JobSettings, threads: int) -> None:
        from .endpoints import EndpointPool

        self.s = settings
        # Each actor starts its turn at a random endpoint, so actors spread over endpoints.
        self.pool = EndpointPool(settings.endpoint.endpoints, balance=settings.balance,  # type: ignore
                                 start=random.randrange(1 << 16),
                                 outage_wait=settings.outage_wait, **settings.client_kwargs())
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="glyph-ask")

    def _one(self, item_blob: bytes, prep_blob: bytes, rec: str, t0: float) -> str:
        if rec:
            return rec
        item: Item = pickle.loads(item_blob)
        prep: Prepared = pickle.loads(prep_blob)
        try:
            asked: dict[str, Any] | Failure = ask(item, prep, self.pool, self.s)
        except EndpointOutage:
            raise  # ends the Ray job: the item stays undone, not failed
        except Exception as exc:
            asked = Failure.of(exc, "request")
        return dumps_record(record(item, self.s, prep, asked, time.time() - t0)).decode()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = list(self.threads.map(self._one, batch["item"], batch["prep"],
                                        batch["record"], batch["t0"]))
        return {"record": records}


def _actor_pool(actors: int) -> Any:
    """A fixed pool of ``actors``, each taking a second batch while finishing the first (so a
    slow request in one batch does not idle the actor's other threads)."""
    import inspect

    from ray.data import ActorPoolStrategy

    params = inspect.signature(ActorPoolStrategy.__init__).parameters
    if "max_concurrent_calls_per_actor" in params:
        return ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2,
                                 max_concurrent_calls_per_actor=2)
    return ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2)


class RayEngine:
    """Runs a job on Ray Data; ``emit`` is called by the driver only (the single writer)."""

    def __init__(self, settings: JobSettings, *, concurrency: int,
                 address: str | None = None, workers: int | None = None) -> None:
        self.s = settings
        self.concurrency = concurrency
        self.address = address
        self.workers = workers

    def _init(self) -> Any:
        ray = require_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.WARNING}
            if self.address:
                kwargs["address"] = self.address
            elif self.workers:
                kwargs["num_cpus"] = self.workers
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            ray.init(**kwargs)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the job's own bar counts records
        ctx.print_on_execution_start = False
        return ray

    def run(self, entries: Iterable[Item | BadLine],
            emit: Callable[[dict[str, Any]], None]) -> None:
        items: list[bytes] = []
        for entry in entries:  # the driver's resume filter already ran inside ``entries``
            if isinstance(entry, BadLine):
                emit(invalid_record(entry, self.s))
                continue
            slim = replace(entry, text=None) if entry.offset is not None else entry
            items.append(pickle.dumps(slim))
        if not items:
            return
        ray = self._init()
        ds = ray.data.from_items([{"item": b} for b in items],
                                 override_num_blocks=math.ceil(len(items) / ROWS_PER_RENDER_TASK))
        del items
        ds = ds.map_batches(_render_batch, batch_size=ROWS_PER_RENDER_TASK, num_cpus=1,
                            fn_kwargs={"settings": self.s})
        if self.s.needs_endpoint:
            actors = max(1, math.ceil(self.concurrency / REQUESTS_PER_ACTOR))
            threads = math.ceil(self.concurrency / actors)
            ds = ds.map_batches(
                _AskActor, batch_size=threads, num_cpus=0, compute=_actor_pool(actors),
                fn_constructor_kwargs={"settings": self.s, "threads": threads},
            )
        try:
            for row in ds.iter_rows():
                emit(json.loads(row["record"]))
        except GlyphRenderError:
            raise
        except Exception as exc:
            if type(exc).__name__ in ("KeyboardInterrupt",):
                raise
            raise GlyphRenderError(
                f"the Ray job failed ({type(exc).__name__}: {str(exc)[:300]}); the records "
                "written so far are kept: run the same command again to resume"
            ) from exc
