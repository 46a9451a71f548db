"""The HTTP boundary: authentication, the error boundary and response helpers.

Every exception raised below a handler ends here. An :class:`ApiError` becomes its ``Status``;
anything else is a bug, logged with its traceback on the server and answered as a 500
``Status`` without one (the client never sees a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pyk8s.apiserver import codec
from pyk8s.machinery import errors

log = logging.getLogger("pyk8s.apiserver")

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
MASTERS = "system:masters"

USER_KEY = web.AppKey("user_key", object)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...]


def json_response(value: Any, status: int = 200, content_type: str = codec.JSON) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status,
                        headers={"Content-Type": content_type})


def raw_response(body: bytes, status: int = 200, content_type: str = codec.JSON) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


def status_response(err: errors.ApiError) -> web.Response:
    return json_response(err.status(), status=err.code)


def success_status(code: int = 200, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success", "code": code}
    if details:
        body["details"] = details
    return body


def peer_user(request: web.Request) -> User | None:
    """The user a verified client certificate names (CN user, O groups), or None."""
    transport = request.transport
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    # The transport hands out the one dict it made at the handshake: a connection's user is
    # read from it once, not on each of its requests.
    known = _USERS.get(id(cert))
    if known is not None and known[0] is cert:
        return known[1]
    user = _user_of(cert)
    if len(_USERS) >= _USERS_LIMIT:
        del _USERS[next(iter(_USERS))]
    _USERS[id(cert)] = (cert, user)  # holding ``cert`` keeps its id from being reused
    return user


_USERS: dict[int, tuple[dict[str, Any], User | None]] = {}
_USERS_LIMIT = 4096


def _user_of(cert: dict[str, Any]) -> User | None:
    name = ""
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    groups.append("system:authenticated")
    return User(name, tuple(groups))


def may_do_anything(user: User) -> bool:
    """Authorization until RBAC arrives: system:masters may do everything, others nothing."""
    return MASTERS in user.groups


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorize(request: web.BaseRequest) -> None:
    """Authenticate (client certificate) and authorize a request for a non-public path;
    the user is kept as ``request["user"]``. Raises 401/403 ApiErrors."""
    user = peer_user(request)
    if user is None:
        raise errors.unauthorized()
    if not may_do_anything(user):
        raise errors.forbidden(
            f'User "{user.name}" cannot {request.method.lower()} path "{request.path}"')
    request["user"] = user


async def guarded(request: web.BaseRequest, handler: Callable[..., Awaitable[web.StreamResponse]],
                  *args: Any) -> web.StreamResponse:
    """``await handler(request, *args)`` behind authentication and the error boundary (see
    the module docstring). Shared by the middleware and the API routes' direct dispatch."""
    try:
        if request.path not in PUBLIC_PATHS:
            authorize(request)
        return await handler(request, *args)
    except errors.ApiError as err:
        return status_response(err)
    except web.HTTPRequestEntityTooLarge:
        return status_response(errors.too_large(codec.MAX_BODY))
    except web.HTTPException as exc:
        if exc.status == 404:
            return status_response(errors.ApiError(
                404, "NotFound", "the server could not find the requested resource",
                details={}))
        if exc.status == 405:
            return status_response(errors.ApiError(405, "MethodNotAllowed",
                                                   "the server does not allow this method on the requested resource"))
        raise
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as exc:
        log.exception("internal error serving %s %s", request.method, request.path[:200])
        return status_response(errors.internal(type(exc).__name__))


@web.middleware
async def boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await guarded(request, handler)
