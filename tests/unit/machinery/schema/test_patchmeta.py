"""Strategic-merge metadata from the definitions matches the struct tags upstream uses."""

from __future__ import annotations

from pyk8s.machinery import patch
from pyk8s.machinery.schema import patchmeta


def test_agrees_with_the_built_in_table() -> None:
    table = patchmeta.table()
    for definition, fields in patch.BUILTIN_PATCH_META.items():
        if not definition:
            continue
        for name, (type_name, strategy, merge_key) in fields.items():
            got = table[definition][name]
            assert (got[1], got[2]) == (strategy, merge_key), (definition, name)
            if type_name:
                assert got[0] == type_name


def test_merges_containers_by_name() -> None:
    schema = patchmeta.merge_schema("apps/v1", "Deployment")
    assert schema is not None
    live = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}}}
    result = patch.strategic_merge_patch(
        live, {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "3"}]}}}},
        schema)
    assert result["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "1"}, {"name": "b", "image": "3"}]


def test_kinds_without_patch_metadata_of_their_own() -> None:
    schema = patchmeta.merge_schema("v1", "ConfigMap")
    assert schema is not None
    assert patchmeta.merge_schema("example.com/v1", "Widget") is None
