"""The in-tree plugins by name: the one place that knows them all (upstream
``plugins/registry.go``). A factory takes the plugin's arguments from the profile and the
framework :class:`~pyk8s.scheduler.framework.Handle`; adding a policy is adding a module and
a line here, never an edit of the scheduling loop. Out-of-tree plugins are passed to
``Scheduler`` as an extra registry merged over this one.
"""

from __future__ import annotations

from pyk8s.scheduler.framework import Factory
from pyk8s.scheduler.plugins import (
    balancedallocation,
    defaultbinder,
    defaultpreemption,
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesources,
    nodeunschedulable,
    podtopologyspread,
    tainttoleration,
)

__all__ = ["in_tree_registry"]


def in_tree_registry() -> dict[str, Factory]:
    return {
        nodename.NAME: nodename.new,
        nodeunschedulable.NAME: nodeunschedulable.new,
        tainttoleration.NAME: tainttoleration.new,
        nodeaffinity.NAME: nodeaffinity.new,
        nodeports.NAME: nodeports.new,
        noderesources.NAME: noderesources.new,
        balancedallocation.NAME: balancedallocation.new,
        podtopologyspread.NAME: podtopologyspread.new,
        interpodaffinity.NAME: interpodaffinity.new,
        defaultpreemption.NAME: defaultpreemption.new,
        defaultbinder.NAME: defaultbinder.new,
    }
