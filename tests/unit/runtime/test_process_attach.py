"""``attach`` with the process runtime: the container's own stdin, held by its supervisor,
fed by attach sessions; its output streamed to them live (real supervisors; each test
removes what it started)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import (
    ContainerConfig,
    ContainerState,
    PodSandboxConfig,
    RuntimeOperationError,
)
from pyk8s.runtime.interface import ExecProcess
from pyk8s.runtime.process import ProcessRuntime
from pyk8s.runtime.supervised import read_json


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[ProcessRuntime]:
    # A deep state directory: the attach socket's path would not fit in sun_path.
    runtime = ProcessRuntime(tmp_path / ("deep-" * 12) / "state")
    yield runtime

    async def clean() -> None:
        for sb in await runtime.list_pod_sandboxes():
            await runtime.remove_pod_sandbox(sb.id)
    run(clean())


@pytest.fixture
def sandbox(rt: ProcessRuntime, tmp_path: Path) -> str:
    return run(rt.run_pod_sandbox(PodSandboxConfig(  # type: ignore[no-any-return]
        "uid-a", "p", "ns", log_directory=str(tmp_path / "logs"))))


async def start(rt: ProcessRuntime, sandbox: str, command: list[str], **kw: Any) -> str:
    cid = await rt.create_container(sandbox, ContainerConfig("c", "sh", command=command, **kw))
    await rt.start_container(cid)
    return cid


async def read_until(stream: asyncio.StreamReader, wanted: bytes, timeout: float = 10) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while wanted not in seen:
            chunk = await stream.read(4096)
            assert chunk, f"EOF before {wanted!r}; got {seen!r}"
            seen += chunk
    return seen


async def exited(rt: ProcessRuntime, cid: str, timeout: float = 10) -> int:
    async with asyncio.timeout(timeout):
        while (status := await rt.container_status(cid)).state == ContainerState.RUNNING:
            await asyncio.sleep(0.05)
    return status.exit_code


class TestStdin:
    def test_input_reaches_the_container_and_its_output_comes_back(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        async def go() -> None:
            cid = await start(rt, sandbox, ["sh", "-c", "while read l; do echo got $l; "
                                                        "echo err $l >&2; done"], stdin=True)
            session = await rt.attach(cid, stdin=True, tty=False)
            await session.write_stdin(b"one\n")
            assert await read_until(session.stdout, b"got one\n") == b"got one\n"
            assert await read_until(session.stderr, b"err one\n") == b"err one\n"
            await session.write_stdin(b"two\n")
            await read_until(session.stdout, b"got two\n")
            session.kill()  # detach: the container runs on
            assert await session.wait() == 0
            await asyncio.sleep(0.2)
            assert (await rt.container_status(cid)).state == ContainerState.RUNNING
            again = await rt.attach(cid, stdin=True, tty=False)
            await again.write_stdin(b"three\n")
            await read_until(again.stdout, b"got three\n")
            again.close_stdin()  # without stdinOnce, the container's stdin stays open
            await asyncio.sleep(0.3)
            assert (await rt.container_status(cid)).state == ContainerState.RUNNING
            third = await rt.attach(cid, stdin=True, tty=False)
            await third.write_stdin(b"four\n")
            await read_until(third.stdout, b"got four\n")
            third.kill()
            again.kill()
        run(go())

    def test_stdin_once_gives_eof_when_the_first_session_closes_it(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        async def go() -> None:
            cid = await start(rt, sandbox, ["sh", "-c", "cat; echo stdin closed"],
                              stdin=True, stdin_once=True)
            session = await rt.attach(cid, stdin=True, tty=False)
            await session.write_stdin(b"hello\n")
            await read_until(session.stdout, b"hello\n")
            session.close_stdin()
            out = await read_until(session.stdout, b"stdin closed\n")
            assert out.endswith(b"stdin closed\n")
            assert await asyncio.wait_for(session.stdout.read(), 10) == b""  # it exited
            assert await session.wait() == 0
            assert await exited(rt, cid) == 0
        run(go())

    def test_stdin_once_also_ends_when_the_first_session_goes_away(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        async def go() -> None:
            cid = await start(rt, sandbox, ["cat"], stdin=True, stdin_once=True)
            watcher = await rt.attach(cid, stdin=False, tty=False)  # output only: no effect
            watcher.kill()
            await asyncio.sleep(0.2)
            assert (await rt.container_status(cid)).state == ContainerState.RUNNING
            session = await rt.attach(cid, stdin=True, tty=False)
            await session.write_stdin(b"x")
            await asyncio.sleep(0.1)
            session.kill()
            assert await exited(rt, cid) == 0
        run(go())

    def test_a_container_without_stdin_ignores_attached_input(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        """As containerd: the session streams output; its input goes nowhere."""
        async def go() -> None:
            cid = await start(rt, sandbox, ["sh", "-c", "sleep 0.5; cat; echo eof at once"])
            session = await rt.attach(cid, stdin=True, tty=False)
            await session.write_stdin(b"lost\n")
            out = await read_until(session.stdout, b"eof at once\n")
            assert b"lost" not in out
            assert await exited(rt, cid) == 0
        run(go())

    def test_output_only_attach_ends_with_the_container(self, rt: ProcessRuntime,
                                                        sandbox: str) -> None:
        async def go() -> None:
            cid = await start(rt, sandbox, ["sh", "-c", "sleep 0.5; echo bye; exit 3"])
            session = await rt.attach(cid, stdin=False, tty=False)
            out = await asyncio.wait_for(session.stdout.read(), 10)
            assert out == b"bye\n"
            assert await session.wait() == 0  # an attach has no exit code of its own
            assert await exited(rt, cid) == 3
        run(go())

    def test_attach_survives_a_new_runtime_instance(self, rt: ProcessRuntime,
                                                    sandbox: str) -> None:
        """The supervisor owns the stdin: a restarted kubelet attaches to the same one."""
        async def go() -> None:
            cid = await start(rt, sandbox, ["cat"], stdin=True)
            first = await rt.attach(cid, stdin=True, tty=False)
            await first.write_stdin(b"before\n")
            await read_until(first.stdout, b"before\n")
            first.kill()
            fresh = ProcessRuntime(rt.state_dir)
            second = await fresh.attach(cid, stdin=True, tty=False)
            await second.write_stdin(b"after\n")
            await read_until(second.stdout, b"after\n")
            second.kill()
        run(go())

    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    def test_input_sent_after_the_container_exited_loses_none_of_its_output(
            self, rt: ProcessRuntime, sandbox: str, loop: str) -> None:
        """``kubectl run -i``: the stdin's data, then its end. The container needs only the
        data: it answers and exits, and its supervisor hangs up, before the end of stdin
        reaches it. Writing that end to the closed socket must not cost the answer, which
        the kubelet has received but not yet read. Forced here by blocking the event loop
        until the supervisor is gone, then closing stdin before reading."""
        import uvloop

        async def go() -> None:
            cid = await start(rt, sandbox, ["sh", "-c", "read answer; echo you said $answer"],
                              stdin=True, stdin_once=True)
            session = await rt.attach(cid, stdin=True, tty=False)
            await session.write_stdin(b"forty-two\n")
            state = rt.state_dir / "containers" / cid / "state.json"
            deadline = time.monotonic() + 10
            while (read_json(state) or {}).get("status") != "exited":  # the loop stands still
                assert time.monotonic() < deadline, "the container did not exit"
                time.sleep(0.01)
            session.close_stdin()  # meets a socket the supervisor has closed
            out = await asyncio.wait_for(session.stdout.read(), 10)
            assert out == b"you said forty-two\n"
            assert await asyncio.wait_for(session.wait(), 10) == 0
        factory = uvloop.new_event_loop if loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(go())

    def test_a_stopped_container_cannot_be_attached(self, rt: ProcessRuntime,
                                                    sandbox: str) -> None:
        async def go() -> None:
            cid = await start(rt, sandbox, ["true"])
            await exited(rt, cid)
            with pytest.raises(RuntimeOperationError) as err:
                await rt.attach(cid, stdin=False, tty=False)
            assert err.value.reason == "ContainerNotRunning"
            assert not (rt.state_dir / "containers" / cid / "attach.sock").exists()
        run(go())


class TestTerminal:
    def test_a_tty_container_runs_on_a_terminal_the_supervisor_holds(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        async def go() -> None:
            script = "stty size; test -t 0 && echo is a tty; read l; echo got $l"
            cid = await start(rt, sandbox, ["sh", "-c", f"sleep 0.5; {script}"], stdin=True,
                              tty=True)
            session: ExecProcess = await rt.attach(cid, stdin=True, tty=True)
            session.resize(100, 30)
            out = await read_until(session.stdout, b"is a tty")
            assert b"30 100" in out
            await session.write_stdin(b"typed\r")
            await read_until(session.stdout, b"got typed")
            await asyncio.wait_for(session.stdout.read(), 10)  # to its end: the exit
            assert await session.stderr.read() == b""
            assert await exited(rt, cid) == 0
        run(go())


    def test_exec_with_a_terminal_on_the_kubelets_event_loop(self, rt: ProcessRuntime,
                                                             sandbox: str) -> None:
        """uvloop runs a child's preexec function before it sets up the child's session
        and stdio: the terminal must still become the controlling one."""
        import uvloop

        async def go() -> None:
            cid = await start(rt, sandbox, ["sleep", "600"])
            proc = await rt.exec(cid, ["sh", "-c", "tty; stty size"], tty=True)
            proc.resize(81, 21)
            out = await asyncio.wait_for(proc.stdout.read(), 10)
            assert await proc.wait() == 0
            assert b"/dev/pts/" in out and b"21 81" in out
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(go())


def test_no_descriptor_leaks_into_the_kubelet(rt: ProcessRuntime, sandbox: str) -> None:
    async def go() -> None:
        before = len(os.listdir("/proc/self/fd"))
        cid = await start(rt, sandbox, ["cat"], stdin=True)
        for _ in range(3):
            session = await rt.attach(cid, stdin=True, tty=False)
            session.kill()
            await session.wait()
        await rt.stop_container(cid, 1)
        await asyncio.sleep(0.1)
        assert len(os.listdir("/proc/self/fd")) <= before + 1  # the loop's own
    run(go())
