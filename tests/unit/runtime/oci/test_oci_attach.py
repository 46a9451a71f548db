"""``attach`` with the ``oci`` runtime: runc containers whose stdin is a pipe held by their
supervisor (runc's pass-through mode), fed by attach sessions through its attach socket.

Needs root, runc and overlayfs, like the other oci tests; every test removes what it
created."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import (
    ContainerConfig,
    ContainerState,
    PodSandboxConfig,
    RuntimeOperationError,
    remove_everything,
)
from pyk8s.runtime.images import ImageStore, import_archive
from pyk8s.runtime.oci import OciRuntime
from tests.make_test_image import busybox_layer, image, write_docker_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc containers, overlayfs and "
                                "namespaces need root; CI runs these as root")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    root = tmp_path_factory.mktemp("oci-attach-images")
    store = ImageStore(root / "store")
    write_docker_archive(image([busybox_layer()], cmd=["sh"]), root / "busybox.tar",
                         ["busybox:latest"])
    import_archive(store, root / "busybox.tar")
    return store


@pytest.fixture
def rt(tmp_path: Path, images: ImageStore) -> Iterator[OciRuntime]:
    runtime = OciRuntime(tmp_path / "state", images=images)
    yield runtime
    asyncio.run(remove_everything(runtime))
    assert not any((tmp_path / "state" / "runc").iterdir()), "runc containers left behind"


async def start(rt: OciRuntime, tmp_path: Path, command: list[str], **kw: Any) -> str:
    sb = await rt.run_pod_sandbox(PodSandboxConfig(
        uuid.uuid4().hex[:8], "p", "ns", hostname="p", log_directory=str(tmp_path / "logs")))
    cid = await rt.create_container(sb, ContainerConfig("c", "busybox", command=command, **kw))
    await rt.start_container(cid)
    return cid


async def read_until(stream: asyncio.StreamReader, wanted: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(10):
        while wanted not in seen:
            chunk = await stream.read(4096)
            assert chunk, f"EOF before {wanted!r}; got {seen!r}"
            seen += chunk
    return seen


async def exit_code(rt: OciRuntime, cid: str) -> int:
    async with asyncio.timeout(10):
        while (status := await rt.container_status(cid)).state == ContainerState.RUNNING:
            await asyncio.sleep(0.05)
    return status.exit_code


def test_input_and_output_of_the_containers_own_process(rt: OciRuntime,
                                                        tmp_path: Path) -> None:
    async def go() -> None:
        cid = await start(rt, tmp_path, ["sh", "-c", "while read l; do echo got $l; "
                                                     "echo err $l >&2; done; echo done"],
                          stdin=True)
        session = await rt.attach(cid, stdin=True, tty=False)
        await session.write_stdin(b"one\n")
        await read_until(session.stdout, b"got one\n")
        await read_until(session.stderr, b"err one\n")
        session.close_stdin()  # no stdinOnce: the container's stdin stays open
        session.kill()
        await session.wait()
        again = await rt.attach(cid, stdin=True, tty=False)
        await again.write_stdin(b"two\n")
        await read_until(again.stdout, b"got two\n")
        again.kill()
        assert (await rt.container_status(cid)).state == ContainerState.RUNNING
    asyncio.run(go())


def test_stdin_once_gives_eof_after_the_first_session(rt: OciRuntime,
                                                      tmp_path: Path) -> None:
    async def go() -> None:
        cid = await start(rt, tmp_path, ["sh", "-c", "cat; echo eof; exit 5"], stdin=True,
                          stdin_once=True)
        session = await rt.attach(cid, stdin=True, tty=False)
        await session.write_stdin(b"payload\n")
        await read_until(session.stdout, b"payload\n")
        session.close_stdin()
        await read_until(session.stdout, b"eof\n")
        assert await asyncio.wait_for(session.stdout.read(), 10) == b""  # it exited
        assert await exit_code(rt, cid) == 5
    asyncio.run(go())


def test_without_stdin_input_is_ignored_and_a_tty_is_refused(rt: OciRuntime,
                                                             tmp_path: Path) -> None:
    async def go() -> None:
        cid = await start(rt, tmp_path, ["sh", "-c", "sleep 0.5; cat; echo nothing read"])
        with pytest.raises(RuntimeOperationError, match="terminal"):
            await rt.attach(cid, stdin=True, tty=True)
        session = await rt.attach(cid, stdin=True, tty=False)
        await session.write_stdin(b"lost\n")
        out = await read_until(session.stdout, b"nothing read\n")
        assert b"lost" not in out
        assert await exit_code(rt, cid) == 0
        with pytest.raises(RuntimeOperationError) as err:
            await rt.attach(cid, stdin=False, tty=False)
        assert err.value.reason == "ContainerNotRunning"
    asyncio.run(go())


def test_exec_with_a_terminal_on_the_kubelets_event_loop(rt: OciRuntime,
                                                         tmp_path: Path) -> None:
    import uvloop

    async def go() -> None:
        cid = await start(rt, tmp_path, ["sleep", "600"])
        proc = await rt.exec(cid, ["sh", "-c", "tty && echo on a terminal"], tty=True)
        out = await asyncio.wait_for(proc.stdout.read(), 10)
        assert await proc.wait() == 0
        assert b"on a terminal" in out
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(go())
