"""The scheduling framework: extension points, their result type, and the runner.

A scheduling cycle is a pipeline (upstream ``framework/interface.go``)::

    PreFilter → Filter (per node) → [PostFilter if no node fits]
              → PreScore → Score (+ NormalizeScore, x weight) → Reserve → Bind

Each extension point is a small :class:`typing.Protocol`; a plugin is any object with a
``name`` that implements one or more of them, built by a factory from the flat registry
(``plugins/registry.py``). :class:`Framework` runs a profile's plugins in order with
upstream's semantics:

- every result is a :class:`Status`. Its :class:`Code` decides what happens next (see the
  enum), and its ``reasons`` are sentences for users: they end up, counted per node, in the
  ``FailedScheduling`` event and the pod's ``PodScheduled`` condition (:class:`FitError`).
- a rejected node is an expected outcome, returned as a value. Exceptions are bugs or I/O;
  the runner turns a plugin's exception into an ``Error`` status naming the plugin, so one
  broken plugin costs one pod a retry, not the scheduler.
- Filter stops at the first plugin that rejects a node; PreFilter may return ``Skip`` to
  switch off that plugin's Filter for the cycle, or a node-name set to restrict the search.
- Bind asks each binder in turn until one does not return ``Skip``.

Filter and Score are synchronous (pure computation on in-memory :class:`NodeInfo`); PostFilter
and Bind are ``async`` because they talk to the API server.

Batches (a Python-specific addition; upstream runs Filter and Score per node on 16
goroutines): a cycle filters and scores hundreds of nodes, and in CPython a call per node per
plugin costs more than the plugin's work. So a plugin may also offer ``filter_nodes`` /
``score_nodes`` (:class:`BatchFilterPlugin`, :class:`BatchScorePlugin`) that give the *same
verdicts and scores* as calling ``filter`` / ``score`` on each node, in one pass over the
nodes' columns (``columns.py``: the algorithm hands them a :class:`~.columns.NodeBatch`;
:func:`~.columns.as_batch` serves callers with a plain list). The runner uses them when
present and falls back to one call per node otherwise; ``filter`` and ``score`` stay the
reference (preemption's what-if runs call them on single nodes). Scores travel as lists in
node order, as upstream's ``NodeScoreList``. A batch scorer may go one step further with
``weighted_scores`` (:class:`WeightedScorePlugin`): its normalized scores times its weight,
which equal what score + normalize + weight would give, in one lookup per node.

Deliberately absent for now: Permit (``Wait``), PreBind/PostBind, QueueSort as a plugin (the
queue orders by priority, then arrival, like ``PrioritySort``), extenders.
"""

from __future__ import annotations

import enum
import logging
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from pyk8s.scheduler.columns import NodeBatch
from pyk8s.scheduler.nodeinfo import NodeInfo, PodInfo
from pyk8s.scheduler.settings import Profile
from pyk8s.scheduler.snapshot import Snapshot

if TYPE_CHECKING:
    from pyk8s.client import ApiClient
    from pyk8s.client.clock import Clock

__all__ = [
    "MAX_NODE_SCORE",
    "SUCCESS",
    "BatchFilterPlugin",
    "BatchScorePlugin",
    "BindPlugin",
    "ClusterEvent",
    "Code",
    "CycleState",
    "Diagnosis",
    "EnqueueExtensions",
    "FilterPlugin",
    "FitError",
    "Framework",
    "Handle",
    "NodeInfo",
    "Plugin",
    "PodInfo",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreFilterPlugin",
    "PreFilterResult",
    "PreScorePlugin",
    "ReservePlugin",
    "ScoreExtensions",
    "ScorePlugin",
    "Snapshot",
    "Status",
    "WeightedScorePlugin",
]

log = logging.getLogger("pyk8s.scheduler")

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0


class Code(enum.IntEnum):
    """What a plugin's verdict means for the pod (upstream ``framework.Code``)."""

    SUCCESS = 0
    """Go on."""
    ERROR = 1
    """Something broke (not the pod's fault): the cycle aborts, the pod is retried with backoff."""
    UNSCHEDULABLE = 2
    """Not here, for now: preemption may help (evicting lower-priority pods could make room)."""
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    """Not here, and preemption cannot change that (a taint, a node selector, ...)."""
    WAIT = 4
    """Permit only: hold the pod (reserved for the Permit extension point)."""
    SKIP = 5
    """PreFilter/PreScore: this plugin has nothing to do for the pod; Bind: not my pod."""


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's verdict: a code, reasons for users, and (set by the runner) who said it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @classmethod
    def skip(cls) -> Status:
        return _SKIP

    @property
    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    @property
    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else Status(self.code, self.reasons, plugin)


SUCCESS = Status()
_SKIP = Status(Code.SKIP)  # shared, as every instance is immutable


class CycleState:
    """Scratch space shared by the plugins during one pod's cycle (keyed by plugin name)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()
        # The filter plugins not skipped, keyed by the skip set (identity, size) they were
        # computed for: run_filter runs per node, the list is built once per cycle.
        self.filters: tuple[int, int, list[Any]] | None = None

    def read(self, key: str) -> Any:
        return self._data.get(key)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def clone(self) -> CycleState:
        copy = CycleState()
        copy._data = dict(self._data)
        copy.skip_filter_plugins = set(self.skip_filter_plugins)
        copy.skip_score_plugins = set(self.skip_score_plugins)
        copy.filters = self.filters
        return copy


@dataclass(frozen=True)
class PreFilterResult:
    """PreFilter's answer beyond its status: only these nodes need filtering (None: all)."""

    node_names: frozenset[str] | None = None


@dataclass(frozen=True)
class PostFilterResult:
    """A PostFilter that made room (preemption) names the node the pod should wait for."""

    nominated_node_name: str = ""


class ClusterEvent(NamedTuple):
    """A change in the cluster that may make pods schedulable (upstream ``ClusterEvent``).

    ``resource`` is ``"Node"`` or ``"AssignedPod"`` (a pod bound to a node); ``action`` is
    ``"Add"``, ``"Update"`` or ``"Delete"``.
    """

    resource: str
    action: str


NODE_ADD = ClusterEvent("Node", "Add")
NODE_UPDATE = ClusterEvent("Node", "Update")
NODE_DELETE = ClusterEvent("Node", "Delete")
ASSIGNED_POD_ADD = ClusterEvent("AssignedPod", "Add")
ASSIGNED_POD_UPDATE = ClusterEvent("AssignedPod", "Update")
ASSIGNED_POD_DELETE = ClusterEvent("AssignedPod", "Delete")
NODE_CHANGES = (NODE_ADD, NODE_UPDATE)


# --- extension points -------------------------------------------------------------------


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> tuple[PreFilterResult | None, Status]: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class BatchFilterPlugin(Protocol):
    """Optional for filter plugins: Filter over many nodes in one call.

    Returns ``(position in nodes, status)`` for every node ``filter`` would not pass, in
    increasing position order; the nodes not listed pass. Must agree with ``filter``."""

    name: str

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]: ...


@runtime_checkable
class PostFilterPlugin(Protocol):
    name: str

    async def post_filter(self, state: CycleState, pod: PodInfo,
                          statuses: Mapping[str, Status]) -> tuple[PostFilterResult | None, Status]:
        ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]: ...


@runtime_checkable
class BatchScorePlugin(Protocol):
    """Optional for score plugins: the raw scores of many nodes in one call, in node order;
    each must equal ``score``'s for that node (errors are raised, and become an Error).

    A plugin whose normalized scores are within 0..MAX_NODE_SCORE by construction may say
    so with a class attribute ``scores_in_range = True``: the runner then skips the range
    check, two passes over the scores (the in-tree plugins do; others are checked)."""

    name: str

    def score_nodes(self, state: CycleState, pod: PodInfo,
                    nodes: Sequence[NodeInfo]) -> list[int]: ...


@runtime_checkable
class WeightedScorePlugin(Protocol):
    """Optional for batch score plugins with ``scores_in_range``: the final contribution of
    many nodes in one call, i.e. ``normalize_score(score_nodes(...))`` times ``weight``, or
    None where the plugin has no shortcut for this cycle (the runner then takes the usual
    way). For a plugin whose normalized score is a function of few per-node figures, one
    lookup per node replaces the scoring, normalizing and weighting passes."""

    name: str

    def weighted_scores(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        weight: int) -> list[int] | None: ...


@runtime_checkable
class ScoreExtensions(Protocol):
    """Optional for score plugins: rescale raw scores (in place) to 0..MAX_NODE_SCORE.
    ``scores[i]`` is the score of ``nodes[i]`` (upstream's ``NodeScoreList``)."""

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        scores: list[int]) -> Status:
        ...


@runtime_checkable
class ReservePlugin(Protocol):
    name: str

    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status: ...

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None: ...


@runtime_checkable
class EnqueueExtensions(Protocol):
    """Optional for plugins that reject pods: the events after which a pod this plugin
    rejected is worth retrying. A plugin without it is assumed to care about every event."""

    def events_to_register(self) -> tuple[ClusterEvent, ...]: ...


@runtime_checkable
class BindPlugin(Protocol):
    name: str

    async def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status: ...


# --- what plugins may reach -------------------------------------------------------------


@dataclass
class Handle:
    """What a plugin factory gets besides its arguments (upstream ``framework.Handle``).

    ``snapshot`` is replaced by the scheduler at the start of every cycle; ``framework`` is
    set once the framework holding the plugin exists (preemption re-runs the filters).
    ``nominated_pods(node_name)`` lists pods a preemption promised the node to, and
    ``nominated_nodes()`` the names of the nodes that have any (the two are set together);
    ``record_event(pod, type, reason, message)`` tells users about a pod (an Event).
    """

    client: ApiClient | None = None
    clock: Clock | None = None
    snapshot: Snapshot = field(default_factory=lambda: Snapshot([]))
    framework: Framework | None = None
    nominated_pods: Callable[[str], Sequence[PodInfo]] = lambda _node: ()
    nominated_nodes: Callable[[], Collection[str]] = lambda: ()
    record_event: Callable[[Mapping[str, Any], str, str, str], None] = \
        lambda _pod, _type, _reason, _message: None


Factory = Callable[[Mapping[str, Any], Handle], Any]


# --- failure reporting ------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each node's rejecting status, and the plugins that rejected."""

    node_statuses: dict[str, Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


@dataclass
class FitError:
    """No node fits; ``message`` is upstream's ``FitError.Error()`` text, word for word."""

    pod: PodInfo
    num_all_nodes: int
    diagnosis: Diagnosis

    @property
    def message(self) -> str:
        msg = f"0/{self.num_all_nodes} nodes are available:"
        if self.diagnosis.pre_filter_msg:
            msg += f" {self.diagnosis.pre_filter_msg}."
        else:
            histogram: dict[str, int] = {}
            for status in self.diagnosis.node_statuses.values():
                for reason in status.reasons:
                    histogram[reason] = histogram.get(reason, 0) + 1
            parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
            if parts:
                msg += f" {', '.join(parts)}."
        post = self.diagnosis.post_filter_msg
        if post:  # one period, as upstream since 1.30 (preemption's text ends with one)
            msg += f" {post[:-1] if post.endswith('.') else post}."
        return msg


# --- the runner -------------------------------------------------------------------------


class Framework:
    """One profile's plugins, grouped by extension point, run with upstream's semantics."""

    def __init__(self, profile: Profile, registry: Mapping[str, Factory],
                 handle: Handle | None = None) -> None:
        self.profile = profile
        self.scheduler_name = profile.scheduler_name
        self.handle = handle or Handle()
        self.handle.framework = self
        self.plugins: dict[str, Any] = {}
        self.weights: dict[str, int] = {}
        for spec in profile.plugins():
            factory = registry.get(spec.name)
            if factory is None:
                raise ValueError(f"plugin {spec.name!r} is not registered")
            plugin = factory(profile.plugin_args.get(spec.name, {}), self.handle)
            self.plugins[spec.name] = plugin
            self.weights[spec.name] = spec.weight or 1
        plugins = list(self.plugins.values())
        self.pre_filter_plugins = [p for p in plugins if isinstance(p, PreFilterPlugin)]
        self.filter_plugins = [p for p in plugins if isinstance(p, FilterPlugin)]
        self.post_filter_plugins = [p for p in plugins if isinstance(p, PostFilterPlugin)]
        self.pre_score_plugins = [p for p in plugins if isinstance(p, PreScorePlugin)]
        self.score_plugins = [p for p in plugins if isinstance(p, ScorePlugin)]
        # isinstance() on a runtime Protocol inspects the class each time: decide once.
        self.normalizing = {p.name for p in self.score_plugins if isinstance(p, ScoreExtensions)}
        self.batch_filters = {p.name for p in self.filter_plugins
                              if isinstance(p, BatchFilterPlugin)}
        self.batch_scores = {p.name for p in self.score_plugins if isinstance(p, BatchScorePlugin)}
        self.in_range = {p.name for p in self.score_plugins
                         if p.name in self.batch_scores and getattr(p, "scores_in_range", False)}
        self.weighted = {p.name for p in self.score_plugins
                         if p.name in self.in_range and isinstance(p, WeightedScorePlugin)}
        self.reserve_plugins = [p for p in plugins if isinstance(p, ReservePlugin)]
        self.bind_plugins = [p for p in plugins if isinstance(p, BindPlugin)]

    # PreFilter ---------------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo,
                       nodes: Sequence[NodeInfo]) -> tuple[PreFilterResult | None, Status]:
        """Prepare the cycle; a rejection here rejects every node at once."""
        result: PreFilterResult | None = None
        for plugin in self.pre_filter_plugins:
            try:
                res, status = plugin.pre_filter(state, pod, nodes)
            except Exception as exc:  # a plugin bug must not stop the scheduler
                log.exception("PreFilter plugin %s failed on %s", plugin.name, pod.key)
                return None, Status.error(f"running PreFilter plugin {plugin.name!r}: {exc}")
            if status.is_skip:
                state.skip_filter_plugins.add(plugin.name)
                continue
            if not status.is_success:
                return None, status.with_plugin(plugin.name)
            if res is not None and res.node_names is not None:
                if result is None or result.node_names is None:
                    result = res
                else:
                    result = PreFilterResult(result.node_names & res.node_names)
                if not result.node_names:
                    return result, Status.unresolvable(
                        "node(s) didn't satisfy plugin(s) " f"[{plugin.name}] simultaneously"
                    ).with_plugin(plugin.name)
        return result, SUCCESS

    # Filter ------------------------------------------------------------------------------

    def _active_filters(self, state: CycleState) -> list[Any]:
        skip = state.skip_filter_plugins
        cached = state.filters
        if cached is None or cached[0] != id(skip) or cached[1] != len(skip):
            cached = state.filters = (id(skip), len(skip),
                                      [p for p in self.filter_plugins if p.name not in skip])
        return cached[2]

    def run_filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        """The first plugin that rejects the node decides; later ones are not asked."""
        for plugin in self._active_filters(state):
            try:
                status = plugin.filter(state, pod, node)
            except Exception as exc:
                log.exception("Filter plugin %s failed on %s", plugin.name, pod.key)
                return Status.error(f"running Filter plugin {plugin.name!r}: {exc}")
            if status.code:
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_filter_with_nominated_pods(self, state: CycleState, pod: PodInfo,
                                       node: NodeInfo) -> Status:
        """Filter as if pods nominated to this node (by preemption) with at least the pod's
        priority were already running there, so a preemptor's room is not taken by others."""
        nominated = self.handle.nominated_pods(node.name)
        if nominated:
            nominated = [p for p in nominated if p.priority >= pod.priority and p.uid != pod.uid]
        if nominated:
            with_nominated = node.clone()
            for other in nominated:
                with_nominated.add_pod(other)
            status = self.run_filter(state, pod, with_nominated)
            if not status.is_success:
                return status
        return self.run_filter(state, pod, node)

    def run_filter_nodes(self, state: CycleState, pod: PodInfo,
                         batch: NodeBatch) -> dict[int, Status]:
        """:meth:`run_filter_with_nominated_pods` for every node of the batch, plugin by plugin
        over the nodes still standing: the statuses of the nodes that did not pass, by
        snapshot position (``Error`` ones included; the caller decides which it reached)."""
        rejected: dict[int, Status] = {}
        nominated = self.handle.nominated_nodes()
        if nominated:
            # Nodes promised to preemptors are judged one by one, with their nominated pods.
            index = batch.columns.index
            held = sorted(j for name in nominated
                          if (p := index.get(name)) is not None
                          and (j := batch.index_of(p)) is not None)
            if held:
                for j in held:
                    status = self.run_filter_with_nominated_pods(state, pod, batch[j])
                    if status.code:
                        rejected[batch.positions[j]] = status
                batch = batch.without(held)
        for plugin in self._active_filters(state):
            if not len(batch):
                break
            if plugin.name in self.batch_filters:
                try:
                    out = plugin.filter_nodes(state, pod, batch)
                except Exception:  # find the node it failed on, one by one
                    out = self._filter_each(plugin, state, pod, batch)
            else:
                out = self._filter_each(plugin, state, pod, batch)
            if not out:
                continue
            name = plugin.name
            last: Status | None = None
            named = SUCCESS
            positions = batch.positions
            for j, status in out:
                if status is not last:
                    last, named = status, status.with_plugin(name)
                rejected[positions[j]] = named
            batch = batch.without(j for j, _ in out)
        return rejected

    def _filter_each(self, plugin: Any, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]:
        out: list[tuple[int, Status]] = []
        filter_ = plugin.filter
        for j, node in enumerate(nodes):
            try:
                status = filter_(state, pod, node)
            except Exception as exc:
                log.exception("Filter plugin %s failed on %s", plugin.name, pod.key)
                status = Status.error(f"running Filter plugin {plugin.name!r}: {exc}")
            if status.code:
                out.append((j, status))
        return out

    # PostFilter --------------------------------------------------------------------------

    async def run_post_filter(self, state: CycleState, pod: PodInfo,
                              statuses: Mapping[str, Status]) -> tuple[PostFilterResult | None, Status]:
        """Try to make room (preemption) once no node fits; the first success wins."""
        reasons: list[str] = []
        for plugin in self.post_filter_plugins:
            try:
                result, status = await plugin.post_filter(state, pod, statuses)
            except Exception as exc:
                log.exception("PostFilter plugin %s failed on %s", plugin.name, pod.key)
                return None, Status.error(f"running PostFilter plugin {plugin.name!r}: {exc}")
            if status.is_success:
                return result, status.with_plugin(plugin.name)
            if status.code == Code.ERROR:
                return None, status.with_plugin(plugin.name)
            reasons.extend(status.reasons)
        return None, Status(Code.UNSCHEDULABLE, tuple(reasons))

    # Score -------------------------------------------------------------------------------

    def run_pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        for plugin in self.pre_score_plugins:
            try:
                status = plugin.pre_score(state, pod, nodes)
            except Exception as exc:
                log.exception("PreScore plugin %s failed on %s", plugin.name, pod.key)
                return Status.error(f"running PreScore plugin {plugin.name!r}: {exc}")
            if status.is_skip:
                state.skip_score_plugins.add(plugin.name)
            elif not status.is_success:
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_score(self, state: CycleState, pod: PodInfo,
                  nodes: Sequence[NodeInfo]) -> tuple[list[int], Status]:
        """Per node (in order), the weighted sum over the score plugins of its normalized
        score."""
        totals, offset, status = self.run_score_relative(state, pod, nodes)
        if offset:
            totals = list(map(operator.add, totals, repeat(offset)))
        return totals, status

    def run_score_relative(self, state: CycleState, pod: PodInfo,
                           nodes: Sequence[NodeInfo]) -> tuple[list[int], int, Status]:
        """:meth:`run_score` as (totals - offset, offset, status), where ``offset`` is the
        part every node has (plugins that scored all nodes alike): the order of the nodes,
        all selection needs, without a pass to add it."""
        totals: list[int] | None = None
        offset = 0  # the sum of the plugins that gave every node the same score
        for plugin in self.score_plugins:
            name = plugin.name
            if name in state.skip_score_plugins:
                continue
            weight = self.weights[name]
            try:
                if name in self.weighted:
                    weighted = plugin.weighted_scores(state, pod, nodes, weight)
                    if weighted is not None:
                        if len(weighted) != len(nodes):
                            raise ValueError(f"{len(weighted)} scores for {len(nodes)} nodes")
                        if weighted:
                            totals, offset = _add_scores(totals, offset, weighted, 1)
                        continue
                if name in self.batch_scores:
                    scores = plugin.score_nodes(state, pod, nodes)
                else:
                    scores = []
                    score = plugin.score
                    for node in nodes:
                        value, status = score(state, pod, node)
                        if status.code:
                            return [], 0, status.with_plugin(name)
                        scores.append(value)
                if len(scores) != len(nodes):
                    raise ValueError(f"{len(scores)} scores for {len(nodes)} nodes")
                if name in self.normalizing:
                    status = plugin.normalize_score(state, pod, nodes, scores)
                    if not status.is_success:
                        return [], 0, status.with_plugin(name)
            except Exception as exc:
                log.exception("Score plugin %s failed on %s", name, pod.key)
                return [], 0, Status.error(f"running Score plugin {name!r}: {exc}")
            if not scores:
                continue
            if name not in self.in_range:
                lowest, highest = min(scores), max(scores)
                if lowest < MIN_NODE_SCORE or highest > MAX_NODE_SCORE:
                    value = next(v for v in scores if not MIN_NODE_SCORE <= v <= MAX_NODE_SCORE)
                    return [], 0, Status.error(
                        f"plugin {name!r} returns an invalid score {value}, it should be in "
                        f"the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing")
            totals, offset = _add_scores(totals, offset, scores, weight)
        if totals is None:
            return [0] * len(nodes), offset, SUCCESS
        return totals, offset, SUCCESS

    # Reserve -----------------------------------------------------------------------------

    def run_reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        for plugin in self.reserve_plugins:
            status = plugin.reserve(state, pod, node_name)
            if not status.is_success:
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        for plugin in reversed(self.reserve_plugins):
            try:
                plugin.unreserve(state, pod, node_name)
            except Exception:
                log.exception("Unreserve plugin %s failed on %s", plugin.name, pod.key)

    # Bind --------------------------------------------------------------------------------

    async def run_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        for plugin in self.bind_plugins:
            try:
                status = await plugin.bind(state, pod, node_name)
            except Exception as exc:
                log.exception("Bind plugin %s failed on %s", plugin.name, pod.key)
                return Status.error(f"running Bind plugin {plugin.name!r}: {exc}")
            if not status.is_skip:
                return status.with_plugin(plugin.name)
        return Status.skip()


def _add_scores(totals: list[int] | None, offset: int, scores: list[int],
                weight: int) -> tuple[list[int] | None, int]:
    """``totals + weight * scores``, by pairwise passes in C (much cheaper than
    ``sum(zip(*lists))``); a plugin that gave every node the same score only moves
    ``offset``, the part common to all nodes. ``scores`` is the runner's to keep (a
    plugin's fresh list): with weight 1 it becomes the totals as it is, no copy."""
    first = scores[0]
    if scores[-1] == first and scores.count(first) == len(scores):
        return totals, offset + first * weight
    if totals is None:
        return (scores if weight == 1 else list(map(operator.mul, scores, repeat(weight)))), offset
    weighted = scores if weight == 1 else map(operator.mul, scores, repeat(weight))
    return list(map(operator.add, totals, weighted)), offset
