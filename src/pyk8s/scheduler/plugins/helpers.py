"""Rules several plugins share: toleration matching, node selector terms, score scaling.

These mirror upstream's ``v1helper`` (``TolerationsTolerateTaint``), ``nodeaffinity``
(``NodeSelectorRequirementsAsSelector``, ``MatchNodeSelectorTerms``) and
``helper.DefaultNormalizeScore``. They are pure functions over plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyk8s.scheduler.framework import MAX_NODE_SCORE

__all__ = [
    "default_normalize_score",
    "find_untolerated_taint",
    "match_node_selector_term",
    "match_node_selector_terms",
    "toleration_tolerates_taint",
]

Obj = Mapping[str, Any]


def toleration_tolerates_taint(toleration: Obj, taint: Obj) -> bool:
    """Upstream ``Toleration.ToleratesTaint``: empty effect and empty key with Exists are
    wildcards; ``Equal`` (the default operator) compares values."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def find_untolerated_taint(taints: Iterable[Obj], tolerations: Iterable[Obj],
                           effects: Iterable[str]) -> Obj | None:
    """The first taint with one of ``effects`` that no toleration tolerates."""
    wanted = set(effects)
    tolerations = list(tolerations)
    for taint in taints:
        if taint.get("effect") not in wanted:
            continue
        if not any(toleration_tolerates_taint(t, taint) for t in tolerations):
            return taint
    return None


def _requirement_matches(req: Obj, values: Mapping[str, str]) -> bool:
    key = req.get("key") or ""
    operator = req.get("operator")
    wanted = req.get("values") or []
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(wanted) != 1:
            return False
        try:
            have, bound = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def match_node_selector_term(term: Obj, node: Obj) -> bool:
    """A term ANDs its expressions (on labels) and fields (only ``metadata.name``); an empty
    term matches no node, as upstream."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not all(_requirement_matches(req, labels) for req in expressions):
        return False
    if fields:
        node_fields = {"metadata.name": meta.get("name") or ""}
        for req in fields:
            if req.get("key") != "metadata.name" or req.get("operator") not in ("In", "NotIn"):
                return False
            if not _requirement_matches(req, node_fields):
                return False
    return True


def match_node_selector_terms(terms: Iterable[Obj], node: Obj) -> bool:
    """Terms are ORed."""
    return any(match_node_selector_term(term, node) for term in terms)


def default_normalize_score(scores: list[int], reverse: bool = False,
                            max_priority: int = MAX_NODE_SCORE) -> None:
    """Scale (in place) so the best node gets ``max_priority`` (upstream
    ``DefaultNormalizeScore``); ``reverse`` flips it, for plugins whose raw score counts
    something bad."""
    max_count = max(scores, default=0)
    if max_count == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    if reverse:
        scores[:] = [max_priority - max_priority * score // max_count for score in scores]
    else:
        scores[:] = [max_priority * score // max_count for score in scores]

