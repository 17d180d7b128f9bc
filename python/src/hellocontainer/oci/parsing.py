"""Untrusted JSON into values and descriptors, every malformation one LayoutError line.

Documents of a layout are read by the reader and by validate; both parse them here, so a
constant like NaN, a nesting bomb or a descriptor of the wrong shape reads the same in both.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import LayoutError
from .digests import check_digest
from .model import Descriptor


def descriptor_from(data: Any, where: str) -> Descriptor:
    """A Descriptor from untrusted JSON: shape-checked, so no KeyError or TypeError escapes."""
    if not isinstance(data, dict):
        raise LayoutError(f"{where}: a descriptor must be a JSON object, not {_json_type(data)}")
    for key, kind in (("mediaType", str), ("digest", str), ("size", int)):
        value = data.get(key)
        if value is None:
            raise LayoutError(f"{where}: the descriptor has no {key}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LayoutError(f"{where}: the descriptor's {key} is {_json_type(value)}")
    if data["size"] < 0:
        raise LayoutError(f"{where}: the descriptor's size is negative")
    try:
        check_digest(data["digest"])
    except LayoutError as error:
        raise LayoutError(f"{where}: {error}") from None  # which descriptor, like the others
    for key in ("platform", "annotations"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            raise LayoutError(f"{where}: the descriptor's {key} is {_json_type(data[key])}")
    annotations = data.get("annotations") or {}
    if not all(isinstance(v, str) for v in annotations.values()):
        raise LayoutError(f"{where}: the descriptor's annotations must map strings to strings")
    return Descriptor.from_json(data)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, what: str) -> Any:
    """JSON from bytes we read; any malformation is one LayoutError line."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise LayoutError(f"{what} nests JSON too deeply to be an OCI document") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise LayoutError(f"{what} is not valid JSON: {error}") from None
