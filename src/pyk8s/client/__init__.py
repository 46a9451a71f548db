"""How components reach the API server: REST client, informers, work queue, leader
election, clock. The API is described in docs/CLIENT_API.md."""

from pyk8s.client.clock import SYSTEM_CLOCK, Clock, FakeClock
from pyk8s.client.informer import Informer, InformerFactory, object_key, strip_managed_fields
from pyk8s.client.leaderelection import LeaderElector
from pyk8s.client.rest import ApiClient
from pyk8s.client.workqueue import WorkQueue
from pyk8s.machinery.errors import ApiError

__all__ = [
    "SYSTEM_CLOCK",
    "ApiClient",
    "ApiError",
    "Clock",
    "FakeClock",
    "Informer",
    "InformerFactory",
    "LeaderElector",
    "WorkQueue",
    "object_key",
    "strip_managed_fields",
]
