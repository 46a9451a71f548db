"""Group commit: the one thread that writes to the SQLite database.

Why a thread: a commit at ``synchronous=FULL`` waits for an fsync, and compaction deletes
thousands of rows; neither may stall the event loop. ``sqlite3`` releases the GIL while
SQLite works, so the loop keeps serving reads and watches meanwhile.

Why group commit: an fsync costs the same for one row as for a hundred, so every write that
arrives while a commit is in flight is folded into the next transaction. With 16 concurrent
writers batches of ~16 form by themselves, with no added wait, and throughput grows with
concurrency instead of being capped at one commit per fsync. Each write still gets its own
revision and its own condition check (against the database plus the writes earlier in the
same batch); a failed condition fails only that write and consumes no revision. A failed
*commit* fails every write in the batch and no revision is consumed.

Why a single writer: revisions are assigned here, in memory, in commit order, so they are
strictly increasing and gap-free without asking SQLite for ``MAX(id)`` under a lock. The
database file is ``flock``-ed by the store so no second process can write behind our back.

Results go back to the event loop with one ``call_soon_threadsafe`` per batch, carrying the
batch's revision, its watch events and each caller's outcome, so the loop publishes events
and advances the visible revision in one step (see ``_watch.py`` for why that matters).

Compaction runs here too, in chunks of revisions, each its own short transaction, with any
pending writes committed between chunks, so a large compaction never blocks writers for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from . import _sqlite_sql as sql
from .interface import (
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    StorageError,
    WatchEvent,
)

log = logging.getLogger("pyk8s.storage.sqlite")


class Kind(IntEnum):
    CREATE = 1
    UPDATE = 2
    DELETE = 3


@dataclass(slots=True)
class WriteOp:
    kind: Kind
    key: str
    value: bytes
    expected_revision: int
    future: asyncio.Future[KeyValue]


@dataclass(slots=True)
class CompactOp:
    revision: int
    future: asyncio.Future[None]


Outcome: TypeAlias = tuple[asyncio.Future[Any], object]  # (future, result or exception)
Deliver: TypeAlias = Callable[[int, list[WatchEvent], list[Outcome]], None]

_STOP = object()
# (id, deleted, create_revision, value) of a name's latest row
_Row: TypeAlias = tuple[int, int, int, bytes]


def storage_error(exc: BaseException) -> StorageError:
    """The one place sqlite3's exceptions become ours."""
    err = StorageError(f"sqlite: {exc}")
    err.__cause__ = exc
    return err


class GroupCommitWriter:
    """Owns the write connection and the thread that uses it; see the module docstring."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        loop: asyncio.AbstractEventLoop,
        deliver: Deliver,
        revision: int,
        compacted: int,
        max_batch: int,
        compact_chunk: int,
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._deliver = deliver
        self._revision = revision
        self._max_batch = max_batch
        self._compact_chunk = compact_chunk
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._compactions: deque[CompactOp] = deque()
        self._stopped: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._run, name="pyk8s-sqlite-writer", daemon=True)
        # Raised *before* a compaction chunk deletes anything and restored if it fails, so a
        # reader that checks it after reading knows whether its snapshot could be affected.
        self.compacted = compacted
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: WriteOp | CompactOp) -> None:
        self._queue.put(op)

    async def stop(self) -> None:
        """Commit what was submitted before this call, fail pending compactions, and close
        the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            await self._stopped

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                batch: list[WriteOp] = []
                item: object = self._next_item(block=not self._compactions)
                while item is not None:
                    if item is _STOP:
                        stopping = True
                    elif isinstance(item, CompactOp):
                        self._compactions.append(item)
                    else:
                        batch.append(item)  # type: ignore[arg-type]
                    if stopping or len(batch) >= self._max_batch:
                        break
                    item = self._next_item(block=False)
                if batch:
                    self._commit(batch)
                if self._compactions and not stopping:
                    self._compact_step()
            while self._compactions:
                op = self._compactions.popleft()
                self._send(self._revision, [], [(op.future, StorageError("store closed"))])
        finally:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                log.warning("closing the write connection failed: %s", exc)
            self._call(_set_done, self._stopped)

    def _next_item(self, *, block: bool) -> object:
        try:
            return self._queue.get(block=block)
        except queue.Empty:
            return None

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _send(self, revision: int, events: list[WatchEvent], outcomes: list[Outcome]) -> None:
        self._call(self._deliver, revision, events, outcomes)

    def _latest(self, key: str, pending: dict[str, _Row]) -> _Row | None:
        row = pending.get(key)
        if row is None:
            row = self._conn.execute(sql.LATEST_ROW, (key,)).fetchone()
        return row

    def _commit(self, batch: list[WriteOp]) -> None:
        conn = self._conn
        revision = self._revision
        rows: list[tuple[int, str, int, int, int, int, bytes]] = []
        events: list[WatchEvent] = []
        outcomes: list[Outcome] = []
        pending: dict[str, _Row] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                key = op.key
                latest = self._latest(key, pending)
                live = latest if latest is not None and not latest[1] else None
                if op.kind is Kind.CREATE:
                    if live is not None:
                        outcomes.append((op.future, KeyExistsError(key)))
                        continue
                    revision += 1
                    prev_id = latest[0] if latest is not None else 0
                    rows.append((revision, key, 1, 0, revision, prev_id, op.value))
                    kv = KeyValue(key, op.value, revision, revision)
                    events.append(WatchEvent("PUT", kv, None))
                    pending[key] = (revision, 0, revision, op.value)
                    outcomes.append((op.future, kv))
                    continue
                if live is None:
                    outcomes.append((op.future, KeyNotFoundError(key)))
                    continue
                current = KeyValue(key, live[3], live[2], live[0])
                if op.expected_revision and op.expected_revision != live[0]:
                    outcomes.append((op.future, RevisionMismatchError(key, current)))
                    continue
                revision += 1
                if op.kind is Kind.UPDATE:
                    rows.append((revision, key, 0, 0, live[2], live[0], op.value))
                    kv = KeyValue(key, op.value, live[2], revision)
                    events.append(WatchEvent("PUT", kv, current))
                    pending[key] = (revision, 0, live[2], op.value)
                else:
                    rows.append((revision, key, 0, 1, live[2], live[0], live[3]))
                    kv = KeyValue(key, live[3], live[2], revision)
                    events.append(WatchEvent("DELETE", kv, current))
                    pending[key] = (revision, 1, live[2], live[3])
                outcomes.append((op.future, kv))
            if rows:
                conn.executemany(sql.INSERT_ROW, rows)
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
        except Exception as exc:
            self._rollback()
            log.error("commit of %d writes failed: %s", len(batch), exc)
            self._send(self._revision, [], [(op.future, storage_error(exc)) for op in batch])
            return
        self._revision = revision
        self.batches += 1
        self.writes += len(rows)
        self._send(revision, events, outcomes)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("rollback failed: %s", exc)

    def _compact_step(self) -> None:
        """One chunk of the oldest pending compaction; resolves it when it is done."""
        op = self._compactions[0]
        low = self.compacted
        if op.revision > low:
            high = min(op.revision, low + self._compact_chunk)
            self.compacted = high
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                victims = self._conn.execute(sql.COMPACT_VICTIMS, (low, high)).fetchall()
                self._conn.executemany(sql.DELETE_ROW, victims)
                self._conn.execute(sql.SET_COMPACTED, (high,))
                self._conn.execute("COMMIT")
            except Exception as exc:
                self._rollback()
                self.compacted = low
                self._compactions.popleft()
                log.error("compaction to %d failed: %s", op.revision, exc)
                self._send(self._revision, [], [(op.future, storage_error(exc))])
                return
            if high < op.revision:
                return
        self._compactions.popleft()
        self._checkpoint()
        self._send(self._revision, [], [(op.future, None)])

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it, so compaction also bounds the
        files on disk. Readers in flight can make that impossible right now; then the WAL is
        reused from its start at the next commit and trimmed by ``journal_size_limit``."""
        conn = self._conn
        try:
            conn.execute("PRAGMA busy_timeout = 200")
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.info(
                    "WAL checkpoint incomplete (%d of %d frames): readers active", done, frames
                )
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA busy_timeout = 5000")


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
