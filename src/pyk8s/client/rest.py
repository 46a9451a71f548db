"""An async REST client for the project's own components (the role of client-go).

Objects are plain dicts, bodies JSON (orjson), transport aiohttp over HTTPS with a client
certificate from a kubeconfig. This is the one boundary where aiohttp errors are
translated: every failure reaches the caller as an :class:`ApiError` — the server's own
``Status`` when there is one, else 503 ``ServiceUnavailable`` for a connection that failed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

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


REQUEST_CONNECTIONS = 8
"""Concurrent non-watch requests per client."""


class ApiClient:
    """Calls to one API server. Create it inside the event loop that will use it."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | None = None, *,
                 user_agent: str = "pyk8s", max_connections: int = REQUEST_CONNECTIONS) -> None:
        self.server = server.rstrip("/")
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None

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

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False,
                                         limit=limit, keepalive_timeout=60)
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            read_bufsize=1 << 20,
        )

    def _client(self) -> aiohttp.ClientSession:
        """Requests share a few kept-alive connections: a burst of them (a kubelet starting
        100 pods) queues for a free one instead of paying a TLS handshake on each side for
        a new one, as upstream's clients multiplex one HTTP/2 connection."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(self.max_connections)
        return self._session

    def _watch_client(self) -> aiohttp.ClientSession:
        """Each watch holds its connection for its lifetime: they never wait for requests,
        nor requests for them."""
        if self._watch_session is None or self._watch_session.closed:
            self._watch_session = self._new_session(0)
        return self._watch_session

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None

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
        headers = {}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        query = {k: _param(v) for k, v in (params or {}).items() if v not in (None, "")}
        try:
            async with self._client().request(
                method, self.server + path, params=query, data=data, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise _error_from(response.status, raw)
                if not raw:
                    return None
                ctype = response.headers.get("Content-Type", "")
                if "json" not in ctype:
                    return raw.decode(errors="replace")
                return orjson.loads(raw)
        except ApiError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ApiError(503, "ServiceUnavailable",
                           f"{method} {path}: {type(exc).__name__}: {exc}") from None

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
        url = self.server + self.path(res, namespace)
        try:
            async with self._watch_client().get(
                url, params=query,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            ) as response:
                if response.status >= 400:
                    raise _error_from(response.status, await response.read())
                lines = LineSplitter()
                async for chunk in response.content.iter_any():
                    for line in lines.feed(chunk):
                        event = orjson.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise ApiError(int(status.get("code", 500)), status.get("reason", ""),
                                           status.get("message", "watch error"))
                        yield event
        except ApiError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
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
