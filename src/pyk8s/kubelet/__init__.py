"""The node agent (upstream: kubelet). Public API: ``Kubelet(client, settings, runtime)``
with ``await kubelet.run()``, and :class:`KubeletSettings`."""

from pyk8s.kubelet.kubelet import Kubelet
from pyk8s.kubelet.settings import KubeletSettings

__all__ = ["Kubelet", "KubeletSettings"]
