"""The Endpoints and EndpointSlice controllers: which pods count, ports, conditions, slicing."""

from __future__ import annotations

import asyncio
from typing import Any

from controller_fakes import FakeApi, FakeFactory, settle

from pyk8s.client import FakeClock
from pyk8s.controllers.endpoints import ENDPOINTS, PODS, SERVICES, EndpointsController
from pyk8s.controllers.endpointslice import (
    CONTROLLER_NAME,
    ENDPOINT_SLICES,
    MANAGED_BY,
    SERVICE_NAME,
    EndpointSliceController,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def service(name: str = "web", selector: dict | None = None, target: Any = 8080,
            **spec: Any) -> dict:
    sel = {"app": name} if selector is None else selector
    body: dict = {"metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}},
                  "spec": {"clusterIP": "10.0.0.10",
                           "ports": [{"port": 80, "targetPort": target, "protocol": "TCP"}],
                           **spec}}
    if sel:
        body["spec"]["selector"] = sel
    return body


def pod(name: str, ip: str | None = "10.1.0.1", *, app: str = "web", is_ready: bool = True,
        phase: str = "Running", node: str = "n1", **meta: Any) -> dict:
    status: dict = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if is_ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": app}, **meta},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 9090}]}]},
            "status": status}


def setup(max_endpoints: int = 100) -> tuple[FakeApi, EndpointsController, EndpointSliceController]:
    api = FakeApi(FakeClock())
    factory = FakeFactory(api)
    ep = EndpointsController(api, factory, clock=api.clock)  # type: ignore[arg-type]
    eps = EndpointSliceController(api, factory, clock=api.clock,  # type: ignore[arg-type]
                                  max_endpoints=max_endpoints)
    return api, ep, eps


def endpoints(api: FakeApi, name: str = "web") -> dict | None:
    found = [e for e in api.objects(ENDPOINTS) if e["metadata"]["name"] == name]
    return found[0] if found else None


def slices(api: FakeApi, name: str = "web") -> list[dict]:
    return [s for s in api.objects(ENDPOINT_SLICES)
            if s["metadata"]["labels"].get(SERVICE_NAME) == name]


def slice_ips(api: FakeApi, name: str = "web") -> list[str]:
    return sorted(e["addresses"][0] for s in slices(api, name) for e in s.get("endpoints") or [])


class TestEndpoints:
    def test_ready_and_not_ready_pods_with_resolved_ports(self) -> None:
        async def scenario() -> dict | None:
            api, ep, eps = setup()
            api.seed(PODS, pod("a", "10.1.0.1"))
            api.seed(PODS, pod("b", "10.1.0.2", is_ready=False, node="n2"))
            api.seed(PODS, pod("done", "10.1.0.3", phase="Succeeded"))
            api.seed(PODS, pod("no-ip", None))
            api.seed(PODS, pod("other", "10.1.0.4", app="db"))
            api.seed(SERVICES, service())
            await settle(api, ep, eps)
            return endpoints(api)

        got = run(scenario())
        assert got is not None
        [subset] = got["subsets"]
        assert [a["ip"] for a in subset["addresses"]] == ["10.1.0.1"]
        assert subset["addresses"][0]["targetRef"]["name"] == "a"
        assert subset["addresses"][0]["nodeName"] == "n1"
        assert [(a["ip"], a["nodeName"]) for a in subset["notReadyAddresses"]] == [("10.1.0.2", "n2")]
        assert subset["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
        assert got["metadata"]["labels"] == {"team": "a"}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in got["metadata"]["annotations"]

    def test_named_target_port_resolves_per_pod(self) -> None:
        async def scenario() -> dict | None:
            api, ep, eps = setup()
            api.seed(PODS, pod("a"))
            api.seed(SERVICES, service(target="http"))
            await settle(api, ep, eps)
            return endpoints(api)

        got = run(scenario())
        assert got is not None and got["subsets"][0]["ports"][0]["port"] == 9090

    def test_follows_pod_changes_and_writes_only_on_difference(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(SERVICES, service())
            api.seed(PODS, pod("a", "10.1.0.1"))
            await settle(api, ep, eps)
            writes = api.count("update", "endpoints") + api.count("create", "endpoints")
            api.seed(PODS, pod("unrelated", "10.9.9.9", app="db"))
            await settle(api, ep, eps)
            assert api.count("update", "endpoints") + api.count("create", "endpoints") == writes
            # Relabelling the pod away removes it; a new matching pod is added.
            current = api.objects(PODS)[0] if api.objects(PODS)[0]["metadata"]["name"] == "a" \
                else api.objects(PODS)[1]
            current["metadata"]["labels"] = {"app": "db"}
            await api.update(PODS, current)
            api._create(PODS, pod("b", "10.1.0.2"))
            await settle(api, ep, eps)
            got = endpoints(api)
            assert got is not None
            assert [a["ip"] for a in got["subsets"][0]["addresses"]] == ["10.1.0.2"]

        run(scenario())

    def test_service_deletion_removes_endpoints_and_selectorless_services_are_left_alone(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(PODS, pod("a"))
            api.seed(SERVICES, service())
            manual = {"metadata": {"name": "manual", "namespace": "default"},
                      "subsets": [{"addresses": [{"ip": "192.168.0.1"}]}]}
            api.seed(SERVICES, service("manual", selector={}))
            api.seed(ENDPOINTS, manual)
            await settle(api, ep, eps)
            assert endpoints(api) is not None
            await api.delete(SERVICES, "default", "web")
            await settle(api, ep, eps)
            assert endpoints(api) is None
            kept = endpoints(api, "manual")
            assert kept is not None and kept["subsets"][0]["addresses"][0]["ip"] == "192.168.0.1"
            assert slices(api, "manual") == []

        run(scenario())

    def test_kubernetes_service_in_default_is_skipped(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(PODS, pod("a", app="kubernetes"))
            api.seed(SERVICES, service("kubernetes"))
            await settle(api, ep, eps)
            assert endpoints(api, "kubernetes") is None
            assert slices(api, "kubernetes") == []

        run(scenario())

    def test_deleted_endpoints_are_recreated(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(PODS, pod("a"))
            api.seed(SERVICES, service())
            await settle(api, ep, eps)
            await api.delete(ENDPOINTS, "default", "web")
            await settle(api, ep, eps)
            assert endpoints(api) is not None

        run(scenario())


class TestEndpointSlices:
    def test_slice_shape_owner_labels_and_conditions(self) -> None:
        async def scenario() -> list[dict]:
            api, ep, eps = setup()
            api.seed(PODS, pod("a", "10.1.0.1"))
            api.seed(PODS, pod("b", "10.1.0.2", is_ready=False))
            api.seed(PODS, pod("c", "10.1.0.3", deletionTimestamp="2026-01-01T00:00:00Z"))
            api.seed(SERVICES, service())
            await settle(api, ep, eps)
            return slices(api)

        [got] = run(scenario())
        m = got["metadata"]
        assert m["name"].startswith("web-")
        assert m["labels"] == {"team": "a", SERVICE_NAME: "web", MANAGED_BY: CONTROLLER_NAME}
        assert m["ownerReferences"][0]["kind"] == "Service"
        assert m["ownerReferences"][0]["controller"] is True
        assert got["addressType"] == "IPv4"
        assert got["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
        conds = {e["addresses"][0]: e["conditions"] for e in got["endpoints"]}
        assert conds["10.1.0.1"] == {"ready": True, "serving": True, "terminating": False}
        assert conds["10.1.0.2"] == {"ready": False, "serving": False, "terminating": False}
        assert conds["10.1.0.3"] == {"ready": False, "serving": True, "terminating": True}
        first = got["endpoints"][0]
        assert first["targetRef"]["kind"] == "Pod" and first["nodeName"] == "n1"

    def test_at_most_max_endpoints_per_slice_and_shrinks(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup(max_endpoints=3)
            api.seed(SERVICES, service())
            for i in range(7):
                api.seed(PODS, pod(f"p{i}", f"10.1.0.{i + 1}"))
            await settle(api, ep, eps)
            assert sorted(len(s["endpoints"]) for s in slices(api)) == [1, 3, 3]
            assert len(slice_ips(api)) == 7
            for i in range(5):
                await api.delete(PODS, "default", f"p{i}", grace_period_seconds=0)
            await settle(api, ep, eps)
            assert slice_ips(api) == ["10.1.0.6", "10.1.0.7"]
            assert all(s.get("endpoints") for s in slices(api))

        run(scenario())

    def test_no_pods_keeps_one_placeholder_and_steady_state_writes_nothing(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(SERVICES, service())
            await settle(api, ep, eps)
            [placeholder] = slices(api)
            assert placeholder.get("endpoints") == [] and placeholder.get("ports") == []
            api.seed(PODS, pod("a"))
            await settle(api, ep, eps)
            assert slice_ips(api) == ["10.1.0.1"]
            before = len(api.calls)
            eps.queue.add("default/web")
            ep.queue.add("default/web")
            await settle(api, ep, eps)
            assert [c for c in api.calls[before:] if c[0] != "get"] == []

        run(scenario())

    def test_foreign_slices_are_not_touched(self) -> None:
        async def scenario() -> None:
            api, ep, eps = setup()
            api.seed(ENDPOINT_SLICES, {
                "metadata": {"name": "mine", "namespace": "default",
                             "labels": {SERVICE_NAME: "web", MANAGED_BY: "someone-else"}},
                "addressType": "IPv4", "endpoints": [{"addresses": ["1.2.3.4"]}]})
            api.seed(SERVICES, service())
            api.seed(PODS, pod("a"))
            await settle(api, ep, eps)
            names = {s["metadata"]["name"] for s in slices(api)}
            assert "mine" in names and len(names) == 2

        run(scenario())


def test_a_sync_before_the_cache_shows_its_own_write_creates_nothing_twice() -> None:
    """Upstream's endpointSliceTracker: the slice just created is not in the informer yet."""
    async def scenario() -> tuple[float | None, int, float | None, int]:
        api, _, eps = setup()
        api.seed(PODS, pod("a", "10.1.0.1"))
        api.seed(SERVICES, service())
        await eps.sync("default/web")  # creates the slice; its watch event is still pending
        again = await eps.sync("default/web")
        count = len(slices(api))
        api.flush()
        later = await eps.sync("default/web")
        return again, count, later, len(slices(api))

    again, count, later, final = run(scenario())
    assert again is not None and again > 0  # retried shortly, not acted on
    assert count == 1
    assert (later, final) == (None, 1)


def test_pod_events_enqueue_the_services_of_the_old_and_new_labels() -> None:
    from pyk8s.controllers.endpoints import enqueue_pod_services

    async def scenario() -> None:
        api = FakeApi(FakeClock())
        ctl = EndpointsController(api, FakeFactory(api))  # type: ignore[arg-type]
        for name in ("web", "db"):
            api.seed(SERVICES, service(name, selector={"app": name}))
        await settle(api, ctl)
        old = pod("p", app="web")
        old["metadata"].update(namespace="default", resourceVersion="1")
        moved = {**old, "metadata": {**old["metadata"], "labels": {"app": "db"},
                                     "resourceVersion": "2"}}
        enqueue_pod_services(ctl, ctl.svc_informer, old, moved)
        assert sorted(ctl.queue._queue) == ["default/db", "default/web"]
        await settle(api, ctl)
        status_only = {**old, "metadata": {**old["metadata"], "resourceVersion": "3"}}
        enqueue_pod_services(ctl, ctl.svc_informer, old, status_only)
        assert list(ctl.queue._queue) == ["default/web"]

    run(scenario())


def test_the_selectors_read_per_namespace_follow_service_changes() -> None:
    """Pod events use each namespace's Service selectors as last read; adding, changing or
    deleting a Service of that namespace is seen by the next pod event."""
    from pyk8s.controllers.endpoints import services_for_pod

    async def scenario() -> None:
        api = FakeApi(FakeClock())
        ctl = EndpointsController(api, FakeFactory(api))  # type: ignore[arg-type]
        api.seed(SERVICES, service("web"))
        await settle(api, ctl)
        db_pod = pod("p", app="db")
        assert services_for_pod(db_pod, ctl.svc_informer) == set()
        await api.create(SERVICES, service("db"))
        api.flush()
        assert services_for_pod(db_pod, ctl.svc_informer) == {"default/db"}
        web = next(s for s in api.objects(SERVICES) if s["metadata"]["name"] == "web")
        web["spec"]["selector"] = {"app": "db"}
        await api.update(SERVICES, web)
        api.flush()
        assert services_for_pod(db_pod, ctl.svc_informer) == {"default/db", "default/web"}
        await api.delete(SERVICES, "default", "db")
        api.flush()
        assert services_for_pod(db_pod, ctl.svc_informer) == {"default/web"}
        other = {**db_pod, "metadata": {**db_pod["metadata"], "namespace": "other"}}
        assert services_for_pod(other, ctl.svc_informer) == set()

    run(scenario())
