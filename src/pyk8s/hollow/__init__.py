"""Hollow nodes: one process that pretends to be many nodes (upstream's kwok and kubemark).

``HollowNodes(client, HollowNodeSettings(count=N)).run()`` registers N Node objects, keeps
their Leases and Ready heartbeats fresh, reports the pods bound to them Running and Ready
and finishes their deletion. Nothing runs: it is how the control plane is tested at scale
without containers. It is a component like the kubelet and meets the others only through
the API.
"""

from pyk8s.hollow.hollow import HollowNodes
from pyk8s.hollow.settings import HollowNodeSettings

__all__ = ["HollowNodeSettings", "HollowNodes"]
