"""A fast yes to "is this document valid against our schema?", so that jsonschema is imported
only when it is not.

Every command checks every document it reads or writes against the schemas in `schemas/`, and
nearly all of them are valid. Importing jsonschema (with `referencing`, `rpds` and `attrs`)
costs more CPU than the rest of a small build, so `schema.problems` asks this module first and
goes to jsonschema only for its answer's "no" or "don't know", where the messages are made.

The one rule that keeps this safe: `valid` says True only when jsonschema would. It implements
exactly the draft 2020-12 keywords our schemas use, with jsonschema's semantics (its type
checker, its equality for `enum`, `const` and `uniqueItems`, Python's `re.search` for `pattern`,
our two formats); any other keyword raises `Unsupported`, which the caller treats as "don't
know". tests/test_quickschema.py holds the two to the same verdicts.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

_BASE = "https://hellocontainer.invalid/schemas/"
_SCHEMAS = Path(__file__).with_name("schemas")

# The formats schema.py gives jsonschema's FormatChecker; no other format is checked there.
FORMATS = {
    # RFC 3339 date-time (config `created`).
    "date-time": re.compile(
        r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"),
    # RFC 3986 absolute URI: scheme ":" hier-part, only characters the RFC allows (descriptor
    # `urls`).
    "uri": re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$"),
}

# Keywords that assert nothing (annotations, and $defs, which is only a place for $ref).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description",
                          "x-hint", "contentEncoding", "default", "examples"})


class Unsupported(Exception):
    """The schema uses a keyword this module does not implement: ask jsonschema."""


@cache
def load(name: str) -> dict[str, Any]:
    """The schema `name` (`manifest`, `defs`, …) from the package's schemas folder."""
    return json.loads((_SCHEMAS / f"{name}.json").read_text())


def valid(document: Any, name: str) -> bool:
    """Whether `document` is valid against schema `name`, as jsonschema would say; raises
    Unsupported when the schema needs a keyword this module lacks."""
    return _Check(name).valid(document, load(name))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# jsonschema's draft 2020-12 type checker: an integer-valued float is an integer, a bool is
# neither a number nor an integer.
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or float(v).is_integer()),
}


def equal(one: Any, two: Any) -> bool:
    """jsonschema's equality: True and 1 differ, containers compare item by item."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(equal, one, two))
    if isinstance(one, (dict, list)) or isinstance(two, (dict, list)):
        return False
    return one == two


class _Check:
    def __init__(self, name: str) -> None:
        self._name = name  # the document whose `#/…` references resolve

    def _resolve(self, ref: str) -> tuple[str, Any]:
        """The schema a `$ref` names (`defs.json#/$defs/digest`, `#/$defs/x`) and its file."""
        where, _, pointer = ref.partition("#")
        name = self._name
        if where:
            if where.startswith(_BASE):
                where = where[len(_BASE):]
            if "/" in where or not where.endswith(".json"):
                raise Unsupported(f"$ref {ref}")
            name = where[: -len(".json")]
        target: Any = load(name)
        for part in filter(None, pointer.split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[int(part)] if isinstance(target, list) else target[part]
        return name, target

    def valid(self, value: Any, schema: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        for keyword, rule in schema.items():
            if keyword in _ANNOTATIONS or keyword in ("then", "else"):
                continue
            check = _KEYWORDS.get(keyword)
            if check is None:
                raise Unsupported(keyword)
            if not check(self, value, rule, schema):
                return False
        return True

    def ref(self, value: Any, ref: str, schema: dict[str, Any]) -> bool:
        name, target = self._resolve(ref)
        saved, self._name = self._name, name
        try:
            return self.valid(value, target)
        finally:
            self._name = saved

    def if_(self, value: Any, rule: Any, schema: dict[str, Any]) -> bool:
        branch = "then" if self.valid(value, rule) else "else"
        return self.valid(value, schema.get(branch, True))

    def properties(self, value: Any, rule: dict[str, Any], schema: dict[str, Any]) -> bool:
        return not isinstance(value, dict) or all(
            self.valid(value[key], sub) for key, sub in rule.items() if key in value)

    def additional(self, value: Any, rule: Any, schema: dict[str, Any]) -> bool:
        if not isinstance(value, dict):
            return True
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        known = schema.get("properties", {})
        return all(self.valid(item, rule) for key, item in value.items() if key not in known)

    def items(self, value: Any, rule: Any, schema: dict[str, Any]) -> bool:
        if "prefixItems" in schema:
            raise Unsupported("prefixItems")
        return not isinstance(value, list) or all(self.valid(item, rule) for item in value)

    def property_names(self, value: Any, rule: Any, schema: dict[str, Any]) -> bool:
        return not isinstance(value, dict) or all(self.valid(key, rule) for key in value)


def _type(check: _Check, value: Any, rule: Any, schema: dict[str, Any]) -> bool:
    names = [rule] if isinstance(rule, str) else rule
    return any(_TYPES[name](value) for name in names)


def _unique(items: list[Any]) -> bool:
    return all(not equal(a, b) for i, a in enumerate(items) for b in items[i + 1:])


def _format(check: _Check, value: Any, rule: str, schema: dict[str, Any]) -> bool:
    pattern = FORMATS.get(rule)
    return pattern is None or not isinstance(value, str) or bool(pattern.match(value))


_KEYWORDS: dict[str, Any] = {
    "type": _type,
    "$ref": _Check.ref,
    "properties": _Check.properties,
    "additionalProperties": _Check.additional,
    "items": _Check.items,
    "propertyNames": _Check.property_names,
    "if": _Check.if_,
    "allOf": lambda c, v, rule, s: all(c.valid(v, sub) for sub in rule),
    "oneOf": lambda c, v, rule, s: sum(c.valid(v, sub) for sub in rule) == 1,
    "required": lambda c, v, rule, s: not isinstance(v, dict) or all(k in v for k in rule),
    "dependentRequired": lambda c, v, rule, s: not isinstance(v, dict) or all(
        k in v for key, needs in rule.items() if key in v for k in needs),
    "enum": lambda c, v, rule, s: any(equal(v, item) for item in rule),
    "const": lambda c, v, rule, s: equal(v, rule),
    "pattern": lambda c, v, rule, s: not isinstance(v, str) or re.search(rule, v) is not None,
    "format": _format,
    "minLength": lambda c, v, rule, s: not isinstance(v, str) or len(v) >= rule,
    "minimum": lambda c, v, rule, s: not _is_number(v) or v >= rule,
    "maximum": lambda c, v, rule, s: not _is_number(v) or v <= rule,
    "minItems": lambda c, v, rule, s: not isinstance(v, list) or len(v) >= rule,
    "uniqueItems": lambda c, v, rule, s: not rule or not isinstance(v, list) or _unique(v),
    "maxProperties": lambda c, v, rule, s: not isinstance(v, dict) or len(v) <= rule,
}
