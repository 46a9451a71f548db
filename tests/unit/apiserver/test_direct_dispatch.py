"""Resource requests bypass aiohttp's router and middleware (handlers.direct_dispatch): the
paths they take must be exactly those the application's resource routes would take, with
the same parameters, and everything else must still reach the application."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pyk8s.apiserver import handlers, http, metrics, server
from pyk8s.apiserver.context import ServerSettings
from pyk8s.machinery.resources import CATALOGUE

PATHS = [
    "/api/v1/pods",
    "/api/v1/namespaces/default/pods/web-1",
    "/api/v1/namespaces/default/pods/web-1/status",
    "/api/v1/namespaces/default/pods/web-1/binding",
    "/api/v1/watch/namespaces/default/pods",
    "/api/v1/nodes/n1/proxy/stats/summary",
    "/api/v1/namespaces/a%2Fb/pods",
    "/api/v1/namespaces/a%25b/pods",
    "/api/v1/namespaces/a%20b/pods",
    "/api/v1/",
    "/api/v1",
    "/api/",
    "/api",
    "/api//pods",
    "/api/v1//",
    "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
    "/apis/apps/v1/",
    "/apis/apps/v1",
    "/apis/apps/",
    "/apis/metrics.k8s.io/v1beta1/nodes",
    "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/x",
    "/apis/metrics.k8s.io/v1/nodes",
    "/apis//v1/things",
    "/apis/a{b/v1/things",
    "/openapi/v3/apis/apps/v1",
    "/version",
    "/healthz",
    "/metrics",
    "/apix/v1/pods",
]


def _app(tmp_path: Path) -> web.Application:
    ctx = SimpleNamespace(catalogue=CATALOGUE, settings=ServerSettings(data_dir=tmp_path))
    return server.build_app(ctx)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", PATHS)
def test_direct_routes_are_the_applications_resource_routes(tmp_path: Path, path: str) -> None:
    app = _app(tmp_path)

    async def resolve() -> Any:
        app.freeze()
        return await app.router.resolve(make_mocked_request("POST", path, app=app))

    match_info = asyncio.run(resolve())
    route = handlers.api_route(make_mocked_request("POST", path).rel_url.path_safe)
    handler = match_info.handler
    if handler is handlers.handle_core:
        assert route == ("", match_info["version"], match_info["rest"])
    elif handler is handlers.handle_group:
        assert route == (match_info["group"], match_info["version"], match_info["rest"])
    else:
        # another route, or none: only a bypassed group may look like a resource path
        assert route is None or route[0] == metrics.GROUP


def test_requests_off_the_resource_routes_reach_the_application(tmp_path: Path) -> None:
    seen: list[str] = []

    async def application(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(request.path)
        return web.Response(text="app")

    handle = handlers.direct_dispatch(None, application,  # type: ignore[arg-type]
                                      frozenset({metrics.GROUP}))

    async def main() -> None:
        for path in ("/version", "/apis/metrics.k8s.io/v1beta1/nodes", "/api/v1/"):
            await handle(make_mocked_request("GET", path))
        await handle(make_mocked_request("POST", "/api/v1/namespaces/default/pods",
                                         headers={"Expect": "100-continue"}))

    asyncio.run(main())
    assert seen == ["/version", "/apis/metrics.k8s.io/v1beta1/nodes", "/api/v1/",
                    "/api/v1/namespaces/default/pods"]


def test_a_direct_request_without_a_client_certificate_gets_a_401_status() -> None:
    async def application(request: web.BaseRequest) -> web.StreamResponse:
        raise AssertionError("resource requests do not go through the application")

    handle = handlers.direct_dispatch(None, application,  # type: ignore[arg-type]
                                      frozenset())
    response = asyncio.run(handle(make_mocked_request("GET", "/api/v1/pods")))
    assert isinstance(response, web.Response)
    assert response.status == 401
    assert response.body is not None and b'"reason":"Unauthorized"' in bytes(response.body)


class _Transport:
    def __init__(self, cert: dict[str, Any]) -> None:
        self.cert = cert

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.cert if name == "peercert" else default


def _cert(name: str, *groups: str) -> dict[str, Any]:
    subject = [(("commonName", name),)] + [(("organizationName", g),) for g in groups]
    return {"subject": tuple(subject)}


def test_the_user_of_a_connection_is_its_certificates() -> None:
    admin, other = _cert("admin", "system:masters"), _cert("bob")
    for _ in range(2):  # the second time from what the first one remembered
        user = http.peer_user(SimpleNamespace(transport=_Transport(admin)))  # type: ignore[arg-type]
        assert user == http.User("admin", ("system:masters", "system:authenticated"))
        user = http.peer_user(SimpleNamespace(transport=_Transport(other)))  # type: ignore[arg-type]
        assert user == http.User("bob", ("system:authenticated",))
    nameless = {"subject": ((("organizationName", "system:masters"),),)}
    assert http.peer_user(SimpleNamespace(transport=_Transport(nameless))) is None  # type: ignore[arg-type]


def test_remembered_users_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_USERS", {})
    monkeypatch.setattr(http, "_USERS_LIMIT", 3)
    certs = [_cert(f"user-{i}") for i in range(10)]
    for cert in certs:
        user = http.peer_user(SimpleNamespace(transport=_Transport(cert)))  # type: ignore[arg-type]
        assert user is not None and user.name == cert["subject"][0][0][1]
    assert len(http._USERS) == 3
