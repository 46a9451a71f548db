"""FieldsV1: paths and sets spelled as upstream's managedFields spell them."""

from __future__ import annotations

import pytest

from pyk8s.machinery.managedfields import fieldpath

C = 'k:{"name":"c"}'


class TestEncoding:
    def test_a_member_with_members_below_is_written_with_a_dot(self) -> None:
        fields = frozenset({("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app")})
        assert fieldpath.encode(fields) == {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}

    def test_containers_that_are_not_members_have_no_dot(self) -> None:
        assert fieldpath.encode(frozenset({("f:spec", "f:replicas")})) == {
            "f:spec": {"f:replicas": {}}}

    def test_children_are_ordered_fields_then_keys_then_values(self) -> None:
        fields = frozenset({("f:b",), ('v:"x"',), (C,), ("f:a",)})
        assert list(fieldpath.encode(fields)) == ["f:a", "f:b", C, 'v:"x"']

    @pytest.mark.parametrize("fields", [
        frozenset(),
        frozenset({("f:spec", "f:containers", C), ("f:spec", "f:containers", C, "f:image")}),
        frozenset({("f:metadata", "f:finalizers", 'v:"a"'), ("f:data", "f:x")}),
    ])
    def test_decode_inverts_encode(self, fields: fieldpath.FieldSet) -> None:
        assert fieldpath.decode(fieldpath.encode(fields)) == fields

    @pytest.mark.parametrize("bad", [[], {"x:y": {}}, {"f:a": 1}])
    def test_malformed_values_are_rejected(self, bad: object) -> None:
        with pytest.raises(fieldpath.DecodeError):
            fieldpath.decode(bad)

    @pytest.mark.parametrize("value", [
        {}, {"f:a": {}}, {"f:a": {".": {}, "f:b": {}}}, {"f:a": {".": {"junk": 1}}},
        {C: {".": {}, "f:image": {}}}, [], {"x:y": {}}, {"f:a": 1}, {"f:a": {"f:b": []}},
        {"f:a": {"q": {}}}, "f:a",
    ])
    def test_valid_agrees_with_decode_without_decoding(self, value: object) -> None:
        try:
            fieldpath.decode(value)
            decodes = True
        except fieldpath.DecodeError:
            decodes = False
        assert fieldpath.valid(value) is decodes
        assert fieldpath.valid(value) is decodes  # again, from what the first check remembered

    def test_valid_remembers_only_valid_encodings_and_a_bounded_number(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(fieldpath, "_VALID_ENCODINGS", {})
        monkeypatch.setattr(fieldpath, "_VALID_LIMIT", 2)
        assert not fieldpath.valid({"f:a": {"q": {}}})
        assert fieldpath._VALID_ENCODINGS == {}
        for name in ("a", "b", "c"):
            assert fieldpath.valid({f"f:{name}": {}})
        assert list(fieldpath._VALID_ENCODINGS) == [b'{"f:b":{}}', b'{"f:c":{}}']
        assert not fieldpath.valid({"f:b": {"f:x": 1}})  # not mistaken for a remembered one


class TestWithoutPrefixes:
    FIELDS = frozenset({(), ("f:spec",), ("f:spec", "f:replicas"), ("f:status", "f:phase"),
                        ("f:metadata", "f:labels", "f:app"), ("f:metadata", "f:name")})

    @pytest.mark.parametrize("roots", [
        frozenset(),
        frozenset({("f:spec",)}),
        frozenset({("f:spec",), ("f:metadata",)}),
        frozenset({("f:metadata", "f:labels")}),
        frozenset({("f:spec",), ("f:metadata", "f:labels")}),
        frozenset({()}),
    ])
    def test_removes_every_path_at_or_below_a_root(self, roots: fieldpath.FieldSet) -> None:
        expected = frozenset(p for p in self.FIELDS
                             if not any(p[:len(r)] == r for r in roots))
        assert fieldpath.without_prefixes(self.FIELDS, roots) == expected


class TestPathText:
    @pytest.mark.parametrize(("path", "text"), [
        (("f:spec", "f:replicas"), ".spec.replicas"),
        (("f:spec", "f:containers", C, "f:image"), '.spec.containers[name="c"].image'),
        (("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}'), '.ports[containerPort=80,protocol="TCP"]'),
        (("f:finalizers", 'v:"a"'), '.finalizers[="a"]'),
        (("f:args", "i:2"), ".args[2]"),
    ])
    def test_as_upstream_prints_it(self, path: fieldpath.Path, text: str) -> None:
        assert fieldpath.to_string(path) == text

    def test_key_elements_sort_their_keys(self) -> None:
        assert fieldpath.key_element({"protocol": "TCP", "containerPort": 80},
                                     ("protocol", "containerPort")) == \
            'k:{"containerPort":80,"protocol":"TCP"}'
