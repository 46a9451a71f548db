"""Decoding objects into built-in kinds: pruning, strict findings, Go decoder errors."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from pyk8s.machinery.schema import decoder, fast

POD = "io.k8s.api.core.v1.Pod"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"

_POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "x"}, "creationTimestamp": None},
    "spec": {
        "containers": [{
            "name": "c", "image": "busybox", "command": ["sleep", "1"],
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": 1}},
            "readinessProbe": {"httpGet": {"port": "http"}},
        }],
        "terminationGracePeriodSeconds": 30,
    },
}


def pod() -> dict[str, Any]:
    return copy.deepcopy(_POD)


def decode(obj: dict[str, Any], definition: str = POD) -> decoder.Report | None:
    return decoder.decode_object(definition, obj)[1]


class TestCleanObjects:
    def test_pass_untouched_without_a_report(self) -> None:
        obj = pod()
        assert decode(obj) is None
        assert obj == _POD

    def test_floats_where_numbers_may_be_pass_the_walk(self) -> None:
        # JSON Schema's integer takes 0.0, Go's int32 does not: an object holding a float
        # is decoded by the walk, which takes a number quantity and refuses 0.0 for a port.
        obj = pod()
        obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = 0.1
        report = decode(obj)
        assert report is not None and report.failure is None and not report.strict_errors()
        obj["spec"]["containers"][0]["ports"][0]["containerPort"] = 80.0
        report = decode(obj)
        assert report is not None and "cannot unmarshal number 80.0" in (report.failure or "")

    def test_a_patch_without_floats_spares_the_walk(self) -> None:
        obj = pod()
        obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = 0.1  # stored before
        assert decoder.decode_object(POD, obj, new_values={"metadata": {"labels": {}}})[1] is None
        report = decoder.decode_object(POD, obj, new_values={"x": 1.5})[1]
        assert report is not None and report.failure is None

    def test_the_fast_check_and_the_walk_agree(self) -> None:
        assert fast.fast_check(POD) is not None
        assert fast.fast_check(POD)(pod())  # type: ignore[misc]
        report = decoder.decode(decoder.decoder_for(POD), pod())
        assert report.failure is None and not report.strict_errors()


class TestUnknownFields:
    def test_are_pruned_and_reported_with_their_path(self) -> None:
        obj = pod()
        obj["spec"]["foo"] = 1
        obj["spec"]["containers"][0]["bar"] = {"x": 1}
        obj["metadata"]["labels"]["still"] = "known"
        report = decode(obj)
        assert report is not None and report.failure is None
        assert report.strict_errors() == [  # in document order
            'unknown field "spec.containers[0].bar"', 'unknown field "spec.foo"']
        assert "foo" not in obj["spec"] and "bar" not in obj["spec"]["containers"][0]
        assert obj["metadata"]["labels"]["still"] == "known"

    def test_top_level(self) -> None:
        obj = pod()
        obj["extra"] = True
        report = decode(obj)
        assert report is not None and report.strict_errors() == ['unknown field "extra"']


class TestDuplicateFields:
    def test_found_in_the_raw_body(self) -> None:
        raw = orjson.dumps(pod()).replace(b'"name":"p"', b'"name":"p","name":"q"')
        obj, report = decoder.decode_object(POD, orjson.loads(raw), raw, find_duplicates=True)
        assert report is not None
        assert report.strict_errors() == ['duplicate field "metadata.name"']
        assert obj["metadata"]["name"] == "q"  # the last one wins, as in Go

    def test_escaped_quotes_in_values_are_not_keys(self) -> None:
        obj = pod()
        obj["metadata"]["annotations"] = {"a": '{"x":1,"y":"\\":"}'}
        raw = orjson.dumps(obj)
        assert decoder.decode_object(POD, orjson.loads(raw), raw, find_duplicates=True)[1] is None

    def test_not_looked_for_when_ignored(self) -> None:
        raw = orjson.dumps(pod()).replace(b'"name":"p"', b'"name":"p","name":"q"')
        assert decoder.decode_object(POD, orjson.loads(raw), raw)[1] is None


def failure(mutate: Any, definition: str = POD) -> str | None:
    obj = pod()
    mutate(obj)
    report = decode(obj, definition)
    return report.failure if report else None


class TestDecodeErrors:
    def test_wrong_scalar_type_names_the_go_struct_field(self) -> None:
        def bad(o: dict[str, Any]) -> None:
            o["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
        assert failure(bad) == ("json: cannot unmarshal string into Go struct field "
                                "ContainerPort.spec.containers.ports.containerPort of type int32")

    def test_map_values(self) -> None:
        assert failure(lambda o: o["metadata"]["labels"].update(a=1)) == (
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels "
            "of type string")

    def test_object_for_a_list(self) -> None:
        assert failure(lambda o: o["spec"].update(containers={})) == (
            "json: cannot unmarshal object into Go struct field PodSpec.spec.containers "
            "of type []v1.Container")

    def test_fractions_and_overflow_of_integers(self) -> None:
        assert failure(lambda o: o["spec"].update(terminationGracePeriodSeconds=1.5)) == (
            "json: cannot unmarshal number 1.5 into Go struct field "
            "PodSpec.spec.terminationGracePeriodSeconds of type int64")
        assert "number 4294967296" in (failure(
            lambda o: o["spec"]["containers"][0]["ports"][0].update(containerPort=2**32)) or "")

    def test_booleans_are_not_numbers(self) -> None:
        assert failure(lambda o: o["spec"].update(terminationGracePeriodSeconds=True)) == (
            "json: cannot unmarshal bool into Go struct field "
            "PodSpec.spec.terminationGracePeriodSeconds of type int64")

    def test_quantities(self) -> None:
        def bad(o: dict[str, Any]) -> None:
            o["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "abc"
        assert failure(bad) == ("quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")

    def test_int_or_string(self) -> None:
        def bad(o: dict[str, Any]) -> None:
            o["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = True
        assert failure(bad) == "json: cannot unmarshal bool into Go value of type int32"

    def test_times(self) -> None:
        assert failure(lambda o: o["metadata"].update(creationTimestamp="yesterday")) == (
            'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" '
            'as "2006"')

    def test_base64_bytes(self) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                  "data": {"a": "aGk=", "b": "not base64!"}}
        report = decode(secret, "io.k8s.api.core.v1.Secret")
        assert report is not None and report.failure == "illegal base64 data at input byte 3"

    def test_the_first_type_error_is_kept(self) -> None:
        def bad(o: dict[str, Any]) -> None:
            o["spec"]["terminationGracePeriodSeconds"] = "x"
            o["spec"]["containers"][0]["image"] = 1
        assert "Container.spec.containers.image" in (failure(bad) or "")  # first in the body


@pytest.mark.parametrize("definition", [DEPLOYMENT, "io.k8s.api.core.v1.Service",
                                        "io.k8s.api.batch.v1.CronJob",
                                        "io.k8s.api.core.v1.Node"])
def test_every_kind_compiles(definition: str) -> None:
    assert decoder.decoder_for(definition).kind is not None
    assert fast.fast_check(definition) is not None


def test_duplicate_keys_in_maps() -> None:
    raw = orjson.dumps(pod()).replace(b'"labels":{"app":"x"}', b'"labels":{"app":"x","app":"y"}')
    _, report = decoder.decode_object(POD, orjson.loads(raw), raw, find_duplicates=True)
    assert report is not None
    assert report.strict_errors() == ['duplicate field "metadata.labels.app"']
