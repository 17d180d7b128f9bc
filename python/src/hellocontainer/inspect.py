"""`hellocontainer inspect`: what is in a layout, for people (text) and scripts (--json)."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Any

from . import model
from .errors import LayoutError
from .layout import Layout
from .model import Descriptor
from .validate import compression_of, decompressed_chunks


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def _sha256(stream: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def layer_files(layout: Layout, layer: Descriptor, hashes: bool = False) -> list[dict[str, Any]]:
    """The tar headers of a layer, in archive order; with `hashes`, each file's content sha256."""
    compression = compression_of(layer.media_type)
    if compression is None:
        return []
    files = []
    with layout.blob_path(layer.digest).open("rb") as stream:
        reader = _ChunkReader(decompressed_chunks(stream, compression))
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                entry = {
                    "path": "/" + member.name.rstrip("/"),
                    "type": "dir" if member.isdir() else "file" if member.isfile() else "other",
                    "mode": f"{member.mode:04o}", "uid": member.uid, "gid": member.gid,
                    "uname": member.uname, "gname": member.gname,
                    "size": member.size, "mtime": int(member.mtime),
                }
                if hashes and member.isfile():
                    entry["sha256"] = _sha256(tar.extractfile(member))
                files.append(entry)
    return files


def _image(layout: Layout, descriptor: Descriptor) -> dict[str, Any]:
    report: dict[str, Any] = {"digest": descriptor.digest, "size": descriptor.size,
                              "mediaType": descriptor.media_type}
    if descriptor.platform:
        report["platform"] = descriptor.platform
    document = layout.read_blob_json(descriptor.digest)
    if descriptor.media_type in model.INDEX_TYPES:
        report["manifests"] = [_image(layout, Descriptor.from_json(d))
                               for d in document.get("manifests", [])]
        return report
    config_descriptor = Descriptor.from_json(document["config"])
    config = layout.read_blob_json(config_descriptor.digest)
    runtime = config.get("config", {})
    layers = [Descriptor.from_json(d) for d in document.get("layers", [])]
    report.update({
        "platform": model.config_platform(config),
        "created": config.get("created"),
        "config": {"digest": config_descriptor.digest, "size": config_descriptor.size},
        "entrypoint": runtime.get("Entrypoint"), "cmd": runtime.get("Cmd"),
        "env": runtime.get("Env", []), "user": runtime.get("User", ""),
        "workdir": runtime.get("WorkingDir", ""),
        "ports": sorted(runtime.get("ExposedPorts", {})), "labels": runtime.get("Labels", {}),
        "stopSignal": runtime.get("StopSignal", ""),
        "annotations": document.get("annotations", {}),
        "layers": [
            {"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type,
             "diffId": (config.get("rootfs", {}).get("diff_ids") or [None] * (i + 1))[i],
             "files": layer_files(layout, layer)}
            for i, layer in enumerate(layers)
        ],
    })
    return report


def inspect_layout(root: Path, tag: str | None) -> dict[str, Any]:
    """A report of every tagged (or untagged) entry of the layout, or of one tag."""
    layout = Layout(root)
    entries = layout.index_manifests()
    if tag is not None:
        entries = [d for d in entries if d.ref_name == tag]
        if not entries:
            tags = sorted({d.ref_name for d in layout.index_manifests() if d.ref_name})
            raise LayoutError(f"{root} has no tag {tag!r} (tags: {', '.join(tags) or 'none'})")
    images: dict[str, dict[str, Any]] = {}
    try:
        for descriptor in entries:
            if descriptor.digest not in images:
                images[descriptor.digest] = {"tags": [], **_image(layout, descriptor)}
            if descriptor.ref_name:
                images[descriptor.digest]["tags"].append(descriptor.ref_name)
    except (KeyError, TypeError, tarfile.TarError) as error:
        raise LayoutError(f"{root} is malformed ({error}); run 'hellocontainer validate' on it") from None
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"layout": str(root), "bytes": total, "images": list(images.values())}


def _describe_image(image: dict[str, Any], indent: str) -> list[str]:
    platform = image.get("platform") or {}
    name = model.platform_name(platform)
    lines = [f"{indent}manifest  {image['digest']} ({image['size']} B) {name}"]
    if "manifests" in image:
        lines[0] = f"{indent}index     {image['digest']} ({image['size']} B)"
        for child in image["manifests"]:
            lines += _describe_image(child, indent + "  ")
        return lines
    lines += [
        f"{indent}created   {image['created']}",
        f"{indent}config    {image['config']['digest']} ({image['config']['size']} B)",
        f"{indent}entrypoint {image['entrypoint']}  cmd {image['cmd']}",
        f"{indent}user      {image['user'] or '(root)'}  workdir {image['workdir'] or '/'}",
    ]
    for label, key in (("env", "env"), ("ports", "ports")):
        if image[key]:
            lines.append(f"{indent}{label:<9} {' '.join(image[key])}")
    for layer in image["layers"]:
        lines.append(f"{indent}layer     {layer['digest']} ({layer['size']} B, "
                     f"{layer['mediaType'].rsplit('.', 1)[-1]})")
        for f in layer["files"]:
            lines.append(f"{indent}  {f['mode']} {f['uid']}:{f['gid']} {f['size']:>9} {f['path']}")
    return lines


def describe(report: dict[str, Any]) -> str:
    lines = [f"{report['layout']}: {report['bytes']} bytes"]
    for image in report["images"]:
        lines.append(f"tags      {', '.join(image['tags']) or '(untagged)'}")
        lines += _describe_image(image, "")
    return "\n".join(lines)
