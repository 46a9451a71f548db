"""The etcd contract every storage backend keeps.

The API server sees the store as a revisioned key-value log, exactly as upstream sees etcd:

* every successful write (create, update, delete) gets the next value of one global,
  strictly increasing revision, and the key's ``mod_revision`` becomes that revision;
* writes are conditional (create-if-absent, update/delete-if-revision) so the API server can
  implement optimistic concurrency without locks;
* a watch replays every change to keys under a prefix from any retained revision, then follows
  live changes, with no gap and no duplicate;
* compaction forgets history below a revision; reads and watches below it raise
  :class:`CompactedError` (the API server's 410 Gone).

Backends are chosen by URL scheme (``sqlite:///path``, later ``etcd://``); see
:func:`pyk8s.storage.open_store`. Values are opaque bytes: the store knows nothing of objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of one key."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a range read, as of ``revision``; ``more`` says a further page exists."""

    kvs: list[KeyValue]
    revision: int
    more: bool


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For ``DELETE``, ``kv`` is the key's last value with ``mod_revision`` set to
    the revision of the delete; ``prev`` is the value before the change (None on create)."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def is_create(self) -> bool:
        return self.type == "PUT" and self.prev is None


class StorageError(Exception):
    """Base of the store's errors; backend exceptions are translated into these.

    ::

        StorageError                  I/O failures, a closed store, a backend's own errors
        ├── KeyExistsError            create() lost: the key exists          (API: 409)
        ├── KeyNotFoundError          update()/delete() of a missing key     (API: 404)
        ├── RevisionMismatchError     a conditional write lost a race        (API: 409)
        ├── CompactedError            read/watch below the compaction point  (API: 410)
        ├── FutureRevisionError       read above the current revision        (API: 504 / retry)
        └── WatchOverflowError        a slow watcher was cut off: re-list    (API: ends watch)
    """


class KeyExistsError(StorageError):
    """create() on a key that exists."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StorageError):
    """update() or delete() on a key that does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StorageError):
    """A conditional write whose expected revision is not the key's current one."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(f"revision mismatch on {key}: current is {current.mod_revision}")
        self.key = key
        self.current = current


class CompactedError(StorageError):
    """A read or watch at a revision that compaction has discarded."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (compacted revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StorageError):
    """A read at a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is in the future (current {current})")
        self.requested = requested
        self.current = current


class WatchOverflowError(StorageError):
    """A watcher fell so far behind live changes that its bounded buffer overflowed.

    The watch has ended (it is raised by ``__anext__`` instead of the next event) so that a
    slow consumer never holds up writers or grows memory without bound. The consumer re-lists
    and watches again from the list's revision, as a Kubernetes client does after a watch
    ends."""

    def __init__(self, prefix: str, limit: int) -> None:
        super().__init__(f"watch on {prefix!r} fell more than {limit} events behind")
        self.prefix = prefix
        self.limit = limit


class Store(Protocol):
    """A revisioned key-value store with watch (the etcd contract)."""

    async def revision(self) -> int:
        """The current revision (the revision of the last write; 0 on an empty store)."""
        ...

    @property
    def compacted_revision(self) -> int:
        """Reads and watches strictly below this revision raise CompactedError."""
        ...

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """The key's value at ``revision`` (0: now), or None."""
        ...

    async def list(
        self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0
    ) -> ListResult:
        """Keys under ``prefix`` in key order, from key ``start`` (inclusive; "" for the
        beginning), at most ``limit`` (0: all), as of ``revision`` (0: now)."""
        ...

    async def count(self, prefix: str) -> int:
        """How many keys exist under ``prefix`` now."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Create-if-absent. Raises KeyExistsError."""
        ...

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        """Update-if-revision. Raises KeyNotFoundError or RevisionMismatchError.
        ``expected_revision=0`` updates whatever version exists (still KeyNotFoundError if
        none does)."""
        ...

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Delete (if-revision when ``expected_revision`` is non-zero). Returns the deleted
        value with ``mod_revision`` set to the delete's revision. Raises KeyNotFoundError or
        RevisionMismatchError."""
        ...

    def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator[WatchEvent]:
        """Every change under ``prefix`` with revision >= ``from_revision`` in revision order,
        then live changes until the iterator is closed. Raises CompactedError (on the first
        ``__anext__``) when ``from_revision`` is below the compacted revision, or later if a
        compaction overtakes the replay of history. ``from_revision=0`` means "from now": only changes after the current revision.
        The iterator ends (StopAsyncIteration) when the store closes, and raises
        WatchOverflowError when its consumer falls too far behind. Backends' iterators also
        have ``aclose()`` (as async generators do) to end a watch early; an abandoned one is
        released when it is garbage-collected."""
        ...

    async def compact(self, revision: int) -> None:
        """Discard history strictly below ``revision`` (the latest version of each live key
        is always kept)."""
        ...

    async def close(self) -> None:
        """Flush and release resources; pending watches end."""
        ...
