"""The SBOM formats `--sbom-format` names: each one's writer and the media type that is both its
blob's and its referrer's artifactType, so a consumer picks the one it reads by type alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import cyclonedx, spdx2, spdx3
from .sbom import Bom


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    write: Callable[[Bom], bytes]


FORMATS = {f.name: f for f in (Format("spdx2", spdx2.MEDIA_TYPE, spdx2.document),
                               Format("spdx3", spdx3.MEDIA_TYPE, spdx3.document),
                               Format("cyclonedx", cyclonedx.MEDIA_TYPE, cyclonedx.document))}
