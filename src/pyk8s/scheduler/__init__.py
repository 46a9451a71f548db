"""The scheduler: assigns pending pods to nodes (upstream kube-scheduler).

Public API: :class:`Scheduler` (``Scheduler(client, settings)``, ``await run()``) and its
settings, :class:`SchedulerSettings` and :class:`Profile`. Everything else (framework,
plugins, queue, cache) is importable for tests, benchmarks and out-of-tree plugins but is not
a stable interface.
"""

from pyk8s.scheduler.scheduler import Scheduler
from pyk8s.scheduler.settings import PluginSpec, Profile, SchedulerSettings

__all__ = ["PluginSpec", "Profile", "Scheduler", "SchedulerSettings"]
