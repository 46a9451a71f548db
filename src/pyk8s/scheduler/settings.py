"""The scheduler's settings: typed dataclasses with upstream's defaults, filled in one place.

A :class:`Profile` is upstream's ``KubeSchedulerProfile`` reduced to what this scheduler
implements: a ``schedulerName`` pods opt into, the plugins in the order they run (each used
at every extension point it implements, like upstream's ``multiPoint``), score weights,
per-plugin arguments and ``percentageOfNodesToScore``. The default plugin list and weights
are upstream's default profile (``pkg/scheduler/apis/config/v1/default_plugins.go``) minus
the volume and image plugins this project has no use for yet.

Nothing here reads the environment or flags; the CLI builds these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_PLUGINS", "DEFAULT_SCHEDULER_NAME", "PluginSpec", "Profile",
           "SchedulerSettings"]

DEFAULT_SCHEDULER_NAME = "default-scheduler"


@dataclass(frozen=True)
class PluginSpec:
    """One enabled plugin; ``weight`` matters only if it scores (0 means upstream's 1)."""

    name: str
    weight: int = 0


DEFAULT_PLUGINS: tuple[PluginSpec, ...] = (
    PluginSpec("NodeUnschedulable"),
    PluginSpec("NodeName"),
    PluginSpec("TaintToleration", 3),
    PluginSpec("NodeAffinity", 2),
    PluginSpec("NodePorts"),
    PluginSpec("NodeResourcesFit", 1),
    PluginSpec("PodTopologySpread", 2),
    PluginSpec("InterPodAffinity", 2),
    PluginSpec("DefaultPreemption"),
    PluginSpec("NodeResourcesBalancedAllocation", 1),
    PluginSpec("DefaultBinder"),
)


@dataclass
class Profile:
    """A scheduling profile: which pods it owns (by ``spec.schedulerName``) and its plugins.

    ``enabled`` adds plugins after the defaults (or overrides a default's weight);
    ``disabled`` removes defaults by name (``"*"`` removes them all).
    """

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    enabled: list[PluginSpec] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None

    def plugins(self) -> list[PluginSpec]:
        """The effective plugin list, in execution order."""
        if "*" in self.disabled:
            base: list[PluginSpec] = []
        else:
            base = [p for p in DEFAULT_PLUGINS if p.name not in self.disabled]
        overrides = {p.name: p for p in self.enabled}
        out = [overrides.pop(p.name, p) for p in base]
        out.extend(p for p in self.enabled if p.name in overrides)
        return out


@dataclass
class SchedulerSettings:
    """Everything ``Scheduler`` needs besides its client."""

    profiles: list[Profile] = field(default_factory=lambda: [Profile()])
    # 0: adaptive, 50% minus 1% per 125 nodes, at least 5% (upstream's default).
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    # Pods parked as unschedulable are retried at least this often even without events.
    max_unschedulable_seconds: float = 300.0
    # An assumed pod whose binding finished but whose watch event never came is dropped
    # from the cache after this long (0: never).
    assumed_pod_ttl_seconds: float = 30.0
    leader_elect: bool = False
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    identity: str = ""
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
