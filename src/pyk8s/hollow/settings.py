"""Settings of the hollow nodes: one typed dataclass, filled from flags by the CLI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class HollowNodeSettings:
    """How many nodes, how big, and how fast they pretend.

    Intervals follow the kubelet's defaults: the Lease is renewed every
    ``lease_duration / 4`` (10 s), the Node's Ready heartbeat is rewritten every
    ``status_update_interval`` (5 minutes, upstream's ``nodeStatusReportFrequency`` for a
    status that does not change; the lifecycle controller accepts either as a sign of life).
    Renewals are spread evenly over the interval, sent in ``tick`` bursts, with at
    most ``heartbeat_concurrency`` in flight, so 5,000 nodes cost a steady 500 Lease patches
    a second (50 every 0.1 s) rather than 5,000 at once.
    """

    count: int = 10
    prefix: str = "hollow"
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    labels: dict[str, str] = field(default_factory=dict)
    # Taints registered with the node, e.g. [{"key": "k", "value": "v", "effect": "NoSchedule"}].
    taints: list[dict[str, str]] = field(default_factory=list)
    kubelet_version: str = "v1.32.0-hollow"

    lease_duration: int = 40
    status_update_interval: float = 300.0
    heartbeat_concurrency: int = 8
    heartbeat_retry: float = 1.0
    # The hollow nodes act on a grid of this many seconds: Lease renewals and simulated pod
    # starts that fall due within one tick are sent together (see heartbeat.py); 0: each at
    # its own time.
    tick: float = 0.1
    register_concurrency: int = 32

    # A bound pod is reported Running this long after it is first seen (uniform in the range).
    pod_start_delay: tuple[float, float] = (0.1, 0.3)
    # A deleted pod is removed for good after min(this, its grace period).
    pod_termination_delay: float = 0.2
    # Status patches and final deletes in flight at once. A worker waits for its answer, so
    # this over the API server's latency is the pods per second the nodes can report: with
    # 16, a busy server's ~80 ms left Running seconds behind binding. As many as the
    # client's connections (client/rest.py), as a thousand kubelets would send at once.
    pod_workers: int = 64
    seed: int | None = None

    @property
    def lease_interval(self) -> float:
        return self.lease_duration / 4

    def node_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def on_grid(self, t: float) -> float:
        """``t`` (monotonic) rounded up to the ``tick`` grid, where what falls due goes out
        together; a float sum a microsecond past a grid point counts as on it."""
        tick = self.tick
        return math.ceil(t / tick - 1e-6) * tick if tick > 0 else t
