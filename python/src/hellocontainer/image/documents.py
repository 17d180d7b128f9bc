"""The image's JSON documents: the config and the manifest, built from the settings.

Pure functions from values to documents. Only SOURCE_DATE_EPOCH provides a time, and the
history names the tool but not its version, so a packager upgrade that writes the same layer
keeps the same digests.
"""

from __future__ import annotations

from typing import Any

from ..oci import model
from ..oci.model import Descriptor
from ..oci.platforms import Platform
from ..sourcedate import rfc3339
from .spec import ImageSpec


def runtime_config(spec: ImageSpec, binary_dest: str) -> dict[str, Any]:
    """The config's `config` object: how a runtime starts the container."""
    config: dict[str, Any] = {
        "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else [binary_dest],
    }
    if spec.cmd is not None:
        config["Cmd"] = list(spec.cmd)
    if spec.env:
        config["Env"] = [f"{key}={value}" for key, value in spec.env]
    if spec.user:
        config["User"] = spec.user
    if spec.workdir:
        config["WorkingDir"] = spec.workdir
    if spec.ports:
        config["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in spec.ports}
    if spec.labels:
        config["Labels"] = dict(spec.labels)
    if spec.stop_signal:
        config["StopSignal"] = spec.stop_signal
    return config


def config_document(spec: ImageSpec, platform: Platform, binary_dest: str, diff_id: str,
                    epoch: int) -> dict[str, Any]:
    created = rfc3339(epoch)
    document: dict[str, Any] = {
        "created": created,
        **platform.to_oci(),
        "config": runtime_config(spec, binary_dest),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        # Optional in config.md, but kept: tools that build on top of an image (buildah, docker)
        # pair history entries with layers, and without it an image built FROM ours has two
        # layers and one history entry. Its optional `created` would repeat the config's own,
        # and every byte counts on a board's flash.
        "history": [{"created_by": "hellocontainer"}],
    }
    return document


def manifest_document(config: Descriptor, layers: list[Descriptor],
                      spec: ImageSpec) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": model.MEDIA_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    # Only the annotations asked for: `created` is already in the config, and repeating it
    # here would cost 70 bytes of a 4 KiB image.
    if spec.annotations:
        document["annotations"] = dict(spec.annotations)
    return document
