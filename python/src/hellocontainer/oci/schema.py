"""Validate documents against the project's JSON Schemas (written from the OCI image-spec v1.1).

Schemas live in `schemas/` as package data; they refer to each other by relative `$ref`, which a
`referencing` registry resolves offline. Messages name the document, the JSON path and, where
the schema carries an `x-hint`, what a valid value looks like.

Every document is checked, but jsonschema is imported only for one that `quickschema` does not
pass at once: importing it costs more than a whole small build, and only a document with a
problem needs its messages.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from . import quickschema

if TYPE_CHECKING:
    import jsonschema
    from referencing import Registry

SCHEMA_NAMES = ("defs", "oci-layout", "index", "manifest", "config", "image-spec", "runtime-config")
_BASE = "https://hellocontainer.invalid/schemas/"


@cache
def _registry() -> Registry:
    from referencing import Registry, Resource

    return Registry().with_resources(
        (_BASE + f"{name}.json", Resource.from_contents(quickschema.load(name)))
        for name in SCHEMA_NAMES)


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    import jsonschema

    # jsonschema checks "date-time" and "uri" only when optional packages are installed; the
    # image-spec requires both (`created`, descriptor `urls`), so the checks are ours, shared
    # with quickschema.
    formats = jsonschema.FormatChecker(formats=())
    for format_name, pattern in quickschema.FORMATS.items():
        formats.checks(format_name)(
            lambda value, pattern=pattern: not isinstance(value, str) or bool(pattern.match(value)))
    schema = _registry().contents(_BASE + f"{name}.json")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry(), format_checker=formats)


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
    try:
        if quickschema.valid(document, name):
            return []
    except quickschema.Unsupported:
        pass  # jsonschema decides
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [_message(_best(error)) for error in errors]


def _best(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a oneOf failure, report the hint-bearing parent rather than one branch's detail."""
    if error.validator in ("oneOf", "anyOf") and "x-hint" not in error.schema and error.context:
        from jsonschema.exceptions import best_match

        return best_match(error.context) or error
    return error
