"""Validate documents against the project's JSON Schemas (written from the OCI image-spec v1.1).

Schemas live in `schemas/` as package data; they refer to each other by relative `$ref`, which a
`referencing` registry resolves offline. Messages name the document, the JSON path and, where
the schema carries an `x-hint`, what a valid value looks like.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_NAMES = ("defs", "oci-layout", "index", "manifest", "config", "image-spec", "runtime-config")
_BASE = "https://hellocontainer.invalid/schemas/"


@cache
def _registry() -> Registry:
    root = resources.files(__package__) / "schemas"
    resources_ = [
        (_BASE + f"{name}.json", Resource.from_contents(json.loads((root / f"{name}.json").read_text())))
        for name in SCHEMA_NAMES
    ]
    return Registry().with_resources(resources_)


# RFC 3339 date-time. jsonschema checks "date-time" only when an optional package is installed;
# the image-spec requires it for `created`, so the check must not depend on what is installed.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(lambda value: not isinstance(value, str) or bool(_RFC3339.match(value)))
# RFC 3986 absolute URI: scheme ":" hier-part, only characters the RFC allows (unreserved,
# reserved and %-escapes). descriptor.md requires it of `urls`; jsonschema checks "uri" only with
# an optional package installed, so the check is ours.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_FORMATS.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.match(value)))


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = _registry().contents(_BASE + f"{name}.json")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry(), format_checker=_FORMATS)


def json_path(path: Any) -> str:
    """`manifests[0].digest` from a jsonschema error path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    where = json_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))} at {where}; valid keys: {allowed}"
    hint = error.schema.get("x-hint")
    # oneOf/anyOf failures carry the hint one level up, on the schema that lists the choices.
    if hint is None and error.parent is not None:
        hint = error.parent.schema.get("x-hint")
    if hint is not None:
        return f"{where} is {error.instance!r}; expected {hint}"
    return f"{where}: {error.message}"


def problems(document: Any, name: str) -> list[str]:
    """Every way `document` breaks schema `name`, one readable line each, in a stable order."""
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [_message(_best(error)) for error in errors]


def _best(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a oneOf failure, report the hint-bearing parent rather than one branch's detail."""
    if error.validator in ("oneOf", "anyOf") and "x-hint" not in error.schema and error.context:
        return jsonschema.exceptions.best_match(error.context) or error
    return error
