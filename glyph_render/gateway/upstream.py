"""The gateway's side of the upstream (vLLM/SGLang): one pooled HTTP client, the client's
retry policy, the served models and their context lengths.

Requests upstream are built from scratch: the caller's headers (and its API key) never travel;
the upstream key comes from the gateway's environment. Failures become the
:mod:`glyph_render.errors` types through the client's public ``classify``, ``status_error``
and ``RetryPolicy`` (:mod:`glyph_render.client`): the same classification and retry rules
``GlyphClient`` applies (429/5xx and a connection closed before any reply are retried with
backoff honouring ``Retry-After``; nothing else is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from glyph_render.client import RetryPolicy, classify, retry_async, status_error
from glyph_render.errors import ClientError, MalformedReply

__all__ = ["ModelEntry", "Upstream"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    max_model_len: int | None


def _display(url: str) -> str:
    parts = httpx.URL(url)
    return str(parts.copy_with(username=None, password=None))


class Upstream:
    """Talks to ``base_url`` (ending in ``/v1``)."""

    def __init__(self, base_url: str, key: str | None, *, timeout: float, policy: RetryPolicy,
                 max_model_len: int | None, models_ttl: float, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = _display(self.base_url)
        self._secrets = (key,)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, limits=limits, trust_env=False,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
        self.policy = policy
        self._fixed_len = max_model_len
        self._ttl = models_ttl
        self._models: tuple[float, dict[str, Any]] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    def _error(self, exc: BaseException, streaming: bool = False) -> ClientError:
        err = classify(exc, self.url, self.timeout, self._secrets, streaming=streaming)
        if err is None:
            raise exc
        return err

    async def _check(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        await resp.aread()
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        raise status_error(resp.status_code, body, resp.headers, self.url, self._secrets)

    async def _json_call(self, method: str, path: str, body: Any = None) -> Any:
        """One request's decoded JSON reply, under the retry policy."""
        async def once() -> Any:
            try:
                resp = await self._http.request(method, path, json=body)
            except ClientError:
                raise
            except Exception as exc:
                raise self._error(exc) from None
            await self._check(resp)
            return _json(resp, self.url)

        return await retry_async(once, self.policy)

    async def models(self) -> dict[str, Any]:
        """The upstream's ``/v1/models`` body (cached for ``models_ttl`` seconds)."""
        now = time.monotonic()
        if self._models is not None and now - self._models[0] < self._ttl:
            return self._models[1]
        body = await self._json_call("GET", "/models")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise MalformedReply(f"{self.url}/models did not list models: {str(body)[:160]}",
                                 url=self.url)
        self._models = (now, body)
        return body

    async def model(self, name: Any) -> ModelEntry:
        """The entry for ``name`` (else the first served); its context length if it says."""
        entries = [e for e in (await self.models())["data"] if isinstance(e, dict)]
        entry = next((e for e in entries if e.get("id") == name), None)
        if entry is None:
            entry = entries[0] if entries and name is None else {"id": name}
        mml = self._fixed_len or entry.get("max_model_len") or entry.get("context_length")
        return ModelEntry(str(entry.get("id")), mml if isinstance(mml, int) and mml > 0
                          else None)

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """A non-streamed chat completion and the seconds it took (retries included)."""
        t0 = time.perf_counter()
        out = await self._json_call("POST", "/chat/completions", body)
        if not isinstance(out, dict):
            raise MalformedReply(f"the reply from {self.url} is not a chat completion",
                                 url=self.url)
        return out, time.perf_counter() - t0

    async def open_stream(self, body: dict[str, Any]) -> httpx.Response:
        """A streamed chat completion, its status checked; the caller reads and closes it."""
        async def once() -> httpx.Response:
            try:
                req = self._http.build_request("POST", "/chat/completions", json=body)
                resp = await self._http.send(req, stream=True)
            except ClientError:
                raise
            except Exception as exc:
                raise self._error(exc) from None
            try:
                await self._check(resp)
            except BaseException:
                await resp.aclose()
                raise
            return resp

        return await retry_async(once, self.policy)

    def cut(self, exc: BaseException) -> ClientError:
        """A failure while relaying a stream, as one of ours."""
        return self._error(exc, streaming=True)


def _json(resp: httpx.Response, url: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        text = resp.text
        raise MalformedReply(f"the reply from {url} is not JSON ({len(text)} characters: "
                             f"{text[:120]!r})", url=url) from None
