"""Fault injection for reliability tests: which chat requests fail, and how.

A rule is a probability in [0, 1], ``@N`` (exactly the Nth request, 1-based), ``@N+`` (the Nth
and every later one), or a comma list of these (any item firing fires the rule). Requests are
counted per server, so ``@2`` means "the second chat completion this server sees" and a test
can script a failure sequence without timing games. Probabilities use one seeded generator per
fault kind, drawn once per request whether or not the rule fires, so a run with ``--seed`` is
reproducible given the same request order.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from glyph_render.errors import ConfigError

__all__ = ["FAULT_KINDS", "FaultDecision", "FaultPlan", "FaultRule"]

#: Fault kinds in precedence order: when several fire on one request, the first one wins.
FAULT_KINDS = ("drop_connection", "fail_429", "fail_500", "drop_stream")


@dataclass(frozen=True)
class FaultRule:
    """When one fault kind fires: a probability, exact request numbers, and/or a start number."""

    probability: float = 0.0
    exact: frozenset[int] = frozenset()
    from_n: int | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str | None, *, flag: str = "fault") -> FaultRule:
        """Parse ``0.25``, ``@3``, ``@3+`` or ``@1,@4,0.1``; raises ConfigError naming ``flag``."""
        if text is None or not str(text).strip():
            return cls()
        probability = 0.0
        exact: set[int] = set()
        from_n: int | None = None
        for raw in str(text).split(","):
            item = raw.strip()
            if not item:
                raise ConfigError(f"{flag}: empty item in {text!r}")
            if item.startswith("@"):
                body = item[1:]
                open_ended = body.endswith("+")
                number = _request_number(body[:-1] if open_ended else body, flag, item)
                if open_ended:
                    from_n = number if from_n is None else min(from_n, number)
                else:
                    exact.add(number)
                continue
            try:
                value = float(item)
            except ValueError:
                raise ConfigError(
                    f"{flag}: {item!r} is not a probability in [0, 1], @N or @N+"
                ) from None
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{flag}: probability {item!r} is outside [0, 1]")
            if probability:
                raise ConfigError(f"{flag}: more than one probability in {text!r}")
            probability = value
        return cls(probability, frozenset(exact), from_n, str(text).strip())

    @property
    def active(self) -> bool:
        return bool(self.probability or self.exact or self.from_n is not None)

    def fires(self, n: int, draw: float) -> bool:
        """Whether request number ``n`` fails, given this request's uniform ``draw``."""
        if n in self.exact or (self.from_n is not None and n >= self.from_n):
            return True
        return draw < self.probability


def _request_number(body: str, flag: str, item: str) -> int:
    try:
        number = int(body)
    except ValueError:
        raise ConfigError(f"{flag}: {item!r} needs a request number, e.g. @3 or @3+") from None
    if number < 1:
        raise ConfigError(f"{flag}: request numbers start at 1, got {item!r}")
    return number


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: its number and the fault kind (None: serve it normally)."""

    number: int
    kind: str | None = None


class FaultPlan:
    """Counts chat requests and decides each one's fault; thread-safe."""

    def __init__(self, rules: dict[str, FaultRule] | None = None, seed: int | None = None) -> None:
        rules = dict(rules or {})
        unknown = set(rules) - set(FAULT_KINDS)
        if unknown:
            raise ConfigError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self.rules = {kind: rules.get(kind, FaultRule()) for kind in FAULT_KINDS}
        # One generator per kind, so adding a rule for one kind does not shift another's draws.
        self._rngs = {
            kind: random.Random(f"{seed}:{kind}" if seed is not None else None)
            for kind in FAULT_KINDS
        }
        self._count = 0
        self._lock = threading.Lock()

    @property
    def requests_seen(self) -> int:
        return self._count

    def next(self) -> FaultDecision:
        """Count one request and decide its fault."""
        with self._lock:
            self._count += 1
            n = self._count
            draws = {kind: self._rngs[kind].random() for kind in FAULT_KINDS}
        for kind in FAULT_KINDS:
            if self.rules[kind].fires(n, draws[kind]):
                return FaultDecision(n, kind)
        return FaultDecision(n)

    def describe(self) -> str:
        """One line for the startup banner, e.g. ``fail_429=@1 drop_stream=0.1``."""
        return " ".join(f"{k}={r.text}" for k, r in self.rules.items() if r.active)
