"""The SQLite backend's schema, connection settings and statements, in one place.

The layout is kine's: one append-only log table whose integer primary key *is* the revision.
Every write appends a row; nothing is updated in place, so a read "as of revision R" is the
latest row per name with ``id <= R`` that is not a delete tombstone, and a watch replay is a
primary-key range scan. A tombstone keeps the deleted value so DELETE events can carry it.

``prev_revision`` points at the name's previous row (0 for the first one). Compaction uses it
to find superseded rows incrementally: every row in the compacted range removes its
predecessor, so a compaction pass costs O(rows compacted), not O(table).

Keys are TEXT compared with SQLite's BINARY collation, i.e. by UTF-8 bytes, which orders like
Python's ``str`` comparison; prefix ranges therefore translate to ``name >= lo AND name < hi``.

Nothing here touches the event loop or threads; see ``sqlite.py`` for the concurrency model.
"""

from __future__ import annotations

import sqlite3
from typing import Final

SCHEMA_VERSION: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    created         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    value           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('compacted_revision', 0);
"""

# -- writer ------------------------------------------------------------------------------

LATEST_ROW: Final = (
    "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1"
)
INSERT_ROW: Final = (
    "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
CURRENT_REVISION: Final = "SELECT COALESCE(MAX(id), 0) FROM kv"
GET_COMPACTED: Final = "SELECT value FROM meta WHERE key = 'compacted_revision'"
SET_COMPACTED: Final = "UPDATE meta SET value = ? WHERE key = 'compacted_revision'"
# Rows made obsolete by the rows in [lo, hi): each row's predecessor, and tombstones themselves.
COMPACT_VICTIMS: Final = (
    "SELECT prev_revision FROM kv WHERE id >= ?1 AND id < ?2 AND prev_revision > 0"
    " UNION SELECT id FROM kv WHERE id >= ?1 AND id < ?2 AND deleted = 1"
)
DELETE_ROW: Final = "DELETE FROM kv WHERE id = ?"

# -- readers -----------------------------------------------------------------------------
# ``?3`` is the read revision. "The latest row per name at or below ?3" is expressed as "no
# later row of the same name at or below ?3", which SQLite answers from the (name, id) index
# while walking the range in key order, so the scan needs no temporary B-tree and can stop
# at LIMIT. (Measured against a GROUP BY/MAX join: 2-4x faster on 10k keys.)

GET_AT: Final = (
    "SELECT name, value, create_revision, id, deleted FROM kv"
    " WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1"
)


def range_query(bounded: bool, *, count: bool = False) -> str:
    """A range read over ``name >= ?1 [AND name < ?2]`` as of revision ``?3``, LIMIT ``?4``."""
    what = "COUNT(*)" if count else "r.name, r.value, r.create_revision, r.id"
    upper = " AND r.name < ?2" if bounded else ""
    tail = "" if count else " ORDER BY r.name LIMIT ?4"
    return (
        f"SELECT {what} FROM kv AS r WHERE r.name >= ?1{upper} AND r.id <= ?3"
        " AND NOT EXISTS (SELECT 1 FROM kv AS n WHERE n.name = r.name"
        " AND n.id > r.id AND n.id <= ?3)"
        f" AND r.deleted = 0{tail}"
    )


def history_query(bounded: bool) -> str:
    """Log rows with ``?3 <= id <= ?4`` under the key range, in revision order, LIMIT ``?5``,
    joined with the predecessor row an update event needs as ``prev``."""
    upper = " AND r.name < ?2" if bounded else ""
    return (
        "SELECT r.id, r.name, r.created, r.deleted, r.create_revision, r.prev_revision,"
        " r.value, p.value FROM kv AS r"
        " LEFT JOIN kv AS p ON p.id = r.prev_revision AND r.created = 0 AND r.deleted = 0"
        f" WHERE r.id >= ?3 AND r.id <= ?4 AND r.name >= ?1{upper}"
        " ORDER BY r.id LIMIT ?5"
    )


def key_range(prefix: str, start: str = "") -> tuple[str, str | None]:
    """``(lo, hi)`` such that a key is under ``prefix`` and >= ``start`` iff
    ``lo <= key < hi``; ``hi`` is None when the range is unbounded above."""
    lo = max(prefix, start)
    return lo, prefix_end(prefix)


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates cannot be encoded in UTF-8; skip over them
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


# -- connections -------------------------------------------------------------------------


def connect(path: str, *, synchronous: str, cache_kib: int, writer: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with our pragmas.

    The writer sets ``synchronous``: FULL syncs the WAL on every commit (power-loss safe,
    like etcd's fsync per batch); NORMAL syncs only at checkpoints, which still survives a
    killed process because committed frames are in the OS page cache, but not a power cut.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    if writer:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # After a checkpoint resets the WAL, truncate it to this size instead of keeping its
        # high-water mark on disk.
        conn.execute("PRAGMA journal_size_limit = 67108864")
    else:
        conn.execute("PRAGMA query_only = 1")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables on a new database; refuse one written by a newer schema."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"database schema version {version} is newer than supported {SCHEMA_VERSION}"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
