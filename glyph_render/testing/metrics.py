"""A Prometheus ``/metrics`` page shaped like vLLM's (v1 engine, ``engine``/``model_name`` labels).

Only the series glyph-render's tools read are here, but they are real counters: the doctor
checks ``vllm:cache_config_info`` for prefix caching (it changes what repeated page prompts
cost) and benchmarks diff ``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total``
around a run. Names, label sets and the ``_created`` companions follow vLLM 0.32's output.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["FINISHED_REASONS", "Metrics"]

FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000,
                  100000)


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.n += 1
        self.total += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Metrics:
    """Thread-safe counters for one server; ``render()`` gives the Prometheus text page."""

    def __init__(
        self,
        model_name: str,
        *,
        block_size: int = 16,
        enable_prefix_caching: bool = False,
        cache_dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        self.model_name = model_name
        self.cache_labels = {
            "block_size": str(block_size),
            "cache_dtype": cache_dtype,
            "enable_prefix_caching": str(bool(enable_prefix_caching)),
            "engine": "0",
            "gpu_memory_utilization": str(gpu_memory_utilization),
            "prefix_caching_hash_algo": "sha256",
            "sliding_window": "None",
        }
        self._lock = threading.Lock()
        self._created = time.time()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = dict.fromkeys(FINISHED_REASONS, 0)
        self.running = 0
        self._prompt_hist = _Histogram(_TOKEN_BUCKETS)
        self._generation_hist = _Histogram(_TOKEN_BUCKETS)
        self._e2e_hist = _Histogram(_LATENCY_BUCKETS)

    def started(self) -> None:
        with self._lock:
            self.running += 1

    def finished(
        self,
        *,
        prompt_tokens: int = 0,
        generation_tokens: int = 0,
        reason: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """One request left the engine: count its tokens when it ran (``reason`` set)."""
        with self._lock:
            self.running = max(0, self.running - 1)
            if reason is None:
                return
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generation_tokens
            self.success[reason] = self.success.get(reason, 0) + 1
            self._prompt_hist.observe(prompt_tokens)
            self._generation_hist.observe(generation_tokens)
            if seconds is not None:
                self._e2e_hist.observe(seconds)

    def render(self) -> str:
        base = {"engine": "0", "model_name": self.model_name}
        lines: list[str] = []
        with self._lock:
            _gauge(lines, "vllm:num_requests_running",
                   "Number of requests in model execution batches.", base, self.running)
            _gauge(lines, "vllm:num_requests_waiting",
                   "Number of requests waiting to be processed.", base, 0)
            _gauge(lines, "vllm:kv_cache_usage_perc",
                   "KV-cache usage. 1 means 100 percent usage.", base, 0)
            self._counter(lines, "vllm:prompt_tokens", "Number of prefill tokens processed.",
                          [(base, self.prompt_tokens)])
            self._counter(lines, "vllm:generation_tokens",
                          "Number of generation tokens processed.",
                          [(base, self.generation_tokens)])
            self._counter(
                lines, "vllm:request_success", "Count of successfully processed requests.",
                [({"engine": "0", "finished_reason": r, "model_name": self.model_name}, n)
                 for r, n in self.success.items()],
            )
            _histogram(lines, "vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                       base, self._prompt_hist)
            _histogram(lines, "vllm:request_generation_tokens",
                       "Number of generation tokens processed.", base, self._generation_hist)
            _histogram(lines, "vllm:e2e_request_latency_seconds",
                       "Histogram of e2e request latency in seconds.", base, self._e2e_hist)
        _gauge(lines, "vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
               dict(sorted(self.cache_labels.items())), 1)
        return "\n".join(lines) + "\n"

    def _counter(
        self, lines: list[str], name: str, help_: str, series: list[tuple[dict[str, str], float]]
    ) -> None:
        lines += [f"# HELP {name}_total {help_}", f"# TYPE {name}_total counter"]
        lines += [f"{name}_total{_labels(labels)} {_num(value)}" for labels, value in series]
        lines += [f"# HELP {name}_created {help_}", f"# TYPE {name}_created gauge"]
        lines += [f"{name}_created{_labels(labels)} {self._created!r}" for labels, _ in series]


def _gauge(lines: list[str], name: str, help_: str, labels: dict[str, str], value: float) -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name}{_labels(labels)} "
              f"{_num(value)}"]


def _histogram(
    lines: list[str], name: str, help_: str, labels: dict[str, str], hist: _Histogram
) -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    for bound, count in zip(hist.buckets, hist.counts, strict=True):
        lines.append(f"{name}_bucket{_labels({**labels, 'le': _num(bound)})} {_num(count)}")
    lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {_num(hist.n)}")
    lines.append(f"{name}_count{_labels(labels)} {_num(hist.n)}")
    lines.append(f"{name}_sum{_labels(labels)} {_num(hist.total)}")


def _labels(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def _num(value: float | str) -> str:
    """prometheus_client's float formatting: ``3.0``, ``0.5``, ``+Inf``."""
    if isinstance(value, str):
        return value
    return repr(float(value))
