"""The garbage collector: cascading deletion through ``metadata.ownerReferences``.

Upstream (``pkg/controller/garbagecollector``) keeps an explicit graph; here the objects
stay in the informer caches and the graph holds only uids (where each object is cached, who
names whom as owner), kept by the informers' handlers, so there is no second copy of the
cluster to keep consistent. Work items are uids on one queue:

* ``delete/<uid>`` (attemptToDelete): an object whose owners may be gone. It is classified
  against its owners: *solid* (exists, not deleting its dependents), *dangling* (absent or a
  different uid — checked with a live GET, because the caches may lag a brand-new owner) or
  *waiting* (deleting in the foreground). No solid owner left: delete it, in the foreground
  when an owner waits and it has dependents of its own. A solid owner left: drop the
  references to dangling and waiting owners. An owner that is itself deleting in the
  foreground instead deletes its dependents and, once no dependent with
  ``blockOwnerDeletion`` remains, removes its ``foregroundDeletion`` finalizer.
* ``orphan/<uid>``: an owner deleted with ``propagationPolicy=Orphan`` — remove the reference
  to it from every dependent, then its ``orphan`` finalizer.

Handlers enqueue: an object with owners when it appears or its owners change; the dependents
of an object that disappears (and its own owners, which may be waiting for it); an object
that enters foreground or orphan deletion. Owners of kinds the catalogue does not know are
treated as present: never delete what we cannot check.
"""

from __future__ import annotations

import copy
from typing import Any

from pyk8s.client import ApiClient, Informer, InformerFactory
from pyk8s.controllers.base import Obj, QueueController, is_deleting, key_of, meta
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE, Resource

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

# Events never own anything and churn the most; everything else the catalogue stores can
# own or be owned (upstream watches every deletable resource discovery reports).
_NOT_WATCHED = frozenset({("", "events"), ("events.k8s.io", "events")})


def gc_resources() -> tuple[tuple[str, str], ...]:
    """(apiVersion, plural) of every kind the collector watches."""
    return tuple((r.api_version, r.plural) for r in CATALOGUE.stored()
                 if (r.group, r.plural) not in _NOT_WATCHED
                 and {"list", "watch", "delete"} <= set(r.verbs))


def finalizers(obj: Obj) -> list[str]:
    return list(meta(obj).get("finalizers") or [])


def deleting_dependents(obj: Obj) -> bool:
    return is_deleting(obj) and FOREGROUND in finalizers(obj)


class GarbageCollector(QueueController):
    name = "garbagecollector"

    def __init__(self, client: ApiClient, factory: InformerFactory,
                 resources: tuple[tuple[str, str], ...] | None = None) -> None:
        super().__init__()
        self.client = client
        self.informers: list[tuple[Resource, Informer]] = []
        self._by_kind: dict[tuple[str, str], Informer] = {}
        # The graph, kept by the handlers of every watched kind: uid -> where the object is
        # cached; owner uid -> the uids of the cached objects that name it; each of those ->
        # the owners it names. Looking objects up here, rather than through a uid index and
        # an owner index on every informer, spares each event of every object (four per
        # pod, a Lease renewal every 10 s per node) the upkeep of two indexes, and an object
        # that disappears without dependents (every pod) a look into every informer.
        self._where: dict[str, tuple[Resource, Informer, str]] = {}
        self._refs_of: dict[str, tuple[str, ...]] = {}
        self._dependents_of: dict[str, set[str]] = {}
        for api_version, plural in resources if resources is not None else gc_resources():
            resource = CATALOGUE.resource(api_version, plural)
            informer = factory.informer(resource)
            self._watch(resource, informer)
            self.informers.append((resource, informer))
            self._by_kind[(resource.api_version, resource.kind)] = informer

    def _watch(self, resource: Resource, informer: Informer) -> None:
        def added(obj: Obj) -> None:
            self._place(resource, informer, obj)
            self._added(obj)

        def updated(old: Obj, new: Obj) -> None:
            if meta(old).get("uid") != meta(new).get("uid"):
                self._unplace(informer, old)  # replaced under the same name
            self._place(resource, informer, new)
            self._updated(old, new)

        def deleted(obj: Obj) -> None:
            self._unplace(informer, obj)
            self._deleted(obj)

        informer.add_handlers(on_add=added, on_update=updated, on_delete=deleted)

    # -- the graph -----------------------------------------------------------------------

    def _place(self, resource: Resource, informer: Informer, obj: Obj) -> None:
        """Record where ``obj`` is cached and which owners it names."""
        m = meta(obj)
        uid = str(m.get("uid") or "")
        if not uid:
            return  # not a server object: nothing can name it
        self._where[uid] = (resource, informer, key_of(obj))
        owners = tuple(str(ref["uid"]) for ref in m.get("ownerReferences") or () if ref.get("uid"))
        before = self._refs_of.get(uid, ())
        if owners == before:
            return
        self._forget_refs(uid, before)
        if owners:
            self._refs_of[uid] = owners
            for owner in owners:
                found = self._dependents_of.get(owner)
                if found is None:
                    self._dependents_of[owner] = {uid}
                else:
                    found.add(uid)
        else:
            self._refs_of.pop(uid, None)

    def _unplace(self, informer: Informer, obj: Obj) -> None:
        uid = str(meta(obj).get("uid") or "")
        entry = self._where.get(uid)
        if entry is not None and entry[1] is informer:
            del self._where[uid]
            self._forget_refs(uid, self._refs_of.pop(uid, ()))

    def _forget_refs(self, uid: str, owners: tuple[str, ...]) -> None:
        for owner in owners:
            found = self._dependents_of.get(owner)
            if found is not None:
                found.discard(uid)
                if not found:
                    del self._dependents_of[owner]

    def _cached(self, uid: str) -> tuple[Resource, Informer, Obj] | None:
        entry = self._where.get(uid)
        if entry is None:
            return None
        obj = entry[1].get(entry[2])
        if obj is None or meta(obj).get("uid") != uid:
            return None
        return entry[0], entry[1], obj

    def has_dependents(self, uid: str) -> bool:
        """Whether any cached object names ``uid`` as an owner."""
        return bool(self._dependents_of.get(uid))

    # -- handlers ----------------------------------------------------------------------

    def _flags(self, obj: Obj) -> None:
        uid = meta(obj).get("uid")
        if not is_deleting(obj) or not uid:
            return
        if FOREGROUND in finalizers(obj):
            self.queue.add(f"delete/{uid}")
        if ORPHAN in finalizers(obj):
            self.queue.add(f"orphan/{uid}")

    def _added(self, obj: Obj) -> None:
        refs = meta(obj).get("ownerReferences")
        if refs and not all(self._solid_in_cache(ref) for ref in refs):
            self.queue.add(f"delete/{meta(obj).get('uid')}")
        self._flags(obj)

    def _owner_in_cache(self, ref: Obj) -> Obj | None:
        informer = self._by_kind.get((str(ref.get("apiVersion", "")), str(ref.get("kind", ""))))
        if informer is None:
            found = self.lookup(str(ref.get("uid")))
            return found[1] if found is not None else None
        cached = self._cached(str(ref.get("uid")))
        return cached[2] if cached is not None and cached[1] is informer else None

    def _waiting_in_cache(self, ref: Obj) -> bool:
        """A dependent's deletion concerns its owner only when the owner waits for its
        dependents to go (upstream's graph enqueues just those owners)."""
        owner = self._owner_in_cache(ref)
        return owner is not None and deleting_dependents(owner)

    def _solid_in_cache(self, ref: Obj) -> bool:
        """The owner is cached and not deleting its dependents: an attempt to delete the
        dependent would find nothing to do (upstream's graph likewise only queues dependents
        of owners it does not know). Every pod a ReplicaSet creates is such a dependent."""
        informer = self._by_kind.get((str(ref.get("apiVersion", "")), str(ref.get("kind", ""))))
        if informer is None:
            return False
        cached = self._cached(str(ref.get("uid")))
        return cached is not None and cached[1] is informer and not deleting_dependents(cached[2])

    def _updated(self, old: Obj, new: Obj) -> None:
        old_refs = meta(old).get("ownerReferences") or []
        new_refs = meta(new).get("ownerReferences") or []
        if old_refs != new_refs:
            self.queue.add(f"delete/{meta(new).get('uid')}")
            for ref in old_refs:
                self.queue.add(f"delete/{ref.get('uid')}")
        self._flags(new)

    def _deleted(self, obj: Obj) -> None:
        uid = meta(obj).get("uid")
        if self.has_dependents(str(uid)):
            for _, dep in self.dependents(str(uid)):
                self.queue.add(f"delete/{meta(dep).get('uid')}")
        for ref in meta(obj).get("ownerReferences") or []:
            if self._waiting_in_cache(ref):
                self.queue.add(f"delete/{ref.get('uid')}")

    # -- graph lookups over the caches ---------------------------------------------------

    def lookup(self, uid: str) -> tuple[Resource, Obj] | None:
        found = self._cached(uid)
        return (found[0], found[2]) if found is not None else None

    def dependents(self, uid: str) -> list[tuple[Resource, Obj]]:
        found = []
        for dependent in sorted(self._dependents_of.get(uid, ())):
            cached = self._cached(dependent)
            if cached is not None:
                found.append((cached[0], cached[2]))
        return found

    # -- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        action, _, uid = key.partition("/")
        found = self.lookup(uid)
        if found is None:
            return None
        resource, obj = found
        if action == "orphan":
            await self._orphan_dependents(resource, obj)
        else:
            await self._attempt_to_delete(resource, obj)
        return None

    async def _attempt_to_delete(self, resource: Resource, obj: Obj) -> None:
        uid = str(meta(obj).get("uid"))
        if deleting_dependents(obj):
            await self._process_deleting_dependents(resource, obj)
            return
        if is_deleting(obj):
            return
        refs = meta(obj).get("ownerReferences") or []
        if not refs:
            return
        solid, dangling, waiting = await self._classify(obj, refs)
        if solid:
            gone = {r.get("uid") for r in dangling + waiting}
            if gone:
                await self._patch_refs(resource, obj, [r for r in refs if r.get("uid") not in gone])
            return
        if waiting and self.dependents(uid):
            policy = "Foreground"
        elif ORPHAN in finalizers(obj):
            policy = "Orphan"
        elif FOREGROUND in finalizers(obj):
            policy = "Foreground"
        else:
            policy = "Background"
        self.log.info("deleting object=%s/%s kind=%s policy=%s: no owner left",
                      meta(obj).get("namespace", ""), meta(obj).get("name"), resource.kind, policy)
        try:
            await self.client.delete(resource, meta(obj).get("namespace", ""),
                                     meta(obj).get("name", ""), propagation_policy=policy,
                                     preconditions={"uid": uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _classify(self, obj: Obj,
                        refs: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
        solid: list[Obj] = []
        dangling: list[Obj] = []
        waiting: list[Obj] = []
        for ref in refs:
            found = self.lookup(str(ref.get("uid")))
            owner = found[1] if found is not None else None
            if owner is None:
                state, owner = await self._live_owner(obj, ref)
                if state == "dangling":
                    dangling.append(ref)
                    continue
                if state == "unknown":
                    solid.append(ref)
                    continue
            assert owner is not None
            (waiting if deleting_dependents(owner) else solid).append(ref)
        return solid, dangling, waiting

    async def _live_owner(self, obj: Obj, ref: Obj) -> tuple[str, Obj | None]:
        """Ask the server about an owner the caches do not hold."""
        group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
        resource = CATALOGUE.by_kind(group, version, str(ref.get("kind", "")))
        if resource is None:
            return "unknown", None
        namespace = meta(obj).get("namespace", "") if resource.namespaced else ""
        if resource.namespaced and not namespace:
            return "dangling", None  # a cluster-scoped object cannot have a namespaced owner
        try:
            owner = await self.client.get(resource, namespace, str(ref.get("name", "")))
        except ApiError as exc:
            if exc.code == 404:
                return "dangling", None
            raise
        if meta(owner).get("uid") != ref.get("uid"):
            return "dangling", None
        return "present", owner

    async def _process_deleting_dependents(self, resource: Resource, owner: Obj) -> None:
        uid = meta(owner).get("uid")
        blocking = 0
        for _, dep in self.dependents(str(uid)):
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                   for r in meta(dep).get("ownerReferences") or []):
                blocking += 1
            if not is_deleting(dep) or deleting_dependents(dep):
                self.queue.add(f"delete/{meta(dep).get('uid')}")
        if blocking == 0:
            await self._remove_finalizer(resource, owner, FOREGROUND)

    async def _orphan_dependents(self, resource: Resource, owner: Obj) -> None:
        if not is_deleting(owner) or ORPHAN not in finalizers(owner):
            return
        uid = meta(owner).get("uid")
        for dep_resource, dep in self.dependents(str(uid)):
            refs = [r for r in meta(dep).get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_refs(dep_resource, dep, refs)
        await self._remove_finalizer(resource, owner, ORPHAN)

    async def _patch_refs(self, resource: Resource, obj: Obj, refs: list[Obj]) -> None:
        try:
            await self.client.patch(
                resource, meta(obj).get("namespace", ""), meta(obj).get("name", ""),
                {"metadata": {"ownerReferences": refs or None, "uid": meta(obj).get("uid")}},
                patch_type="merge")
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _remove_finalizer(self, resource: Resource, obj: Obj, name: str) -> None:
        """Remove one finalizer with a read-modify-write, retrying lost races."""
        namespace, obj_name = meta(obj).get("namespace", ""), meta(obj).get("name", "")
        current: Any = obj
        for _ in range(5):
            if name not in finalizers(current):
                return
            updated = copy.deepcopy(current)
            updated["metadata"]["finalizers"] = [f for f in finalizers(current) if f != name]
            try:
                await self.client.update(resource, updated)
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise
            try:
                current = await self.client.get(resource, namespace, obj_name)
            except ApiError as exc:
                if exc.code == 404:
                    return
                raise
            if meta(current).get("uid") != meta(obj).get("uid"):
                return
        raise ApiError(409, "Conflict", f"could not remove finalizer {name} from {obj_name}")
