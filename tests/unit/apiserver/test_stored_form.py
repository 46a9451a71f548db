"""The stored form and what reads serve (apiserver/objects.py): the resourceVersion spliced
into stored bytes must give exactly the object with its resourceVersion, whatever the
object's shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pyk8s.apiserver import objects

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "d", "labels": {"a": "b"},
                    "annotations": {"note": '"metadata":{"tricky'}},
       "spec": {"template": {"metadata": {"name": "inner"}}}}


@pytest.mark.parametrize("obj", [
    POD,
    {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}},  # another key order
    {"spec": {"metadata": {"name": "x"}}, "apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "p"}},  # a nested "metadata" before the top-level one
    {"apiVersion": "v1", "kind": "Pod", "metadata": {}},  # nothing to put a comma after
    {"apiVersion": "v1", "kind": 'Po"d', "metadata": {"name": "é"}},
    {"apiVersion": "v1", "metadata": {"name": "p"}},  # no kind
])
def test_served_bytes_are_the_object_with_its_resource_version(obj: dict[str, Any]) -> None:
    value = objects.encode(obj)
    assert b"resourceVersion" not in value
    served = objects.with_revision(value, {**obj, "metadata": {**obj["metadata"],
                                                               "resourceVersion": "42"}}, 42)
    expected = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "42"}}
    assert orjson.loads(served) == expected
    assert served.count(b'"resourceVersion"') == 1


def test_the_common_shape_is_spliced_not_serialized_again() -> None:
    value = objects.encode(POD)
    # An obj that disagrees with value only in what the splice never reads: the answer
    # comes from value's bytes.
    decoy = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other"}}
    served = orjson.loads(objects.with_revision(value, decoy, 7))
    assert served["metadata"]["name"] == "p"
    assert served["metadata"]["resourceVersion"] == "7"
    assert next(iter(served["metadata"])) == "resourceVersion"
