"""The contract between the kubelet and a container runtime (upstream: the CRI).

The shape follows CRI's ``RuntimeService``/``ImageService`` (``api.proto``): a pod *sandbox*
holds the shared context of a pod (for the process runtime a directory and the host network;
for an OCI runtime later the pause/namespaces and the CNI result), containers are created in a
sandbox, started, stopped with a timeout and removed, and every call is idempotent on IDs so a
kubelet that crashed mid-way can simply retry.

What the kubelet hands over is already resolved: environment variables are plain strings
(fieldRef, configMapKeyRef, ... were looked up through the API), volumes are directories on
disk, the command line is final. A runtime never talks to the API server.

A runtime keeps its own state on disk, so a new instance over the same state directory sees
every sandbox and container the previous one created: that is how a kubelet restart re-adopts
running containers instead of restarting them.

Errors: expected failures (a container that cannot be created as configured, an unknown ID)
raise :class:`RuntimeOperationError` carrying a CRI-style ``reason`` that the kubelet puts in
the container's waiting state (``CreateContainerError``, ``RunContainerError``, ...). Nothing
else should escape a runtime: subprocess and OS errors are translated at its boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: container supervisors import this without asyncio
    import asyncio


class RuntimeOperationError(Exception):
    """An operation the runtime could not do. ``reason`` is CamelCase, for users."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class NotFoundError(RuntimeOperationError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__("NotFound", f"{what} {ident!r} not found")


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(enum.Enum):
    READY = "ready"
    NOTREADY = "notready"


@dataclass(frozen=True)
class PortMapping:
    """A ``hostPort`` (CRI ``PortMapping``): ``host_ip:host_port`` on the node forwards to
    ``container_port`` in the pod's network."""

    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class PodSandboxConfig:
    """What a pod's sandbox needs (CRI ``PodSandboxConfig``)."""

    pod_uid: str
    name: str
    namespace: str
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""
    """Where container logs of this pod go (``<log_directory>/<container>/<attempt>.log``)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    port_mappings: Sequence[PortMapping] = ()
    host_network: bool = False
    """``spec.hostNetwork``: the node's network namespace, the node's IP."""


@dataclass(frozen=True)
class Mount:
    """A host path (a materialised volume) made visible at ``container_path``."""

    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    """Linux resources of one container; 0 means unlimited."""

    memory_limit_bytes: int = 0
    cpu_quota_us: int = 0
    cpu_period_us: int = 100_000
    cpu_shares: int = 0
    pids_limit: int = 0
    """The kubelet's ``podPidsLimit``, applied to each container of the pod."""


@dataclass(frozen=True)
class SecurityContext:
    """The container's effective security settings: the pod's ``securityContext`` with the
    container's laid over it (CRI ``LinuxContainerSecurityContext``). ``None``: the image's
    (user) or the runtime's (everything else) default."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    supplemental_groups: Sequence[int] = ()
    privileged: bool = False
    read_only_root_filesystem: bool = False
    capabilities_add: Sequence[str] = ()
    capabilities_drop: Sequence[str] = ()
    """Upstream spelling, without ``CAP_`` (``NET_ADMIN``, ``ALL``)."""
    no_new_privileges: bool = False
    """``allowPrivilegeEscalation: false``."""
    seccomp: str = ""
    """``""`` / ``Unconfined``, ``RuntimeDefault`` or ``Localhost/<path>``."""


@dataclass(frozen=True)
class ContainerConfig:
    """CRI ``ContainerConfig``: everything resolved, nothing left for the runtime to look up."""

    name: str
    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    mounts: Sequence[Mount] = ()
    resources: Resources = Resources()
    security: SecurityContext = SecurityContext()
    stdin: bool = False
    """Keep an open stdin that ``attach`` writes to (the pod spec's ``stdin``)."""
    stdin_once: bool = False
    tty: bool = False
    attempt: int = 0
    log_path: str = ""
    """Relative to the sandbox's log directory (upstream: ``<container>/<attempt>.log``)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSandbox:
    id: str
    config: PodSandboxConfig
    state: SandboxState
    created_at: datetime
    ip: str = ""


@dataclass(frozen=True)
class ContainerStatus:
    """CRI ``ContainerStatus``. ``reason`` is ``OOMKilled``, ``StartError``, ``Completed``,
    ``Error`` once exited; ``exit_code`` follows the shell's convention (128+signal)."""

    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: ContainerState
    image: str
    image_ref: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerStats:
    container_id: str
    timestamp: datetime
    cpu_usage_core_nanoseconds: int
    memory_working_set_bytes: int
    memory_usage_bytes: int


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class ExecProcess(Protocol):
    """A command running in a container's context, with its streams (for a node server
    that streams ``exec`` to a client). With a TTY, stdout carries the terminal and stderr
    is empty; without ``stdin`` requested, writes are ignored."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader

    async def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def resize(self, width: int, height: int) -> None:
        """Terminal size (TTY only; ignored otherwise)."""
        ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str
    """As the Node reports it: ``process://0.1``."""
    isolation: str
    """A one-line, user-facing description of what the runtime isolates."""
    pulls_images: bool = True
    """False for a runtime that runs host binaries: ``imagePullPolicy`` has no meaning."""
    own_root_filesystem: bool = True
    """Containers see their own ``/`` (a file can be mounted at any path in it, such as
    ``/dev/termination-log``); False where they share the host's."""


@runtime_checkable
class Runtime(Protocol):
    """The kubelet's view of a container runtime. All methods are safe to retry."""

    def info(self) -> RuntimeInfo: ...

    async def update_pod_cidr(self, cidr: str) -> None:
        """The node's pod CIDR, once known (CRI ``UpdateRuntimeConfig``). A runtime that
        gives pods their own addresses refuses sandboxes with ``NetworkNotReady`` until
        then; one that gives them the node's address ignores it."""
        ...

    # sandboxes
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox: ...

    async def list_pod_sandboxes(self) -> list[PodSandbox]: ...

    # images
    async def image_status(self, image: str) -> str | None:
        """The image's reference (imageID) if it is present on the node, else ``None``; the
        kubelet applies ``imagePullPolicy`` with it (CRI ``ImageStatus``)."""
        ...

    async def pull_image(self, image: str) -> str:
        """Fetch the image (even if present: ``Always``); returns its reference (imageID).
        Failures raise :class:`RuntimeOperationError` with the registry's words."""
        ...

    async def garbage_collect_images(self, high_threshold_percent: int,
                                     low_threshold_percent: int, min_age: float) -> list[str]:
        """Upstream's image GC: once the image filesystem is ``high`` percent full, remove
        unused images (least recently used first, none younger than ``min_age`` seconds)
        until it would be ``low`` percent full. Returns the removed names; raises
        :class:`RuntimeOperationError` (``FreeDiskSpaceFailed``) when not enough could go."""
        ...

    # containers
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once it has exited."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: bool = False, tty: bool = False) -> ExecProcess: ...

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult: ...

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> ExecProcess:
        """Attach to the container's own process (CRI ``Attach``): its output from now on
        (stdout only with a terminal), and with ``stdin`` a way to write to its stdin --
        ignored when the container was not created with ``stdin``, as containerd does.
        ``close_stdin`` ends this session's stdin; with ``stdin_once`` the container's
        stdin then gets EOF for good. The session ends when the container exits;
        ``kill`` detaches without stopping it; ``wait`` returns 0. ``tty``: the container's
        (the pod spec's), which a runtime may refuse with :class:`RuntimeOperationError`."""
        ...

    async def container_stats(self, container_id: str) -> ContainerStats: ...

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` in the sandbox's network (CRI ``PortForward``).
        Raises :class:`RuntimeOperationError` when nothing listens there."""
        ...

    async def close(self) -> None: ...
