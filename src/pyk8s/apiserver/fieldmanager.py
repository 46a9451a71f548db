"""Field management on the write path: who is writing, and what they now own.

The API server's side of server-side apply (:mod:`pyk8s.machinery.managedfields` holds the
logic): the manager's name (the ``fieldManager`` parameter, else the User-Agent up to its
first ``/``, as upstream's ``prefixFromUserAgent``: ``kubectl/v1.32.4 (...)`` → ``kubectl``),
its validation, the scope of a write (the kind's type; ``status`` owned by nobody on the main
resource of a kind with a status subresource), and the translation of conflicts into
upstream's 409.

As upstream's ``UpdateNoErrors``, a failure while recording an Update (a bug) never fails the
write: the object is stored without managedFields and the failure is logged.

Only writes a client asks for are tracked: creates, updates, patches and applies, on the
object and its ``status`` and ``scale`` subresources. The server's own bookkeeping (deletion
marks, bindings, namespace finalization) leaves managedFields alone, as upstream's does.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from typing import Any

from pyk8s.apiserver.objects import Obj
from pyk8s.machinery import errors
from pyk8s.machinery.managedfields import typed, updater
from pyk8s.machinery.meta import now_rfc3339
from pyk8s.machinery.resources import Resource

log = logging.getLogger("pyk8s.apiserver.fieldmanager")

MAX_MANAGER_LENGTH = 128
_META_GROUP = "meta.k8s.io"


@functools.lru_cache(maxsize=1024)
def _printable(text: str) -> str:
    out = []
    size = 0
    for ch in text:
        if unicodedata.category(ch)[0] in ("C", "Z") and ch != " ":
            continue
        size += len(ch.encode())
        if size > MAX_MANAGER_LENGTH:
            break
        out.append(ch)
    return "".join(out)


def manager_name(query_value: str | None, user_agent: str | None, options_kind: str) -> str:
    """The manager of a create, update or patch (``options_kind`` names the options type
    in errors: CreateOptions, UpdateOptions, PatchOptions)."""
    if query_value:
        validate_manager(query_value, options_kind)
        return query_value
    return _printable((user_agent or "").split("/", 1)[0])


def validate_manager(name: str, options_kind: str) -> None:
    if len(name.encode()) > MAX_MANAGER_LENGTH:
        raise errors.invalid(_META_GROUP, options_kind, "", [(
            "fieldManager", "FieldValueTooLong",
            f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes")])
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise errors.invalid(_META_GROUP, options_kind, "", [(
            "fieldManager", "FieldValueInvalid",
            f'Invalid value: "{name}": must only contain printable characters')])


def require_apply_manager(query_value: str | None) -> str:
    if not query_value:
        raise errors.invalid(_META_GROUP, "PatchOptions", "", [(
            "fieldManager", "FieldValueRequired", "Required value: is required for apply patch")])
    validate_manager(query_value, "PatchOptions")
    return query_value


def forbid_force() -> errors.ApiError:
    return errors.invalid(_META_GROUP, "PatchOptions", "", [(
        "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch")])


_scopes: dict[tuple[str, str, str], updater.Scope] = {}


def scope(res: Resource, subresource: str = "") -> updater.Scope:
    key = (res.api_version, res.kind, subresource)
    found = _scopes.get(key)
    if found is None:
        node = typed.type_of_kind(res.api_version, res.kind)
        reset: frozenset[tuple[str, ...]] = frozenset()
        if subresource == "status":
            # a status write owns the status and nothing else
            roots = set(node.field_names()) | {"metadata", "spec"}
            reset = frozenset(("f:" + k,) for k in roots - {"status", "apiVersion", "kind"})
        elif res.has_status and not subresource:
            reset = frozenset({("f:status",)})
        found = updater.Scope(node, res.api_version, subresource, reset)
        _scopes[key] = found
    return found


def _set(obj: Obj, managed: list[dict[str, Any]] | None) -> None:
    meta = obj.setdefault("metadata", {})
    if managed:
        meta["managedFields"] = managed
    else:
        meta.pop("managedFields", None)


def stamp(res: Resource, subresource: str, manager: str | None, live: Obj | None, new: Obj,
          sent: Any) -> None:
    """Set ``new``'s managedFields after an Update by ``manager`` (``sent``: the
    managedFields the request carried). ``manager`` None: not a client's write, keep the
    live ones."""
    if manager is None:
        if live is not None:
            _set(new, (live.get("metadata") or {}).get("managedFields"))
        return
    meta = new.setdefault("metadata", {})
    if sent is None:
        meta.pop("managedFields", None)
    else:
        meta["managedFields"] = sent
    try:
        managed = updater.record_update(live, new, scope(res, subresource), manager, now_rfc3339())
    except Exception:  # upstream's UpdateNoErrors: a write never fails here
        meta = new.get("metadata") or {}
        log.exception("failed to update managedFields of %s %s/%s", res.kind,
                      meta.get("namespace", ""), meta.get("name", ""))
        managed = None
    _set(new, managed)


def apply(res: Resource, live: Obj | None, config: Obj, manager: str, force: bool,
          subresource: str = "") -> Obj:
    """The object an apply makes (before defaulting), with its managedFields; a conflict is
    upstream's 409."""
    result = updater.apply(live, config, scope(res, subresource), manager, force=force,
                           now=now_rfc3339())
    if isinstance(result, updater.Conflicts):
        raise errors.ApiError(409, "Conflict", result.message,
                              details={"causes": result.causes()})
    _set(result.obj, result.managed_fields)
    return result.obj


def keep(new: Obj, managed: Any) -> None:
    """Put back the managedFields an apply computed (the write path's merge resets them)."""
    _set(new, managed if isinstance(managed, list) else None)
