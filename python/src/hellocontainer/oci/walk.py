"""The one walk over a layout's descriptor graph, and the one limit on how deep image indexes nest.

Choosing a platform's image, collecting the blobs a layout reaches (gc, a build or `index`
merging into a layout, an archive), validate, inspect and diff all follow descriptors through
`walk`, as one graph walk serves both reachability and garbage collection in umoci's casext. So
a layout nests too deeply for every command or for none.

Depth: index.json itself is depth 0. A descriptor's depth is the number of image indexes on the
path from index.json down to it, itself included: an image index that index.json lists is at
depth 1, and so is a manifest that index lists. MAX_INDEX_DEPTH image indexes nested in one
another are allowed; an image index at depth MAX_INDEX_DEPTH + 1 is refused with IndexTooDeep,
before it is read.

The walk is depth-first, in the order documents list their descriptors, and iterative, so no
nesting reaches Python's recursion limit. With a `seen` set it meets each blob once (a graph of a
few dozen blobs with 2^40 paths costs a few dozen steps), and a descriptor's depth is that of the
path it was first met by. Without one it follows every path, which only a walk that follows a
single path (choosing a platform) or that stops where two graphs agree (diff) can afford.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from ..errors import LayoutError
from . import model
from .model import Descriptor

MAX_INDEX_DEPTH = 32  # image indexes nested below index.json (depth 0); real layouts nest one

T = TypeVar("T")


class IndexTooDeep(LayoutError):
    """An image index nested more than MAX_INDEX_DEPTH deep: the same words from every command."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where}: image indexes nest deeper than {MAX_INDEX_DEPTH} levels")


class Node(Generic[T]):
    """One descriptor the walk reached, with what its visitor attached to the edge leading here
    (a location to name in messages, a report to fill) and its depth."""

    # A plain class (see oci/value.py), equal only to itself: two nodes of one descriptor are
    # two visits.
    __slots__ = ("context", "depth", "descriptor")

    def __init__(self, descriptor: Descriptor, context: T, depth: int) -> None:
        self.descriptor = descriptor
        self.context = context
        self.depth = depth


Edge = tuple[Descriptor, T]  # a descriptor to follow, with the context its node will carry


def digest_key(descriptor: Descriptor) -> Hashable:
    """The default identity of a node: its blob."""
    return descriptor.digest


def walk(roots: Iterable[Edge[T]], visit: Callable[[Node[T]], Iterable[Edge[T]]], *,
         where: Callable[[Node[T]], str], depth: int = 0, seen: set[Any] | None = None,
         key: Callable[[Descriptor], Hashable] = digest_key,
         repeated: Callable[[Node[T]], None] | None = None,
         leave: Callable[[Node[T]], None] | None = None,
         too_deep: Callable[[IndexTooDeep], None] | None = None) -> None:
    """Call `visit` on each node reachable from `roots`, depth-first; it returns the edges to follow.

    `depth` is the depth of what lists the roots (0: index.json). With `seen`, a node whose
    `key` is in it is passed to `repeated` (if given) instead, and not followed again; the set
    may be shared by several walks. `leave` is called on a node once everything below it has been
    visited. A node past the depth limit raises IndexTooDeep (named by `where`), or, with
    `too_deep`, is passed to it and not followed, and the walk goes on.
    """
    stack: list[tuple[Descriptor, T, int] | Node[T]] = [
        (descriptor, context, depth) for descriptor, context in reversed(list(roots))]
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            assert leave is not None
            leave(item)
            continue
        descriptor, context, above = item
        node = Node(descriptor, context, above + (descriptor.media_type in model.INDEX_TYPES))
        if seen is not None:
            identity = key(descriptor)
            if identity in seen:
                if repeated is not None:
                    repeated(node)
                continue
            seen.add(identity)
        if node.depth > MAX_INDEX_DEPTH:
            error = IndexTooDeep(where(node))
            if too_deep is None:
                raise error
            too_deep(error)
            continue
        children = list(visit(node))
        if leave is not None:
            stack.append(node)
        stack.extend((child, child_context, node.depth)
                     for child, child_context in reversed(children))
