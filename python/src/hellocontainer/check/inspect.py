"""`hellocontainer inspect`: what is in a layout, for people (text) and scripts (--json).

Everything is read through `reader`, so a damaged or hostile layout gives one error line, and a
layer is streamed: its size on disk or inflated never shows in memory.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..oci import model, referrers
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..oci.tarstream import compression_of
from ..oci.walk import Edge, Node, walk
from .streaming import Spill


def layer_files(reader: LayoutReader, layer: Descriptor, hashes: bool = False) -> Spill:
    """The tar headers of a layer, in archive order; with `hashes`, each file's content sha256.
    Kept in a Spill: a layer of a million entries must not take its size in memory."""
    files = Spill()
    if compression_of(layer.media_type) is None:
        return files
    for member in reader.layer_members(layer):
        entry: dict[str, Any] = {
            "path": "/" + member.path,
            "type": member.kind,
            "mode": f"{member.mode:04o}", "uid": member.uid, "gid": member.gid,
            "uname": member.uname, "gname": member.gname,
            "size": member.size, "mtime": member.mtime,
        }
        if member.kind in ("symlink", "hardlink"):
            entry["linkname"] = member.linkname
        if hashes and member.kind == "file":
            digest = hashlib.sha256()
            for chunk in member.chunks():
                digest.update(chunk)
            entry["sha256"] = digest.hexdigest()
        files.append(entry)
    return files


def _describe(reader: LayoutReader, roots: list[Descriptor], seen: set[str]) -> list[dict[str, Any]]:
    """A report of each root and of what it lists, walked once (walk.py).

    Indexes may share children, and a graph of a few dozen blobs can have 2^40 paths: each blob
    is described once, and later mentions of it point back ("described": "above").
    """
    top: list[dict[str, Any]] = []
    # An index's platform reports and its listed referrers, which `leave` attaches to them.
    listed: dict[Node[list[dict[str, Any]]], tuple[list[dict[str, Any]], list[Descriptor]]] = {}

    def report_of(node: Node[list[dict[str, Any]]]) -> dict[str, Any]:
        descriptor = node.descriptor
        report: dict[str, Any] = {"digest": descriptor.digest, "size": descriptor.size,
                                  "mediaType": descriptor.media_type}
        if descriptor.platform:
            report["platform"] = descriptor.platform
        node.context.append(report)
        return report

    def repeated(node: Node[list[dict[str, Any]]]) -> None:
        report_of(node)["described"] = "above"

    def visit(node: Node[list[dict[str, Any]]]) -> list[Edge[list[dict[str, Any]]]]:
        report = report_of(node)
        descriptor = node.descriptor
        if descriptor.media_type in model.INDEX_TYPES:
            children = [child for child in reader.children(descriptor)
                        if child.media_type in model.INDEX_TYPES + model.MANIFEST_TYPES]
            report["manifests"] = []
            listed[node] = (report["manifests"],
                            [c for c in children if referrers.is_listed_referrer(c)])
            return [(child, report["manifests"]) for child in children
                    if not referrers.is_listed_referrer(child)]
        if descriptor.media_type in model.MANIFEST_TYPES:
            _describe_manifest(reader, descriptor, report)
        # else another tool's blob listed in the index: nothing more to say
        return []

    def leave(node: Node[list[dict[str, Any]]]) -> None:
        # Referrers (an SBOM) are shown under the image they describe, not as platforms.
        if node in listed:
            _attach_referrers(reader, *listed.pop(node), seen)

    walk([(root, top) for root in roots], visit, where=lambda _: str(reader.root), seen=seen,
         repeated=repeated, leave=leave)
    return top


def _describe_manifest(reader: LayoutReader, descriptor: Descriptor, report: dict[str, Any]) -> None:
    """Add what a manifest holds to its report: an image's config and files, or an artifact's type."""
    manifest = reader.document(descriptor, "manifest")
    config_descriptor = Descriptor.from_json(manifest["config"])
    layers = [Descriptor.from_json(d) for d in manifest["layers"]]
    report["annotations"] = manifest.get("annotations", {})
    if config_descriptor.media_type not in (model.MEDIA_CONFIG, model.MEDIA_DOCKER_CONFIG):
        report["artifactType"] = manifest.get("artifactType", config_descriptor.media_type)
        report["layers"] = [{"digest": d.digest, "size": d.size, "mediaType": d.media_type}
                            for d in layers]
        return
    config = reader.document(config_descriptor, "config")
    runtime = config.get("config") or {}
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    report.update({
        "platform": model.config_platform(config),
        "created": config.get("created"),
        "config": {"digest": config_descriptor.digest, "size": config_descriptor.size},
        "entrypoint": runtime.get("Entrypoint"), "cmd": runtime.get("Cmd"),
        "env": runtime.get("Env") or [], "user": runtime.get("User") or "",
        "workdir": runtime.get("WorkingDir") or "",
        "ports": sorted(runtime.get("ExposedPorts") or {}), "labels": runtime.get("Labels") or {},
        "stopSignal": runtime.get("StopSignal") or "",
        "layers": [
            {"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type,
             "diffId": diff_ids[i] if i < len(diff_ids) else None,
             "files": layer_files(reader, layer)}
            for i, layer in enumerate(layers)
        ],
    })


def _referrer(reader: LayoutReader, descriptor: Descriptor) -> tuple[str | None, dict[str, Any]]:
    """(the subject's digest, a report) of an artifact manifest that refers to an image."""
    manifest = reader.document(descriptor, "manifest")
    config = Descriptor.from_json(manifest["config"])
    subject = manifest.get("subject") or {}
    return subject.get("digest"), {
        "digest": descriptor.digest, "size": descriptor.size, "mediaType": descriptor.media_type,
        "artifactType": manifest.get("artifactType", config.media_type),
        "layers": [{"digest": d["digest"], "size": d["size"], "mediaType": d["mediaType"]}
                   for d in manifest["layers"]],
    }


def _attach_referrers(reader: LayoutReader, images: list[dict[str, Any]],
                      candidates: list[Descriptor], seen: set[str]) -> list[Descriptor]:
    """Add each candidate whose subject is one of `images` to that image's `referrers`, and a
    referrer of a referrer (the signature of an SBOM) to that referrer's; return the candidates
    that refer to none of them."""
    by_digest = {image["digest"]: image for image in images}
    left = [c for c in candidates if c.media_type in model.MANIFEST_TYPES]
    unread = [c for c in candidates if c.media_type not in model.MANIFEST_TYPES]
    reports = {c.digest: _referrer(reader, c) for c in left}
    attached = True
    while attached:  # each pass attaches the next level down; a cycle attaches nothing
        attached = False
        for candidate in list(left):
            subject, report = reports[candidate.digest]
            if subject in by_digest:
                seen.add(candidate.digest)
                by_digest[subject].setdefault("referrers", []).append(report)
                by_digest.setdefault(candidate.digest, report)
                left.remove(candidate)
                attached = True
    return unread + left


def _layout_bytes(root: Path) -> int:
    """Bytes of the layout's regular files; links are not followed, so nothing outside counts."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def inspect_layout(root: Path, tag: str | None) -> dict[str, Any]:
    """A report of every tagged (or untagged) entry of the layout, or of one tag."""
    reader = LayoutReader(root)
    seen: set[str] = set()
    entries = reader.select(tag)
    first: dict[str, Descriptor] = {}  # each image once, as its first entry lists it
    for descriptor in entries:
        first.setdefault(descriptor.digest, descriptor)
    images = {digest: {"tags": [], **report}
              for digest, report in zip(first, _describe(reader, list(first.values()), seen))}
    for descriptor in entries:
        if descriptor.ref_name:
            images[descriptor.digest]["tags"].append(descriptor.ref_name)
    # Untagged referrers that other tools list in index.json go under their subject.
    loose = {d.digest: d for d in entries if d.ref_name is None and "config" not in images[d.digest]
             and d.media_type in model.MANIFEST_TYPES}
    subjects = [image for digest, image in images.items() if digest not in loose]
    left = _attach_referrers(reader, subjects, list(loose.values()), seen)
    moved = set(loose) - {d.digest for d in left}
    return {"layout": str(root), "bytes": _layout_bytes(root),
            "images": [image for digest, image in images.items() if digest not in moved]}


def _words(value: list[str] | None) -> str:
    """A list as the shell words a user would type; `-` when unset."""
    return shlex.join(value) if value else "-"


def _describe_image(image: dict[str, Any], indent: str) -> Iterator[str]:
    platform = image.get("platform") or {}
    name = model.platform_name(platform)
    if image.get("described"):
        kind = "index" if image["mediaType"] in model.INDEX_TYPES else "manifest"
        yield f"{indent}{kind:<9} {image['digest']} (described above)"
        return
    if "manifests" in image:
        yield f"{indent}index     {image['digest']} ({image['size']} B)"
        for child in image["manifests"]:
            yield from _describe_image(child, indent + "  ")
        return
    yield f"{indent}manifest  {image['digest']} ({image['size']} B) {name}".rstrip()
    if "config" not in image:
        kind = image.get("artifactType") or image["mediaType"]
        yield f"{indent}artifact  {kind}"
        return
    yield from [
        f"{indent}created   {image['created'] or '-'}",
        f"{indent}config    {image['config']['digest']} ({image['config']['size']} B)",
        f"{indent}entrypoint {_words(image['entrypoint'])}",
        f"{indent}cmd       {_words(image['cmd'])}",
        f"{indent}user      {image['user'] or '- (root)'}",
        f"{indent}workdir   {image['workdir'] or '- (/)'}",
    ]
    for label, key in (("env", "env"), ("ports", "ports")):
        if image[key]:
            yield f"{indent}{label:<9} {_words(image[key])}"
    for layer in image["layers"]:
        yield (f"{indent}layer     {layer['digest']} ({layer['size']} B, "
               f"{layer['mediaType'].rsplit('.', 1)[-1]})")
        for f in layer["files"]:
            target = f" -> {f['linkname']}" if f.get("linkname") else ""
            yield f"{indent}  {f['mode']} {f['uid']}:{f['gid']} {f['size']:>9} {f['path']}{target}"
    yield from _describe_referrers(image, indent)


def _describe_referrers(report: dict[str, Any], indent: str) -> Iterator[str]:
    """An image's referrers, and under each its own (the signature of an SBOM)."""
    for referrer in report.get("referrers", []):
        yield (f"{indent}referrer  {referrer['digest']} ({referrer['size']} B) "
               f"{referrer['artifactType']}")
        yield from _describe_referrers(referrer, indent + "  ")


def describe(report: dict[str, Any]) -> Iterator[str]:
    """The report for people, line by line (a layer's files are read back as they are shown)."""
    yield f"{report['layout']}: {report['bytes']} bytes"
    for image in report["images"]:
        yield f"tags      {', '.join(image['tags']) or '(untagged)'}"
        yield from _describe_image(image, "")
