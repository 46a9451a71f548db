"""An async REST client for the project's own components (the role of client-go).

Objects are plain dicts, bodies JSON (orjson), transport HTTP/1.1 over TLS with a client
certificate from a kubeconfig (:mod:`pyk8s.client.http`, a lean client: requests and watch
events are much of every component's CPU). This is the one boundary where transport errors
are translated: every failure reaches the caller as an :class:`ApiError` — the server's own
``Status`` when there is one, else 503 ``ServiceUnavailable`` for a connection that failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from pyk8s.client.http import Pool
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import Resource

_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _data_or_file(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = entry.get(key)
    if path:
        return (base / path).read_bytes() if not os.path.isabs(path) else Path(path).read_bytes()
    return None


def ssl_context_from(ca_pem: bytes | None, cert_pem: bytes | None, key_pem: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem.decode())
    if cert_pem and key_pem:
        # load_cert_chain reads files only: hand it a private temporary copy.
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp, "c.pem"), Path(tmp, "k.pem")
            cert_path.write_bytes(cert_pem)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key_pem)
            context.load_cert_chain(cert_path, key_path)
    return context


REQUEST_CONNECTIONS = 64
"""Concurrent non-watch requests per client. client-go multiplexes any number of requests on
one HTTP/2 connection; over HTTP/1.1 a request holds its connection until the answer, so a
component's throughput is at most connections / latency. With 8, a busy API server's few
milliseconds of latency capped the scheduler's bindings near 400/s with both cores not
busy; 64 lets a burst (a ReplicaSet's slow-start batch, a backlog of bindings) keep the
server's loop fed, and the server answers more requests per wake-up."""


class ApiClient:
    """Calls to one API server. Create it inside the event loop that will use it."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | None = None, *,
                 user_agent: str = "pyk8s", max_connections: int = REQUEST_CONNECTIONS) -> None:
        self.server = server.rstrip("/")
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._pool: Pool | None = None
        self._targets: dict[str, bytes] = {}

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, user_agent: str = "pyk8s",
                        max_connections: int = REQUEST_CONNECTIONS) -> ApiClient:
        path = Path(path)
        config = yaml.safe_load(path.read_text())
        current = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        base = path.parent
        context_ssl = ssl_context_from(
            _data_or_file(cluster, "certificate-authority", base),
            _data_or_file(user, "client-certificate", base),
            _data_or_file(user, "client-key", base),
        )
        return cls(cluster["server"], context_ssl, user_agent=user_agent,
                   max_connections=max_connections)

    def _connections(self) -> Pool:
        """Requests share a few kept-alive connections (see :class:`Pool`); a watch has one
        of its own. ``server`` may be reassigned before use (components do): the pool
        follows it."""
        pool = self._pool
        if pool is None or pool.server != self.server:
            if pool is not None:
                pool.close_now()
            pool = self._pool = Pool(self.server, self._ssl, user_agent=self._user_agent,
                                     limit=self.max_connections)
            self._targets.clear()
        return pool

    def _target(self, pool: Pool, path: str, query: Mapping[str, str]) -> bytes:
        """The request target; the query-less ones (most requests) are encoded once."""
        if query:
            return pool.target(path, query)
        target = self._targets.get(path)
        if target is None:
            if len(self._targets) > 20000:
                self._targets.clear()
            target = self._targets[path] = pool.target(path, None)
        return target

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close_now()
            await asyncio.sleep(0)  # let the transports finish closing
        self._pool = None

    # -- paths ---------------------------------------------------------------------------

    @staticmethod
    def path(res: Resource, namespace: str | None = None, name: str = "",
             subresource: str = "") -> str:
        prefix = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        if res.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        path = f"{prefix}/{res.plural}"
        if name:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path

    # -- the one request function ----------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = 60.0) -> Any:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        query = {k: _param(v) for k, v in params.items() if v not in (None, "")} if params else {}
        try:
            pool = self._connections()
            response = await pool.request(method, self._target(pool, path, query), data,
                                          content_type, timeout)
        except (OSError, TimeoutError) as exc:
            raise ApiError(503, "ServiceUnavailable",
                           f"{method} {path}: {type(exc).__name__}: {exc}") from None
        raw = response.body
        if response.status >= 400:
            raise _error_from(response.status, raw)
        if not raw:
            return None
        if "json" not in response.headers.get("content-type", ""):
            return raw.decode(errors="replace")
        return orjson.loads(raw)

    # -- verbs -----------------------------------------------------------------------------

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", self.path(res, namespace, name))
        return result

    async def list(self, res: Resource, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "", limit: int = 0,
                   continue_token: str = "", resource_version: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "limit": limit or None, "continue": continue_token,
                  "resourceVersion": resource_version}
        result: dict[str, Any] = await self.request("GET", self.path(res, namespace), params=params)
        for item in result.get("items") or []:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return result

    async def create(self, res: Resource, obj: dict[str, Any], *,
                     namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or obj.get("metadata", {}).get("namespace") or "default"
        result: dict[str, Any] = await self.request("POST", self.path(res, ns), body=obj)
        return result

    async def update(self, res: Resource, obj: dict[str, Any], *,
                     subresource: str = "") -> dict[str, Any]:
        meta = obj.get("metadata", {})
        path = self.path(res, meta.get("namespace"), meta["name"], subresource)
        result: dict[str, Any] = await self.request("PUT", path, body=obj)
        return result

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: str = "merge", subresource: str = "",
                    field_manager: str = "", force: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        result: dict[str, Any] = await self.request(
            "PATCH", self.path(res, namespace, name, subresource), params=params, body=body,
            content_type=_PATCH_TYPES[patch_type])
        return result

    async def delete(self, res: Resource, namespace: str | None, name: str, *,
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = preconditions
        result: dict[str, Any] = await self.request("DELETE", self.path(res, namespace, name),
                                                    body=options)
        return result

    async def post_subresource(self, res: Resource, namespace: str | None, name: str,
                               subresource: str, body: Any) -> Any:
        return await self.request("POST", self.path(res, namespace, name, subresource), body=body)

    async def watch(self, res: Resource, namespace: str | None = None, *,
                    resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Events of a watch; ERROR events are raised as ApiError (410 when too old)."""
        params = {"watch": "1", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector,
                  "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None}
        query = {k: _param(v) for k, v in params.items() if v not in (None, "")}
        loads = orjson.loads
        try:
            pool = self._connections()
            conn, response = await pool.stream(pool.target(self.path(res, namespace), query))
            try:
                if response.status >= 400:
                    raise _error_from(response.status, response.body)
                lines = LineSplitter()
                while (piece := await conn.read_piece()) is not None:
                    for line in lines.feed(piece):
                        event = loads(line)
                        if event.get("type") == "ERROR":
                            status_obj = event.get("object") or {}
                            raise ApiError(int(status_obj.get("code", 500)),
                                           status_obj.get("reason", ""),
                                           status_obj.get("message", "watch error"))
                        yield event
            finally:
                pool.forget(conn)
        except ApiError:
            raise
        except (OSError, TimeoutError) as exc:
            raise ApiError(503, "ServiceUnavailable",
                           f"watch {res.plural}: {type(exc).__name__}: {exc}") from None


class LineSplitter:
    """The non-blank lines of a stream that arrives in chunks (a watch: one event per line).

    A chunk may end inside a line; its pieces wait until the line ends and are joined once.
    A chunk of many lines is split once: nothing is re-copied per line or per chunk, which
    matters when a watch delivers hundreds of events in one read."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial.clear()
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        return [line for line in lines if line and not line.isspace()]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_from(status: int, raw: bytes) -> ApiError:
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        body = orjson.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return ApiError(int(body.get("code") or status), body.get("reason", ""),
                            body.get("message", ""), details=body.get("details"))
    return ApiError(status, "", raw[:500].decode(errors="replace"))
