"""Per-node figures as flat arrays, for the batched Filter and Score of the common plugins.

Why: a scheduling cycle filters and scores hundreds of nodes, and a pass over NodeInfo
objects costs mostly cache misses, not computation. Each NodeInfo, its attribute dict, its
resource maps and its labels live in different places in memory, and the nodes a cycle
visits rotate (``percentageOfNodesToScore``), so they are cold when the cycle reaches them:
on a busy machine merely walking 400 cold NodeInfos costs ~100 µs, and a cycle did about ten
such walks. So the figures the default plugins read are also kept here, as arrays indexed by
the node's position in the snapshot, which a pass reads sequentially:

- free, allocatable, requested and non-zero requested cpu and memory, free pod slots, the
  NodeInfo's generation (int64 arrays; amounts beyond +-2^63, exabytes, are clamped);
- whether the node is cordoned or tainted (bytearrays);
- the minimum of each block of 32 rows of a column, for :meth:`NodeColumns.lowest` (is there
  any node in the batch short of cpu?) in a few dozen comparisons instead of hundreds;
- per label key, the code of each node's value (built on first use);
- per controller, its live pods on each node (built on first use, then kept current);
- remembered scores (:meth:`NodeColumns.memoized`), valid until the node's row changes:
  every row rewrite is logged, and a remembered column catches up on the log when read, so
  a cycle recomputes the few nodes that changed since, without comparing every node.

A :class:`NodeColumns` belongs to one snapshot, whose owner keeps it current: the cache
rewrites a node's row whenever the NodeInfo changes (:meth:`NodeColumns.changed`), and a
snapshot built from a plain list re-reads rows whose generation moved (:meth:`sync`).

A :class:`NodeBatch` is some of a snapshot's nodes by position, held as runs of consecutive
positions: a ``Sequence[NodeInfo]`` for any code, and :meth:`NodeBatch.take` (a slice per run)
for the batched plugins. :func:`as_batch` turns a plain list of NodeInfos (tests, fallbacks)
into a batch over temporary columns.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, overload

from pyk8s.scheduler.nodeinfo import NodeInfo, OwnerKey

__all__ = ["NodeBatch", "NodeColumns", "as_batch"]

_MAX = 2**63 - 1
MEMO_KEYS = 64  # remembered score columns per snapshot (plugin x pod shape), least recent out
CHANGE_LOG = 4096  # row rewrites logged before remembered scores are all dropped
OWNER_KEYS = 32  # per-controller pod count columns per snapshot, least recent out
BLOCK = 32  # rows per block minimum


def _i64(value: int) -> int:
    return value if -_MAX <= value <= _MAX else (_MAX if value > 0 else -_MAX)


class NodeColumns:
    """The snapshot's nodes, one row per position (see the module docstring)."""

    def __init__(self, nodes: list[NodeInfo]) -> None:
        self.nodes = nodes
        self.index: dict[str, int] = {}
        self.alloc_cpu = array("q")
        self.alloc_memory = array("q")
        self.req_cpu = array("q")
        self.req_memory = array("q")
        self.free_cpu = array("q")
        self.free_memory = array("q")
        self.nz_cpu = array("q")
        self.nz_memory = array("q")
        self.free_pods = array("q")
        self.generation = array("q")
        self.unschedulable = bytearray()
        self.tainted = bytearray()
        self._labels: dict[str, tuple[array[int], list[str]]] = {}
        self._everywhere: dict[str, bool] = {}  # label key -> every node has it
        self._owners: dict[OwnerKey, array[int]] = {}
        self._memo: dict[str, _Memo] = {}
        self._log: list[int] = []  # positions of rewritten rows, for the remembered scores
        self._mins: dict[str, array[int]] = {}  # column -> minimum per block, for lowest()
        self._dirty: set[int] = set()  # blocks whose minima are out of date
        for i, node in enumerate(nodes):
            self.index[node.name] = i
            self._append(node)

    def __len__(self) -> int:
        return len(self.nodes)

    # --- rows ----------------------------------------------------------------------------

    def _append(self, n: NodeInfo) -> None:
        self.alloc_cpu.append(_i64(n.alloc_cpu))
        self.alloc_memory.append(_i64(n.alloc_memory))
        self.req_cpu.append(_i64(n.req_cpu))
        self.req_memory.append(_i64(n.req_memory))
        self.free_cpu.append(_i64(n.free_cpu))
        self.free_memory.append(_i64(n.free_memory))
        self.nz_cpu.append(_i64(n.nz_cpu))
        self.nz_memory.append(_i64(n.nz_memory))
        self.free_pods.append(_i64(n.free_pods))
        self.generation.append(n.generation)
        self.unschedulable.append(1 if n.unschedulable else 0)
        self.tainted.append(1 if n.taints else 0)

    def _write(self, i: int, n: NodeInfo) -> None:
        self.alloc_cpu[i] = _i64(n.alloc_cpu)
        self.alloc_memory[i] = _i64(n.alloc_memory)
        self.req_cpu[i] = _i64(n.req_cpu)
        self.req_memory[i] = _i64(n.req_memory)
        self.free_cpu[i] = _i64(n.free_cpu)
        self.free_memory[i] = _i64(n.free_memory)
        self.nz_cpu[i] = _i64(n.nz_cpu)
        self.nz_memory[i] = _i64(n.nz_memory)
        self.free_pods[i] = _i64(n.free_pods)
        self.generation[i] = n.generation
        self.unschedulable[i] = 1 if n.unschedulable else 0
        self.tainted[i] = 1 if n.taints else 0

    def add(self, node: NodeInfo) -> None:
        """A node joins the snapshot, at the next position (``nodes`` is shared with the
        snapshot, which has appended it already)."""
        position = len(self.generation)
        self.index[node.name] = position
        self._append(node)
        for memo in self._memo.values():
            memo.scores.append(0)
            memo.known.append(0)
        for mins in self._mins.values():
            if len(mins) <= position // BLOCK:
                mins.append(0)
        self._dirty.add(position // BLOCK)
        self._log.append(position)
        self.derived_changed()

    def changed(self, node: NodeInfo) -> None:
        """Rewrite the row of a node whose NodeInfo changed (no-op for nodes not here)."""
        i = self.index.get(node.name)
        if i is not None and self.nodes[i] is node:
            self._write(i, node)
            self._logged(i)

    def _logged(self, position: int) -> None:
        self._dirty.add(position // BLOCK)
        log = self._log
        if len(log) >= CHANGE_LOG:
            self._memo.clear()
            log.clear()
        log.append(position)

    def sync(self) -> None:
        """Re-read the rows whose NodeInfo generation moved (for snapshots nobody tracks)."""
        generation = self.generation
        moved = False
        for i, node in enumerate(self.nodes):
            if node.generation != generation[i]:
                self._write(i, node)
                self._logged(i)
                moved = True
        if moved:
            self.derived_changed()

    def derived_changed(self) -> None:
        """Labels or the set of nodes changed: rebuild label and controller columns lazily."""
        self._labels.clear()
        self._everywhere.clear()
        self._owners.clear()

    # --- derived columns -----------------------------------------------------------------

    def lowest(self, name: str, batch: NodeBatch) -> int:
        """The smallest value of the column ``name`` over a (non-empty) batch."""
        column = getattr(self, name)
        mins = self._mins.get(name)
        if mins is None:
            mins = self._mins[name] = array(
                "q", (min(column[b:b + BLOCK]) for b in range(0, len(column), BLOCK)))
        if self._dirty:
            for other, blocks in self._mins.items():
                values = getattr(self, other)
                for b in self._dirty:
                    blocks[b] = min(values[b * BLOCK:(b + 1) * BLOCK])
            self._dirty.clear()
        found: list[int] = []
        for run in batch.runs:
            start, stop = run.start, run.stop
            first, last = -(-start // BLOCK), stop // BLOCK  # whole blocks: [first, last)
            if first >= last:
                found.append(min(column[start:stop]))
                continue
            found.append(min(mins[first:last]))
            if start < first * BLOCK:
                found.append(min(column[start:first * BLOCK]))
            if last * BLOCK < stop:
                found.append(min(column[last * BLOCK:stop]))
        return min(found)

    def label_codes(self, key: str) -> tuple[array[int], list[str]]:
        """Per node, the position of its value of label ``key`` in the returned list of
        values, or -1 where the node has no such label."""
        found = self._labels.get(key)
        if found is None:
            values: list[str] = []
            code_of: dict[str, int] = {}
            codes = array("i")
            for node in self.nodes:
                value = node.labels.get(key)
                if value is None:
                    codes.append(-1)
                    continue
                code = code_of.get(value)
                if code is None:
                    code = code_of[value] = len(values)
                    values.append(value)
                codes.append(code)
            found = self._labels[key] = (codes, values)
        return found

    def label_everywhere(self, key: str) -> bool:
        """Whether every node has label ``key`` (so no batch has a -1 in its codes)."""
        found = self._everywhere.get(key)
        if found is None:
            found = self._everywhere[key] = -1 not in self.label_codes(key)[0]
        return found

    def owner_counts(self, owner: OwnerKey,
                     per_node: Callable[[], Mapping[str, int]]) -> array[int]:
        """Per node, the live pods of controller ``owner`` on it; ``per_node`` gives the
        counts by node name the first time (the owner of the columns keeps them current
        with :meth:`owner_changed` afterwards)."""
        column = self._owners.pop(owner, None)
        if column is not None:
            self._owners[owner] = column  # now the most recently used
        else:
            column = array("q", bytes(8 * len(self.nodes)))
            index = self.index
            for name, count in per_node().items():
                i = index.get(name)
                if i is not None:
                    column[i] = count
            if len(self._owners) >= OWNER_KEYS:
                del self._owners[next(iter(self._owners))]
            self._owners[owner] = column
        return column

    def owner_changed(self, owner: OwnerKey, node_name: str, delta: int) -> None:
        column = self._owners.get(owner)
        if column is not None:
            i = self.index.get(node_name)
            if i is not None:
                column[i] += delta

    def owner_gone(self, owner: OwnerKey) -> None:
        self._owners.pop(owner, None)

    def memoized(self, batch: NodeBatch, key: str,
                 compute: Callable[[NodeBatch], list[int]]) -> list[int]:
        """Each node's score under ``key`` (a plugin and everything about the pod its score
        depends on besides the node): remembered ones where the node's row has not changed
        since they were computed, the others computed together by ``compute`` and
        remembered."""
        memo = self._memo.pop(key, None)
        if memo is None:
            if len(self._memo) >= MEMO_KEYS:
                del self._memo[next(iter(self._memo))]
            memo = _Memo(len(self.nodes), len(self._log))
        self._memo[key] = memo  # now the most recently used
        log = self._log
        if memo.seen < len(log):
            known = memo.known
            for p in log[memo.seen:]:
                known[p] = 0
            memo.seen = len(log)
        result: list[int] = batch.take(memo.scores).tolist()
        flags = batch.take(memo.known)
        if 0 not in flags:
            return result
        wanted: list[int] = []
        j = flags.find(0)
        while j >= 0:
            wanted.append(j)
            j = flags.find(0, j + 1)
        stale = batch.subset(wanted)
        fresh = compute(stale)
        scores, known = memo.scores, memo.known
        for j, p, value in zip(wanted, stale.positions, fresh, strict=True):
            scores[p] = _i64(value)
            known[p] = 1
            result[j] = value
        return result


class _Memo:
    """One remembered score column: the scores, which of them are current (1) or must be
    computed (0), and how much of the change log it has taken in."""

    __slots__ = ("known", "scores", "seen")

    def __init__(self, size: int, seen: int) -> None:
        self.scores = array("q", bytes(8 * size))
        self.known = bytearray(size)
        self.seen = seen


class NodeBatch(Sequence[NodeInfo]):
    """Some of a snapshot's nodes, as runs of consecutive positions in its columns."""

    __slots__ = ("_len", "_positions", "columns", "runs")

    def __init__(self, columns: NodeColumns, runs: list[range]) -> None:
        self.columns = columns
        self.runs = runs
        self._len = sum(len(r) for r in runs)
        self._positions: list[int] | None = None

    @classmethod
    def of_positions(cls, columns: NodeColumns, positions: Iterable[int]) -> NodeBatch:
        if isinstance(positions, range) and positions.step == 1:
            return cls(columns, [positions] if len(positions) else [])
        runs: list[range] = []
        start = end = -1
        for p in positions:
            if p == end:
                end += 1
                continue
            if end > start:
                runs.append(range(start, end))
            start, end = p, p + 1
        if end > start:
            runs.append(range(start, end))
        return cls(columns, runs)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> NodeInfo: ...

    @overload
    def __getitem__(self, i: slice) -> list[NodeInfo]: ...

    def __getitem__(self, i: int | slice) -> NodeInfo | list[NodeInfo]:
        nodes = self.columns.nodes
        if isinstance(i, slice):
            return [nodes[p] for p in self.positions[i]]
        if len(self.runs) == 1:
            return nodes[self.runs[0][i]]
        return nodes[self.positions[i]]

    def __iter__(self) -> Iterator[NodeInfo]:
        return map(self.columns.nodes.__getitem__, chain.from_iterable(self.runs))

    def __repr__(self) -> str:
        return f"NodeBatch({len(self)} nodes in {len(self.runs)} runs)"

    @property
    def positions(self) -> list[int]:
        if self._positions is None:
            self._positions = list(chain.from_iterable(self.runs))
        return self._positions

    def take(self, column: Any) -> Any:
        """The batch's entries of one column (an array, bytearray or list), in batch order."""
        runs = self.runs
        if len(runs) == 1:
            run = runs[0]
            return column[run.start:run.stop]
        out = column[0:0]
        for run in runs:
            out += column[run.start:run.stop]
        return out

    def index_of(self, position: int) -> int | None:
        """Where the node at this snapshot position is in the batch, if it is."""
        offset = 0
        for run in self.runs:
            if run.start <= position < run.stop:
                return offset + position - run.start
            offset += len(run)
        return None

    def subset(self, indices: Iterable[int]) -> NodeBatch:
        """The nodes at these batch indices (in increasing order)."""
        positions = self.positions
        return NodeBatch.of_positions(self.columns, (positions[j] for j in indices))

    def without(self, indices: Iterable[int]) -> NodeBatch:
        """The batch minus the nodes at these batch indices."""
        drop = set(indices)
        positions = self.positions
        return NodeBatch.of_positions(
            self.columns, (p for j, p in enumerate(positions) if j not in drop))


def as_batch(nodes: Sequence[NodeInfo]) -> NodeBatch:
    """``nodes`` as a batch: itself if it is one, else over temporary columns."""
    if isinstance(nodes, NodeBatch):
        return nodes
    listed = list(nodes)
    return NodeBatch(NodeColumns(listed), [range(len(listed))])
