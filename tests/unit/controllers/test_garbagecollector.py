"""Cascading deletion through ownerReferences: background, foreground and orphan."""

from __future__ import annotations

import asyncio
from typing import Any

from controller_fakes import FakeApi, FakeFactory, drain, settle

from pyk8s.client import FakeClock
from pyk8s.controllers.garbagecollector import GarbageCollector, gc_resources
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")
CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")
REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
DEPLOYMENTS = CATALOGUE.resource("apps/v1", "deployments")
NODES = CATALOGUE.resource("v1", "nodes")
LEASES = CATALOGUE.resource("coordination.k8s.io/v1", "leases")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ref(owner: dict, kind: str, api_version: str, block: bool = True) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": block}


class Tree:
    """A Deployment owning a ReplicaSet owning two pods."""

    def __init__(self, bound: bool = False) -> None:
        self.api = FakeApi(FakeClock())
        self.gc = GarbageCollector(self.api, FakeFactory(self.api))  # type: ignore[arg-type]
        self.d = self.api.seed(DEPLOYMENTS, {"metadata": {"name": "web", "namespace": "default"}})
        self.rs = self.api.seed(REPLICASETS, {"metadata": {
            "name": "web-1", "namespace": "default",
            "ownerReferences": [ref(self.d, "Deployment", "apps/v1")]}})
        spec = {"nodeName": "n1"} if bound else {}
        for i in range(2):
            self.api.seed(PODS, {"metadata": {
                "name": f"web-1-{i}", "namespace": "default",
                "ownerReferences": [ref(self.rs, "ReplicaSet", "apps/v1")]}, "spec": spec})

    async def settle(self) -> None:
        await settle(self.api, self.gc)

    def names(self, resource: Any) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.api.objects(resource))


def test_background_deletion_removes_the_whole_tree() -> None:
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        assert t.names(PODS) == ["web-1-0", "web-1-1"], "nothing is garbage while owners exist"
        await t.api.delete(DEPLOYMENTS, "default", "web", propagation_policy="Background")
        await t.settle()
        assert t.names(REPLICASETS) == [] and t.names(PODS) == []

    run(scenario())


def test_orphan_deletion_keeps_dependents_without_the_reference() -> None:
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        await t.api.delete(DEPLOYMENTS, "default", "web", propagation_policy="Orphan")
        assert t.names(DEPLOYMENTS) == ["web"], "held by the orphan finalizer"
        await t.settle()
        assert t.names(DEPLOYMENTS) == []
        rs = t.api.objects(REPLICASETS)
        assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
        assert t.names(PODS) == ["web-1-0", "web-1-1"]

    run(scenario())


def test_foreground_deletion_removes_dependents_before_the_owner() -> None:
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        await t.api.delete(DEPLOYMENTS, "default", "web", propagation_policy="Foreground")
        order: list[str] = []
        for _ in range(50):
            moved = t.api.flush()
            for name, resource in (("deployment", DEPLOYMENTS), ("rs", REPLICASETS), ("pods", PODS)):
                if not t.api.objects(resource) and name not in order:
                    order.append(name)
            moved += await drain(t.gc)
            if not moved:
                break
        assert order == ["pods", "rs", "deployment"]

    run(scenario())


def test_foreground_owner_waits_for_gracefully_deleted_pods() -> None:
    async def scenario() -> None:
        t = Tree(bound=True)
        await t.settle()
        await t.api.delete(DEPLOYMENTS, "default", "web", propagation_policy="Foreground")
        await t.settle()
        pods = t.api.objects(PODS)
        assert len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") for p in pods)
        assert t.names(DEPLOYMENTS) == ["web"] and t.names(REPLICASETS) == ["web-1"]
        for pod in pods:  # the kubelet finishes
            await t.api.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=0)
        await t.settle()
        assert t.names(DEPLOYMENTS) == [] and t.names(REPLICASETS) == []

    run(scenario())


def test_a_dependent_with_a_remaining_owner_only_loses_the_dead_reference() -> None:
    async def scenario() -> None:
        api = FakeApi(FakeClock())
        gc = GarbageCollector(api, FakeFactory(api))  # type: ignore[arg-type]
        a = api.seed(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "default"}})
        b = api.seed(CONFIGMAPS, {"metadata": {"name": "b", "namespace": "default"}})
        api.seed(CONFIGMAPS, {"metadata": {"name": "dep", "namespace": "default", "ownerReferences": [
            ref(a, "ConfigMap", "v1", block=False), {**ref(b, "ConfigMap", "v1"), "controller": False}]}})
        await api.delete(CONFIGMAPS, "default", "a")
        await settle(api, gc)
        dep = next(o for o in api.objects(CONFIGMAPS) if o["metadata"]["name"] == "dep")
        assert [r["name"] for r in dep["metadata"]["ownerReferences"]] == ["b"]

    run(scenario())


def test_owners_that_cannot_be_checked_are_assumed_present() -> None:
    async def scenario() -> None:
        api = FakeApi(FakeClock())
        gc = GarbageCollector(api, FakeFactory(api))  # type: ignore[arg-type]
        api.seed(CONFIGMAPS, {"metadata": {"name": "dep", "namespace": "default", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "u-1"}]}})
        await settle(api, gc)
        assert len(api.objects(CONFIGMAPS)) == 1

    run(scenario())


def test_dependent_whose_owner_never_existed_is_collected() -> None:
    async def scenario() -> None:
        api = FakeApi(FakeClock())
        gc = GarbageCollector(api, FakeFactory(api))  # type: ignore[arg-type]
        api.seed(CONFIGMAPS, {"metadata": {"name": "dep", "namespace": "default", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "u-ghost"}]}})
        await settle(api, gc)
        assert api.objects(CONFIGMAPS) == []

    run(scenario())


def test_watches_every_stored_kind_but_events() -> None:
    watched = set(gc_resources())
    assert {("v1", "pods"), ("apps/v1", "deployments"), ("batch/v1", "jobs"),
            ("coordination.k8s.io/v1", "leases"), ("v1", "nodes")} <= watched
    assert ("v1", "events") not in watched and ("events.k8s.io/v1", "events") not in watched


def test_a_cluster_scoped_owner_takes_its_namespaced_dependents_along() -> None:
    async def scenario() -> None:
        api = FakeApi(FakeClock())
        gc = GarbageCollector(api, FakeFactory(api))  # type: ignore[arg-type]
        node = api.seed(NODES, {"metadata": {"name": "n1"}})
        api.seed(LEASES, {"metadata": {"name": "n1", "namespace": "kube-node-lease",
                                       "ownerReferences": [ref(node, "Node", "v1", block=False)]}})
        await settle(api, gc)
        assert len(api.objects(LEASES)) == 1
        await api.delete(NODES, "", "n1")
        await settle(api, gc)
        assert api.objects(LEASES) == []

    run(scenario())


def test_only_dependents_of_owners_missing_from_the_caches_are_queued() -> None:
    """A pod whose ReplicaSet is cached costs the collector no sync (upstream's graph only
    queues dependents of unknown owners); one whose owner is unknown or waiting is checked."""
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        gc = t.gc
        owned = {"metadata": {"name": "web-1-new", "namespace": "default", "uid": "u-new",
                              "ownerReferences": [ref(t.rs, "ReplicaSet", "apps/v1")]}}
        gc._added(owned)
        gc._deleted(owned)
        assert len(gc.queue) == 0, "nor does its deletion, while the owner does not wait for it"
        ghost = {"metadata": {"name": "g", "namespace": "default", "uid": "u-g", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "u-gone"}]}}
        gc._added(ghost)
        assert len(gc.queue) == 1
        await drain(gc)
        t.api.seed(PODS, {"metadata": {"name": "web-1-late", "namespace": "default",
                                       "ownerReferences": [ref(t.rs, "ReplicaSet", "apps/v1")]}})
        await t.api.delete(REPLICASETS, "default", "web-1", propagation_policy="Foreground")
        await t.settle()
        assert t.names(PODS) == [], "dependents of an owner deleting in the foreground go"

    run(scenario())


def test_dependent_counts_follow_the_caches_and_spare_lookups_for_leaves(monkeypatch: Any) -> None:
    """The collector counts, per owner uid, the cached objects naming it: an object that
    disappears with no dependents (a pod) is not looked up in every informer, while an
    owner's disappearance still finds its dependents."""
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        rs_uid, d_uid = t.rs["metadata"]["uid"], t.d["metadata"]["uid"]
        assert t.gc.has_dependents(rs_uid) and t.gc.has_dependents(d_uid)
        pod = next(p for p in t.api.objects(PODS) if p["metadata"]["name"] == "web-1-0")
        pod["metadata"]["ownerReferences"] = []
        await t.api.update(PODS, pod)
        await t.settle()
        assert t.gc.has_dependents(rs_uid), "web-1-1 still names it"
        looked: list[str] = []
        real = t.gc.dependents
        monkeypatch.setattr(t.gc, "dependents", lambda uid: looked.append(uid) or real(uid))
        await t.api.delete(PODS, "default", "web-1-1")
        await t.settle()
        assert not t.gc.has_dependents(rs_uid) and looked == []
        await t.api.delete(DEPLOYMENTS, "default", "web", propagation_policy="Background")
        await t.settle()
        assert d_uid in looked and t.names(REPLICASETS) == [], "the owner's dependents found"
        assert t.names(PODS) == ["web-1-0"], "released before, so not collected"

    run(scenario())


def test_the_uid_graph_follows_objects_replaced_under_the_same_name() -> None:
    """An update that brings a different uid (the object was deleted and created again
    between two events) moves the graph to the new object: the old uid is not found any
    more, nor counted as naming its owners."""
    async def scenario() -> None:
        t = Tree()
        await t.settle()
        rs_uid = t.rs["metadata"]["uid"]
        pod = next(p for p in t.api.objects(PODS) if p["metadata"]["name"] == "web-1-0")
        old_uid = pod["metadata"]["uid"]
        assert t.gc.lookup(old_uid) is not None
        assert old_uid in {d["metadata"]["uid"] for _, d in t.gc.dependents(rs_uid)}
        informer = next(i for r, i in t.gc.informers if r == PODS)
        replaced = {**pod, "metadata": {**pod["metadata"], "uid": "new-uid", "ownerReferences": []}}
        informer.deliver("MODIFIED", replaced)
        assert t.gc.lookup(old_uid) is None
        assert t.gc.lookup("new-uid") == (PODS, replaced)
        assert [d["metadata"]["name"] for _, d in t.gc.dependents(rs_uid)] == ["web-1-1"]

    run(scenario())
