"""Selectable fields are read from cached objects only once some field selector names them;
an object cached before a selector first named its field still matches it correctly."""

from __future__ import annotations

import orjson

from pyk8s.apiserver import listing, watchcache
from pyk8s.apiserver.watchcache import cached_object
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")


def pod(name: str, node: str, phase: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": "ns"},
                         "spec": {"nodeName": node, "hostNetwork": True},
                         "status": {"phase": phase}})


def test_fields_are_read_once_a_selector_names_them_and_lazily_before() -> None:
    watchcache._selected.pop(PODS.storage_prefix, None)
    early = cached_object(PODS, "/registry/pods/ns/a", pod("a", "n1", "Running"), 5)
    assert "spec.nodeName" not in early.fields  # nobody selects on it yet
    on_n1 = listing.build_matcher(PODS, "", "spec.nodeName=n1,status.phase!=Failed")
    assert on_n1(early)
    assert early.fields["spec.nodeName"] == "n1"  # read once, kept
    late = cached_object(PODS, "/registry/pods/ns/b", pod("b", "n2", "Running"), 6)
    assert late.fields["spec.nodeName"] == "n2"  # read as it is cached from now on
    assert not on_n1(late)
    assert listing.build_matcher(PODS, "", "spec.hostNetwork=true")(late)
    assert listing.build_matcher(PODS, "", "status.podIP=")(early)
    assert early.get("metadata.name") == "a"
