"""Label and field selectors behave as apimachinery's ``labels`` and ``fields`` packages.

Cases follow upstream's selector_test.go files and kubectl-visible behaviour: what parses,
what the canonical string is, what matches, and the exact error wording.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.machinery.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EVERYTHING,
    EXISTS,
    IN,
    NOT_IN,
    FieldRequirement,
    LabelSelector,
    SelectorError,
    escape_field_value,
    label_key_errors,
    label_selector_dict_to_string,
    label_selector_from_dict,
    label_value_errors,
    new_requirement,
    parse_field_selector,
    parse_label_selector,
    selector_from_set,
    selector_matches,
    unsupported_fields,
)

NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end"
    " with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used"
    " for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    " 'my_value',  or '12345', regex used for validation is"
    " '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


class TestLabelSelectorParsing:
    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("z=c,x=a", "x=a,z=c"),  # sorted by key
            ("x!=a,y=b", "x!=a,y=b"),
            ("x==a", "x==a"),
            ("x=", "x="),
            ("x= ", "x="),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("!x", "!x"),
            ("x", "x"),
            ("x>1", "x>1"),
            ("x>1,z<5", "x>1,z<5"),
            ("x in (foo,bar)", "x in (bar,foo)"),
            ("x in (foo)", "x in (foo)"),
            ("x notin (a,b,a)", "x notin (a,b)"),
            ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
            ("x in (,)", "x in ()"),
            ("  x  in  ( a , b )  ,  y ", "x in (a,b),y"),
            ("a in (in,notin)", "a in (in,notin)"),  # keywords are values inside ()
            ("in in (x)", "in in (x)"),
            ("example.com/app=web", "example.com/app=web"),
            ("x=a\t", "x=a"),
        ],
    )
    def test_parses_to_canonical_string(self, text: str, canonical: str) -> None:
        assert str(parse_label_selector(text)) == canonical

    def test_operators_of_parsed_requirements(self) -> None:
        reqs = parse_label_selector("a=1,b!=2,c in (3),d notin (4),e,!f,g==5").requirements
        assert [(r.key, r.operator, r.values) for r in reqs] == [
            ("a", EQUALS, ("1",)),
            ("b", "!=", ("2",)),
            ("c", IN, ("3",)),
            ("d", NOT_IN, ("4",)),
            ("e", EXISTS, ()),
            ("f", DOES_NOT_EXIST, ()),
            ("g", "==", ("5",)),
        ]

    def test_empty_string_is_everything(self) -> None:
        selector = parse_label_selector("")
        assert selector.empty
        assert selector == EVERYTHING
        assert selector.matches({"any": "thing"})
        assert selector.matches(None)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            (
                "x b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            ("x=(", "unable to parse requirement: found '(', expected: identifier"),
            ("x in a", "unable to parse requirement: found 'a' expected: '('"),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
            ("x notin", "unable to parse requirement: found '' expected: '('"),
            (
                "x in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            ("x in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            ("=", "found '=', expected: !, identifier, or 'end of string'"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("Foo$", f'unable to parse requirement: <nil>: Invalid value: "Foo$": {NAME_RULE}'),
            (
                "x=a$b",
                f'unable to parse requirement: values[0][x]: Invalid value: "a$b": {VALUE_RULE}',
            ),
            (
                "x>a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt'"
                " operators, the value must be an integer",
            ),
            (
                "/x",
                'unable to parse requirement: <nil>: Invalid value: "/x": prefix part must be'
                " non-empty",
            ),
        ],
    )
    def test_rejects_with_upstream_message(self, text: str, message: str) -> None:
        with pytest.raises(SelectorError) as caught:
            parse_label_selector(text)
        assert str(caught.value) == message

    def test_selector_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            parse_label_selector("x in")

    def test_long_values_and_keys_are_rejected(self) -> None:
        with pytest.raises(SelectorError, match="must be no more than 63 characters"):
            parse_label_selector("x=" + "a" * 64)
        assert parse_label_selector("x=" + "a" * 63)
        assert label_key_errors("a" * 64) == ["name part must be no more than 63 characters"]

    def test_key_syntax(self) -> None:
        assert label_key_errors("app.kubernetes.io/name") == []
        assert label_key_errors("x") == []
        assert label_key_errors("Example.com/x")[0].startswith(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric"
        )
        assert label_key_errors("a/b/c")[0].startswith("a qualified name must consist of")
        assert label_key_errors("x/") == ["name part must be non-empty", f"{NAME_RULE}"]

    def test_value_syntax(self) -> None:
        assert label_value_errors("") == []
        assert label_value_errors("a.b-c_d") == []
        assert label_value_errors("-a") == [VALUE_RULE]
        assert label_value_errors("a\n") == [VALUE_RULE]  # no trailing-newline loophole

    @settings(max_examples=30, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.from_regex(r"[a-z]([a-z0-9.-]{0,10}[a-z0-9])?", fullmatch=True),
                st.sampled_from(["=", "==", "!=", " in ", " notin ", "", "!", ">", "<"]),
                st.lists(
                    st.from_regex(r"[A-Za-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=3
                ),
            ),
            max_size=4,
        )
    )
    def test_canonical_string_parses_back_to_the_same_selector(self, clauses) -> None:
        parts = []
        for key, op, values in clauses:
            if op in ("", "!"):
                parts.append(op + key)
            elif op.strip() in ("in", "notin"):
                # upstream rejects some runs of empty values, e.g. "(,,)"
                parts.append(f"{key}{op}({','.join(v for v in values if v) or 'x'})")
            elif op in (">", "<"):
                parts.append(f"{key}{op}{len(values[0])}")
            else:
                parts.append(f"{key}{op}{values[0]}")
        selector = parse_label_selector(",".join(parts))
        assert parse_label_selector(str(selector)) == selector


class TestLabelSelectorMatching:
    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ("x=y", {"x": "y"}, True),
            ("x=y", {"x": "z"}, False),
            ("x=y", {}, False),
            ("x==y", {"x": "y"}, True),
            ("x!=y", {"x": "z"}, True),
            ("x!=y", {}, True),  # a missing label is "not equal"
            ("x!=y", {"x": "y"}, False),
            ("x in (a,b)", {"x": "b"}, True),
            ("x in (a,b)", {}, False),
            ("x notin (a,b)", {}, True),
            ("x notin (a,b)", {"x": "a"}, False),
            ("x", {"x": ""}, True),
            ("x", {"y": "1"}, False),
            ("!x", {"y": "1"}, True),
            ("!x", {"x": "1"}, False),
            ("x>1", {"x": "2"}, True),
            ("x>1", {"x": "1"}, False),
            ("x<1", {"x": "-3"}, True),
            ("x>1", {"x": "two"}, False),  # non-integer label values never compare
            ("x>1", {}, False),
            ("x=", {"x": ""}, True),
            ("x=", {}, False),
            ("x=a,y=b", {"x": "a", "y": "b", "z": "c"}, True),
            ("x=a,y=b", {"x": "a"}, False),
        ],
    )
    def test_matches(self, text: str, labels: dict[str, str], expected: bool) -> None:
        assert parse_label_selector(text).matches(labels) is expected

    def test_requires_exact_match(self) -> None:
        selector = parse_label_selector("app=web,tier in (db),x in (a,b),y!=c")
        assert selector.requires_exact_match("app") == "web"
        assert selector.requires_exact_match("tier") == "db"
        assert selector.requires_exact_match("x") is None
        assert selector.requires_exact_match("y") is None
        assert selector.requires_exact_match("nope") is None

    def test_selector_from_a_label_set(self) -> None:
        selector = selector_from_set({"tier": "web", "app": "shop"})
        assert str(selector) == "app=shop,tier=web"
        assert selector.matches({"app": "shop", "tier": "web", "x": "y"})
        assert not selector.matches({"app": "shop"})
        assert selector_from_set({}) == EVERYTHING
        assert selector_from_set(None) == EVERYTHING

    def test_add_keeps_requirements_sorted(self) -> None:
        selector = parse_label_selector("b=1").add(new_requirement("a", EXISTS))
        assert str(selector) == "a,b=1"


class TestMetaV1LabelSelector:
    def test_nil_selects_nothing_and_empty_selects_everything(self) -> None:
        assert label_selector_from_dict(None) is None
        assert not selector_matches(None, {"a": "b"})
        assert not selector_matches(None, {})
        empty = label_selector_from_dict({})
        assert empty == EVERYTHING and empty.empty
        assert selector_matches(empty, {"a": "b"})
        assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}) == EVERYTHING

    def test_match_labels_and_expressions(self) -> None:
        selector = label_selector_from_dict(
            {
                "matchLabels": {"tier": "web", "app": "shop"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "Exists"},
                    {"key": "track", "operator": "NotIn", "values": ["beta"]},
                ],
            }
        )
        assert isinstance(selector, LabelSelector)
        assert str(selector) == (
            "app=shop,env in (canary,prod),!legacy,tier=web,track notin (beta),zone"
        )
        good = {"app": "shop", "tier": "web", "env": "prod", "zone": "a"}
        assert selector.matches(good)
        assert not selector.matches({**good, "legacy": "1"})
        assert not selector.matches({**good, "track": "beta"})
        assert not selector.matches({k: v for k, v in good.items() if k != "zone"})

    @pytest.mark.parametrize(
        ("selector", "message"),
        [
            (
                {"matchExpressions": [{"key": "x", "operator": "foo"}]},
                '"foo" is not a valid label selector operator',
            ),
            (
                {"matchExpressions": [{"key": "x", "operator": "in", "values": ["a"]}]},
                '"in" is not a valid label selector operator',
            ),
            (
                {"matchExpressions": [{"key": "x", "operator": "In"}]},
                "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set"
                " can't be empty",
            ),
            (
                {"matchExpressions": [{"key": "x", "operator": "Exists", "values": ["a"]}]},
                'values: Invalid value: []string{"a"}: values set must be empty for exists and'
                " does not exist",
            ),
            (
                {"matchLabels": {"x": "a b"}},
                f'values[0][x]: Invalid value: "a b": {VALUE_RULE}',
            ),
            (
                {"matchExpressions": [{"key": "Bad$", "operator": "In", "values": ["ok"]}]},
                f'key: Invalid value: "Bad$": {NAME_RULE}',
            ),
            (
                {"matchExpressions": [{"key": "Bad$", "operator": "In", "values": ["no way"]}]},
                f'[key: Invalid value: "Bad$": {NAME_RULE}, values[0][Bad$]: Invalid value:'
                f' "no way": {VALUE_RULE}]',
            ),
        ],
    )
    def test_invalid_selectors(self, selector: dict, message: str) -> None:
        with pytest.raises(SelectorError) as caught:
            label_selector_from_dict(selector)
        assert str(caught.value) == message

    @pytest.mark.parametrize(
        ("selector", "text"),
        [
            (None, ""),
            ({}, ""),
            ({"matchLabels": {"app": "web"}}, "app=web"),
            (
                {
                    "matchLabels": {"c": "3", "a": "1"},
                    "matchExpressions": [{"key": "b", "operator": "In", "values": ["y", "x"]}],
                },
                "a=1,b in (x,y),c=3",
            ),
        ],
    )
    def test_string_form_for_scale_status(self, selector: dict | None, text: str) -> None:
        assert label_selector_dict_to_string(selector) == text

    def test_new_requirement_validates_operator(self) -> None:
        with pytest.raises(SelectorError, match='operator: Unsupported value: "~"'):
            new_requirement("a", "~", ["b"])
        with pytest.raises(
            SelectorError, match="exact-match compatibility requires one single value"
        ):
            new_requirement("a", EQUALS, ["b", "c"])


class TestFieldSelectors:
    @pytest.mark.parametrize(
        ("text", "canonical", "requirements"),
        [
            ("", "", []),
            ("a=b", "a=b", [("a", "=", "b")]),
            ("a==b", "a=b", [("a", "=", "b")]),
            ("a!=b", "a!=b", [("a", "!=", "b")]),
            ("a=", "a=", [("a", "=", "")]),
            ("z=1,a=2", "a=2,z=1", [("a", "=", "2"), ("z", "=", "1")]),
            ("a=b,", "a=b", [("a", "=", "b")]),
            (
                "metadata.name=x,spec.nodeName!=",
                "metadata.name=x,spec.nodeName!=",
                [("metadata.name", "=", "x"), ("spec.nodeName", "!=", "")],
            ),
            (r"a=b\,c", r"a=b\,c", [("a", "=", "b,c")]),
            (r"a=b\=c\\d", r"a=b\=c\\d", [("a", "=", "b=c\\d")]),
        ],
    )
    def test_parses(self, text: str, canonical: str, requirements: list) -> None:
        selector = parse_field_selector(text)
        assert str(selector) == canonical
        assert [tuple(r) for r in selector.requirements] == requirements
        assert all(isinstance(r, FieldRequirement) for r in selector.requirements)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
            ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
            ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ],
    )
    def test_rejects(self, text: str, message: str) -> None:
        with pytest.raises(SelectorError) as caught:
            parse_field_selector(text)
        assert str(caught.value) == message

    @pytest.mark.parametrize(
        ("text", "fields", "expected"),
        [
            ("", {}, True),
            ("status.phase=Running", {"status.phase": "Running"}, True),
            ("status.phase=Running", {"status.phase": "Pending"}, False),
            ("status.phase!=Running", {"status.phase": "Pending"}, True),
            ("spec.nodeName=", {}, True),  # absent fields compare as ""
            ("spec.nodeName!=", {}, False),
            ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
            ("a=1,b=2", {"a": "1", "b": "2"}, True),
            ("a=1,b=2", {"a": "1", "b": "3"}, False),
        ],
    )
    def test_matches(self, text: str, fields: dict[str, str], expected: bool) -> None:
        assert parse_field_selector(text).matches(fields) is expected

    def test_empty_and_exact_match(self) -> None:
        assert parse_field_selector("").empty
        selector = parse_field_selector("metadata.name=x,spec.a!=b")
        assert not selector.empty
        assert selector.requires_exact_match("metadata.name") == "x"
        assert selector.requires_exact_match("spec.a") is None

    def test_unsupported_fields(self) -> None:
        selector = parse_field_selector("spec.foo=1,metadata.name=x,spec.foo!=2,status.bar=3")
        allowed = {"metadata.name", "metadata.namespace"}
        assert unsupported_fields(selector, allowed) == ["spec.foo", "status.bar"]
        assert unsupported_fields(parse_field_selector("metadata.name=x"), allowed) == []

    @settings(max_examples=60, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
    def test_escaped_values_round_trip(self, value: str) -> None:
        selector = parse_field_selector("f=" + escape_field_value(value))
        assert selector.requirements == (FieldRequirement("f", "=", value),)
        assert parse_field_selector(str(selector)) == selector
