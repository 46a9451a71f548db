"""Request bodies decoded into kinds, worded as kube-apiserver's handlers word it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pyk8s.apiserver import validation
from pyk8s.machinery import errors
from pyk8s.machinery.resources import CATALOGUE, Resource


def resource(group: str, version: str, plural: str) -> Resource:
    found = CATALOGUE.by_plural(group, version, plural)
    assert found is not None
    return found


DEPLOYMENTS = resource("apps", "v1", "deployments")


def deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def fv(mode: str, body: dict[str, Any] | None = None) -> validation.FieldValidation:
    return validation.FieldValidation(mode, orjson.dumps(body) if body is not None else None)


class TestDirective:
    def test_absent_means_warn_as_upstream(self) -> None:
        assert validation.directive("POST", None) == validation.WARN
        assert validation.directive("POST", "") == validation.WARN

    @pytest.mark.parametrize("value", ["Strict", "Warn", "Ignore"])
    def test_known_values(self, value: str) -> None:
        assert validation.directive("PATCH", value) == value

    def test_other_values_are_invalid_options(self) -> None:
        with pytest.raises(errors.ApiError) as failure:
            validation.directive("PATCH", "strict")
        assert failure.value.code == 422
        assert 'PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict"' \
            in failure.value.message


class TestCreateAndUpdate:
    def test_strict_rejects_unknown_fields_with_400(self) -> None:
        body = deployment(foo=1)
        with pytest.raises(errors.ApiError) as failure:
            validation.decode_body(DEPLOYMENTS, body, fv("Strict", body))
        assert failure.value.code == 400
        assert failure.value.message == (
            'Deployment in version "v1" cannot be handled as a Deployment: strict decoding '
            'error: unknown field "spec.foo"')

    def test_warn_drops_them_and_records_warnings(self) -> None:
        body = deployment(foo=1)
        request = fv("Warn", body)
        obj = validation.decode_body(DEPLOYMENTS, body, request)
        assert "foo" not in obj["spec"]
        assert request.warnings == ['unknown field "spec.foo"']
        assert request.header_values() == ['299 - "unknown field \\"spec.foo\\""']

    def test_ignore_drops_them_silently(self) -> None:
        body = deployment(foo=1)
        request = fv("Ignore", body)
        obj = validation.decode_body(DEPLOYMENTS, body, request)
        assert "foo" not in obj["spec"] and request.warnings == []

    def test_strict_rejects_duplicate_fields(self) -> None:
        raw = orjson.dumps(deployment()).replace(b'"name":"web"', b'"name":"web","name":"web"')
        request = validation.FieldValidation("Strict", raw)
        with pytest.raises(errors.ApiError) as failure:
            validation.decode_body(DEPLOYMENTS, orjson.loads(raw), request)
        assert failure.value.message.endswith(
            'strict decoding error: duplicate field "metadata.name"')

    def test_wrong_types_fail_whatever_the_directive(self) -> None:
        body = deployment(replicas="2")
        with pytest.raises(errors.ApiError) as failure:
            validation.decode_body(DEPLOYMENTS, body, fv("Ignore", body))
        assert failure.value.code == 400
        assert failure.value.message == (
            'Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
            'unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32')


class TestPatches:
    def test_unknown_fields_in_the_result_are_a_plain_strict_error(self) -> None:
        with pytest.raises(errors.ApiError) as failure:
            validation.decode_patched(DEPLOYMENTS, deployment(foo=1), {"spec": {"foo": 1}},
                                      "application/merge-patch+json", fv("Strict"))
        assert failure.value.code == 400
        assert failure.value.message == 'strict decoding error: unknown field "spec.foo"'

    def test_type_errors_are_invalid_patches(self) -> None:
        with pytest.raises(errors.ApiError) as failure:
            validation.decode_patched(DEPLOYMENTS, deployment(replicas="x"),
                                      {"spec": {"replicas": "x"}},
                                      "application/strategic-merge-patch+json", fv("Strict"))
        assert failure.value.code == 422
        assert failure.value.message.startswith(
            ' "" is invalid: patch: Invalid value: "map[spec:map[replicas:x]]": json: cannot')

    def test_duplicates_in_a_strategic_merge_patch(self) -> None:
        raw = b'{"spec":{"replicas":1,"replicas":2}}'
        request = validation.FieldValidation("Warn", raw)
        validation.decode_patched(DEPLOYMENTS, deployment(replicas=2), orjson.loads(raw),
                                  "application/strategic-merge-patch+json", request)
        assert request.warnings == ['duplicate field "spec.replicas"']

    def test_warnings_are_replaced_on_a_retried_attempt(self) -> None:
        request = fv("Warn")
        for _ in range(2):
            validation.decode_patched(DEPLOYMENTS, deployment(foo=1), {},
                                      "application/merge-patch+json", request)
        assert request.warnings == ['unknown field "spec.foo"']


class TestResourceRequirements:
    PATH = "spec.containers[0].resources"

    def causes(self, **resources: Any) -> list[tuple[str, str, str]]:
        return validation.resource_requirements_causes(resources, self.PATH)

    def test_valid(self) -> None:
        assert self.causes(limits={"cpu": "1", "memory": "1Gi"},
                           requests={"cpu": "100m", "memory": "512Mi"}) == []

    def test_negative_quantities(self) -> None:
        assert self.causes(limits={"cpu": "-1"}) == [(
            f"{self.PATH}.limits[cpu]", "FieldValueInvalid",
            'Invalid value: "-1": must be greater than or equal to 0')]

    def test_requests_above_limits(self) -> None:
        assert self.causes(limits={"cpu": "500m"}, requests={"cpu": "1"}) == [(
            f"{self.PATH}.requests", "FieldValueInvalid",
            'Invalid value: "1": must be less than or equal to cpu limit of 500m')]

    def test_unknown_resource_names(self) -> None:
        assert self.causes(requests={"gpu": "1"}) == [(
            f"{self.PATH}.requests[gpu]", "FieldValueInvalid",
            'Invalid value: "gpu": must be a standard resource for containers')]

    def test_extended_resources_need_equal_whole_limits(self) -> None:
        assert self.causes(requests={"example.com/dev": "1"}) == [(
            f"{self.PATH}.limits", "FieldValueRequired",
            "Required value: Limit must be set for non overcommitable resources")]
        assert self.causes(limits={"example.com/dev": "2"}, requests={"example.com/dev": "1"}) == [(
            f"{self.PATH}.requests", "FieldValueInvalid",
            'Invalid value: "1": must be equal to example.com/dev limit of 2')]
        assert self.causes(limits={"example.com/dev": "500m"}, requests={"example.com/dev": "500m"}) == [
            (f"{self.PATH}.limits[example.com/dev]", "FieldValueInvalid",
             'Invalid value: "500m": must be an integer'),
            (f"{self.PATH}.requests[example.com/dev]", "FieldValueInvalid",
             'Invalid value: "500m": must be an integer')]
