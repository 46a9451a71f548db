"""A real ``pyk8s server`` on a free loopback port, for end-to-end tests and benchmarks.

The server runs as a child process (exactly as a user starts it), and is driven with the
real ``kubectl`` and the official Python client.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """``command`` is ``apiserver`` (the API server alone: nothing acts on objects, which
    API tests rely on) or ``server`` (the whole one-node cluster). A ``server`` runs the
    process runtime unless ``extra_args`` name another (``--runtime oci``): tests whose pods
    run host commands must not depend on whether this machine could run containers."""

    def __init__(self, data_dir: Path, port: int | None = None, *, command: str = "apiserver",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.command = command
        if command == "server" and "--runtime" not in extra_args:
            extra_args = (*extra_args, "--runtime", "process")
        self.extra_args = extra_args
        self.data_dir = data_dir
        self.port = port or free_port()
        self.kubeconfig = data_dir / "kubeconfig"
        self.cache_dir = data_dir / "kubectl-cache"
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self.ready_seconds = 0.0

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        offset = log.tell()
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", self.command, "--data-dir",
             str(self.data_dir), "--port", str(self.port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            if b"ready at" in self.log_path.read_bytes()[offset:]:
                self.ready_seconds = time.monotonic() - started
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def kill_workloads(self) -> None:
        """Containers outlive their kubelet by design (as with containerd's shims): a test
        that is done with a cluster ends them through the runtime, as ``pyk8s reset`` would."""
        import asyncio

        from pyk8s.runtime import open_runtime, remove_everything

        state_dir = self.data_dir / "kubelet" / "runtime"
        if not state_dir.exists():
            return
        if self.option("--runtime") == "oci":
            from pyk8s.runtime.images import ImageStore

            images = ImageStore(self.option("--image-root") or "/var/lib/pyk8s/images")
            runtime = open_runtime("oci", state_dir=state_dir, images=images, network="cni")
        else:
            runtime = open_runtime("process", state_dir=state_dir)
        asyncio.run(remove_everything(runtime))

    def option(self, name: str) -> str:
        """The value of ``name`` in the server's extra arguments ("" when absent)."""
        args = list(self.extra_args)
        return args[args.index(name) + 1] if name in args[:-1] else ""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise RuntimeError("kubectl is not installed")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [kubectl, f"--cache-dir={self.cache_dir}", *args],
            input=input, capture_output=True, text=True, timeout=timeout, env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def api_client(self):  # type: ignore[no-untyped-def]
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)
