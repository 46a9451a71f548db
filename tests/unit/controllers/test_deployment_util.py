"""Deployment arithmetic, checked against upstream's rules and rounding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyk8s.controllers import deployment_util as du

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def deployment(replicas: int = 10, surge: object = "25%", unavailable: object = "25%",
               strategy: str = "RollingUpdate", **spec: object) -> dict:
    strat: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "generation": 1, "annotations": {}},
            "spec": {"replicas": replicas, "strategy": strat, "template": {}, **spec},
            "status": {}}


def rs(name: str, replicas: int, available: int = 0, created: str = "2026-01-01T00:00:00Z",
       annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations or {}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available}}


class TestFenceposts:
    def test_percentages_round_surge_up_and_unavailable_down(self) -> None:
        assert du.fenceposts(deployment(10)) == (3, 2)
        assert du.fenceposts(deployment(3)) == (1, 0)
        assert du.fenceposts(deployment(1)) == (1, 0)

    def test_absolute_values(self) -> None:
        assert du.fenceposts(deployment(5, surge=2, unavailable=1)) == (2, 1)

    def test_both_zero_means_one_unavailable(self) -> None:
        assert du.fenceposts(deployment(5, surge=0, unavailable=0)) == (0, 1)
        assert du.fenceposts(deployment(1, surge="10%", unavailable="10%")) == (1, 0)
        assert du.fenceposts(deployment(2, surge="0%", unavailable="10%")) == (0, 1)

    def test_max_unavailable_is_capped_and_zero_for_recreate(self) -> None:
        assert du.max_unavailable(deployment(2, surge=0, unavailable=5)) == 2
        assert du.max_unavailable(deployment(2, strategy="Recreate")) == 0
        assert du.max_surge(deployment(2, strategy="Recreate")) == 0

    def test_bad_percent_is_an_error(self) -> None:
        with pytest.raises(ValueError):
            du.scaled_value("x%", 10, True)


class TestNewReplicaSetSize:
    def test_surge_limits_growth(self) -> None:
        d = deployment(10)  # surge 3
        old, new = rs("old", 10), rs("new", 0)
        assert du.new_rs_replicas(d, [old, new], 0) == 3

    def test_no_room_keeps_size(self) -> None:
        d = deployment(10)
        assert du.new_rs_replicas(d, [rs("old", 10), rs("new", 3)], 3) == 3

    def test_never_beyond_desired(self) -> None:
        d = deployment(3, surge=5)
        assert du.new_rs_replicas(d, [rs("new", 1)], 1) == 3

    def test_recreate_goes_straight_to_desired(self) -> None:
        assert du.new_rs_replicas(deployment(4, strategy="Recreate"), [rs("old", 4)], 0) == 4


class TestProportionalScaling:
    def test_scale_up_mid_rollout_splits_by_size(self) -> None:
        d = deployment(15, surge=3, unavailable=2)  # was 10 (+3 surge = 13 max-replicas)
        ann = {du.MAX_REPLICAS: "13", du.DESIRED_REPLICAS: "10"}
        new = rs("new", 5, created="2026-01-01T00:01:00Z", annotations=ann)
        old = rs("old", 8, annotations=ann)
        sizes, op = du.proportional_sizes(d, [old, new])
        assert op == "up"
        assert sum(sizes.values()) == 18  # 15 + maxSurge 3
        assert sizes == {"old": 11, "new": 7}

    def test_scale_down_to_zero_takes_everything(self) -> None:
        d = deployment(0, surge=1, unavailable=0)
        sizes, op = du.proportional_sizes(d, [rs("a", 3), rs("b", 2, created="2026-01-02T00:00:00Z")])
        assert op == "down" and sizes == {"a": 0, "b": 0}

    def test_active_or_latest(self) -> None:
        a, b = rs("a", 0), rs("b", 2, created="2026-01-02T00:00:00Z")
        assert du.find_active_or_latest(None, [a, b]) is b
        assert du.find_active_or_latest(None, [a, rs("c", 0, created="2026-01-03T00:00:00Z")])["metadata"]["name"] == "c"
        assert du.find_active_or_latest(rs("n", 1), [b]) is None


class TestTemplateHash:
    def test_stable_and_safe_encoded(self) -> None:
        template = {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}
        first = du.template_hash(template)
        assert first == du.template_hash({"spec": template["spec"], "metadata": template["metadata"]})
        assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
        assert first != du.template_hash(template, 1)
        other = {**template, "spec": {"containers": [{"name": "c", "image": "y"}]}}
        assert first != du.template_hash(other)

    def test_fnv32a_known_values(self) -> None:
        assert du.fnv32a(b"") == 0x811C9DC5
        assert du.fnv32a(b"a") == 0xE40C292C

    def test_equal_ignoring_hash_label(self) -> None:
        a = {"metadata": {"labels": {"app": "web", du.HASH_LABEL: "abc"}}, "spec": {"x": 1}}
        b = {"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}}
        assert du.equal_ignore_hash(a, b)
        assert not du.equal_ignore_hash(a, {**b, "spec": {"x": 2}})


class TestRevisions:
    def test_new_replica_set_gets_revision_and_replica_annotations(self) -> None:
        d = deployment(4, surge=1)
        d["metadata"]["annotations"] = {du.CHANGE_CAUSE: "why", du.LAST_APPLIED: "{}",
                                        du.REVISION: "7"}
        new = {"metadata": {"name": "n"}, "spec": {"replicas": 0}}
        assert du.set_new_rs_annotations(d, new, 3, exists=False)
        assert new["metadata"]["annotations"] == {
            du.CHANGE_CAUSE: "why", du.REVISION: "3", du.DESIRED_REPLICAS: "4", du.MAX_REPLICAS: "5"}

    def test_reused_replica_set_remembers_its_old_revisions(self) -> None:
        d = deployment(2)
        old = {"metadata": {"name": "o", "annotations": {du.REVISION: "1"}}}
        du.set_new_rs_annotations(d, old, 3, exists=True)
        assert old["metadata"]["annotations"][du.REVISION] == "3"
        assert old["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
        du.set_new_rs_annotations(d, old, 5, exists=True)
        assert old["metadata"]["annotations"][du.REVISION_HISTORY] == "1,3"

    def test_revision_never_goes_down(self) -> None:
        rs_ = {"metadata": {"name": "o", "annotations": {du.REVISION: "9"}}}
        assert not du.set_new_rs_annotations(deployment(1), rs_, 4, exists=True)
        assert rs_["metadata"]["annotations"][du.REVISION] == "9"


class TestStatusAndConditions:
    def test_status_sums_replica_sets(self) -> None:
        d = deployment(3, surge=1, unavailable=0)
        new = rs("new", 2, available=1)
        new["status"]["readyReplicas"] = 2
        status = du.calculate_status([rs("old", 2, available=2), new], new, d, NOW)
        assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"],
                status["unavailableReplicas"], status["readyReplicas"]) == (4, 2, 3, 1, 2)
        available = du.get_condition(status, "Available")
        assert (available["status"], available["reason"]) == ("True", du.MIN_AVAILABLE)

    def test_unavailable_condition(self) -> None:
        status = du.calculate_status([rs("new", 3, available=1)], None, deployment(3, unavailable=0, surge=1), NOW)
        cond = du.get_condition(status, "Available")
        assert (cond["status"], cond["reason"]) == ("False", du.MIN_UNAVAILABLE)
        assert cond["message"] == "Deployment does not have minimum availability."

    def test_same_reason_keeps_condition_and_same_status_keeps_transition(self) -> None:
        status: dict = {}
        du.set_condition(status, du.new_condition("Progressing", "True", du.RS_UPDATED, "m", NOW))
        later = NOW + timedelta(minutes=1)
        du.set_condition(status, du.new_condition("Progressing", "True", du.RS_UPDATED, "m", later))
        assert status["conditions"][0]["lastUpdateTime"] == "2026-01-01T00:00:00Z"
        du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, "m", later))
        cond = status["conditions"][0]
        assert cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"
        assert cond["lastUpdateTime"] == "2026-01-01T00:01:00Z"

    def test_progress_deadline(self) -> None:
        d = deployment(1, progressDeadlineSeconds=600)
        status: dict = {}
        du.set_condition(status, du.new_condition("Progressing", "True", du.RS_UPDATED, "m", NOW))
        assert not du.timed_out(d, status, NOW + timedelta(seconds=600))
        assert du.timed_out(d, status, NOW + timedelta(seconds=601))
        du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, "m", NOW))
        assert not du.timed_out(d, status, NOW + timedelta(days=1))

    def test_complete_requires_observed_generation(self) -> None:
        d = deployment(2)
        d["metadata"]["generation"] = 2
        full = {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2, "observedGeneration": 1}
        assert not du.deployment_complete(d, full)
        assert du.deployment_complete(d, {**full, "observedGeneration": 2})
