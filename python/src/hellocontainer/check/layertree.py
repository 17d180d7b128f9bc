"""The image's tree across its layers, modelled in bounded memory, so that `validate` judges
every layer entry as `bundle` would extract it.

oci/entries.py judges an entry alone. What is left depends on the entries before it, in this
layer or a lower one, and `bundle` asks its real tree (board/rootfs.py): an entry is refused if
it would be written through a symbolic link or a file, and a hardlink if its target is not a
file, link or FIFO in the image at that point. Here the same questions are answered by a model
that follows image-spec layer.md as rootfs.py does: an entry replaces what is at its path (a
non-directory over a directory removes the directory's subtree); `.wh.NAME` deletes what lower
layers put at NAME; `.wh..wh..opq` hides what lower layers put in its directory.

Memory. A layer may hold millions of entries, so no path is kept: each path is a 64-bit keyed
hash (blake2b, a key drawn per run, so a layer cannot be crafted to collide), in an
open-addressing table of two arrays, 12 bytes a slot. Two different paths of one image share a
hash with a chance of about n²/2^65 (3e-8 for a million paths), which could make a verdict
wrong; that is far below the chance of the machine misreading the layer.

A slot holds, for one path, the latest event there and its entry's sequence number (counted
across the image's layers):
- LINK or OTHER (a symbolic link; another non-directory) made at `seq`: nothing older stays
  below it, so `seq` also "kills" everything below the path made before it;
- NONE: no non-directory, only a kill, `seq`: everything below made before it is gone (a
  whiteout, an opaque directory, a directory replacing a file);
- DIR: an explicit directory entry made at `seq`, which kills nothing (only to tell "a hardlink
  to a directory" from "not in the image" in the message).
An entry made at `seq` is still there iff no ancestor's kill is newer than `seq`. Kills only
grow, so the newest kill along a directory's ancestors is kept with it in a cursor: entries come
directory by directory, so each is checked against the components it does not share with the
previous entry's directory only, and a tree 4,000 levels deep is checked in linear time.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterator
from typing import Any

from ..errors import LayoutError
from ..oci.digests import short_digest
from ..oci.entries import (
    DELETE,
    MAKE,
    OPAQUE_DIR,
    WHITEOUT,
    Entry,
    Notes,
    hardlink_directory,
    hardlink_missing,
    read_entry,
    through,
)
from ..oci.model import Descriptor
from ..oci.tarstream import Member

NONE, DIR, LINK, OTHER = 0, 1, 2, 3  # a slot's kind, its 2 low bits; the sequence number above
SEQ_MAX = (1 << 30) - 1  # what 30 bits hold: a billion entries in one image
SHARDS = 256  # of the path table, by a key's top byte
CHECKPOINT = 64  # a cursor keeps the hasher of every CHECKPOINT-th ancestor
MAX_REFUSED = 5  # refused entries listed one by one, per image; the rest are counted


def _kill(value: int) -> int:
    """The kill of a slot's value: everything below its path made before it is gone."""
    return 0 if value & 3 == DIR else value >> 2


class _Table:
    """64-bit keys (never 0) to 32-bit values (0: absent), by linear probing, in SHARDS
    shards chosen by the key's top byte: each grows by half when 3/4 full, so growing never
    holds two copies of more than one shard (a 256th of the table)."""

    def __init__(self) -> None:
        self._shards = [_Shard() for _ in range(SHARDS)]

    def find(self, key: int) -> tuple[_Shard, int]:
        """The shard of `key` and its slot there: where it is, or where it would go."""
        shard = self._shards[key >> 56]
        return shard, shard.find(key)

    def get(self, key: int) -> int:
        shard = self._shards[key >> 56]
        return shard.values[shard.find(key)]


class _Shard:
    def __init__(self) -> None:
        self.keys = array("Q", bytes(8 * 64))
        self.values = array("I", bytes(4 * 64))
        self._count = 0

    def find(self, key: int) -> int:
        keys = self.keys
        size = len(keys)
        i = key % size
        while True:
            found = keys[i]
            if found == key or found == 0:
                return i
            i += 1
            if i == size:
                i = 0

    def store(self, slot: int, key: int, value: int) -> None:
        """Set the slot `find(key)` gave (no other store since)."""
        if self.keys[slot] == 0:
            self.keys[slot] = key
            self._count += 1
        self.values[slot] = value
        if self._count * 4 > len(self.keys) * 3:
            self._grow()

    def _grow(self) -> None:
        old_keys, old_values = self.keys, self.values
        size = len(old_keys) * 3 // 2
        self.keys, self.values = array("Q", bytes(8 * size)), array("I", bytes(4 * size))
        for key, value in zip(old_keys, old_values):
            if key:
                slot = self.find(key)
                self.keys[slot], self.values[slot] = key, value


class _Cursor:
    """A directory of the model, with each of its ancestors' key and newest kill.

    Index i of `keys` and `kills` is the directory `names[:i]`; 0 is the root. A hasher is
    kept for the directory itself and for every CHECKPOINT-th ancestor only (one holds
    about 450 bytes): going up rehashes fewer than CHECKPOINT names.
    """

    def __init__(self, table: _Table, root: Any) -> None:
        self._table = table
        self.names: list[str] = []
        self.keys = array("Q", [_key(root)])
        self.kills = array("I", [_kill(table.get(self.keys[0]))])
        self._hasher = root  # of names
        self._checkpoints = [root]  # [i]: the hasher of names[:i * CHECKPOINT]

    def move(self, directory: list[str]) -> tuple[int, bool]:
        """Go to `directory`. If one of its components is a live non-directory, stop before it
        and return its index in `directory` and whether it is a link; else (-1, False)."""
        names = self.names
        if directory == names:
            return -1, False
        start = len(names)
        if start > len(directory) or directory[:start] != names:
            start = next((i for i, (a, b) in enumerate(zip(names, directory)) if a != b),
                         min(start, len(directory)))
            self._truncate(start)
        for i in range(start, len(directory)):
            name = directory[i]
            hasher = self._hasher.copy()
            hasher.update(_encoded(name))
            key = _key(hasher)
            value = self._table.get(key)
            above = self.kills[-1]
            if value & 3 >= LINK and value >> 2 >= above:
                return i, value & 3 == LINK
            names.append(name)
            self.keys.append(key)
            self.kills.append(max(above, _kill(value)))
            self._hasher = hasher
            if len(names) % CHECKPOINT == 0:
                self._checkpoints.append(hasher)
        return -1, False

    def child(self, name: str) -> int:
        """The key of `name` in the cursor's directory."""
        hasher = self._hasher.copy()
        hasher.update(_encoded(name))
        return _key(hasher)

    def alive(self, value: int) -> bool:
        """Whether a slot's entry, in the cursor's directory, is still there."""
        return value != 0 and value >> 2 >= self.kills[-1]

    def forget(self, depth: int, key: int) -> None:
        """The slot of `key`, a path of `depth` components, changed: drop it if it is here."""
        if depth < len(self.keys) and self.keys[depth] == key:
            if depth == 0:  # the root stays, with its new kill
                self.kills[0] = _kill(self._table.get(key))
                self._truncate(0)
            else:
                self._truncate(depth - 1)

    def _truncate(self, depth: int) -> None:
        """Keep the directory `names[:depth]` and its ancestors."""
        del self.names[depth:], self.keys[depth + 1:], self.kills[depth + 1:], \
            self._checkpoints[depth // CHECKPOINT + 1:]
        hasher = self._checkpoints[-1].copy()
        for name in self.names[(len(self._checkpoints) - 1) * CHECKPOINT:]:
            hasher.update(_encoded(name))
        self._hasher = hasher


class _Refused(Exception):
    """Why bundle would refuse an entry; the message naming it is made only then."""


def _encoded(name: str) -> bytes:
    return b"/" + name.encode("utf-8", "surrogateescape")


def _key(hasher: Any) -> int:
    return int.from_bytes(hasher.digest(), "little") or 1  # 0 marks an empty slot


class LayerTree:
    """The model of one image's tree; `apply` its layers' entries in order, with
    `start_layer` before each layer."""

    def __init__(self) -> None:
        self._table = _Table()
        root = hashlib.blake2b(digest_size=8, key=os.urandom(16))
        self._cursor = _Cursor(self._table, root)  # the directory of the last entry
        self._targets = _Cursor(self._table, root)  # the directory of the last hardlink target
        self._seq = 0
        self._layer_start = 1

    def start_layer(self) -> None:
        self._layer_start = self._seq + 1

    def apply(self, entry: Entry, layer: str) -> None:
        """Add `entry` of layer `layer` (a short digest), or raise a LayoutError where bundle
        would refuse it; a refused entry changes nothing."""
        try:
            self._apply(entry)
        except _Refused as refused:
            raise LayoutError(f"layer {layer} entry {entry.shown}: {refused}") from None

    def _apply(self, entry: Entry) -> None:
        if self._seq >= SEQ_MAX:
            raise _Refused(f"the image has more than {SEQ_MAX} entries, too many to check")
        self._seq += 1
        if entry.action not in (MAKE, DELETE, OPAQUE_DIR):
            return  # the root's attributes, skipped and ignored entries: the tree stays
        parts = entry.parts
        cursor = self._cursor
        directory = parts[:-1]
        blocked, link = cursor.move(directory)
        if blocked >= 0:
            if entry.action != MAKE:
                return  # a whiteout behind a link or a file: nothing below to delete
            raise _Refused(through(directory[:blocked + 1], link))
        if entry.action == OPAQUE_DIR:
            key = cursor.keys[-1]  # the directory itself
            value = self._table.get(key)
            self._set(len(directory), key, NONE, max(_kill(value), self._layer_start))
            return
        name = parts[-1]
        if entry.action == DELETE:
            name = name[len(WHITEOUT):]
        key = cursor.child(name)
        slot = self._table.find(key)
        value = slot[0].values[slot[1]]
        here = value & 3 if cursor.alive(value) else NONE  # what is at the path now
        if entry.action == DELETE:
            if here >= LINK and value >> 2 >= self._layer_start:
                return  # this layer's own: a whiteout deletes only what lower layers made
            self._set(len(parts), key, NONE, max(_kill(value), self._layer_start), slot)
        elif entry.kind == "dir":
            if here >= LINK:
                self._set(len(parts), key, NONE, self._seq, slot)  # replaces a non-directory
            elif value & 3 != NONE or value == 0:
                self._set(len(parts), key, DIR, self._seq, slot)
        else:
            if entry.kind == "hardlink":
                assert entry.source is not None
                self._check_target(entry.source)
            self._set(len(parts), key, LINK if entry.kind == "symlink" else OTHER, self._seq,
                      slot)

    def _check_target(self, source: list[str]) -> None:
        targets = self._targets
        if targets.move(source[:-1])[0] < 0:
            value = self._table.get(targets.child(source[-1]))
            if targets.alive(value) and value & 3 >= LINK:
                return
            if targets.alive(value) and value & 3 == DIR:
                raise _Refused(hardlink_directory(source))
        raise _Refused(hardlink_missing(source))

    def _set(self, depth: int, key: int, kind: int, seq: int,
             slot: tuple[_Shard, int] | None = None) -> None:
        shard, i = self._table.find(key) if slot is None else slot
        shard.store(i, key, seq << 2 | kind)
        self._cursor.forget(depth, key)
        self._targets.forget(depth, key)


class ImageEntries:
    """What validate learns of one image's layer entries, read layer by layer in order: the
    refused ones (problems), the notes (warnings), and the model, while every layer so far
    could be read (a layer that cannot leaves the tree above it unknown)."""

    def __init__(self, model: bool = True) -> None:
        self.tree: LayerTree | None = LayerTree() if model else None
        self.notes = Notes()
        self.refused: list[str] = []
        self._more = 0

    def stop(self) -> None:
        """A layer could not be read: the entries above it are judged alone."""
        self.tree = None

    def read(self, members: Iterator[Member], layer: Descriptor, where: str) -> None:
        """Judge a layer's entries (`members`) as bundle would extract them, its problems named
        by `where`."""
        name = short_digest(layer.digest)
        if self.tree is not None:
            self.tree.start_layer()
        for member in members:
            try:
                entry = read_entry(member, name)
                if entry.notes:
                    self.notes.add(entry.notes)
                if self.tree is not None:
                    self.tree.apply(entry, name)
            except LayoutError as error:
                if len(self.refused) < MAX_REFUSED:
                    self.refused.append(f"{where}: {error}")
                else:
                    self._more += 1

    def problems(self, where: str) -> list[str]:
        more = [f"{where}: {self._more} more layer entries are refused likewise"] \
            if self._more else []
        return self.refused + more

    def warnings(self, where: str) -> list[str]:
        return [f"{where}: when bundled, {line}" for line in self.notes.lines()]
