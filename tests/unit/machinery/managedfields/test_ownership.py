"""Ownership as upstream's field manager keeps it: Update entries, Apply entries, conflicts,
forcing, field removal, and kubectl's migration from client-side apply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyk8s.machinery.managedfields import entries, fieldpath, typed, updater
from pyk8s.machinery.managedfields.updater import Applied, Conflicts, Scope

SCOPE = Scope(typed.type_of_kind("apps/v1", "Deployment"), "apps/v1", "",
              frozenset({("f:status",)}))
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
REPLICAS = ("f:spec", "f:replicas")
IMAGE = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:image")


def deployment(replicas: int = 1, image: str = "i:1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", **meta},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": 0}}


def config(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns"}, "spec": spec}


def owners(managed: list[dict[str, Any]] | None) -> dict[tuple[str, str], fieldpath.FieldSet]:
    return {(e["manager"], e["operation"]): fieldpath.decode(e["fieldsV1"]) for e in managed or []}


def created(by: str = "kubectl-create", **kw: Any) -> dict[str, Any]:
    obj = deployment(**kw)
    obj["metadata"]["managedFields"] = updater.record_update(None, obj, SCOPE, by, T0)
    return obj


def applied(live: dict[str, Any] | None, cfg: dict[str, Any], manager: str = "a",
            force: bool = False) -> Applied:
    result = updater.apply(live, cfg, SCOPE, manager, force=force, now=T1)
    assert isinstance(result, Applied), getattr(result, "message", result)
    result.obj["metadata"]["managedFields"] = result.managed_fields
    return result


class TestUpdates:
    def test_a_create_owns_every_field_but_system_metadata_and_status(self) -> None:
        obj = created()
        (entry,) = obj["metadata"]["managedFields"]
        assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["time"]) == \
            ("kubectl-create", "Update", "apps/v1", T0)
        fields = fieldpath.decode(entry["fieldsV1"])
        assert REPLICAS in fields and IMAGE in fields
        assert not any(p[0] in ("f:status", "f:apiVersion", "f:kind") for p in fields)
        assert ("f:metadata", "f:name") not in fields and ("f:metadata", "f:uid") not in fields

    def test_a_change_moves_ownership_to_the_writer(self) -> None:
        live = created()
        new = deployment(replicas=3)
        managed = updater.record_update(live, new, SCOPE, "kubectl-scale", T1)
        got = owners(managed)
        assert got[("kubectl-scale", "Update")] == {REPLICAS}
        assert REPLICAS not in got[("kubectl-create", "Update")]

    def test_an_unchanged_write_leaves_entries_and_times_alone(self) -> None:
        live = created()
        managed = updater.record_update(live, deployment(), SCOPE, "other", T1)
        assert managed == live["metadata"]["managedFields"]

    def test_updates_by_one_manager_merge_into_one_entry(self) -> None:
        live = created()
        new = deployment(replicas=2, image="i:2")
        new["metadata"]["managedFields"] = updater.record_update(live, new, SCOPE, "m", T1)
        newer = deployment(replicas=4, image="i:2")
        got = owners(updater.record_update(new, newer, SCOPE, "m", T1))
        assert got[("m", "Update")] == {REPLICAS, IMAGE}

    def test_subresource_writes_are_separate_entries(self) -> None:
        live = created()
        scale = Scope(SCOPE.node, "apps/v1", "scale")
        managed = updater.record_update(live, deployment(replicas=5), scale, "kubectl", T1)
        entry = next(e for e in managed or [] if e["manager"] == "kubectl")
        assert entry["subresource"] == "scale"

    @pytest.mark.parametrize("sent", [[], [{}]])
    def test_an_empty_list_or_empty_entry_clears_managed_fields(self, sent: list[Any]) -> None:
        live = created()
        new = deployment(replicas=2, managedFields=sent)
        assert updater.record_update(live, new, SCOPE, "m", T1) is None

    def test_an_update_without_managed_fields_keeps_the_live_ones(self) -> None:
        # clients that trim managedFields from their caches (client-go's
        # TransformStripManagedFields) and write the object back lose nothing
        live = created()
        new = deployment(replicas=2)
        assert "managedFields" not in new["metadata"]
        got = owners(updater.record_update(live, new, SCOPE, "m", T1))
        assert got[("m", "Update")] == {REPLICAS}
        assert got[("kubectl-create", "Update")] == \
            owners(live["metadata"]["managedFields"])[("kubectl-create", "Update")] - {REPLICAS}

    def test_an_unchanged_update_without_managed_fields_keeps_them_as_they_are(self) -> None:
        live = created()
        assert updater.record_update(live, deployment(), SCOPE, "m", T1) == \
            live["metadata"]["managedFields"]

    @pytest.mark.parametrize("sent", [[], [{}]])
    def test_a_subresource_write_cannot_clear_managed_fields(self, sent: list[Any]) -> None:
        live = created()
        status = Scope(SCOPE.node, "apps/v1", "status",
                       frozenset({("f:spec",), ("f:metadata",)}))
        new = deployment(managedFields=sent)
        new["status"] = {"replicas": 3}
        got = owners(updater.record_update(live, new, status, "m", T1))
        assert got[("m", "Update")] == {("f:status", "f:replicas")}
        assert ("kubectl-create", "Update") in got

    def test_untracked_objects_are_not_tracked_by_updates(self) -> None:
        assert updater.record_update(deployment(), deployment(replicas=2), SCOPE, "m", T1) is None

    @pytest.mark.parametrize("stored", [
        [{"manager": "m", "operation": "Bogus", "fieldsV1": {}}],
        [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {}}],
        [{"manager": "m", "operation": "Update", "fieldsV1": {"f:spec": []}}],
        [{"manager": 7, "operation": "Update", "fieldsV1": {}}],
        "not a list",
    ])
    def test_stored_entries_that_do_not_decode_are_not_tracked(self, stored: Any) -> None:
        live = deployment(managedFields=stored)
        assert updater.record_update(live, deployment(replicas=2), SCOPE, "m", T1) is None

    def test_changing_only_fields_the_writer_owns_renews_its_entry(self) -> None:
        live = created(by="m")
        managed = updater.record_update(live, deployment(replicas=7), SCOPE, "m", T1)
        (before,) = live["metadata"]["managedFields"]
        assert managed == [{**before, "time": T1}]
        # ... which is what encoding the entry afresh gives
        assert managed == entries.encode([entries.Entry(
            "m", entries.UPDATE, "apps/v1", fieldpath.decode(before["fieldsV1"]), T1)])

    def test_at_most_ten_update_managers(self) -> None:
        live = created()
        for n in range(12):
            new = deployment(labels={f"l{i}": "x" for i in range(n + 1)})
            new["metadata"]["managedFields"] = updater.record_update(
                live, new, SCOPE, f"m{n}", f"2026-01-01T00:00:{n + 10}Z")
            live = new
        managers = [e["manager"] for e in live["metadata"]["managedFields"]]
        assert len(managers) <= 10
        assert "ancient-changes" in managers


class TestApply:
    def test_the_apply_entry_holds_exactly_the_applied_fields(self) -> None:
        result = applied(None, config(replicas=2))
        assert owners(result.managed_fields) == {("a", "Apply"): {REPLICAS}}
        assert result.obj["spec"] == {"replicas": 2}

    def test_a_different_value_owned_by_another_manager_conflicts(self) -> None:
        result = updater.apply(created(), config(replicas=2), SCOPE, "a", force=False, now=T1)
        assert isinstance(result, Conflicts)
        assert result.message == ('Apply failed with 1 conflict: conflict with "kubectl-create" '
                                  "using apps/v1: .spec.replicas")
        assert result.causes() == [{"reason": "FieldManagerConflict",
                                    "message": 'conflict with "kubectl-create" using apps/v1',
                                    "field": ".spec.replicas"}]

    def test_the_same_value_is_shared_without_conflict(self) -> None:
        result = applied(created(), config(replicas=1))
        got = owners(result.managed_fields)
        assert REPLICAS in got[("a", "Apply")] and REPLICAS in got[("kubectl-create", "Update")]

    def test_several_conflicts_are_listed_per_manager(self) -> None:
        cfg = config(replicas=2, template={"spec": {"containers": [{"name": "c", "image": "i:2"}]}})
        result = updater.apply(created(), cfg, SCOPE, "a", force=False, now=T1)
        assert isinstance(result, Conflicts)
        assert result.message == (
            'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
            '- .spec.replicas\n- .spec.template.spec.containers[name="c"].image')

    def test_apply_managers_are_named_without_version(self) -> None:
        first = applied(None, config(replicas=2), manager="a")
        result = updater.apply(first.obj, config(replicas=3), SCOPE, "b", force=False, now=T1)
        assert isinstance(result, Conflicts)
        assert result.message.endswith('conflict with "a": .spec.replicas')

    def test_force_takes_ownership(self) -> None:
        result = applied(created(), config(replicas=2), force=True)
        got = owners(result.managed_fields)
        assert got[("a", "Apply")] == {REPLICAS}
        assert REPLICAS not in got[("kubectl-create", "Update")]
        assert result.obj["spec"]["replicas"] == 2

    def test_a_field_no_longer_applied_is_removed(self) -> None:
        first = applied(None, config(replicas=2, paused=True))
        second = applied(first.obj, config(replicas=2))
        assert "paused" not in second.obj["spec"]
        assert owners(second.managed_fields)[("a", "Apply")] == {REPLICAS}

    def test_a_field_another_manager_owns_stays(self) -> None:
        first = applied(None, config(replicas=2, paused=True))
        both = applied(first.obj, config(paused=True), manager="b")
        second = applied(both.obj, config(replicas=2))
        assert second.obj["spec"]["paused"] is True

    def test_list_items_no_longer_applied_are_removed(self) -> None:
        two = {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d", "image": "1"}]}}
        one = {"spec": {"containers": [{"name": "c", "image": "1"}]}}
        first = applied(None, config(template=two))
        second = applied(first.obj, config(template=one))
        assert [c["name"] for c in second.obj["spec"]["template"]["spec"]["containers"]] == ["c"]

    def test_status_is_owned_by_nobody_on_the_main_resource(self) -> None:
        cfg = config(replicas=1)
        cfg["status"] = {"replicas": 9}
        result = applied(None, cfg)
        assert "status" not in result.obj
        assert owners(result.managed_fields)[("a", "Apply")] == {REPLICAS}

    def test_objects_without_managed_fields_get_a_before_first_apply_owner(self) -> None:
        result = updater.apply(deployment(), config(replicas=3), SCOPE, "a", force=False, now=T1)
        assert isinstance(result, Conflicts)
        assert 'conflict with "before-first-apply" using apps/v1' in result.message

    def test_an_unchanged_apply_keeps_its_time(self) -> None:
        first = applied(None, config(replicas=2))
        again = updater.apply(first.obj, config(replicas=2), SCOPE, "a", force=False,
                              now="2026-01-02T00:00:00Z")
        assert isinstance(again, Applied)
        assert again.managed_fields == first.managed_fields


class TestClientSideApplyMigration:
    def live(self, replicas: int) -> dict[str, Any]:
        last = json.dumps(config(replicas=1))
        obj = deployment(replicas=replicas, annotations={updater.LAST_APPLIED: last})
        obj["metadata"]["managedFields"] = updater.record_update(
            None, obj, SCOPE, "kubectl-client-side-apply", T0)
        return obj

    def test_kubectl_may_change_what_it_applied_client_side(self) -> None:
        result = applied(self.live(replicas=1), config(replicas=2), manager="kubectl")
        assert result.obj["spec"]["replicas"] == 2
        text = result.obj["metadata"]["annotations"][updater.LAST_APPLIED]
        assert json.loads(text)["spec"] == {"replicas": 2}

    def test_but_not_what_someone_changed_since(self) -> None:
        live = self.live(replicas=1)
        scaled = deployment(replicas=5, annotations=live["metadata"]["annotations"])
        scaled["metadata"]["managedFields"] = updater.record_update(live, scaled, SCOPE, "kubectl", T1)
        result = updater.apply(scaled, config(replicas=2), SCOPE, "kubectl", force=False, now=T1)
        assert isinstance(result, Conflicts)

    def test_other_managers_conflict_with_client_side_apply(self) -> None:
        result = updater.apply(self.live(replicas=1), config(replicas=2), SCOPE, "other",
                               force=False, now=T1)
        assert isinstance(result, Conflicts)
        assert '"kubectl-client-side-apply" using apps/v1' in result.message


class TestStoredEntriesFastPath:
    """Updates rewrite only the entries they touch; the answer is the general path's."""

    @pytest.mark.parametrize("change", [
        lambda o: o["spec"].update(replicas=7),
        lambda o: o["spec"]["template"]["spec"]["containers"].append({"name": "d", "image": "x"}),
        lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("image"),
        lambda o: o["metadata"].setdefault("labels", {}).update(a="b"),
        lambda o: o["spec"].pop("selector"),
    ])
    def test_same_result_as_decoding_everything(self, change: Any) -> None:
        live = created()
        mid = deployment(replicas=3)
        mid["metadata"]["managedFields"] = updater.record_update(live, mid, SCOPE, "m", T1)
        new = json.loads(json.dumps(mid))
        change(new)
        fast = updater.record_update(mid, new, SCOPE, "n", "2026-01-01T00:02:00Z")
        general = json.loads(json.dumps(new))
        general["metadata"]["managedFields"] = list(reversed(mid["metadata"]["managedFields"]))
        slow = updater.record_update(mid, general, SCOPE, "n", "2026-01-01T00:02:00Z")
        assert fast == slow
