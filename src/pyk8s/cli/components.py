"""Components run alone, against an API server named by a kubeconfig:
``pyk8s scheduler``, ``pyk8s controller-manager``, ``pyk8s agent`` (a kubelet) and
``pyk8s hollow-nodes`` (many fake nodes, for scale tests without containers).

Each builds its settings from flags, one client from the kubeconfig, and runs until SIGINT or
SIGTERM. The scheduler and the controller manager take part in leader election, so several
copies can run and only one acts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyk8s.cli.runtimes import add_runtime_arguments
from pyk8s.cli.useragent import user_agent
from pyk8s.client import ApiClient

log = logging.getLogger("pyk8s.cli")

Work = Callable[[ApiClient], Awaitable[None]]


def _run(name: str, kubeconfig: str, work: Work, server: str = "") -> int:
    async def main() -> None:
        client = ApiClient.from_kubeconfig(kubeconfig, user_agent=user_agent(name))
        if server:
            client.server = server.rstrip("/")
        task = asyncio.create_task(work(client), name=name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"pyk8s: {name} running against {client.server}", flush=True)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            await client.close()
        print(f"pyk8s: {name} stopped", flush=True)

    try:
        import uvloop

        uvloop.run(main())
    except FileNotFoundError as exc:
        print(f"pyk8s: cannot read the kubeconfig: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"pyk8s: {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_scheduler(args: argparse.Namespace) -> int:
    from pyk8s.scheduler.scheduler import Scheduler
    from pyk8s.scheduler.settings import SchedulerSettings

    settings = SchedulerSettings(leader_elect=args.leader_elect)
    if args.identity:
        settings.identity = args.identity
    return _run("scheduler", args.kubeconfig, lambda c: Scheduler(c, settings).run())


def run_controller_manager(args: argparse.Namespace) -> int:
    from pyk8s.controllers.manager import ControllerManager, ControllerManagerSettings

    settings = ControllerManagerSettings(leader_elect=args.leader_elect)
    if args.identity:
        settings.identity = args.identity
    if args.controllers:
        settings.controllers = tuple(c.strip() for c in args.controllers.split(",") if c.strip())
    if args.node_monitor_grace_period:
        settings.node_monitor_grace_period = args.node_monitor_grace_period
    if args.allocate_node_cidrs is not None:
        settings.allocate_node_cidrs = args.allocate_node_cidrs
    if args.cluster_cidr:
        settings.cluster_cidr = args.cluster_cidr
    if args.node_cidr_mask_size:
        settings.node_cidr_mask_size = args.node_cidr_mask_size
    if settings.allocate_node_cidrs:
        from pyk8s.controllers.nodeipam import CidrSet

        try:
            CidrSet(settings.cluster_cidr, settings.node_cidr_mask_size)
        except ValueError as exc:
            print(f"pyk8s: controller-manager: {exc}", file=sys.stderr)
            return 2
    return _run("controller-manager", args.kubeconfig,
                lambda c: ControllerManager(c, settings).run())


def run_agent(args: argparse.Namespace) -> int:
    from pyk8s.cli import runtimes
    from pyk8s.kubelet.kubelet import Kubelet
    from pyk8s.kubelet.settings import KubeletSettings, default_node_name

    settings = KubeletSettings(
        node_name=args.node_name or default_node_name(),
        root_dir=Path(args.root_dir).resolve(),
        node_ip=args.node_ip,
        server_address=args.address or args.node_ip or "127.0.0.1",
        server_port=args.port,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        pod_cidr=args.pod_cidr,
        pod_pids_limit=args.pod_max_pids,
    )

    print(f"pyk8s agent: node {settings.node_name}, runtime "
          f"{runtimes.choose(args.runtime)[1]}", flush=True)

    def work(client: ApiClient) -> Awaitable[None]:
        runtime = runtimes.build(runtimes.options_from(args),
                                 state_dir=settings.runtime_state_dir,
                                 host_ip=settings.resolved_node_ip())
        return Kubelet(client, settings, runtime).run()

    return _run("agent", args.kubeconfig, work, server=args.server)


def run_hollow_nodes(args: argparse.Namespace) -> int:
    from pyk8s.hollow import HollowNodes, HollowNodeSettings

    settings = HollowNodeSettings(count=args.count, prefix=args.prefix, cpu=args.cpu,
                                  memory=args.memory, pods=args.pods)
    return _run("hollow-nodes", args.kubeconfig, lambda c: HollowNodes(c, settings).run())


def _go_bool(value: str) -> bool:
    """A boolean flag's value as Go's flag package spells it (``--allocate-node-cidrs=false``)."""
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scheduler", help="run the scheduler against a cluster")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--identity", default="")
    p.set_defaults(func=run_scheduler)

    p = sub.add_parser("controller-manager", help="run the controller manager against a cluster")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--identity", default="")
    p.add_argument("--controllers", default="",
                   help="comma-separated, '*' for all, '-name' to disable one")
    p.add_argument("--node-monitor-grace-period", type=float, default=0.0)
    p.add_argument("--allocate-node-cidrs", nargs="?", const=True, default=None, type=_go_bool,
                   metavar="true|false",
                   help="give each Node a pod CIDR cut from --cluster-cidr (default: true)")
    p.add_argument("--cluster-cidr", default="",
                   help="the IPv4 range pod CIDRs are cut from (default: 10.244.0.0/16)")
    p.add_argument("--node-cidr-mask-size", type=int, default=0,
                   help="the prefix length of each node's pod CIDR (default: 24)")
    p.set_defaults(func=run_controller_manager)

    p = sub.add_parser("agent", help="run a kubelet that joins an existing cluster")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--server", default="", help="API server URL (default: the kubeconfig's)")
    p.add_argument("--node-name", default="")
    p.add_argument("--node-ip", default="")
    p.add_argument("--root-dir", default="/var/lib/pyk8s/kubelet")
    p.add_argument("--address", default="", help="node server address (default: node IP)")
    p.add_argument("--port", type=int, default=10250)
    add_runtime_arguments(p)
    p.add_argument("--pod-max-pids", type=int, default=-1,
                   help="most processes in each container (-1: unlimited)")
    p.add_argument("--pod-cidr", default="",
                   help="this node's pod CIDR when no controller manager assigns one")
    p.add_argument("--tls-cert-file", default="",
                   help="node server certificate (default: self-signed, in <root-dir>/pki)")
    p.add_argument("--tls-private-key-file", default="")
    p.add_argument("--client-ca-file", default="",
                   help="require node server clients to present a certificate from this CA "
                        "(the cluster CA: <data-dir>/pki/ca.crt of the server)")
    p.set_defaults(func=run_agent)

    p = sub.add_parser("hollow-nodes", help="register fake nodes that pretend to run pods")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--prefix", default="hollow")
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="16Gi")
    p.add_argument("--pods", type=int, default=110)
    p.set_defaults(func=run_hollow_nodes)
