"""The ``pyk8s`` command: one entry point, one subcommand per component.

Flags are parsed here and only here, into the components' settings dataclasses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from pathlib import Path

from pyk8s.cli.runtimes import RuntimeOptions, add_runtime_arguments, options_from
from pyk8s.cli.runtimes import choose as choose_runtime


def _serve(args: argparse.Namespace) -> int:
    from pyk8s.apiserver.context import ServerSettings
    from pyk8s.cli.cluster import COMPONENTS, Cluster, ClusterSettings

    api = ServerSettings(
        data_dir=Path(args.data_dir).resolve(),
        bind_address=args.bind_address,
        port=args.port,
        storage_url=args.storage or "",
        service_cidr=args.service_cluster_ip_range,
        advertise_address=args.advertise_address or "",
    )
    if args.command == "apiserver":
        components: tuple[str, ...] = ()
    else:
        disabled = {c.strip() for c in (args.disable or "").split(",") if c.strip()}
        if args.disable_agent:
            disabled.add("kubelet")
        unknown = disabled - set(COMPONENTS)
        if unknown:
            print(f"pyk8s: unknown component(s) to disable: {', '.join(sorted(unknown))}; "
                  f"known: {', '.join(COMPONENTS)}", file=sys.stderr)
            return 2
        components = tuple(c for c in COMPONENTS if c not in disabled)
    settings = ClusterSettings(api=api, components=components,
                               runtime=options_from(args) if args.command == "server"
                               else RuntimeOptions(),
                               node_name=getattr(args, "node_name", "") or "",
                               kubelet_port=getattr(args, "kubelet_port", 10250),
                               cluster_cidr=getattr(args, "cluster_cidr", "10.244.0.0/16"))
    started = time.monotonic()

    async def run() -> None:
        cluster = Cluster(settings)
        await cluster.start()
        # Everything allocated so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall requests for 50-80 ms.
        gc.collect()
        gc.freeze()
        server = cluster.api
        print(f"pyk8s: API server ready at {server.url} "
              f"({time.monotonic() - started:.2f}s)", flush=True)
        if components:
            print(f"pyk8s: running {', '.join(components)}"
                  + (f" (runtime {choose_runtime(settings.runtime.name)[1]})"
                     if "kubelet" in components else ""),
                  flush=True)
        print(f"pyk8s: kubeconfig written to {server.kubeconfig_path}", flush=True)
        print(f"pyk8s: export KUBECONFIG={server.kubeconfig_path}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("pyk8s: shutting down", flush=True)
        await cluster.stop()

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    try:
        runner(run())
    except OSError as exc:
        print(f"pyk8s: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _ipv4_cidr(text: str) -> str:
    import ipaddress

    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid CIDR {text!r}: {exc}") from None
    if net.version != 4 or net.prefixlen > 24:
        raise argparse.ArgumentTypeError(f"{text}: an IPv4 range of /24 or larger is needed")
    return str(net)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, written in Python.")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("server", "run a one-node cluster: API server, controller manager, "
                                       "scheduler and a kubelet"),
                            ("apiserver", "run the API server alone")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", default="./data", help="state, PKI and kubeconfig")
        p.add_argument("--bind-address", default="127.0.0.1")
        p.add_argument("--advertise-address", default="")
        p.add_argument("--port", type=int, default=6443)
        p.add_argument("--storage", default="",
                       help="store URL (default sqlite:///<data-dir>/state.db)")
        p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
        if name == "server":
            p.add_argument("--disable", default="",
                           help="comma-separated components not to run: "
                                "controller-manager, scheduler, kubelet")
            add_runtime_arguments(p)
            p.add_argument("--cluster-cidr", default="10.244.0.0/16", type=_ipv4_cidr,
                           help="pods' addresses; each node gets a /24 of it")
            p.add_argument("--node-name", default="")
            p.add_argument("--kubelet-port", type=int, default=10250)
            p.add_argument("--disable-agent", action="store_true",
                           help="do not run a kubelet for this machine (same as --disable kubelet)")
        p.set_defaults(func=_serve)
    from pyk8s.cli.components import add_parsers
    from pyk8s.runtime.images.cli import add_parsers as add_image_parsers

    add_parsers(sub)
    add_image_parsers(sub)
    return parser


# The cyclic garbage collector's generation thresholds in every pyk8s process (CPython's
# default is 700, 10, 10). An API request or a watch event allocates a thousand or more
# container objects (parsed bodies, private copies, responses), so at 700 the young
# generation was collected once or twice per request, and the growing heap (the watch
# cache, informers' caches) triggered a full collection every few seconds: 13 % of the
# server's CPU during a 3,000-pod Deployment (5.0 of 39.5 s, measured with gc.callbacks),
# 0.9 s with these. Nearly all of this garbage is acyclic and freed by reference counting,
# so collecting less often costs no memory worth mentioning.
GC_THRESHOLDS = (20_000, 20, 10)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
