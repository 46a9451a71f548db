"""PATCH bodies apply as kube-apiserver applies them.

* JSON merge patch: every example of RFC 7386 (section 3 and appendix A).
* JSON patch: the examples of RFC 6902 appendix A, then evanphx/json-patch v4 behaviour and
  error wording, with the status codes of apiserver's handlers/patch.go.
* Strategic merge patch: kubectl's own patches (``set image``, the second ``apply``,
  ``$patch: delete`` of a container), built-in merge keys, every directive, upstream's
  ordering fixtures from apimachinery's patch_test.go, and upstream's error messages.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.machinery.patch import (
    EMPTY_SCHEMA,
    MergeSchema,
    PatchError,
    PatchMeta,
    TableSchema,
    create_merge_patch,
    json_merge_patch,
    json_merge_patch_shared,
    json_patch,
    schema_for_kind,
    strategic_merge_patch,
    supports_strategic_merge,
    validate_merge_patch,
)


def y(text: str) -> Any:
    return yaml.safe_load(text)


# --------------------------------------------------------------------------------------------
# RFC 7386


class TestJsonMergePatch:
    @pytest.mark.parametrize(
        ("target", "patch", "result"),
        [  # RFC 7386 appendix A, in order
            ({"a": "b"}, {"a": "c"}, {"a": "c"}),
            ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
            ({"a": "b"}, {"a": None}, {}),
            ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
            ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
            ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
            (["a", "b"], ["c", "d"], ["c", "d"]),
            ({"a": "b"}, ["c"], ["c"]),
            ({"a": "foo"}, None, None),
            ({"a": "foo"}, "bar", "bar"),
            ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
            ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
            ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ],
    )
    def test_rfc7386_appendix_a(self, target: Any, patch: Any, result: Any) -> None:
        assert json_merge_patch(target, patch) == result

    def test_rfc7386_section_3_example(self) -> None:
        target = {
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged",
        }
        patch = {
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": None},
            "tags": ["example"],
        }
        assert json_merge_patch(target, patch) == {
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890",
        }

    @pytest.mark.parametrize(
        ("target", "patch", "result"),
        [
            ({"a": "b"}, {"a": "c"}, {"a": "c"}),
            ({"a": "b"}, {"a": None}, {}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
            ({"a": "x"}, {"a": {"b": {"c": None, "d": 1}}}, {"a": {"b": {"d": 1}}}),
            ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ],
    )
    def test_shared_variant_gives_the_same_result(self, target: Any, patch: Any,
                                                  result: Any) -> None:
        before = copy.deepcopy((target, patch))
        assert json_merge_patch_shared(target, patch) == result == json_merge_patch(target, patch)
        assert (target, patch) == before

    def test_shared_variant_copies_only_the_objects_the_patch_goes_into(self) -> None:
        target = {"metadata": {"name": "p"}, "spec": {"c": [1]},
                  "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}],
                             "deep": {"x": 1}}}
        patch = {"status": {"phase": "Running", "conditions": [{"type": "Ready"}]}}
        result = json_merge_patch_shared(target, patch)
        assert result["metadata"] is target["metadata"]
        assert result["spec"] is target["spec"]
        assert result["status"] is not target["status"]
        assert result["status"]["deep"] is target["status"]["deep"]
        assert result["status"]["conditions"] is patch["status"]["conditions"]
        assert target["status"]["phase"] == "Pending"

    def test_does_not_touch_its_inputs_or_share_with_the_result(self) -> None:
        target = {"a": {"b": [1]}, "c": {"d": 1}}
        patch = {"a": {"e": {"f": 1}}, "c": None}
        before = copy.deepcopy((target, patch))
        result = json_merge_patch(target, patch)
        assert (target, patch) == before
        result["a"]["b"].append(2)
        result["a"]["e"]["f"] = 2
        assert (target, patch) == before

    @pytest.mark.parametrize("patch", [None, "x", 1, True])
    def test_kube_apiserver_rejects_non_object_patches(self, patch: Any) -> None:
        with pytest.raises(PatchError) as caught:
            validate_merge_patch(patch)
        assert (caught.value.code, caught.value.message) == (400, "Invalid JSON Patch")

    @pytest.mark.parametrize("patch", [{}, {"a": None}, []])
    def test_objects_and_arrays_are_accepted(self, patch: Any) -> None:
        validate_merge_patch(patch)

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
        ),
        max_leaves=10,
    )
    no_null_objects = st.recursive(
        st.booleans() | st.integers() | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
        ),
        max_leaves=10,
    )

    @settings(max_examples=60, deadline=None)
    @given(
        st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4),
        st.dictionaries(st.sampled_from("abcd"), no_null_objects, max_size=4),
    )
    def test_patch_of_a_diff_reproduces_the_target(self, a: dict, b: dict) -> None:
        assert json_merge_patch(a, create_merge_patch(a, b)) == b

    @settings(max_examples=60, deadline=None)
    @given(st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4))
    def test_patch_is_idempotent(self, patch: dict) -> None:
        once = json_merge_patch({"a": {"x": 1}, "z": [1]}, patch)
        assert json_merge_patch(once, patch) == once


# --------------------------------------------------------------------------------------------
# RFC 6902


class TestJsonPatchRfc6902AppendixA:
    @pytest.mark.parametrize(
        ("name", "doc", "ops", "result"),
        [
            (
                "A.1 add an object member",
                {"foo": "bar"},
                [{"op": "add", "path": "/baz", "value": "qux"}],
                {"baz": "qux", "foo": "bar"},
            ),
            (
                "A.2 add an array element",
                {"foo": ["bar", "baz"]},
                [{"op": "add", "path": "/foo/1", "value": "qux"}],
                {"foo": ["bar", "qux", "baz"]},
            ),
            (
                "A.3 remove an object member",
                {"baz": "qux", "foo": "bar"},
                [{"op": "remove", "path": "/baz"}],
                {"foo": "bar"},
            ),
            (
                "A.4 remove an array element",
                {"foo": ["bar", "qux", "baz"]},
                [{"op": "remove", "path": "/foo/1"}],
                {"foo": ["bar", "baz"]},
            ),
            (
                "A.5 replace a value",
                {"baz": "qux", "foo": "bar"},
                [{"op": "replace", "path": "/baz", "value": "boo"}],
                {"baz": "boo", "foo": "bar"},
            ),
            (
                "A.6 move a value",
                {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
                {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
            ),
            (
                "A.7 move an array element",
                {"foo": ["all", "grass", "cows", "eat"]},
                [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
                {"foo": ["all", "cows", "eat", "grass"]},
            ),
            (
                "A.8 test a value: success",
                {"baz": "qux", "foo": ["a", 2, "c"]},
                [
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2},
                ],
                {"baz": "qux", "foo": ["a", 2, "c"]},
            ),
            (
                "A.10 add a nested member object",
                {"foo": "bar"},
                [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
                {"foo": "bar", "child": {"grandchild": {}}},
            ),
            (
                "A.11 ignore unrecognized elements",
                {"foo": "bar"},
                [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
                {"foo": "bar", "baz": "qux"},
            ),
            (
                "A.14 ~ escape ordering",
                {"/": 9, "~1": 10},
                [{"op": "test", "path": "/~01", "value": 10}],
                {"/": 9, "~1": 10},
            ),
            (
                "A.16 add an array value",
                {"foo": ["bar"]},
                [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
                {"foo": ["bar", ["abc", "def"]]},
            ),
        ],
    )
    def test_examples(self, name: str, doc: Any, ops: list, result: Any) -> None:
        assert json_patch(doc, ops) == result, name

    @pytest.mark.parametrize(
        ("name", "doc", "ops", "message"),
        [
            (
                "A.9 test a value: error",
                {"baz": "qux"},
                [{"op": "test", "path": "/baz", "value": "bar"}],
                "testing value /baz failed: test failed",
            ),
            (
                "A.12 add to a nonexistent target",
                {"foo": "bar"},
                [{"op": "add", "path": "/baz/bat", "value": "qux"}],
                'add operation does not apply: doc is missing path: "/baz/bat": missing value',
            ),
            (
                "A.15 comparing strings and numbers",
                {"/": 9, "~1": 10},
                [{"op": "test", "path": "/~01", "value": "10"}],
                "testing value /~01 failed: test failed",
            ),
        ],
    )
    def test_error_examples_answer_422(self, name: str, doc: Any, ops: list, message: str) -> None:
        with pytest.raises(PatchError) as caught:
            json_patch(doc, ops)
        assert (caught.value.code, caught.value.message) == (422, message), name


class TestJsonPatchAsKubeApiserverApplies:
    def test_all_or_nothing_and_inputs_untouched(self) -> None:
        doc = {"spec": {"replicas": 1, "list": [1]}}
        ops = [
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": {"x": [1]}},
        ]
        before = copy.deepcopy((doc, ops))
        result = json_patch(doc, ops)
        assert result == {"spec": {"replicas": 3, "list": [1, {"x": [1]}]}}
        assert (doc, ops) == before
        result["spec"]["list"][1]["x"].append(2)
        assert (doc, ops) == before
        with pytest.raises(PatchError):
            json_patch(doc, [ops[0], {"op": "test", "path": "/spec/replicas", "value": 1}])
        assert doc == before[0]

    def test_escaped_pointer_tokens(self) -> None:
        doc = {"metadata": {"annotations": {"example.com/a~b": "1"}}}
        ops = [
            {"op": "replace", "path": "/metadata/annotations/example.com~1a~0b", "value": "2"},
            {"op": "add", "path": "/metadata/annotations/x~1y", "value": "3"},
        ]
        assert json_patch(doc, ops) == {
            "metadata": {"annotations": {"example.com/a~b": "2", "x/y": "3"}}
        }

    def test_negative_indices_count_from_the_end(self) -> None:
        assert json_patch([1, 2, 3], [{"op": "remove", "path": "/-1"}]) == [1, 2]
        # add counts from the end of the list it grows into: -1 appends, -2 inserts before last
        assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 9}]) == {
            "a": [1, 2, 9]
        }
        assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-2", "value": 9}]) == {
            "a": [1, 9, 2]
        }
        assert json_patch([1, 2], [{"op": "replace", "path": "/-2", "value": 0}]) == [0, 2]

    def test_add_at_end_index_appends(self) -> None:
        assert json_patch({"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}]) == {"a": [1, 2]}

    def test_add_replaces_an_existing_member(self) -> None:
        assert json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": 2}]) == {"a": 2}

    def test_add_without_value_adds_null(self) -> None:
        assert json_patch({}, [{"op": "add", "path": "/a"}]) == {"a": None}

    def test_copy_is_deep(self) -> None:
        result = json_patch({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}])
        result["c"]["b"].append(2)
        assert result == {"a": {"b": [1]}, "c": {"b": [1, 2]}}

    def test_replace_of_the_whole_document(self) -> None:
        assert json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}

    def test_test_of_the_whole_document(self) -> None:
        assert json_patch({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}]) == {"a": 1}

    @pytest.mark.parametrize(
        ("doc", "op"),
        [
            ({"a": None}, {"op": "test", "path": "/a", "value": None}),
            ({}, {"op": "test", "path": "/a", "value": None}),  # missing equals null upstream
            ({}, {"op": "test", "path": "/a"}),
            ({"a": 1}, {"op": "test", "path": "/a", "value": 1.0}),
            (
                {"a": {"x": [1, {"y": True}]}},
                {"op": "test", "path": "/a", "value": {"x": [1, {"y": True}]}},
            ),
        ],
    )
    def test_passing_tests(self, doc: Any, op: dict) -> None:
        assert json_patch(doc, [op]) == doc

    @pytest.mark.parametrize(
        ("doc", "op"),
        [
            ({"a": 1}, {"op": "test", "path": "/a", "value": None}),
            ({"a": 1}, {"op": "test", "path": "/a"}),
            ({"a": 1}, {"op": "test", "path": "/a", "value": True}),
            ({"a": {"x": 1}}, {"op": "test", "path": "/a", "value": {"x": 1, "y": 2}}),
            ({"a": [1, 2]}, {"op": "test", "path": "/a", "value": [2, 1]}),
        ],
    )
    def test_failing_tests(self, doc: Any, op: dict) -> None:
        with pytest.raises(PatchError) as caught:
            json_patch(doc, [op])
        assert caught.value.code == 422
        assert caught.value.message == "testing value /a failed: test failed"

    @pytest.mark.parametrize(
        ("doc", "op", "message"),
        [
            (
                {"a": 1},
                {"op": "replace", "path": "/b", "value": 2},
                "replace operation does not apply: doc is missing key: /b: missing value",
            ),
            (
                {"a": 1},
                {"op": "replace", "path": "/x/y", "value": 2},
                "replace operation does not apply: doc is missing path: /x/y: missing value",
            ),
            (
                {"a": [1]},
                {"op": "replace", "path": "/a/1", "value": 2},
                "replace operation does not apply: doc is missing key: /a/1: missing value",
            ),
            (
                {"a": 1},
                {"op": "remove", "path": "/b"},
                "error in remove for path: '/b': Unable to remove nonexistent key: b: missing value",
            ),
            (
                {"a": [1]},
                {"op": "remove", "path": "/a/3"},
                "error in remove for path: '/a/3': Unable to access invalid index: 3: invalid index"
                " referenced",
            ),
            (
                {"a": [1]},
                {"op": "add", "path": "/a/3", "value": 2},
                "error in add for path: '/a/3': Unable to access invalid index: 3: invalid index"
                " referenced",
            ),
            (
                {"a": [1]},
                {"op": "add", "path": "/a/x", "value": 2},
                "error in add for path: '/a/x': value was not a proper array index: 'x':"
                ' strconv.Atoi: parsing "x": invalid syntax',
            ),
            (
                {"a": 1},
                {"op": "add", "path": "/a/b", "value": 2},
                'add operation does not apply: doc is missing path: "/a/b": missing value',
            ),
            (
                {"a": 1},
                {"op": "remove", "path": "/x/y"},
                'remove operation does not apply: doc is missing path: "/x/y": missing value',
            ),
            (
                {"a": 1},
                {"op": "move", "from": "/b", "path": "/c"},
                "error in move for path: 'b': unable to get nonexistent key: b: missing value",
            ),
            (
                {"a": 1},
                {"op": "move", "from": "/a", "path": "/x/y"},
                "move operation does not apply: doc is missing destination path: /x/y: missing"
                " value",
            ),
            (
                {"a": {"b": 1}},
                {"op": "move", "from": "/a", "path": "/a/b"},
                "move operation does not apply: doc is missing destination path: /a/b: missing"
                " value",
            ),
            (
                {"a": 1},
                {"op": "copy", "from": "/b", "path": "/c"},
                "error in copy for from: '/b': unable to get nonexistent key: b: missing value",
            ),
            (
                {"a": 1},
                {"op": "test", "path": "/x/y", "value": 1},
                "test operation does not apply: is missing path: /x/y: missing value",
            ),
            (
                {"a": 1},
                {"op": "add", "value": 1},
                "add operation failed to decode path: missing value",
            ),
            (
                {"a": 1},
                {"op": "add", "path": "", "value": 1},
                'add operation does not apply: doc is missing path: "": missing value',
            ),
            ({"a": 1}, {"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
            ({"a": 1}, {"path": "/a"}, "Unexpected kind: unknown"),
        ],
    )
    def test_operations_that_do_not_apply_answer_422(
        self, doc: Any, op: dict, message: str
    ) -> None:
        with pytest.raises(PatchError) as caught:
            json_patch(doc, [op])
        assert (caught.value.code, caught.value.message) == (422, message)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
            ("add", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
            (["add"], "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
            ([[]], "json: cannot unmarshal array into Go value of type jsonpatch.Operation"),
        ],
    )
    def test_malformed_documents_answer_400(self, document: Any, message: str) -> None:
        with pytest.raises(PatchError) as caught:
            json_patch({}, document)
        assert (caught.value.code, caught.value.message) == (400, message)

    def test_status_the_api_server_sends(self) -> None:
        with pytest.raises(PatchError) as failed:
            json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
        assert failed.value.reason == "Invalid"
        assert failed.value.status_message == (
            "the server rejected our request due to an error in our request"
        )
        with pytest.raises(PatchError) as malformed:
            json_patch({}, {})
        assert malformed.value.reason == "BadRequest"
        assert malformed.value.status_message == malformed.value.message
        with pytest.raises(PatchError) as too_large:
            json_patch({}, [{"op": "test", "path": "/a"}] * 10001)
        assert too_large.value.reason == "RequestEntityTooLarge"
        assert too_large.value.status_message.startswith("Request entity too large: The allowed")

    def test_null_and_empty_documents_change_nothing(self) -> None:
        assert json_patch({"a": 1}, None) == {"a": 1}
        assert json_patch({"a": 1}, []) == {"a": 1}

    def test_too_many_operations_answer_413(self) -> None:
        ops = [{"op": "test", "path": "/a", "value": 1}] * 10001
        with pytest.raises(PatchError) as caught:
            json_patch({"a": 1}, ops)
        assert caught.value.code == 413
        assert caught.value.message == (
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        )
        assert json_patch({"a": 1}, ops[:10000]) == {"a": 1}


# --------------------------------------------------------------------------------------------
# Strategic merge patch on built-in kinds

DEPLOYMENT = schema_for_kind("apps/v1", "Deployment")
POD = schema_for_kind("v1", "Pod")


def deployment(spec: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": y(spec),
    }


def smp(original: Any, patch: Any, schema: MergeSchema | None) -> dict[str, Any]:
    assert schema is not None
    return strategic_merge_patch(original, patch, schema)


class TestKubectlPatches:
    def test_set_image_keeps_the_rest_of_the_container(self) -> None:
        original = deployment(
            """
            selector: {matchLabels: {app: web}}
            template:
              metadata: {labels: {app: web}}
              spec:
                containers:
                - name: busybox
                  image: busybox:1.36
                  command: [sleep, "3600"]
                  env: [{name: A, value: "1"}]
            """
        )
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "busybox"}],
                        "containers": [{"image": "busybox:1.37", "name": "busybox"}],
                    }
                }
            }
        }
        result = smp(original, patch, DEPLOYMENT)
        assert result["spec"]["template"]["spec"]["containers"] == [
            {
                "name": "busybox",
                "image": "busybox:1.37",
                "command": ["sleep", "3600"],
                "env": [{"name": "A", "value": "1"}],
            }
        ]
        assert result["spec"]["selector"] == original["spec"]["selector"]

    def test_set_image_of_one_of_several_containers_keeps_their_order(self) -> None:
        original = deployment(
            """
            template:
              spec:
                containers:
                - {name: app, image: app:1}
                - {name: sidecar, image: proxy:1}
            """
        )
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                        "containers": [{"image": "proxy:2", "name": "sidecar"}],
                    }
                }
            }
        }
        assert smp(original, patch, DEPLOYMENT)["spec"]["template"]["spec"]["containers"] == [
            {"name": "app", "image": "app:1"},
            {"name": "sidecar", "image": "proxy:2"},
        ]

    def test_second_apply_updates_image_drops_an_env_var_and_keeps_server_fields(self) -> None:
        # last applied: image nginx:1.25 with env A and B; new config: nginx:1.26, env A only.
        live = deployment(
            """
            replicas: 3
            template:
              metadata: {labels: {app: web}}
              spec:
                containers:
                - name: web
                  image: nginx:1.25
                  imagePullPolicy: IfNotPresent
                  terminationMessagePath: /dev/termination-log
                  env: [{name: A, value: "1"}, {name: B, value: "2"}]
                  ports: [{containerPort: 80, protocol: TCP}]
                dnsPolicy: ClusterFirst
            """
        )
        live["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": "{old}"
        }
        patch = {
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}
            },
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "web"}],
                        "containers": [
                            {
                                "$setElementOrder/env": [{"name": "A"}],
                                "env": [{"$patch": "delete", "name": "B"}],
                                "image": "nginx:1.26",
                                "name": "web",
                            }
                        ],
                    }
                }
            },
        }
        result = smp(live, patch, DEPLOYMENT)
        assert result["metadata"]["annotations"] == {
            "kubectl.kubernetes.io/last-applied-configuration": "{new}"
        }
        assert result["spec"]["replicas"] == 3
        assert result["spec"]["template"]["spec"] == {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.26",
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                }
            ],
            "dnsPolicy": "ClusterFirst",
        }

    def test_apply_adds_a_container_where_set_element_order_says(self) -> None:
        live = deployment("template: {spec: {containers: [{name: a, image: a}]}}")
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "init"}, {"name": "a"}],
                        "containers": [{"name": "init", "image": "i"}],
                    }
                }
            }
        }
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["spec"]["containers"] == [
            {"name": "init", "image": "i"},
            {"name": "a", "image": "a"},
        ]

    def test_patch_delete_removes_a_container(self) -> None:
        live = deployment(
            "template: {spec: {containers: [{name: a, image: a}, {name: b, image: b}]}}"
        )
        patch = {
            "spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}}
        }
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["spec"]["containers"] == [
            {"name": "b", "image": "b"}
        ]

    def test_patch_delete_of_an_absent_container_is_a_no_op(self) -> None:
        live = deployment("template: {spec: {containers: [{name: a, image: a}]}}")
        patch = {
            "spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "x"}]}}}
        }
        assert smp(live, patch, DEPLOYMENT) == live

    def test_patch_replace_replaces_the_whole_list(self) -> None:
        live = deployment(
            "template: {spec: {containers: [{name: a, image: a, args: [x]}, {name: b, image: b}]}}"
        )
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"$patch": "replace"},
                            {"name": "c", "image": "c"},
                        ]
                    }
                }
            }
        }
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["spec"]["containers"] == [
            {"name": "c", "image": "c"}
        ]

    def test_patch_replace_on_a_map(self) -> None:
        live = deployment("template: {metadata: {labels: {app: web, tier: fe}}}")
        patch = {"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "x"}}}}}
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["metadata"]["labels"] == {
            "app": "x"
        }

    def test_patch_delete_on_a_map_empties_it(self) -> None:
        live = deployment("template: {metadata: {labels: {app: web}}}")
        patch = {"spec": {"template": {"metadata": {"labels": {"$patch": "delete"}}}}}
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["metadata"]["labels"] == {}

    def test_null_deletes_a_field(self) -> None:
        live = deployment("replicas: 2\npaused: true")
        result = smp(live, {"spec": {"paused": None, "absent": None}}, DEPLOYMENT)
        assert result["spec"] == {"replicas": 2}

    def test_scale_patch(self) -> None:
        live = deployment("replicas: 2")
        assert smp(live, {"spec": {"replicas": 5}}, DEPLOYMENT)["spec"] == {"replicas": 5}


class TestBuiltinMergeKeys:
    def test_lists_without_patch_metadata_are_replaced(self) -> None:
        live = {
            "spec": {
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "containers": [{"name": "c", "args": ["1", "2"], "command": ["x"]}],
            }
        }
        patch = {
            "spec": {
                "tolerations": [{"key": "b", "operator": "Exists"}],
                "containers": [{"name": "c", "args": ["3"]}],
            }
        }
        assert smp(live, patch, POD)["spec"] == {
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "containers": [{"name": "c", "args": ["3"], "command": ["x"]}],
        }

    def test_container_ports_merge_by_container_port(self) -> None:
        live = {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "ports": [
                            {"containerPort": 80, "name": "http"},
                            {"containerPort": 443},
                        ],
                    }
                ]
            }
        }
        patch = {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "ports": [
                            {"containerPort": 80, "protocol": "TCP"},
                            {"containerPort": 8080},
                        ],
                    }
                ]
            }
        }
        # patch items keep the patch's order and lead the live-only ones
        assert smp(live, patch, POD)["spec"]["containers"][0]["ports"] == [
            {"containerPort": 80, "name": "http", "protocol": "TCP"},
            {"containerPort": 8080},
            {"containerPort": 443},
        ]

    def test_env_volume_mounts_and_devices_merge_by_their_keys(self) -> None:
        live = {
            "spec": {
                "initContainers": [
                    {
                        "name": "i",
                        "env": [{"name": "A", "value": "1"}],
                        "volumeMounts": [{"mountPath": "/a", "name": "v"}],
                        "volumeDevices": [{"devicePath": "/dev/a", "name": "d"}],
                    }
                ]
            }
        }
        patch = {
            "spec": {
                "initContainers": [
                    {
                        "name": "i",
                        "env": [{"name": "A", "value": "2"}],
                        "volumeMounts": [{"mountPath": "/a", "readOnly": True}],
                        "volumeDevices": [{"devicePath": "/dev/b", "name": "e"}],
                    }
                ]
            }
        }
        merged = smp(live, patch, POD)["spec"]["initContainers"][0]
        assert merged["env"] == [{"name": "A", "value": "2"}]
        assert merged["volumeMounts"] == [{"mountPath": "/a", "name": "v", "readOnly": True}]
        assert merged["volumeDevices"] == [
            {"devicePath": "/dev/b", "name": "e"},
            {"devicePath": "/dev/a", "name": "d"},
        ]

    def test_ephemeral_containers_and_pod_level_lists(self) -> None:
        live = {
            "spec": {
                "ephemeralContainers": [{"name": "dbg", "image": "busybox"}],
                "imagePullSecrets": [{"name": "a"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}],
            }
        }
        patch = {
            "spec": {
                "ephemeralContainers": [{"name": "dbg2", "image": "busybox"}],
                "imagePullSecrets": [{"name": "b"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}],
            }
        }
        spec = smp(live, patch, POD)["spec"]
        assert [c["name"] for c in spec["ephemeralContainers"]] == ["dbg2", "dbg"]
        assert spec["imagePullSecrets"] == [{"name": "b"}, {"name": "a"}]
        assert spec["hostAliases"] == [{"ip": "10.0.0.1", "hostnames": ["b"]}]
        assert spec["topologySpreadConstraints"] == [{"topologyKey": "zone", "maxSkew": 2}]

    def test_volumes_merge_by_name_and_retain_keys_switches_the_source(self) -> None:
        live = {
            "spec": {
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "c1"}},
                ]
            }
        }
        patch = {
            "spec": {
                "volumes": [
                    {
                        "$retainKeys": ["configMap", "name"],
                        "name": "data",
                        "configMap": {"name": "c2"},
                    },
                ]
            }
        }
        assert smp(live, patch, POD)["spec"]["volumes"] == [
            {"name": "data", "configMap": {"name": "c2"}},
            {"name": "cfg", "configMap": {"name": "c1"}},
        ]

    def test_deployment_strategy_retain_keys(self) -> None:
        live = deployment("strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}")
        patch = {
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}
            }
        }
        assert smp(live, patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}

    def test_finalizers_union_and_delete_from_primitive_list(self) -> None:
        live = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
        schema = schema_for_kind("v1", "ConfigMap")
        assert smp(live, {"metadata": {"finalizers": ["c", "a"]}}, schema)["metadata"][
            "finalizers"
        ] == ["c", "a", "b"]
        assert smp(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, schema)[
            "metadata"
        ]["finalizers"] == ["b"]
        assert smp(live, {"metadata": {"finalizers": None}}, schema)["metadata"] == {"name": "x"}

    def test_owner_references_merge_by_uid(self) -> None:
        live = {
            "metadata": {
                "ownerReferences": [
                    {"uid": "1", "kind": "ReplicaSet", "name": "a"},
                ]
            }
        }
        patch = {
            "metadata": {
                "ownerReferences": [
                    {"uid": "1", "controller": True},
                    {"uid": "2", "kind": "Job", "name": "b"},
                ]
            }
        }
        assert smp(live, patch, POD)["metadata"]["ownerReferences"] == [
            {"uid": "1", "kind": "ReplicaSet", "name": "a", "controller": True},
            {"uid": "2", "kind": "Job", "name": "b"},
        ]

    def test_service_ports_merge_by_port(self) -> None:
        schema = schema_for_kind("v1", "Service")
        live = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
        patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
        assert smp(live, patch, schema)["spec"]["ports"] == [
            {"port": 80, "targetPort": 9090},
            {"port": 443},
        ]

    def test_pod_status_conditions_merge_by_type(self) -> None:
        live = {
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                ],
            }
        }
        patch = {
            "status": {
                "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": None}],
                "phase": "Running",
            }
        }
        assert smp(live, patch, POD)["status"] == {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }

    def test_node_status_addresses_merge_by_type(self) -> None:
        schema = schema_for_kind("v1", "Node")
        live = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
        patch = {"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}}
        assert smp(live, patch, schema)["status"]["addresses"] == [
            {"type": "Hostname", "address": "n1"},
            {"type": "InternalIP", "address": "10.0.0.1"},
        ]

    @pytest.mark.parametrize(
        ("api_version", "kind", "path"),
        [
            ("apps/v1", "ReplicaSet", ("spec", "template", "spec")),
            ("apps/v1", "DaemonSet", ("spec", "template", "spec")),
            ("apps/v1", "StatefulSet", ("spec", "template", "spec")),
            ("batch/v1", "Job", ("spec", "template", "spec")),
            ("batch/v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
            ("v1", "ReplicationController", ("spec", "template", "spec")),
            ("v1", "PodTemplate", ("template", "spec")),
            ("v1", "Pod", ("spec",)),
        ],
    )
    def test_workload_templates_reach_the_pod_spec(
        self, api_version: str, kind: str, path: tuple[str, ...]
    ) -> None:
        def nest(leaf: Any) -> dict[str, Any]:
            for key in reversed(path):
                leaf = {key: leaf}
            return leaf

        live = nest({"containers": [{"name": "a", "image": "a:1", "args": ["x"]}]})
        patch = nest({"containers": [{"name": "a", "image": "a:2"}]})
        result = smp(live, patch, schema_for_kind(api_version, kind))
        for key in path:
            result = result[key]
        assert result["containers"] == [{"name": "a", "image": "a:2", "args": ["x"]}]


class TestDirectivesAndNewValues:
    def test_a_new_list_drops_deleted_elements_and_directives(self) -> None:
        live = deployment("template: {spec: {}}")
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/initContainers": [{"name": "a"}],
                        "initContainers": [
                            {
                                "name": "a",
                                "image": "a",
                                "$setElementOrder/env": [{"name": "X"}],
                                "env": [{"name": "X", "value": "1", "valueFrom": None}],
                            },
                            {"name": "gone", "$patch": "delete"},
                        ],
                    }
                }
            }
        }
        assert smp(live, patch, DEPLOYMENT)["spec"]["template"]["spec"] == {
            "initContainers": [{"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}]}]
        }

    def test_a_new_map_with_a_directive_is_dropped_as_upstream_does(self) -> None:
        live = deployment("replicas: 1")
        patch = {"spec": {"template": {"$patch": "replace", "metadata": {}}}}
        assert smp(live, patch, DEPLOYMENT)["spec"] == {"replicas": 1}

    def test_new_nested_nulls_are_discarded(self) -> None:
        live = {"metadata": {"name": "x"}}
        patch = {"metadata": {"labels": {"a": "1", "b": None}}}
        assert smp(live, patch, POD)["metadata"] == {"name": "x", "labels": {"a": "1"}}

    def test_a_value_of_another_type_replaces(self) -> None:
        live = {"spec": {"a": {"x": 1}, "b": [1], "c": "s"}}
        patch = {"spec": {"a": "now a string", "b": {"k": None, "v": 1}, "c": 2}}
        assert smp(live, patch, POD)["spec"] == {"a": "now a string", "b": {"v": 1}, "c": 2}

    def test_new_list_elements_lose_directive_keys(self) -> None:
        live = {"spec": {"containers": [{"name": "a"}]}}
        patch = {"spec": {"containers": [{"name": "b", "$retainKeys": ["name"], "image": None}]}}
        assert smp(live, patch, POD)["spec"]["containers"] == [{"name": "b"}, {"name": "a"}]

    def test_inputs_are_untouched_and_unshared(self) -> None:
        live = deployment("template: {spec: {containers: [{name: a, env: [{name: X}]}]}}")
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                        "containers": [
                            {"name": "b", "env": [{"name": "Y"}]},
                            {"name": "a", "$retainKeys": ["name", "env"]},
                        ],
                    }
                }
            }
        }
        before = copy.deepcopy((live, patch))
        result = smp(live, patch, DEPLOYMENT)
        assert (live, patch) == before
        result["spec"]["template"]["spec"]["containers"][1]["env"].append({"name": "Z"})
        result["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "Z"})
        assert (live, patch) == before

    def test_patch_merge_is_not_supported_on_maps(self) -> None:
        with pytest.raises(PatchError) as caught:
            smp(
                {"metadata": {"labels": {"a": "b"}}},
                {"metadata": {"labels": {"$patch": "merge"}}},
                POD,
            )
        assert caught.value.code == 500
        assert caught.value.message == "unknown patch type: merge in map: map[$patch:merge]"

    def test_patch_merge_is_not_supported_in_lists(self) -> None:
        with pytest.raises(PatchError) as caught:
            smp(
                {"spec": {"containers": [{"name": "a"}]}},
                {"spec": {"containers": [{"$patch": "merge"}]}},
                POD,
            )
        assert (caught.value.code, caught.value.message) == (
            500,
            "merging lists cannot yet be specified in the patch",
        )


class TestStrategicMergePatchErrors:
    def test_missing_merge_key(self) -> None:
        live = {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}}
        patch = {
            "spec": {
                "template": {"spec": {"volumes": [{"hostPath": {"path": "/var/lib/kubelet/pods"}}]}}
            }
        }
        with pytest.raises(PatchError) as caught:
            smp(live, patch, schema_for_kind("apps/v1", "DaemonSet"))
        assert (caught.value.code, caught.value.reason) == (500, "")
        assert (
            caught.value.message
            == caught.value.status_message
            == (
                "map: map[hostPath:map[path:/var/lib/kubelet/pods]] does not contain declared merge"
                " key: name"
            )
        )

    def test_delete_directive_without_merge_key(self) -> None:
        with pytest.raises(PatchError, match="does not contain declared merge key: name"):
            smp(
                {"spec": {"containers": [{"name": "a"}]}},
                {"spec": {"containers": [{"$patch": "delete"}]}},
                POD,
            )

    def test_unknown_list_directive(self) -> None:
        with pytest.raises(PatchError) as caught:
            smp(
                {"spec": {"containers": [{"name": "a"}]}},
                {"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}},
                POD,
            )
        assert caught.value.message == "unknown patch type: bogus in map: map[$patch:bogus name:a]"

    def test_list_of_lists_answers_422(self) -> None:
        schema = TableSchema({"T": {"l": (None, "merge", "")}}, "T")
        with pytest.raises(PatchError) as caught:
            strategic_merge_patch({"l": [[1]]}, {"l": [[2]]}, schema)
        assert (caught.value.code, caught.value.message) == (
            422,
            "lists of lists are not supported",
        )

    def test_mixed_element_types(self) -> None:
        with pytest.raises(PatchError) as caught:
            smp({"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": [1]}}, POD)
        assert (caught.value.code, caught.value.message) == (
            500,
            "list element types are not identical: [[a] [1]]",
        )

    @pytest.mark.parametrize(
        ("patch", "message"),
        [
            ({"spec": {"strategy": {"$retainKeys": "type"}}}, "invalid patch format of retainKeys"),
            (
                {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
                "invalid patch format of retainKeys",
            ),
            ({"spec": {"$setElementOrder": []}}, "invalid patch format of setElementOrder list"),
            ({"spec": {"$setElementOrderX/a": []}}, "invalid patch format of setElementOrder list"),
            (
                {"spec": {"$deleteFromPrimitiveList": ["a"]}},
                "invalid patch format of primitive list",
            ),
        ],
    )
    def test_malformed_directives_answer_400(self, patch: dict, message: str) -> None:
        live = deployment("strategy: {type: Recreate}")
        with pytest.raises(PatchError) as caught:
            smp(live, patch, DEPLOYMENT)
        assert (caught.value.code, caught.value.message) == (400, message)

    @pytest.mark.parametrize(
        ("patch", "message"),
        [
            ([], "json: cannot unmarshal array into Go value of type map[string]interface {}"),
            ("x", "json: cannot unmarshal string into Go value of type map[string]interface {}"),
            (None, "json: cannot unmarshal string into Go value of type map[string]interface {}"),
        ],
    )
    def test_a_patch_that_is_not_an_object_answers_400(self, patch: Any, message: str) -> None:
        with pytest.raises(PatchError) as caught:
            smp({}, patch, POD)
        assert caught.value.code == 400
        if patch is not None:
            assert caught.value.message == message

    def test_set_element_order_that_contradicts_the_patch(self) -> None:
        live = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}],
            }
        }
        with pytest.raises(PatchError) as caught:
            smp(live, patch, POD)
        assert caught.value.code == 500
        assert caught.value.message.startswith("the order in patch list:\n")


class TestKindsAndSchemas:
    @pytest.mark.parametrize(
        ("api_version", "kind", "supported"),
        [
            ("v1", "Pod", True),
            ("v1", "ConfigMap", True),
            ("apps/v1", "Deployment", True),
            ("batch/v1", "CronJob", True),
            ("networking.k8s.io/v1", "Ingress", True),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition", True),
            ("stable.example.com/v1", "CronTab", False),
            ("apps/v1", "CronTab", False),
        ],
    )
    def test_custom_resources_have_no_strategic_merge(
        self, api_version: str, kind: str, supported: bool
    ) -> None:
        assert supports_strategic_merge(api_version, kind) is supported
        assert (schema_for_kind(api_version, kind) is not None) is supported

    def test_kinds_without_list_metadata_still_merge_metadata(self) -> None:
        schema = schema_for_kind("v1", "ConfigMap")
        live = {"metadata": {"ownerReferences": [{"uid": "1"}]}, "data": {"a": "1"}}
        patch = {"metadata": {"ownerReferences": [{"uid": "2"}]}, "data": {"b": "2"}}
        assert smp(live, patch, schema) == {
            "metadata": {"ownerReferences": [{"uid": "2"}, {"uid": "1"}]},
            "data": {"a": "1", "b": "2"},
        }

    def test_lookup(self) -> None:
        assert DEPLOYMENT is not None
        meta, spec = DEPLOYMENT.lookup("spec")
        assert meta == PatchMeta()
        meta, template = spec.lookup("template")
        meta, pod_spec = template.lookup("spec")
        meta, container = pod_spec.lookup("containers")
        assert meta == PatchMeta("merge", "name") and container.name == "Container"
        meta, _ = pod_spec.lookup("volumes")
        assert meta.strategies == ["merge", "retainKeys"] and meta.merge_key == "name"
        meta, unknown = pod_spec.lookup("noSuchField")
        assert meta == PatchMeta() and unknown.lookup("x")[0] == PatchMeta()

    def test_any_object_honouring_the_protocol_is_a_schema(self) -> None:
        class EverythingMergesByName:
            name = "Anything"

            def lookup(self, field: str) -> tuple[PatchMeta, MergeSchema]:
                return PatchMeta("merge", "name"), self

        result = strategic_merge_patch(
            {"items": [{"name": "a", "v": 1}]},
            {"items": [{"name": "b"}]},
            EverythingMergesByName(),
        )
        assert result == {"items": [{"name": "b"}, {"name": "a", "v": 1}]}

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
        ),
        max_leaves=10,
    )

    # Upstream also drops null members of objects nested in new lists; keep lists scalar.
    patch_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=3)
        | st.lists(st.integers() | st.text(max_size=2), max_size=3),
        lambda inner: st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
        max_leaves=10,
    )

    @settings(max_examples=60, deadline=None)
    @given(
        st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4),
        st.dictionaries(st.sampled_from("abcd"), patch_values, max_size=4),
    )
    def test_without_patch_metadata_it_is_a_json_merge_patch(self, doc: dict, patch: dict) -> None:
        assert strategic_merge_patch(doc, patch, EMPTY_SCHEMA) == json_merge_patch(doc, patch)


# --------------------------------------------------------------------------------------------
# Upstream fixtures: apimachinery strategicpatch patch_test.go, current object + three-way
# patch -> result, against upstream's test type ``MergeItem``.

MERGE_ITEM = TableSchema(
    {
        "MergeItem": {
            "mergingList": ("MergeItem", "merge", "name"),
            "nonMergingList": ("MergeItem", "", ""),
            "mergingIntList": (None, "merge", ""),
            "nonMergingIntList": (None, "", ""),
            "mergeItemPtr": ("MergeItem", "merge", "name"),
            "replacingItem": (None, "replace", ""),
            "retainKeysMap": ("RetainKeysMergeItem", "retainKeys", ""),
            "retainKeysMergingList": ("MergeItem", "merge,retainKeys", "name"),
        },
        "RetainKeysMergeItem": {
            "mergingList": ("MergeItem", "merge", "name"),
            "mergingIntList": (None, "merge", ""),
        },
    },
    "MergeItem",
)

UPSTREAM_FIXTURES: list[tuple[str, str, str, str]] = [
    (
        "nested patch merge with empty list",
        "name: hi\nmergingList: [{name: hello2}]",
        "$setElementOrder/mergingList: [{name: hello}, {name: doesntexist}]\n"
        "mergingList: [{name: hello}]",
        "name: hi\nmergingList: [{name: hello}, {name: hello2}]",
    ),
    (
        "delete items in lists of scalars",
        "mergingIntList: [1, 2, 3, 4]",
        "$setElementOrder/mergingIntList: [1, 2]\n$deleteFromPrimitiveList/mergingIntList: [3]",
        "mergingIntList: [1, 2, 4]",
    ),
    (
        "delete all duplicate items in lists of scalars",
        "mergingIntList: [1, 2, 3, 3, 4]",
        "$setElementOrder/mergingIntList: [1, 2]\n$deleteFromPrimitiveList/mergingIntList: [3]",
        "mergingIntList: [1, 2, 4]",
    ),
    (
        "merge lists of maps",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]",
        "$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]\n"
        "mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]",
        "mergingList: [{name: 4, value: 4}, {name: 1, other: a},"
        " {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
    ),
    (
        "add field to map in merging list with conflict",
        "mergingList: [{name: 1, other: a}, {name: 3, value: 2, other: b}]",
        "$setElementOrder/mergingList: [{name: 1}, {name: 2}]\n"
        "mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]",
        "mergingList: [{name: 1, value: 1, other: a}, {name: 2, value: 2},"
        " {name: 3, value: 2, other: b}]",
    ),
    (
        "delete missing map from merging list with conflict",
        "mergingList: [{name: 3, other: a}]",
        "$setElementOrder/mergingList: [{name: 2}]\n"
        "mergingList: [{name: 2}, {name: 1, $patch: delete}]",
        "mergingList: [{name: 2}, {name: 3, other: a}]",
    ),
    (
        "add map and delete map from merging list",
        "mergingList: [{name: 1}, {name: 2, other: b}, {name: 4, other: c}]",
        "$setElementOrder/mergingList: [{name: 2}, {name: 3}]\n"
        "mergingList: [{name: 3}, {name: 1, $patch: delete}]",
        "mergingList: [{name: 2, other: b}, {name: 4, other: c}, {name: 3}]",
    ),
    (
        "add map and delete map from merging list with conflict",
        "mergingList: [{name: 1, other: a}, {name: 4, other: c}]",
        "$setElementOrder/mergingList: [{name: 2}, {name: 3}]\n"
        "mergingList: [{name: 2}, {name: 3}, {name: 1, $patch: delete}]",
        "mergingList: [{name: 4, other: c}, {name: 2}, {name: 3}]",
    ),
    (
        "delete field from map in merging list",
        "mergingList: [{name: 1, value: 1, other: a}, {name: 2, value: 2, other: b}]",
        "$setElementOrder/mergingList: [{name: 1}, {name: 2}]\n"
        "mergingList: [{name: 1, value: null}]",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]",
    ),
    (
        "replace non merging list nested in merging list with deletion conflict",
        "mergingList: [{name: 1, other: a, nonMergingList: [{name: 2, value: 2}]},"
        " {name: 2, other: b}]",
        "$setElementOrder/mergingList: [{name: 1}, {name: 2}]\n"
        "mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]",
        "mergingList: [{name: 1, other: a, nonMergingList: [{name: 1, value: 1}]},"
        " {name: 2, other: b}]",
    ),
    (
        "add field to map in merging list nested in merging list with deletion conflict",
        "mergingList: [{name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}]},"
        " {name: 2, other: b}]",
        "$setElementOrder/mergingList: [{name: 1}, {name: 2}]\n"
        "mergingList:\n"
        "- {$setElementOrder/mergingList: [{name: 2}, {name: 1}], name: 1,"
        " mergingList: [{name: 1, value: 1}]}",
        "mergingList: [{name: 1, other: a, mergingList: [{name: 2, value: 2, other: d},"
        " {name: 1, value: 1}]}, {name: 2, other: b}]",
    ),
    (
        "add map to merging list by pointer",
        "mergeItemPtr: [{name: 1, other: a}, {name: 3}]",
        "$setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]\nmergeItemPtr: [{name: 2}]",
        "mergeItemPtr: [{name: 1, other: a}, {name: 2}, {name: 3}]",
    ),
    (
        "merge lists of scalars",
        "mergingIntList: [1, 2, 4]",
        "$setElementOrder/mergingIntList: [1, 2, 3]\nmergingIntList: [3]",
        "mergingIntList: [1, 2, 3, 4]",
    ),
    (
        "add an item in a list of primitives and preserve order",
        "mergingIntList: [1, 4, 2]",
        "$setElementOrder/mergingIntList: [3, 1, 2]\nmergingIntList: [3]",
        "mergingIntList: [3, 1, 4, 2]",
    ),
    (
        "delete an item in a list of primitives and preserve order",
        "mergingIntList: [1, 2, 3]",
        "$setElementOrder/mergingIntList: [2, 1]\n$deleteFromPrimitiveList/mergingIntList: [3]",
        "mergingIntList: [2, 1]",
    ),
    (
        "delete an item in a list and preserve order",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
        "$setElementOrder/mergingList: [{name: 2}, {name: 1}]\n"
        "mergingList: [{name: 3, $patch: delete}]",
        "mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]",
    ),
    (
        "add and delete an item in a list and preserve order",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
        "$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]\n"
        "mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]",
        "mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]",
    ),
    (
        "set elements order in a list with server-only items",
        "mergingList: [{name: 1, other: a}, {name: 3, value: 3}, {name: 4, value: 4},"
        " {name: 2, value: 2}, {name: 9}]",
        "$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 3}, {name: 1}]",
        "mergingList: [{name: 4, value: 4}, {name: 2, value: 2}, {name: 3, value: 3},"
        " {name: 1, other: a}, {name: 9}]",
    ),
    (
        "set elements order in a list with server-only items 2",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 9}, {name: 3, value: 3},"
        " {name: 4, value: 4}]",
        "$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]",
        "mergingList: [{name: 2, value: 2}, {name: 1, other: a}, {name: 9},"
        " {name: 4, value: 4}, {name: 3, value: 3}]",
    ),
    (
        "set elements order in a list with server-only items 3",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 7}, {name: 9},"
        " {name: 8}, {name: 3, value: 3}, {name: 4, value: 4}]",
        "$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]",
        "mergingList: [{name: 2, value: 2}, {name: 1, other: a}, {name: 7}, {name: 9},"
        " {name: 8}, {name: 4, value: 4}, {name: 3, value: 3}]",
    ),
    (
        "retainKeys list of maps clears a field",
        "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]",
        "$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]\n"
        "retainKeysMergingList: [{$retainKeys: [name, value], name: foo}]",
        "retainKeysMergingList: [{name: bar}, {name: foo, value: a}]",
    ),
    (
        "retainKeys list of maps deletes a field and clear a field",
        "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]",
        "$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]\n"
        "retainKeysMergingList: [{$retainKeys: [name], name: foo, value: null}]",
        "retainKeysMergingList: [{name: bar}, {name: foo}]",
    ),
    (
        "delete and reorder in one list, reorder in another",
        "mergingList: [{name: a, value: a}, {name: b, value: b}]\n"
        "mergeItemPtr: [{name: c, value: c}, {name: d, value: d}]",
        "$setElementOrder/mergingList: [{name: b}]\n"
        "$setElementOrder/mergeItemPtr: [{name: d}, {name: c}]\n"
        "mergingList: [{$patch: delete, name: a}]",
        "mergingList: [{name: b, value: b}]\n"
        "mergeItemPtr: [{name: d, value: d}, {name: c, value: c}]",
    ),
]


@pytest.mark.parametrize(
    ("current", "patch", "result"),
    [pytest.param(c, p, r, id=d) for d, c, p, r in UPSTREAM_FIXTURES],
)
def test_upstream_three_way_fixtures(current: str, patch: str, result: str) -> None:
    assert strategic_merge_patch(y(current), y(patch), MERGE_ITEM) == y(result)


def test_retain_keys_on_a_map_field() -> None:
    current = y("retainKeysMap: {name: foo, value: a, simpleMap: {k: v}}")
    patch = y("retainKeysMap: {$retainKeys: [name, value], value: b}")
    assert strategic_merge_patch(current, patch, MERGE_ITEM) == y(
        "retainKeysMap: {name: foo, value: b}"
    )


def test_replace_strategy_on_a_map_field() -> None:
    current = y("replacingItem: {a: 1, b: 2}")
    patch = y("replacingItem: {b: 3}")
    assert strategic_merge_patch(current, patch, MERGE_ITEM) == y("replacingItem: {b: 3}")
