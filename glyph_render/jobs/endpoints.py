"""Several endpoints sharing one job's requests, with fail-over, riding out outages.

Every request goes to the endpoint with the fewest requests in flight (ties: round-robin), so
a slow server gets less work without any tuning; ``round-robin`` ignores the load. A request
that fails because its server is down, busy or broken (unreachable, 429, 5xx after the client's
own retries) is tried once on each other endpoint before the item is recorded as failed.

Outages. When every endpoint is unreachable (a server restarting, a network cut), the item is
not failed: its request waits while one thread probes the endpoints (``/v1/models``) with
backoff, and every request waiting goes on once one answers. An outage longer than
``outage_wait`` seconds ends the job with :class:`~glyph_render.errors.EndpointOutage`, the
items not yet done left undone (not failed), so the same command resumes it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from ..client import GlyphClient, RetryPolicy
from ..errors import (
    ClientError,
    EndpointOutage,
    EndpointUnreachable,
    GlyphRenderError,
    ServerBusy,
    ServerError,
)
from .options import BALANCE, DEFAULT_OUTAGE_WAIT

__all__ = ["BALANCE", "EndpointPool", "FAILOVER_ERRORS", "Outage"]

T = TypeVar("T")
FAILOVER_ERRORS = (EndpointUnreachable, ServerBusy, ServerError)
PROBE_BACKOFF = RetryPolicy(backoff=0.5, max_backoff=15.0)  # 0.25-0.5 s, doubling to 7.5-15 s


class Outage:
    """Requests finding every endpoint unreachable wait here while one of them probes.

    ``epoch`` counts recoveries: a request that saw epoch N before trying, and fails after a
    recovery to N+1, tries again at once instead of opening a new outage. Thread-safe.
    """

    def __init__(self, max_wait: float, probe: Callable[[], bool], urls: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_wait = max_wait
        self.epoch = 0
        self.count = 0  # outages met
        self.waited = 0.0  # seconds spent in them, all together
        self._probe = probe
        self._urls = urls
        self._sleep = sleep
        self._cond = threading.Condition()
        self._down = False
        self._over: EndpointOutage | None = None  # set when one outage outlasted max_wait

    def wait(self, seen_epoch: int) -> None:
        """Return once the endpoints answer again; raise EndpointOutage past ``max_wait``."""
        with self._cond:
            if self._over is not None:
                raise self._over
            if self.epoch != seen_epoch:
                return  # it came back while this request was failing: try again now
            if self._down:  # another request is probing: wait for its verdict
                while self._down:
                    self._cond.wait()
                if self._over is not None:
                    raise self._over
                return
            self._down = True
            self.count += 1
        t0 = time.monotonic()
        back = False
        attempt = 0
        while not back:
            left = self.max_wait - (time.monotonic() - t0)
            if left <= 0:
                break
            attempt += 1
            self._sleep(min(left, PROBE_BACKOFF.wait(attempt, None)))
            back = self._probe()
        with self._cond:
            waited = time.monotonic() - t0
            self.waited += waited
            self._down = False
            if back:
                self.epoch += 1
            else:
                self._over = EndpointOutage(
                    f"no endpoint answered for {waited:.0f} s ({self._urls}; --outage-wait "
                    f"{self.max_wait:g}): the job stopped, its unfinished items left undone; "
                    "run the same command again to resume", waited=waited)
            self._cond.notify_all()
            if self._over is not None:
                raise self._over

    def to_json(self) -> dict[str, Any]:
        """What the summary reports: outages met and how long the job waited in them."""
        return {"outages": self.count, "waited_seconds": round(self.waited, 3),
                "outage_wait": self.max_wait}


class EndpointPool:
    """Thread-safe: clients of each endpoint, the load on each, and the pick rule."""

    def __init__(self, urls: Sequence[str], *, balance: Literal["least", "round-robin"] = "least",
                 start: int = 0, outage_wait: float = DEFAULT_OUTAGE_WAIT,
                 **client_kwargs: Any) -> None:
        if not urls:
            raise GlyphRenderError("no endpoint: pass --endpoint URL (repeat it to share the load)")
        if balance not in BALANCE:
            raise GlyphRenderError(f"--balance must be one of {', '.join(BALANCE)}")
        self.clients = [GlyphClient(u, **client_kwargs) for u in urls]
        self.raw_urls = list(urls)  # as given (a user:password part included), for Ray actors
        self.balance = balance
        self.inflight = [0] * len(self.clients)
        self.calls = [0] * len(self.clients)
        self._turn = itertools.count(start)
        self._lock = threading.Lock()
        self.outage = Outage(outage_wait, self._any_reachable, ", ".join(self.urls))

    def _any_reachable(self) -> bool:
        return any(c.reachable() for c in self.clients)

    @property
    def urls(self) -> list[str]:
        """Display URLs (no user:password part, never the key)."""
        return [c.url for c in self.clients]

    def check(self) -> list[str]:
        """Ask each endpoint for its model; drop the dead ones, raise if none answers.

        Returns one warning per endpoint dropped. Done once before the job starts, so a typo
        in a URL fails in a second instead of turning every item into an error record.
        """
        alive, raw, warnings = [], [], []
        for c, url in zip(self.clients, self.raw_urls, strict=True):
            try:
                c.model_info()
                alive.append(c)
                raw.append(url)
            except ClientError as exc:
                warnings.append(f"endpoint {c.url} dropped: {exc}")
                c.close()
        if not alive:
            raise GlyphRenderError("no endpoint answered: " + "; ".join(warnings))
        self.clients, self.raw_urls = alive, raw
        self.inflight = [0] * len(alive)
        self.calls = [0] * len(alive)
        return warnings

    def _pick(self, exclude: set[int]) -> int:
        with self._lock:
            turn = next(self._turn)
            n = len(self.clients)
            order = [(turn + k) % n for k in range(n) if (turn + k) % n not in exclude]
            if self.balance == "least":
                order.sort(key=lambda i: self.inflight[i])  # stable: ties keep the turn order
            i = order[0]
            self.inflight[i] += 1
            self.calls[i] += 1
            return i

    def call(self, fn: Callable[[GlyphClient], T]) -> tuple[T, str]:
        """``fn(client)`` on the chosen endpoint, failing over, waiting out an outage of
        every endpoint (see the module); returns (result, endpoint URL)."""
        while True:
            epoch = self.outage.epoch
            tried: set[int] = set()
            while True:
                i = self._pick(tried)
                try:
                    return fn(self.clients[i]), self.clients[i].url
                except FAILOVER_ERRORS as exc:
                    tried.add(i)
                    if len(tried) < len(self.clients):
                        continue
                    if not isinstance(exc, EndpointUnreachable):
                        raise
                    break  # every endpoint tried, the last one unreachable: an outage
                finally:
                    with self._lock:
                        self.inflight[i] -= 1
            self.outage.wait(epoch)

    def close(self) -> None:
        for c in self.clients:
            c.close()
