"""The fast schema check says "valid" exactly when jsonschema does.

`oci/quickschema.py` lets commands skip importing jsonschema for documents that are valid; a
document it passed that jsonschema would refuse would be a check silently lost. Real documents
(a build's index, manifest, config and oci-layout, a bundle's config.json, a full image spec)
and thousands of mutations of them go through both, and the verdicts must agree.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hellocontainer.oci import quickschema, schema


def _documents(hellocontainer, hello_static: Path, tmp_path: Path) -> dict[str, list[Any]]:
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0", "--env", "A=1",
                   "--port", "8080/tcp", "--label", ".vendor=ACME", "--user", "1000:1000",
                   "--workdir", "/tmp", "--sbom-package", "name=hello version=1.0 license=MIT",
                   "--sbom-supplier", "ACME Inc.")
    found: dict[str, list[Any]] = {"oci-layout": [json.loads((layout / "oci-layout").read_text())],
                                   "index": [json.loads((layout / "index.json").read_text())]}
    for blob in (layout / "blobs" / "sha256").iterdir():
        try:
            document = json.loads(blob.read_bytes())
        except ValueError:
            continue  # a layer
        media_type = document.get("mediaType", "")
        name = ("index" if "index" in media_type else "manifest" if "manifest" in media_type
                else "config" if "rootfs" in document else None)
        if name:
            found.setdefault(name, []).append(document)
    hellocontainer("bundle", f"{layout}:1.0", "--output", tmp_path / "bundle")
    found["runtime-config"] = [json.loads((tmp_path / "bundle" / "config.json").read_text())]
    found["image-spec"] = [{
        "path": "/usr/bin/hello", "cmd": ["--loud"], "env": {"GREETING": "hello world"},
        "user": "1000:1000", "ports": ["8080/tcp"], "tags": ["latest", "1.0"],
        "files": [{"src": "motd", "dest": "/etc/motd", "mode": "0644"}],
        "labels": {"a": "b"}, "annotations": {"org.opencontainers.image.licenses": "MIT"},
        "stop_signal": "SIGTERM", "workdir": "/", "compression": "gzip", "gzip_level": 9,
        "sbom": {"package": {"name": "hello", "version": "1.0"},
                 "libraries": [{"name": "musl", "version": "1.2.4", "license": "MIT"}]},
    }]
    return found


@pytest.fixture(scope="module")
def documents(tmp_path_factory, hello_static) -> dict[str, list[Any]]:
    import subprocess
    import sys

    def run(*args: Any) -> None:
        subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)], check=True,
                       capture_output=True, env={"SOURCE_DATE_EPOCH": "1700000000",
                                                 "PATH": "/usr/bin:/bin"})

    return _documents(run, hello_static, tmp_path_factory.mktemp("documents"))


def jsonschema_says(document: Any, name: str) -> bool:
    return schema._validator(name).is_valid(document)


def quick_says(document: Any, name: str) -> bool | None:
    try:
        return quickschema.valid(document, name)
    except quickschema.Unsupported:
        return None


def test_real_documents_are_valid_for_both(documents):
    assert set(documents) == set(schema.SCHEMA_NAMES) - {"defs"}
    for name, found in documents.items():
        for document in found:
            assert quick_says(document, name) is True, name
            assert jsonschema_says(document, name), name


# Values that reach the schemas' corners: bools against integers, integral floats, strings
# that almost match patterns, empty containers.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**33), st.sampled_from([0.0, 1.0, 1.5, -1.0]),
    st.sampled_from(["", "sha256:" + "a" * 64, "sha256:" + "A" * 64, "linux", "amd64", "arm",
                     "v7", "1970-01-01T00:00:00Z", "2023-11-14 22:13:20+01:00", "yesterday",
                     "https://example.com/x", "not a uri", "application/vnd.oci.image.layer."
                     "v1.tar+gzip", "/", "/usr/bin/hello", "0644", "8080/tcp", "SIGTERM",
                     "MIT", "gzip", "max", "x" * 300]),
    st.text(max_size=8),
)
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _paths(document: Any, here: tuple = ()) -> list[tuple]:
    found = [here]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*here, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*here, index))
    return found


def _keys(value: Any) -> set[str]:
    """Every property name the schemas know, so that mutations add keys that mean something."""
    if isinstance(value, dict):
        found = set(value.get("properties", {}))
        for item in value.values():
            found |= _keys(item)
        return found
    if isinstance(value, list):
        return set().union(*map(_keys, value)) if value else set()
    return set()


_KNOWN_KEYS = sorted(set().union(*(_keys(quickschema.load(n)) for n in schema.SCHEMA_NAMES)))


def _near(value: Any) -> st.SearchStrategy[Any]:
    """Values one small step from `value`: another type that looks alike, an edge of a range,
    a string one character off."""
    if isinstance(value, bool):
        return st.sampled_from([not value, int(value), str(value).lower(), None])
    if isinstance(value, int):
        return st.sampled_from([value + 0.5, float(value), -1, 0, 2**63, str(value), True, None])
    if isinstance(value, str):
        return st.sampled_from([value + " ", value[:-1], value.upper(), "", value + "\n",
                                " " + value, 0, None, [value]])
    return st.sampled_from([None, {}, [], "", 0])


def _mutate(document: Any, data: st.DataObject) -> Any:
    document = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(document)))
        if not path:
            document = data.draw(_JSON)
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "tweak", "delete", "add"]))
        if action == "tweak":
            parent[path[-1]] = data.draw(_near(parent[path[-1]]))
        elif action == "replace":
            parent[path[-1]] = data.draw(_JSON)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(_KNOWN_KEYS))] = data.draw(_JSON)
        else:
            parent.append(data.draw(_JSON))
    return document


@pytest.mark.parametrize("name", sorted(set(schema.SCHEMA_NAMES) - {"defs"}))
def test_mutated_documents_get_the_same_verdict_from_both(documents, name):
    originals = documents[name]

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.data())
    def check(data):
        document = _mutate(data.draw(st.sampled_from(originals)), data)
        quick = quick_says(document, name)
        assert quick is not None, "every keyword of our schemas is implemented"
        assert quick == jsonschema_says(document, name), json.dumps(document)[:2000]

    check()


def test_a_keyword_it_does_not_know_is_left_to_jsonschema(monkeypatch):
    monkeypatch.setitem(quickschema.load.__wrapped__.__globals__, "load",
                        lambda name: {"type": "object", "patternProperties": {"^a": {}}})
    with pytest.raises(quickschema.Unsupported):
        quickschema.valid({"a": 1}, "manifest")


def test_an_invalid_document_still_gets_jsonschemas_messages(documents):
    manifest = copy.deepcopy(documents["manifest"][0])
    manifest["layers"][0]["digest"] = "sha256:XYZ"
    [message] = schema.problems(manifest, "manifest")
    assert message.startswith("layers[0].digest")


# Each keyword's corners, side by side with jsonschema on a schema of its own: also where our
# schemas happen not to reach them (their oneOf branches exclude each other, for one).
KEYWORD_CASES = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": "number"}, [1, 1.5, True, "1"]),
    ({"type": ["string", "null"]}, ["", None, 0, []]),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, [1, -1, 1.5, "x"]),
    ({"allOf": [{"minimum": 0}, {"maximum": 2}]}, [0, 2, 3, -1, "x"]),
    ({"enum": [1, "a", None, [1], {"a": 1}]}, [1, True, 1.0, "a", None, [1], [True], {"a": 1},
                                               {"a": True}, 2]),
    ({"const": False}, [False, 0, None, True]),
    ({"required": ["a"], "dependentRequired": {"b": ["c"]}}, [{"a": 1}, {"a": 1, "b": 1},
                                                              {"a": 1, "b": 1, "c": 1}, {}, [], 1]),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False},
     [{"a": "x"}, {"a": 1}, {"b": 1}, {}, "x"]),
    ({"additionalProperties": {"type": "integer"}}, [{"a": 1}, {"a": "x"}, [1]]),
    ({"items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
     [["a"], [], ["a", "a"], [1], "x"]),
    ({"uniqueItems": True}, [[1, True], [1, 1.0], [{"a": 1}, {"a": 1}], [[1], [True]]]),
    ({"propertyNames": {"pattern": "^[a-z]+$"}, "maxProperties": 1},
     [{"a": 1}, {"A": 1}, {"a": 1, "b": 2}, 1]),
    ({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]},
      "else": {"required": ["c"]}}, [{"a": 1, "b": 1}, {"a": 1}, {"a": 2, "c": 1}, {"a": 2}]),
    ({"pattern": "b", "minLength": 2}, ["ab", "b", "xx", "é", 1]),
    ({"format": "date-time"}, ["1970-01-01T00:00:00Z", "1970-01-01", 1]),
    ({"format": "uri"}, ["https://a/b", "a b", "no-scheme"]),
    ({"format": "email"}, ["not an email"]),
    ({"minimum": 0, "maximum": 1}, [0, 1, 1.5, -0.5, True, "2"]),
]


@pytest.mark.parametrize("rule,instances", KEYWORD_CASES, ids=[str(c[0])[:40] for c in KEYWORD_CASES])
def test_each_keyword_agrees_with_jsonschema(rule, instances):
    import jsonschema

    formats = schema._validator("manifest").format_checker
    judge = jsonschema.Draft202012Validator(rule, format_checker=formats)
    for instance in instances:
        quick = quickschema._Check("defs").valid(instance, rule)
        assert quick == judge.is_valid(instance), (rule, instance)
