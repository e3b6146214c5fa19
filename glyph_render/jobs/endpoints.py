"""Several endpoints sharing one job's requests, with fail-over.

Every request goes to the endpoint with the fewest requests in flight (ties: round-robin), so
a slow server gets less work without any tuning; ``round-robin`` ignores the load. A request
that fails because its server is down, busy or broken (unreachable, 429, 5xx after the client's
own retries) is tried once on each other endpoint before the item is recorded as failed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from ..client import GlyphClient
from ..errors import ClientError, EndpointUnreachable, GlyphRenderError, ServerBusy, ServerError
from .options import BALANCE

__all__ = ["BALANCE", "EndpointPool", "FAILOVER_ERRORS"]

T = TypeVar("T")
FAILOVER_ERRORS = (EndpointUnreachable, ServerBusy, ServerError)


class EndpointPool:
    """Thread-safe: clients of each endpoint, the load on each, and the pick rule."""

    def __init__(self, urls: Sequence[str], *, balance: Literal["least", "round-robin"] = "least",
                 start: int = 0, **client_kwargs: Any) -> None:
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
        """``fn(client)`` on the chosen endpoint, failing over; returns (result, endpoint URL)."""
        tried: set[int] = set()
        while True:
            i = self._pick(tried)
            try:
                return fn(self.clients[i]), self.clients[i].url
            except FAILOVER_ERRORS:
                tried.add(i)
                if len(tried) >= len(self.clients):
                    raise
            finally:
                with self._lock:
                    self.inflight[i] -= 1

    def close(self) -> None:
        for c in self.clients:
            c.close()
