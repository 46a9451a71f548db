"""``pyk8s image`` end to end, as a user runs it: build a busybox image tarball with the
helper script, import it, list it, pull from a registry on loopback with the progress
display, remove it; then run the imported image with the ``oci`` runtime (root only)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.make_test_image import busybox_image
from tests.registry import TestRegistry


def _image_command() -> list[str]:
    """``pyk8s image`` once ``cli/main.py`` wires it; the same parser module until then."""
    from pyk8s.cli.main import build_parser

    try:
        build_parser().parse_args(["image", "ls"])
        return [sys.executable, "-m", "pyk8s.cli.main", "image"]
    except SystemExit:
        return [sys.executable, "-m", "pyk8s.runtime.images.cli", "image"]


def image(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*_image_command(), *args], capture_output=True, text=True,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"pyk8s image {' '.join(args)}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("img") / "busybox.tar"
    subprocess.run([sys.executable, "-m", "tests.make_test_image", "--format",
                    "docker-archive", "-o", str(out), "--tag", "busybox:latest"], check=True,
                   timeout=60)
    return out


def test_import_ls_rm(tmp_path: Path, tarball: Path) -> None:
    root = str(tmp_path / "images")
    assert "imported docker.io/library/busybox:latest" in image("import", str(tarball),
                                                               "--root", root).stdout
    listing = image("ls", "--root", root).stdout.splitlines()
    assert listing[1].split()[:2] == ["docker.io/library/busybox", "latest"]
    assert "Deleted: docker.io/library/busybox:latest" in image("rm", "busybox",
                                                               "--root", root).stdout
    assert image("ls", "-q", "--root", root).stdout == ""
    assert not any((tmp_path / "images" / "blobs" / "sha256").iterdir())


def test_pull_from_a_loopback_registry(tmp_path: Path) -> None:
    with TestRegistry(token_auth=True) as reg:
        built = busybox_image()
        reg.push("library/busybox", "1.35", built)
        proc = image("pull", f"{reg.host}/library/busybox:1.35", "--root", str(tmp_path))
        assert f"pulled {reg.host}/library/busybox:1.35" in proc.stdout
        assert f"digest: {built.top_digest}" in proc.stdout
        missing = image("pull", f"{reg.host}/library/nope", "--root", str(tmp_path),
                        check=False)
        assert missing.returncode == 1 and "not found" in missing.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="runc containers need root; CI runs as root")
def test_an_imported_image_runs_with_the_oci_runtime(tmp_path: Path, tarball: Path) -> None:
    from pyk8s.runtime import ContainerConfig, PodSandboxConfig, remove_everything
    from pyk8s.runtime.images import ImageStore
    from pyk8s.runtime.oci import OciRuntime

    root = tmp_path / "images"
    image("import", str(tarball), "--root", str(root))
    runtime = OciRuntime(tmp_path / "state", images=ImageStore(root))

    async def scenario() -> str:
        try:
            sb = await runtime.run_pod_sandbox(PodSandboxConfig(
                "e2e", "p", "default", hostname="p", log_directory=str(tmp_path / "logs")))
            assert await runtime.image_status("busybox")  # imported: nothing to pull
            cid = await runtime.create_container(sb, ContainerConfig(
                "c", "busybox", command=["echo", "hello"]))
            await runtime.start_container(cid)
            deadline = time.monotonic() + 10
            while (await runtime.container_status(cid)).state.value != "exited":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            status = await runtime.container_status(cid)
            assert status.exit_code == 0
            return Path(status.log_path).read_text()
        finally:
            await remove_everything(runtime)

    assert " stdout F hello\n" in asyncio.run(scenario())
