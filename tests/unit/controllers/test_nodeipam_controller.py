"""Node IPAM: pod CIDRs cut from the cluster CIDR, kept across restarts, freed with their
node; and the API server's rule that a podCIDR is set once."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
from controller_fakes import FakeApi, FakeFactory, NullRecorder, advance, drain, settle

from pyk8s.apiserver.registry.simple import NodeStrategy
from pyk8s.cli import components
from pyk8s.client import FakeClock
from pyk8s.controllers import ControllerManager, ControllerManagerSettings
from pyk8s.controllers.nodeipam import NODES, CidrSet, NodeIpamController
from pyk8s.machinery.errors import ApiError

FORBIDDEN = 'Forbidden: node updates may not change podCIDR except from "" to valid'


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class PatchFailingApi(FakeApi):
    """A FakeApi whose next node patches fail with the errors queued in ``patch_errors``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.patch_errors: list[ApiError] = []

    async def patch(self, resource: Any, namespace: Any, name: str, body: Any, **kw: Any) -> Any:
        if self.patch_errors:
            self.calls.append(("patch", resource.plural, name))
            raise self.patch_errors.pop(0)
        return await super().patch(resource, namespace, name, body, **kw)


class Scene:
    def __init__(self, cluster_cidr: str = "10.244.0.0/16", mask: int = 24,
                 nodes: tuple[tuple[str, str], ...] = ()) -> None:
        self.api = PatchFailingApi(FakeClock())
        for name, cidr in nodes:  # what the cluster holds before the controller starts
            self.add(name, cidr)
        self.recorder = NullRecorder()
        self.ctl = NodeIpamController(
            self.api, FakeFactory(self.api), cluster_cidr=cluster_cidr,  # type: ignore[arg-type]
            node_cidr_mask_size=mask, clock=self.api.clock,
            recorder=self.recorder)  # type: ignore[arg-type]

    def add(self, name: str, cidr: str = "") -> None:
        spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
        self.api.seed(NODES, {"metadata": {"name": name}, "spec": spec})

    async def settle(self) -> None:
        await settle(self.api, self.ctl)

    def cidrs(self) -> dict[str, str]:
        return {n["metadata"]["name"]: n["spec"].get("podCIDR", "") for n in self.api.objects(NODES)}

    def node(self, name: str) -> dict:
        return next(n for n in self.api.objects(NODES) if n["metadata"]["name"] == name)


class TestCidrSet:
    def test_blocks_are_numbered_from_the_start_of_the_cluster_cidr(self) -> None:
        cidrs = CidrSet("10.244.0.0/16", 24)
        assert cidrs.size == 256
        assert [cidrs.cidr(i) for i in (0, 1, 255)] == ["10.244.0.0/24", "10.244.1.0/24",
                                                         "10.244.255.0/24"]
        assert cidrs.span("10.244.7.0/24") == range(7, 8)
        assert cidrs.span("10.244.7.130/24") == range(7, 8), "host bits allowed, as Go's"
        assert cidrs.span("10.244.8.128/25") == range(8, 9), "a smaller range holds its block"
        assert cidrs.span("10.244.2.0/23") == range(2, 4), "a larger one holds every block"
        assert cidrs.span("10.0.0.0/8") == range(0, 256)
        assert cidrs.span("10.64.0.0/24") is None
        assert cidrs.span("fd00::/64") is None
        assert cidrs.span("garbage") is None
        assert cidrs.span("10.244.0.0") is None, "a bare address is not a CIDR"

    def test_lowest_free_block_first_and_freed_blocks_reused(self) -> None:
        cidrs = CidrSet("10.244.0.0/22", 24)
        assert [cidrs.allocate() for _ in range(3)] == [0, 1, 2]
        cidrs.release(range(1, 2))
        assert cidrs.allocate() == 1
        assert cidrs.allocate() == 3
        assert cidrs.allocate() is None, "four /24s in a /22, all used"
        cidrs.release(range(2, 3))
        assert cidrs.allocate() == 2

    def test_overlapping_holders_do_not_free_each_others_block(self) -> None:
        cidrs = CidrSet("10.244.0.0/16", 24)
        assert cidrs.occupy(range(0, 1))
        assert not cidrs.occupy(range(0, 1)), "already in use"
        cidrs.release(range(0, 1))
        assert cidrs.allocate() == 1
        cidrs.release(range(0, 1))
        assert cidrs.allocate() == 0

    @pytest.mark.parametrize(("cidr", "mask"), [("fd00::/48", 64), ("10.244.0.0/16", 15),
                                                ("10.244.0.0/16", 33), ("nope", 24)])
    def test_rejects_settings_it_cannot_serve(self, cidr: str, mask: int) -> None:
        with pytest.raises(ValueError):
            CidrSet(cidr, mask)


class TestAllocation:
    def test_new_nodes_get_distinct_blocks_in_both_fields(self) -> None:
        async def scenario() -> None:
            s = Scene()
            for name in ("a", "b", "c"):
                s.add(name)
            await s.settle()
            assert s.cidrs() == {"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": "10.244.2.0/24"}
            assert s.node("b")["spec"]["podCIDRs"] == ["10.244.1.0/24"]
            assert s.api.count("patch", "nodes") == 3, "one patch each, none after"
            for name in ("a", "b", "c"):  # heartbeats and other updates change nothing
                await s.api.patch(NODES, None, name, {"metadata": {"labels": {"x": "y"}}})
            await s.settle()
            assert s.api.count("patch", "nodes") == 6

        run(scenario())

    def test_a_deleted_nodes_block_is_reused(self) -> None:
        async def scenario() -> None:
            s = Scene()
            for name in ("a", "b", "c"):
                s.add(name)
            await s.settle()
            await s.api.delete(NODES, None, "b")
            await s.settle()
            s.add("d")
            await s.settle()
            assert s.cidrs() == {"a": "10.244.0.0/24", "c": "10.244.2.0/24", "d": "10.244.1.0/24"}

        run(scenario())

    def test_restart_rebuilds_the_used_set_before_allocating(self) -> None:
        async def scenario() -> None:
            # "new" is listed (and queued) first; the blocks of the others must still count.
            s = Scene(nodes=(("new", ""), ("x", "10.244.0.0/24"), ("y", "10.244.1.0/24"),
                             ("z", "10.244.3.0/24")))
            await s.settle()
            assert s.cidrs()["new"] == "10.244.2.0/24"
            s.add("newer")
            await s.settle()
            assert s.cidrs()["newer"] == "10.244.4.0/24"
            assert len(set(s.cidrs().values())) == 5

        run(scenario())

    def test_a_pod_cidr_outside_the_cluster_cidr_is_left_alone(
            self, caplog: pytest.LogCaptureFixture) -> None:
        async def scenario() -> None:
            s = Scene(nodes=(("hollow-0", "10.64.0.0/24"),))
            s.add("real")
            await s.settle()
            assert s.cidrs() == {"hollow-0": "10.64.0.0/24", "real": "10.244.0.0/24"}
            assert s.api.count("patch", "nodes") == 1
            await s.ctl.sync("hollow-0")

        caplog.set_level("INFO", logger="pyk8s.controllers.nodeipam")
        run(scenario())
        assert sum("outside the cluster CIDR" in r.getMessage() for r in caplog.records) == 1, \
            "logged once, not on every sync"


class TestFailures:
    def test_exhausted_range_warns_once_then_waits_for_a_free_block(self) -> None:
        async def scenario() -> None:
            s = Scene(cluster_cidr="10.244.0.0/23")  # two /24s
            for name in ("a", "b", "c"):
                s.add(name)
            await s.settle()
            assert s.cidrs() == {"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": ""}
            assert s.recorder.events == [("c", "Warning", "CIDRNotAvailable",
                                          "Node c status is now: CIDRNotAvailable")]
            await s.api.patch(NODES, None, "c", {"metadata": {"labels": {"beat": "1"}}})
            await s.settle()
            assert len(s.recorder.events) == 1, "still waiting: no new event"
            await s.api.delete(NODES, None, "a")
            await s.settle()
            assert s.cidrs() == {"b": "10.244.1.0/24", "c": "10.244.0.0/24"}

        run(scenario())

    def test_a_conflict_is_retried_with_the_same_block(self) -> None:
        async def scenario() -> None:
            s = Scene()
            s.api.patch_errors.append(ApiError(409, "Conflict", "the object has been modified"))
            s.add("a")
            await s.settle()
            assert s.cidrs() == {"a": ""}
            assert s.ctl.queue.num_requeues("a") == 1
            s.add("b")  # meanwhile: the block held for "a" is not handed out again
            await s.settle()
            await advance(s.api.clock, 1)
            await s.settle()
            assert s.cidrs() == {"a": "10.244.0.0/24", "b": "10.244.1.0/24"}

        run(scenario())

    def test_someone_else_setting_the_cidr_first_wins(self) -> None:
        async def scenario() -> None:
            s = Scene()
            s.add("a")
            # Someone sets a CIDR the cache has not shown yet; our patch is refused.
            await s.api.patch(NODES, None, "a", {"spec": {"podCIDR": "10.244.9.0/24",
                                                          "podCIDRs": ["10.244.9.0/24"]}})
            s.api.patch_errors.append(ApiError(422, "Invalid", FORBIDDEN))
            await drain(s.ctl)
            assert s.ctl.queue.num_requeues("a") == 1
            await s.settle()
            await advance(s.api.clock, 1)
            await s.settle()
            s.add("b")
            await s.settle()
            assert s.cidrs() == {"a": "10.244.9.0/24", "b": "10.244.0.0/24"}, \
                "the reserved block went back to the pool"

        run(scenario())


class TestManagerAndFlags:
    def test_registered_as_nodeipam_unless_disabled(self) -> None:
        api = FakeApi(FakeClock())

        def names(**kw: Any) -> set[str]:
            manager = ControllerManager(api, ControllerManagerSettings(**kw))  # type: ignore[arg-type]
            return {n for n in manager._builders() if manager.settings.enabled(n)}

        assert "nodeipam" in names()
        assert "nodeipam" not in names(controllers=("*", "-nodeipam"))
        assert "nodeipam" not in names(allocate_node_cidrs=False)
        assert ControllerManagerSettings().cluster_cidr == "10.244.0.0/16"
        assert ControllerManagerSettings().node_cidr_mask_size == 24

    def test_controller_manager_flags(self) -> None:
        parser = argparse.ArgumentParser()
        components.add_parsers(parser.add_subparsers())
        args = parser.parse_args(["controller-manager", "--kubeconfig", "k",
                                  "--allocate-node-cidrs=false", "--cluster-cidr", "10.0.0.0/8",
                                  "--node-cidr-mask-size", "20"])
        assert (args.allocate_node_cidrs, args.cluster_cidr, args.node_cidr_mask_size) == \
            (False, "10.0.0.0/8", 20)
        args = parser.parse_args(["controller-manager", "--kubeconfig", "k", "--allocate-node-cidrs"])
        assert args.allocate_node_cidrs is True
        bad = parser.parse_args(["controller-manager", "--kubeconfig", "k",
                                 "--cluster-cidr", "fd00::/48"])
        assert components.run_controller_manager(bad) == 2, "refused before connecting"


class TestNodeStrategy:
    strategy = NodeStrategy(NODES, None)  # type: ignore[arg-type]

    def node(self, spec: dict) -> dict:
        return {"metadata": {"name": "n"}, "spec": dict(spec)}

    def created(self, spec: dict) -> tuple[dict, list]:
        node = self.node(spec)
        self.strategy.prepare_create(node)
        return node["spec"], self.strategy.validate_create(node)

    def updated(self, old: dict, new: dict) -> tuple[dict, list]:
        before, after = self.node(old), self.node(new)
        self.strategy.prepare_create(before)
        self.strategy.prepare_update(after, before)
        return after["spec"], self.strategy.validate_update(after, before)

    def test_pod_cidr_and_pod_cidrs_are_one_value(self) -> None:
        spec, causes = self.created({"podCIDR": "10.244.1.0/24"})
        assert spec["podCIDRs"] == ["10.244.1.0/24"] and not causes
        spec, _ = self.created({"podCIDRs": ["10.244.1.0/24", "fd00::/64"]})
        assert spec["podCIDR"] == "10.244.1.0/24"
        spec, _ = self.created({"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.1.0/24"]})
        assert spec["podCIDRs"] == ["10.244.2.0/24"], "podCIDR wins, as upstream's conversion"

    def test_pod_cidrs_must_be_cidrs_one_per_family(self) -> None:
        _, causes = self.created({"podCIDR": "not-a-cidr"})
        assert causes == [("spec.podCIDRs[0]", "FieldValueInvalid",
                           'Invalid value: []string{"not-a-cidr"}: must be valid CIDR')]
        _, causes = self.created({"podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]})
        assert [c[0] for c in causes] == ["spec.podCIDRs"]
        assert causes[0][2].endswith("may specify no more than one CIDR for each IP family")
        assert self.created({"podCIDRs": ["10.244.1.0/24", "fd00::/64"]})[1] == []

    def test_pod_cidr_may_be_set_once_but_not_changed(self) -> None:
        cidr = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
        assert self.updated({}, cidr)[1] == [], "from empty to valid"
        assert self.updated(cidr, cidr)[1] == []
        assert self.updated(cidr, {"podCIDR": "10.244.1.0/24"})[1] == []
        for changed in ({"podCIDR": "10.244.7.0/24"}, {"podCIDRs": ["10.244.7.0/24"]}, {},
                        {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00::/64"]}):
            assert self.updated(cidr, changed)[1] == [
                ("spec.podCIDRs", "FieldValueForbidden", FORBIDDEN)], changed

