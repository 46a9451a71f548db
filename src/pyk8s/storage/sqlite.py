"""The embedded storage backend: the etcd contract on one SQLite file (``sqlite:///path``).

Data model: kine's append-only revision log (see ``_sqlite_sql.py``); a read at revision R is
the latest row per key with ``id <= R`` that is not a tombstone.

Concurrency model (the store is used from one asyncio event loop):

* **Writes** go to one writer thread that group-commits whatever is pending into one
  transaction (``_sqlite_writer.py``). Callers await a future resolved after the commit.
* **Watch fan-out** happens on the loop: each committed batch is published to the watch hub
  in the same callback that advances the visible revision (``_watch.py``), *before* the
  writers' futures resolve, so when ``await store.create()`` returns every watcher already
  has the event buffered.
* **Point reads** (``get``) run on the loop thread on their own connection: an indexed
  lookup costs ~20 us there against ~120-160 us through a thread pool (measured here, with
  both asyncio and uvloop), and it is far shorter than any scheduling slice.
* **Range reads** (``list``, ``count``, watch history) run on a small pool of reader threads,
  each with its own connection: listing 10,000 1 KiB values takes 50-100 ms, which would
  freeze every other request and watch if it ran on the loop. ``sqlite3`` releases the GIL
  while SQLite works, and in WAL mode readers never block the writer or each other.
* Reads are pinned to an explicit revision (the visible one when the caller asks for 0), so
  a page and the revision it reports always agree even while the writer commits newer rows.
  A read below the compaction mark is refused before it starts and re-checked after it
  finishes, because compaction may have run concurrently.

Durability: WAL with ``synchronous=FULL`` by default (each batch fsynced, like etcd); an
acknowledged write survives ``kill -9`` and power loss. ``synchronous=NORMAL`` still survives
``kill -9``. ``sqlite://:memory:`` is a private temporary file with ``synchronous=OFF``,
deleted on close (SQLite's own in-memory databases cannot be shared between the writer and
reader connections without table-level locking).

One process owns a database at a time (an ``flock`` on ``<path>.lock``), because revisions
are assigned in this process's memory.

Not here: anything about Kubernetes objects (values are opaque bytes), leases/TTLs (the API
server implements Event expiry itself), multi-key transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from . import _sqlite_sql as sql
from ._sqlite_writer import CompactOp, GroupCommitWriter, Kind, Outcome, WriteOp, storage_error
from ._watch import HubWatch, WatchHub
from .compactor import Compactor, CompactorSettings
from .interface import (
    CompactedError,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StorageError,
    WatchEvent,
)

log = logging.getLogger("pyk8s.storage.sqlite")

MEMORY = ":memory:"
_T = TypeVar("_T")
# ``SQLiteStore.list`` shadows the builtin inside the class body, hence these aliases.
_KeyValues = list[KeyValue]
_Events = list[WatchEvent]
_Outcomes = list[Outcome]


@dataclass(frozen=True, slots=True)
class SQLiteOptions:
    """Settings of :class:`SQLiteStore` (``open_store("sqlite://...", **options)``)."""

    synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL"
    """FULL: acknowledged writes survive power loss; NORMAL: only process crashes."""
    max_batch: int = 256
    """Most writes folded into one commit."""
    watch_buffer: int = 10_000
    """Events a watcher may fall behind before its watch ends with WatchOverflowError."""
    compact_interval: float = 300.0
    """Seconds between automatic compactions (kube-apiserver's default); 0 disables."""
    compact_keep: int = 1000
    """Automatic compaction never discards the most recent this-many revisions."""
    compact_chunk: int = 5000
    """Revisions compacted per transaction, so writers are never blocked for long."""
    read_threads: int = 2
    """Threads (each with a connection) serving range reads and watch history."""
    cache_mib: int = 32
    """SQLite page cache per connection."""

    def __post_init__(self) -> None:
        if self.synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous must be FULL, NORMAL or OFF, not {self.synchronous!r}")
        for name in ("max_batch", "watch_buffer", "compact_chunk", "read_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.compact_interval < 0 or self.compact_keep < 0:
            raise ValueError("compact_interval and compact_keep must not be negative")


class SQLiteStore:
    """The :class:`~pyk8s.storage.interface.Store` on SQLite. Create with :meth:`open`."""

    def __init__(
        self,
        *,
        path: str,
        options: SQLiteOptions,
        lock_fd: int,
        temp_dir: str | None,
        writer_conn: sqlite3.Connection,
        revision: int,
        compacted: int,
    ) -> None:
        self._path = path
        self._options = options
        self._lock_fd = lock_fd
        self._temp_dir = temp_dir
        self._loop = asyncio.get_running_loop()
        self._rev = revision  # the visible revision: every row up to it is committed
        self._closed = False
        self._hub = WatchHub(options.watch_buffer)
        self._conn = self._connect()  # the loop thread's reader
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._readers = ThreadPoolExecutor(options.read_threads, "pyk8s-sqlite-read")
        self._writer = GroupCommitWriter(
            writer_conn,
            loop=self._loop,
            deliver=self._deliver,
            revision=revision,
            compacted=compacted,
            max_batch=options.max_batch,
            compact_chunk=options.compact_chunk,
        )
        self._writer.start()
        self._compactor_task: asyncio.Task[None] | None = None
        if options.compact_interval > 0:
            settings = CompactorSettings(options.compact_interval, options.compact_keep)
            self._compactor_task = self._loop.create_task(Compactor(self, settings).run())

    @classmethod
    async def open(cls, path: str, options: SQLiteOptions | None = None) -> SQLiteStore:
        """Open (creating if needed) the database at ``path``, or a temporary one for
        ``":memory:"``. Raises StorageError if it cannot be opened or is in use."""
        options = options or SQLiteOptions()
        temp_dir = None
        if path == MEMORY:
            temp_dir = tempfile.mkdtemp(prefix="pyk8s-store-")
            path = os.path.join(temp_dir, "state.db")
            options = replace(options, synchronous="OFF")
        lock_fd = -1
        conn = None
        try:
            lock_fd = _lock(path)
            conn = sql.connect(
                path,
                synchronous=options.synchronous,
                cache_kib=options.cache_mib * 1024,
                writer=True,
            )
            sql.ensure_schema(conn)
            compacted = conn.execute(sql.GET_COMPACTED).fetchone()[0]
            revision = max(conn.execute(sql.CURRENT_REVISION).fetchone()[0], compacted)
            store = cls(
                path=path,
                options=options,
                lock_fd=lock_fd,
                temp_dir=temp_dir,
                writer_conn=conn,
                revision=revision,
                compacted=compacted,
            )
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if lock_fd >= 0:
                os.close(lock_fd)
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            if isinstance(exc, sqlite3.Error | OSError):
                raise storage_error(exc) from exc
            raise
        log.info("opened %s at revision %d (compacted %d)", path, revision, compacted)
        return store

    @property
    def path(self) -> str:
        return self._path

    # -- reads -----------------------------------------------------------------------------

    async def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._writer.compacted

    def _read_revision(self, revision: int) -> int:
        self._check_open()
        if revision == 0:
            return self._rev
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        self._check_compacted(revision)
        return revision

    def _check_compacted(self, revision: int) -> None:
        compacted = self._writer.compacted
        if revision < compacted:
            raise CompactedError(revision, compacted)

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        rev = self._read_revision(revision)
        try:
            # fetchall, not fetchone: the statement must finish, or its read transaction
            # stays open and keeps checkpoints from resetting the WAL.
            rows = self._conn.execute(sql.GET_AT, (key, rev)).fetchall()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        self._check_compacted(rev)
        if not rows or rows[0][4]:
            return None
        name, value, create_revision, mod_revision, _ = rows[0]
        return KeyValue(name, value, create_revision, mod_revision)

    async def list(
        self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0
    ) -> ListResult:
        rev = self._read_revision(revision)
        if limit < 0:
            raise ValueError("limit must not be negative")
        kvs = await self._in_reader(self._list_sync, prefix, start, limit, rev)
        self._check_compacted(rev)
        more = bool(limit) and len(kvs) > limit
        if more:
            del kvs[limit:]
        return ListResult(kvs, rev, more)

    def _list_sync(self, prefix: str, start: str, limit: int, rev: int) -> _KeyValues:
        lo, hi = sql.key_range(prefix, start)
        query = sql.range_query(hi is not None)
        rows = self._reader().execute(query, (lo, hi, rev, limit + 1 if limit else -1))
        return [KeyValue(name, value, crev, mrev) for name, value, crev, mrev in rows]

    async def count(self, prefix: str) -> int:
        rev = self._read_revision(0)
        return await self._in_reader(self._count_sync, prefix, rev)

    def _count_sync(self, prefix: str, rev: int) -> int:
        lo, hi = sql.key_range(prefix)
        query = sql.range_query(hi is not None, count=True)
        return int(self._reader().execute(query, (lo, hi, rev)).fetchall()[0][0])

    async def _history(self, prefix: str, first: int, last: int, limit: int) -> _Events:
        return await self._in_reader(self._history_sync, prefix, first, last, limit)

    def _history_sync(self, prefix: str, first: int, last: int, limit: int) -> _Events:
        lo, hi = sql.key_range(prefix)
        query = sql.history_query(hi is not None)
        events = []
        for rid, name, created, deleted, crev, prev_id, value, prev_value in self._reader().execute(
            query, (lo, hi, first, last, limit)
        ):
            kv = KeyValue(name, value, crev, rid)
            if deleted:
                events.append(WatchEvent("DELETE", kv, KeyValue(name, value, crev, prev_id)))
            elif created:
                events.append(WatchEvent("PUT", kv, None))
            elif prev_value is None:  # its predecessor was compacted away under us
                raise CompactedError(first, max(self._writer.compacted, rid))
            else:
                events.append(WatchEvent("PUT", kv, KeyValue(name, prev_value, crev, prev_id)))
        return events

    def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator[WatchEvent]:
        return HubWatch(
            self._hub,
            prefix,
            from_revision,
            published_revision=lambda: self._rev,
            compacted_revision=lambda: self._writer.compacted,
            history=self._history,
        )

    async def _in_reader(self, fn: Callable[..., _T], *args: object) -> _T:
        try:
            return await self._loop.run_in_executor(self._readers, fn, *args)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        except RuntimeError as exc:  # the pool was shut down: the store closed meanwhile
            if self._closed:
                raise StorageError("store is closed") from exc
            raise

    def _connect(self) -> sqlite3.Connection:
        return sql.connect(
            self._path, synchronous="OFF", cache_kib=self._options.cache_mib * 1024, writer=False
        )

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._reader_conns.append(conn)
        return conn

    # -- writes ----------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(Kind.CREATE, key, value, 0)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        return await self._write(Kind.UPDATE, key, value, expected_revision)

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return await self._write(Kind.DELETE, key, b"", expected_revision)

    def _write(self, kind: Kind, key: str, value: bytes, expected: int) -> asyncio.Future[KeyValue]:
        self._check_open()
        if not key:
            raise ValueError("key must not be empty")
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        future: asyncio.Future[KeyValue] = self._loop.create_future()
        self._writer.submit(WriteOp(kind, key, value, expected, future))
        return future

    def _deliver(self, revision: int, events: _Events, outcomes: _Outcomes) -> None:
        """On the loop: make a committed batch visible, then answer its writers."""
        if revision > self._rev:
            self._rev = revision
        self._hub.publish(events)
        for future, outcome in outcomes:
            if future.done():  # the caller was cancelled; the write still happened
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision <= self._writer.compacted:
            return
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        future: asyncio.Future[None] = self._loop.create_future()
        self._writer.submit(CompactOp(revision, future))
        await future

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed")

    def stats(self) -> dict[str, int]:
        """Sizes and counters for metrics: revisions, file sizes, commits, watchers."""
        sizes = {}
        for suffix in ("", "-wal"):
            try:
                sizes[suffix] = os.path.getsize(self._path + suffix)
            except OSError:
                sizes[suffix] = 0
        return {
            "revision": self._rev,
            "compacted_revision": self._writer.compacted,
            "db_bytes": sizes[""],
            "wal_bytes": sizes["-wal"],
            "commits": self._writer.batches,
            "writes": self._writer.writes,
            "watchers": len(self._hub),
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor_task is not None:
            self._compactor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor_task
        self._hub.close()
        await self._writer.stop()
        # Range reads in flight take milliseconds; let them finish before closing their
        # connections.
        self._readers.shutdown(wait=True)
        for conn in [self._conn, *self._reader_conns]:
            conn.close()
        os.close(self._lock_fd)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        log.info("closed %s at revision %d", self._path, self._rev)


def _lock(path: str) -> int:
    """Take the exclusive, process-lifetime lock on the database (released by the kernel
    if the process dies)."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"{path} is in use by another process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd
