"""The gateway's Prometheus metrics (one registry per app, so tests and replicas stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """Counters and histograms under ``glyph_gateway_``; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "glyph_gateway"
        self.requests = Counter(f"{p}_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.errors = Counter(f"{p}_errors", "Requests refused or failed, by error class",
                              ["kind"], registry=r)
        self.pages = Counter(f"{p}_pages", "Pages sent upstream in place of text", registry=r)
        self.documents = Counter(f"{p}_documents", "Text parts and histories rendered",
                                 registry=r)
        self.vision_tokens = Counter(f"{p}_vision_tokens", "Image tokens of the pages sent",
                                     registry=r)
        self.text_tokens = Counter(f"{p}_text_tokens", "Text tokens replaced by pages",
                                   registry=r)
        self.saved_tokens = Counter(f"{p}_saved_text_tokens",
                                    "Prompt tokens saved: replaced text minus pages' tokens",
                                    registry=r)
        self.render_seconds = Histogram(f"{p}_render_seconds",
                                        "Wall time to price, plan and render one request",
                                        buckets=_SECONDS, registry=r)
        self.render_cpu = Counter(f"{p}_render_cpu_seconds",
                                  "CPU seconds the render workers spent", registry=r)
        self.cache_hits = Counter(f"{p}_page_cache_hits", "Documents served from the cache",
                                  registry=r)
        self.cache_misses = Counter(f"{p}_page_cache_misses", "Documents rendered", registry=r)
        self.cache_bytes = Gauge(f"{p}_page_cache_bytes", "Bytes held by the page cache",
                                 registry=r)
        self.upstream_seconds = Histogram(f"{p}_upstream_seconds",
                                          "Upstream latency per call (to the whole reply, or "
                                          "to the stream's headers)", buckets=_SECONDS,
                                          registry=r)
        self.inflight = Gauge(f"{p}_requests_in_flight", "Chat requests being served",
                              registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
