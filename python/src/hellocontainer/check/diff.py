"""`hellocontainer diff A B`: why two images are not the same, in one screen.

A rebuild that is not byte-identical shows up as a different manifest digest, which says
nothing about the cause. This walks both images in parallel and reports the first place each
difference appears: a tag, a config field, a layer's compression, or a file's tar header
(mode, owner, names, mtime, size) or content.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..oci import model, referrers
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..oci.walk import Edge, Node, walk
from .inspect import layer_files
from .streaming import Spill, sorted_stream

FILE_FIELDS = ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "sha256")


def _entries(reader: LayoutReader, tag: str | None) -> dict[str, Descriptor]:
    """index.json entries by tag (untagged ones by digest), or only `tag`."""
    return {(d.ref_name or d.digest): d for d in reader.select(tag)}


def json_differences(a: Any, b: Any, where: str) -> list[str]:
    """Leaf-by-leaf differences of two JSON values, as `where.path: a → b` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += json_differences(a.get(key, "(absent)"), b.get(key, "(absent)"), f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b))
                for line in json_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} → {b!r}"]


class Differ:
    """Walks images A and B in step (walk.py), descending only where their digests differ."""

    def __init__(self, a: LayoutReader, b: LayoutReader) -> None:
        self.a, self.b = a, b

    def descriptors(self, da: Descriptor, db: Descriptor, where: str) -> list[str]:
        """Every difference between A's `da` and B's `db`, in the order a reader meets them.

        The walk follows A's graph; each node carries B's counterpart and where they are.
        Equal digests end a branch, so no walk of a shared graph needs a visited set.
        """
        out = Spill()

        def visit(node: Node[tuple[Descriptor, str]]) -> list[Edge[tuple[Descriptor, str]]]:
            x, (y, at) = node.descriptor, node.context
            if x.media_type != y.media_type:
                out.append(f"{at}: media type {x.media_type} → {y.media_type}")
            elif x.media_type in model.INDEX_TYPES:
                return self.indexes(x, y, at, out)
            elif x.media_type in model.MANIFEST_TYPES:
                out.extend(self.manifests(x, y, at))
            else:
                out.append(f"{at}: blob {x.digest} → {y.digest}")
            return []

        if da.digest != db.digest:
            walk([(da, (db, where))], visit, where=lambda node: node.context[1])
        return out

    def indexes(self, da: Descriptor, db: Descriptor, where: str,
                out: Spill) -> list[Edge[tuple[Descriptor, str]]]:
        """Add the platforms only one side has to `out`; the pairs of the others, to compare."""
        def by_platform(reader: LayoutReader, d: Descriptor) -> dict[str, Descriptor]:
            children = reader.children(d)
            listed = {c.digest: c for c in children}
            names: dict[str, str] = {}

            def name(child: Descriptor, hops: int = 0) -> str:
                # An attestation (an SBOM, a signature) is `unknown/unknown`: name it after what
                # it is about and its type ("linux/arm64 application/spdx+json", and the SBOM's
                # signature after that), so that each is compared with its counterpart.
                if child.digest not in names:
                    about = child.annotations.get(referrers.ANNOTATION_REFERENCE_DIGEST)
                    if child.annotations.get(referrers.ANNOTATION_REFERENCE_TYPE) and about:
                        subject = listed.get(about)
                        base = name(subject, hops + 1) if subject and hops < len(listed) \
                            else about
                        names[child.digest] = f"{base} {_artifact_type(reader, child)}"
                    else:
                        names[child.digest] = model.platform_name(child.platform or {}) \
                            or child.digest
                return names[child.digest]

            found: dict[str, Descriptor] = {}
            for child in children:
                key, number = name(child), 1
                while key in found:  # a second signature of one image (another key): #2
                    number += 1
                    key = f"{name(child)} #{number}"
                found[key] = child
            return found

        pa, pb = by_platform(self.a, da), by_platform(self.b, db)
        out += [f"{where}: platform {p} only in A" for p in sorted(set(pa) - set(pb))]
        out += [f"{where}: platform {p} only in B" for p in sorted(set(pb) - set(pa))]
        return [(pa[p], (pb[p], f"{where} [{p}]")) for p in sorted(set(pa) & set(pb))
                if pa[p].digest != pb[p].digest]

    def manifests(self, da: Descriptor, db: Descriptor, where: str) -> Spill:
        ma, mb = self.a.document(da, "manifest"), self.b.document(db, "manifest")
        out = Spill()
        out += json_differences(ma.get("annotations", {}), mb.get("annotations", {}),
                                f"{where} manifest annotations")
        ca, cb = Descriptor.from_json(ma["config"]), Descriptor.from_json(mb["config"])
        if ca.digest != cb.digest:
            schema_a = "config" if ca.media_type in model.CONFIG_TYPES else None
            schema_b = "config" if cb.media_type in model.CONFIG_TYPES else None
            if schema_a and schema_b:
                config_a, config_b = self.a.document(ca, "config"), self.b.document(cb, "config")
                out += json_differences(config_a, config_b, f"{where} config")
            else:
                out.append(f"{where}: config {ca.digest} → {cb.digest}")
        la, lb = ma["layers"], mb["layers"]
        if len(la) != len(lb):
            out.append(f"{where}: {len(la)} layers → {len(lb)} layers")
        for i, (x, y) in enumerate(zip(la, lb)):
            out += self.layers(Descriptor.from_json(x), Descriptor.from_json(y), f"{where} layer {i}")
        return out

    def layers(self, la: Descriptor, lb: Descriptor, where: str) -> Spill:
        """The differences of two layers' entries: sorted by path on disk and merged, so that
        two layers of a million entries each are compared in a few MiB."""
        out = Spill()
        if la.digest == lb.digest:
            return out
        if la.media_type != lb.media_type:
            out.append(f"{where}: media type {la.media_type} → {lb.media_type}")
        fa, fb = layer_files(self.a, la, hashes=True), layer_files(self.b, lb, hashes=True)
        a, b = _LastOfEachPath(fa), _LastOfEachPath(fb)
        only_a, only_b, changed = Spill(), Spill(), Spill()
        x, y = next(a, None), next(b, None)
        while x is not None or y is not None:
            if y is None or (x is not None and x[0] < y[0]):
                only_a.append(f"{where}: {x[0]} only in A")
                x = next(a, None)
            elif x is None or y[0] < x[0]:
                only_b.append(f"{where}: {y[0]} only in B")
                y = next(b, None)
            else:
                for field, old, new in zip(FILE_FIELDS, x[2:], y[2:]):
                    if old != new:
                        changed.append(f"{where}: {x[0]} {field} {old} → {new}")
                x, y = next(a, None), next(b, None)
        for part in (only_a, only_b, changed):
            out.extend(part)
        if not only_a and not only_b and not _same(_first_order(fa, a.duplicates),
                                                   _first_order(fb, b.duplicates)):
            out.append(f"{where}: same files in a different order in the tar")
        if not out:
            out.append(f"{where}: same files and headers, different compressed bytes "
                       f"({la.size} → {lb.size} B): another compressor, level or zlib build "
                       f"(this machine's zlib is {zlib.ZLIB_RUNTIME_VERSION})")
        return out


class _LastOfEachPath:
    """A layer's entries as [path, index, *FILE_FIELDS] sorted by path, the last entry of a
    path standing for it (as extraction leaves it); counts the paths that repeat."""

    def __init__(self, files: Spill) -> None:
        records = ([f["path"], i, *(f.get(k) for k in FILE_FIELDS)] for i, f in enumerate(files))
        self._sorted = sorted_stream(records, key=lambda r: (r[0], r[1]))
        self._previous: list[Any] | None = next(self._sorted, None)
        self.duplicates = 0

    def __iter__(self) -> _LastOfEachPath:
        return self

    def __next__(self) -> list[Any]:
        if self._previous is None:
            raise StopIteration
        for record in self._sorted:
            if record[0] != self._previous[0]:
                last, self._previous = self._previous, record
                return last
            self.duplicates += 1
            self._previous = record
        last, self._previous = self._previous, None
        return last


def _first_order(files: Spill, duplicates: int) -> Iterator[str]:
    """The paths in the order they first appear in the tar (a repeated path keeps its place)."""
    if not duplicates:
        yield from (f["path"] for f in files)
        return
    firsts, previous = [], None
    for path, index in sorted_stream(([f["path"], i] for i, f in enumerate(files)),
                                     key=lambda r: (r[0], r[1])):
        if path != previous:
            firsts.append([index, path])
            previous = path
    yield from (path for _, path in sorted_stream(firsts, key=lambda r: r[0]))


def _same(a: Iterator[str], b: Iterator[str]) -> bool:
    return all(x == y for x, y in itertools.zip_longest(a, b))


def diff_layouts(a: tuple[Path, str | None], b: tuple[Path, str | None]) -> Spill:
    """Every difference between image A and image B; empty when they are identical."""
    la, lb = LayoutReader(a[0]), LayoutReader(b[0])
    ea, eb = _entries(la, a[1]), _entries(lb, b[1])
    differ = Differ(la, lb)
    if a[1] is not None or b[1] is not None:  # two named images: compare them whatever their tags
        (ta, da), (tb, db) = next(iter(ea.items())), next(iter(eb.items()))
        return differ.descriptors(da, db, f"tag {ta}" if ta == tb else f"tag {ta} ↔ {tb}")
    out = Spill()
    out += [f"tag {t} only in A" for t in sorted(set(ea) - set(eb))]
    out += [f"tag {t} only in B" for t in sorted(set(eb) - set(ea))]
    for tag in sorted(set(ea) & set(eb)):
        out += differ.descriptors(ea[tag], eb[tag], f"tag {tag}")
    return out


def _artifact_type(reader: LayoutReader, descriptor: Descriptor) -> str:
    """What an attestation is: its manifest's artifactType (or config type), else "attestation"."""
    if descriptor.media_type not in model.MANIFEST_TYPES:
        return "attestation"
    manifest = reader.document(descriptor, "manifest")
    return str(manifest.get("artifactType") or manifest["config"].get("mediaType")
               or "attestation")
