"""Properties of decoding, checked on random damage to valid objects: the compiled fast
check never accepts what the walk rejects, and decoding never raises."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.machinery.schema import decoder, fast

POD = "io.k8s.api.core.v1.Pod"
_BASE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "labels": {"a": "b"}, "creationTimestamp": "2024-01-01T00:00:00Z"},
    "spec": {"containers": [{
        "name": "c", "image": "i", "ports": [{"containerPort": 80}],
        "resources": {"limits": {"cpu": "1"}},
        "livenessProbe": {"httpGet": {"port": 8080}},
    }], "volumes": [{"name": "v", "secret": {"secretName": "s", "defaultMode": 420}}]},
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                    st.sampled_from(["1Gi", "abc", "500m", "1.2.3", "2024-01-01T00:00:00Z", "x"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _containers(obj: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every (container, key) position in the object."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*trail, k))
            out += _containers(v, (*trail, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*trail, i))
            out += _containers(v, (*trail, i))
    return out


POSITIONS = _containers(_BASE)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POSITIONS), values, st.booleans())
def test_fast_check_agrees_with_the_walk(position: tuple[Any, ...], value: Any,
                                         as_new_key: bool) -> None:
    obj = copy.deepcopy(_BASE)
    target = obj
    for step in position[:-1]:
        target = target[step]
    last = position[-1]
    if as_new_key and isinstance(target, dict):
        target[f"{last}x"] = value
    else:
        target[last] = value
    # What decode_object trusts: the compiled check, and no float (JSON Schema's integer
    # takes 0.0, Go's decoder does not).
    accepted = fast.fast_check(POD)(copy.deepcopy(obj)) and not decoder._has_float(obj)  # type: ignore[misc]
    report = decoder.decode(decoder.decoder_for(POD), obj)
    if accepted:
        assert report.failure is None, (position, value, report.failure)
        assert report.strict_errors() == [], (position, value)
