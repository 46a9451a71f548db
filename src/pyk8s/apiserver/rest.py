"""The verbs every stored kind shares: create, get, update, patch, delete.

These functions know nothing of HTTP: they take decoded bodies and return objects, raising
:class:`~pyk8s.machinery.errors.ApiError` for anything the client did wrong. Writes follow
upstream's ``GuaranteedUpdate``: read the current version, compute the new one, write it
conditionally on the revision read, and on a lost race read again (unless the client named
a resourceVersion, which then is a 409 Conflict).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pyk8s.apiserver import fieldmanager, objects
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.objects import Obj
from pyk8s.apiserver.watchcache import CachedObject
from pyk8s.machinery import errors
from pyk8s.machinery.meta import new_uid, now_rfc3339, rfc3339
from pyk8s.machinery.patch import copy_json
from pyk8s.machinery.resources import Resource
from pyk8s.storage import KeyExistsError, KeyNotFoundError, KeyValue, RevisionMismatchError

MAX_RETRIES = 16

# Fields the server owns: what a client sends for them on update is replaced by the
# stored values.
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink")


def _strategy(ctx: ApiContext, resource: Resource):  # type: ignore[no-untyped-def]
    return ctx.strategy(resource)


async def ensure_namespace_open(ctx: ApiContext, namespace: str) -> None:
    """NamespaceLifecycle admission: creates need an existing, non-terminating namespace."""
    ns_resource = ctx.catalogue.by_plural("", "v1", "namespaces")
    assert ns_resource is not None
    key = ns_resource.key("", namespace)
    cached = ctx.cache.cache_for(ns_resource).items.get(key)
    if cached is not None:
        phase = cached.get("status.phase")
    else:
        kv = await ctx.store.get(key)
        if kv is None:
            raise errors.not_found("", "namespaces", namespace)
        phase = objects.decode(kv).get("status", {}).get("phase")
    if phase == "Terminating":
        raise errors.forbidden(
            f"unable to create new content in namespace {namespace} because it is being "
            "terminated"
        )


def _raise_invalid(resource: Resource, obj: Obj, causes: list[tuple[str, str, str]]) -> None:
    if causes:
        name = obj.get("metadata", {}).get("name") or ""
        raise errors.invalid(resource.group, resource.kind, str(name), causes)


async def create(
    ctx: ApiContext, resource: Resource, namespace: str, body: Any, *, dry_run: bool = False,
    manager: str | None = None, managed_fields: list[dict[str, Any]] | None = None,
) -> Obj:
    """Create ``body``. ``manager`` (a client's create) becomes the owner of every field
    set (an Update entry); ``managed_fields`` (an apply that creates) are stored as given."""
    obj = objects.check_body(resource, body, namespace)
    strategy = _strategy(ctx, resource)
    sent_managed = obj["metadata"].get("managedFields")
    if resource.namespaced:
        await ensure_namespace_open(ctx, namespace)
    meta = obj["metadata"]
    generate = meta.get("generateName")
    attempts = 8 if (generate and not meta.get("name")) else 1
    for attempt in range(attempts):
        if generate and (attempt or not meta.get("name")):
            if not isinstance(generate, str):
                raise errors.invalid(resource.group, resource.kind, "", [
                    ("metadata.generateName", "FieldValueInvalid", "must be a string")])
            meta["name"] = objects.generate_name(generate)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        if strategy.tracks_generation and "spec" in obj:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if attempt == 0:
            strategy.prepare_create(obj)
            _raise_invalid(resource, obj, objects.metadata_causes(resource, obj)
                           + strategy.validate_create(obj))
            if managed_fields:
                meta["managedFields"] = managed_fields
            elif manager is not None:
                fieldmanager.stamp(resource, "", manager, None, obj, sent_managed)
            await strategy.allocate(obj)
        if dry_run:
            strategy.release(obj)
            return obj
        value = objects.encode(obj)
        ctx.cache.expect(value, obj)
        try:
            kv = await ctx.store.create(resource.key(namespace, meta["name"]), value)
        except KeyExistsError:
            ctx.cache.withdraw(value)
            if attempt + 1 < attempts:
                continue
            strategy.release(obj)
            raise errors.already_exists(resource.group, resource.plural, meta["name"]) from None
        except BaseException:
            ctx.cache.withdraw(value)
            strategy.release(obj)
            raise
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj
    raise AssertionError("unreachable")


async def get(ctx: ApiContext, resource: Resource, namespace: str, name: str) -> Obj:
    kv = await ctx.store.get(resource.key(namespace, name))
    if kv is None:
        raise errors.not_found(resource.group, resource.plural, name)
    return objects.decode(kv)


# mutate(obj, current): ``obj`` is a private copy of ``current`` to change and return (or a
# new object); ``current`` is the object as read, shared: it must not be changed. Called
# with ``copy=False``, ``obj`` is ``current`` itself: the mutation returns a new object that
# shares what it leaves alone and copies every dict or list it changes.
Mutation = Callable[[Obj, Obj], Obj]


async def _remove(ctx: ApiContext, resource: Resource, name: str, key: str, revision: int,
                  current: Obj) -> str | None:
    """Delete ``key`` if it is still at ``revision``: the delete's resourceVersion, or None
    when a concurrent write won (the caller reads again)."""
    try:
        gone = await ctx.store.delete(key, expected_revision=revision)
    except RevisionMismatchError:
        return None
    except KeyNotFoundError:
        raise errors.not_found(resource.group, resource.plural, name) from None
    _strategy(ctx, resource).release(current)
    return str(gone.mod_revision)


async def guaranteed_update(
    ctx: ApiContext,
    resource: Resource,
    namespace: str,
    name: str,
    mutate: Mutation,
    *,
    dry_run: bool = False,
    reallocate: bool = False,
    copy: bool = True,
) -> Obj:
    """Apply ``mutate`` to the current object and store the result, retrying lost races.

    ``mutate`` receives a private copy and the object read (see :data:`Mutation`) and
    returns the new object (or raises ApiError). An unchanged result is not written (no new
    resourceVersion), as upstream skips no-op updates. An object marked for deletion whose
    last finalizer goes is deleted.

    The first attempt starts from the watch cache's copy, as upstream's GuaranteedUpdate
    starts from the cacher's object: the write is conditional on that revision, so a stale
    copy costs one retry, never a wrong write. Whatever else a stale copy could decide (an
    error from ``mutate``, a no-op) is decided again on a fresh read from the store. A dry
    run (no write to catch a stale copy) and a kind that reserves from shared pools on
    update start from the store.

    ``copy=False`` spares the private copy for a mutation that copies only what it changes
    (a binding, a status merge patch): parsing the object a second time is a good part of
    such a small write's cost."""
    strategy = _strategy(ctx, resource)
    key = resource.key(namespace, name)
    fresh_first = dry_run or (reallocate and strategy.allocates)
    cached = None if fresh_first else _cached(ctx, resource, key)
    for _ in range(MAX_RETRIES):
        if cached is not None:
            raw, revision, current, stale_ok = cached.raw, cached.revision, cached.load(), True
            cached = None
        else:
            kv = await ctx.store.get(key)
            if kv is None:
                raise errors.not_found(resource.group, resource.plural, name)
            raw, revision, current, stale_ok = kv.value, kv.mod_revision, objects.decode(kv), False
        try:
            new = mutate(objects.decode_raw(raw, revision) if copy else current, current)
        except errors.ApiError:
            if stale_ok:
                continue
            raise
        new.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            if stale_ok:
                continue
            return current
        meta = new["metadata"]
        if (
            meta.get("deletionTimestamp")
            and strategy.deletion_finalized(new)
            and not meta.get("deletionGracePeriodSeconds")
        ):
            if dry_run:
                return new
            removed = await _remove(ctx, resource, name, key, revision, current)
            if removed is None:
                continue
            meta["resourceVersion"] = removed
            return new
        if reallocate:
            await strategy.reallocate(new, current)
        if dry_run:
            return new
        try:
            written = await _write(ctx, key, new, revision)
        except RevisionMismatchError:
            continue
        except KeyNotFoundError:
            raise errors.not_found(resource.group, resource.plural, name) from None
        meta["resourceVersion"] = str(written.mod_revision)
        return new
    raise errors.conflict(resource.group, resource.plural, name,
                          "too many concurrent updates; please try again")


async def _write(ctx: ApiContext, key: str, new: Obj, revision: int) -> KeyValue:
    """Store ``new`` over ``revision``, handing it to the watch cache (see
    :meth:`WatchCache.expect`): ``new`` must not change afterwards but for the
    resourceVersion the write gives it."""
    value = objects.encode(new)
    ctx.cache.expect(value, new)
    try:
        return await ctx.store.update(key, value, expected_revision=revision)
    except BaseException:
        ctx.cache.withdraw(value)
        raise


def _cached(ctx: ApiContext, resource: Resource, key: str) -> CachedObject | None:
    """The watch cache's copy of ``key``, if it holds one (it may lag the store)."""
    cache = ctx.cache.caches.get(resource.storage_prefix)
    return cache.items.get(key) if cache is not None else None


def check_precondition(resource: Resource, name: str, wanted: Any, current: Obj) -> None:
    """A client-supplied resourceVersion must be the current one (optimistic concurrency)."""
    if wanted in (None, ""):
        return
    if str(wanted) != current["metadata"]["resourceVersion"]:
        raise errors.conflict(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)


def _spec_changed(new: Obj, old: Obj) -> bool:
    return any(new.get(k) != old.get(k) for k in set(new) | set(old)
               if k not in ("metadata", "status", "apiVersion", "kind"))


def merge_update(ctx: ApiContext, resource: Resource, name: str, incoming: Obj,
                 current: Obj) -> Obj:
    """The object an update of the main resource stores: the client's object with the
    server-owned fields (system metadata, and status where a status subresource exists)
    taken from the current one, defaulted, its generation bumped on a spec change, validated."""
    strategy = _strategy(ctx, resource)
    meta = incoming.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("name") not in (None, name):
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    meta["name"] = name
    current_meta = current["metadata"]
    if resource.namespaced:
        meta["namespace"] = current_meta.get("namespace")
    for field in _SYSTEM_META:
        if field in current_meta:
            meta[field] = current_meta[field]
        else:
            meta.pop(field, None)
    if "managedFields" in current_meta:
        meta["managedFields"] = current_meta["managedFields"]
    else:
        meta.pop("managedFields", None)
    if resource.has_status:
        if "status" in current:
            incoming["status"] = current["status"]
        else:
            incoming.pop("status", None)
    strategy.prepare_update(incoming, current)
    if strategy.tracks_generation and "generation" in current_meta and _spec_changed(incoming, current):
        meta["generation"] = int(current_meta["generation"]) + 1
    _raise_invalid(resource, incoming, objects.metadata_causes(resource, incoming)
                   + strategy.validate_update(incoming, current))
    return incoming


def merge_status(incoming: Obj, current: Obj) -> Obj:
    """The object a status update stores: the current object with the client's status."""
    new = current
    if "status" in incoming:
        new["status"] = incoming["status"]
    else:
        new.pop("status", None)
    return new


async def update(
    ctx: ApiContext,
    resource: Resource,
    namespace: str,
    name: str,
    body: Any,
    *,
    subresource: str = "",
    dry_run: bool = False,
    manager: str | None = None,
) -> Obj:
    incoming = objects.check_body(resource, body, namespace)
    wanted = incoming["metadata"].get("resourceVersion")
    sent_managed = incoming["metadata"].get("managedFields")

    def mutate(obj: Obj, current: Obj) -> Obj:
        check_precondition(resource, name, wanted, current)
        if subresource == "status":
            new = merge_status(incoming, obj)
        else:
            new = merge_update(ctx, resource, name, copy_json(incoming), current)
        if manager is not None:
            fieldmanager.stamp(resource, subresource, manager, current, new, sent_managed)
        return new

    return await guaranteed_update(ctx, resource, namespace, name, mutate, dry_run=dry_run,
                                   reallocate=not subresource)


async def delete(
    ctx: ApiContext,
    resource: Resource,
    namespace: str,
    name: str,
    options: dict[str, Any],
    *,
    dry_run: bool = False,
) -> tuple[Obj, bool]:
    """Delete, or mark for deletion. Returns the object and whether it is gone now."""
    strategy = _strategy(ctx, resource)
    key = resource.key(namespace, name)
    grace = options.get("gracePeriodSeconds")
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is True:
        policy = "Orphan"
    if policy not in (None, "Foreground", "Background", "Orphan"):
        raise errors.invalid("", "DeleteOptions", "", [(
            "propagationPolicy", "FieldValueNotSupported",
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"')])
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("gracePeriodSeconds must be an integer")
    preconditions = options.get("preconditions") or {}
    cached = None if dry_run else _cached(ctx, resource, key)  # as in guaranteed_update
    for _ in range(MAX_RETRIES):
        if cached is not None:
            raw, revision, stale_ok = cached.raw, cached.revision, True
            cached = None
        else:
            kv = await ctx.store.get(key)
            if kv is None:
                raise errors.not_found(resource.group, resource.plural, name)
            raw, revision, stale_ok = kv.value, kv.mod_revision, False
        current = objects.decode_raw(raw, revision)
        meta = current["metadata"]
        uid = preconditions.get("uid")
        if uid and uid != meta.get("uid"):
            if stale_ok:
                continue
            raise errors.conflict(resource.group, resource.plural, name,
                                  f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}")
        rv = preconditions.get("resourceVersion")
        if rv and str(rv) != meta["resourceVersion"]:
            if stale_ok:
                continue
            raise errors.conflict(resource.group, resource.plural, name,
                                  f"Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {meta['resourceVersion']}")
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            if "orphan" in finalizers:
                finalizers.remove("orphan")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            if "foregroundDeletion" in finalizers:
                finalizers.remove("foregroundDeletion")
        elif policy == "Background":
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
        period = strategy.grace_period(current, grace)
        candidate = {**current, "metadata": {**meta, "finalizers": finalizers}}
        if period == 0 and strategy.deletion_finalized(candidate):
            if dry_run:
                return current, True
            removed = await _remove(ctx, resource, name, key, revision, current)
            if removed is None:
                continue
            meta["resourceVersion"] = removed
            return current, True
        new = objects.decode_raw(raw, revision)
        new_meta = new["metadata"]
        now = datetime.now(UTC)
        if finalizers:
            new_meta["finalizers"] = finalizers
        else:
            new_meta.pop("finalizers", None)
        existing = new_meta.get("deletionTimestamp")
        previous_grace = new_meta.get("deletionGracePeriodSeconds")
        if not existing or (previous_grace is not None and period < previous_grace):
            new_meta["deletionTimestamp"] = rfc3339(now + timedelta(seconds=period))
            new_meta["deletionGracePeriodSeconds"] = period
            strategy.on_deleting(new)
        if new == current:
            if stale_ok:
                continue
            return current, False
        if dry_run:
            return new, False
        try:
            written = await _write(ctx, key, new, revision)
        except RevisionMismatchError:
            continue
        except KeyNotFoundError:
            raise errors.not_found(resource.group, resource.plural, name) from None
        new_meta["resourceVersion"] = str(written.mod_revision)
        return new, False
    raise errors.conflict(resource.group, resource.plural, name,
                          "too many concurrent updates; please try again")
