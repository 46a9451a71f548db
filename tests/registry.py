"""A registry for tests: the read side of the OCI distribution API on 127.0.0.1, serving
images built by :mod:`tests.make_test_image` from memory.

It behaves like ``distribution`` where clients can get it wrong: a manifest whose media
type the ``Accept`` header does not list is 404 ``MANIFEST_UNKNOWN``; manifests carry
``Docker-Content-Digest``; errors use the ``{"errors": [...]}`` body. With ``token_auth``
every ``/v2/`` request needs a bearer token from ``/token`` (a 401 with a ``Bearer``
challenge otherwise), optionally only for given basic credentials. ``requests`` records
what was asked, so tests can check mirror order and caching.

It runs its own event loop in a thread, so synchronous tests and ``asyncio.run`` both use
it; ``with TestRegistry() as reg: reg.push("library/busybox", "latest", built)``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.make_test_image import Built


@dataclass
class Repo:
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message, "detail": {}}]},
                             status=status, headers=headers)


class TestRegistry:
    __test__ = False  # not a pytest class

    def __init__(self, *, token_auth: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.token_auth = token_auth
        self.credentials = credentials
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.corrupt: set[str] = set()
        """Blob digests served with wrong content (to test verification)."""
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def push(self, repo: str, tag: str, built: Built) -> None:
        r = self.repos.setdefault(repo, Repo())
        r.blobs.update(built.blobs)
        r.manifests.update(built.manifests)
        if tag:
            r.tags[tag] = built.top_digest

    # ---- HTTP ---------------------------------------------------------------------------

    def _authorized(self, request: web.Request, scope: str) -> web.Response | None:
        if not self.token_auth:
            return None
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return None
        challenge = f'Bearer realm="{self.url}/token",service="test-registry"'
        if scope:
            challenge += f',scope="{scope}"'
        return _error(401, "UNAUTHORIZED", "authentication required",
                      {"WWW-Authenticate": challenge})

    async def _token(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", str(request.rel_url)))
        if self.credentials:
            header = request.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if header != want:
                return _error(401, "UNAUTHORIZED", "incorrect username or password")
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return web.json_response({"token": token, "expires_in": 300})

    async def _base(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, "/v2/"))
        denied = self._authorized(request, "")
        return denied or web.json_response(
            {}, headers={"Docker-Distribution-Api-Version": "registry/2.0"})

    def _repo(self, request: web.Request) -> tuple[str, Repo | None]:
        name = request.match_info["name"]
        return name, self.repos.get(name)

    async def _manifest(self, request: web.Request) -> web.Response:
        name, repo = self._repo(request)
        ref = request.match_info["ref"]
        self.requests.append((request.method, f"/v2/{name}/manifests/{ref}"))
        denied = self._authorized(request, f"repository:{name}:pull")
        if denied:
            return denied
        if repo is None:
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
        digest = ref if ref.startswith("sha256:") else repo.tags.get(ref, "")
        if digest not in repo.manifests:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        media_type, data = repo.manifests[digest]
        accepted = {part.split(";")[0].strip()
                    for value in request.headers.getall("Accept", [])
                    for part in value.split(",")}
        if media_type not in accepted and "*/*" not in accepted:
            return _error(404, "MANIFEST_UNKNOWN",
                          "OCI manifest found, but accept header does not support OCI "
                          "manifests" if "oci" in media_type else "manifest unknown")
        return web.Response(body=data, headers={"Content-Type": media_type,
                                                "Docker-Content-Digest": digest})

    async def _blob(self, request: web.Request) -> web.Response:
        name, repo = self._repo(request)
        digest = request.match_info["digest"]
        self.requests.append((request.method, f"/v2/{name}/blobs/{digest}"))
        denied = self._authorized(request, f"repository:{name}:pull")
        if denied:
            return denied
        if repo is None or digest not in repo.blobs:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = repo.blobs[digest]
        if digest in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return web.Response(body=data, content_type="application/octet-stream",
                            headers={"Docker-Content-Digest": digest})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_get("/v2/", self._base)
        app.router.add_get(r"/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_get(r"/v2/{name:.+}/blobs/{digest}", self._blob)
        return app

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> TestRegistry:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def serve() -> None:
                self._runner = web.AppRunner(self.app(), access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                server: Any = site._server
                self.port = server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(serve())
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="test-registry", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test registry did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> TestRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def manifest_json(built: Built) -> Any:
    return json.loads(built.manifest_bytes)


if __name__ == "__main__":  # serve the busybox image: python -m tests.registry
    import time

    from tests.make_test_image import busybox_image

    with TestRegistry() as reg:
        reg.push("library/busybox", "latest", busybox_image())
        print(f"serving docker.io/library/busybox:latest at {reg.url}", flush=True)
        while True:
            time.sleep(3600)
