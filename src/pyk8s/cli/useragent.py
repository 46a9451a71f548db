"""The User-Agent each pyk8s component sends.

Its own module so that ``pyk8s scheduler`` and the other lone components need not import the
API server (``cli/cluster.py``) just to name themselves: that import cost every component
process about a second of CPU at start.
"""

from __future__ import annotations

# The names upstream's components give themselves in their User-Agent: the API server
# derives field managers (managedFields) from it, so users see the names they know.
_AGENT_NAMES = {"controller-manager": "kube-controller-manager", "scheduler": "kube-scheduler",
                "kubelet": "kubelet", "agent": "kubelet", "hollow-nodes": "hollow-node"}


def user_agent(component: str) -> str:
    return f"{_AGENT_NAMES.get(component, component)}/v1.32.4 (linux/amd64) pyk8s"
