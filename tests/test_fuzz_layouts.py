"""Damaged layouts of every kind: validate, inspect and diff answer, in our words, in time.

Hypothesis draws one mutation of a small valid layout (built once): flipped bits, truncation,
JSON values of the wrong type, missing keys, symbolic links out of the layout, FIFOs, sockets
and folders in place of files, deep or wide index graphs. Documents are re-hashed and their
parents updated, so a damaged shape is met by the code that reads shapes, not only by the
digest check. Each mutation kind is its own test, so one broken reader does not hide another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from hellocontainer.oci.walk import MAX_INDEX_DEPTH
from layouts import (
    ERROR,
    WARNING,
    assert_invalid,
    assert_no_crash,
    assert_one_error,
    blob_path,
    build,
    canonical,
    descriptor_of,
    image_blobs,
    nested_index,
    readers,
    remove,
    replace_with_fifo,
    replace_with_socket,
    stderr_lines,
    summary,
    tagged,
    write_blob,
    write_index,
)

ROLES = ("manifest", "config", "layer")
FILES = ("index.json", "oci-layout")
DOCUMENTS = ("index.json", "manifest", "config")
SWAPS: tuple[Any, ...] = ([], {}, "text", 7, -1, 1.5, None, True, [{}], {"mediaType": []},
                         "sha256:" + "0" * 64)
KINDS = ("bitflip-blob", "bitflip-file", "truncate-blob", "truncate-file", "type-swap", "missing-key",
         "symlink-out", "special-file", "missing-file", "nested-index")
FUZZ = settings(max_examples=5, deadline=None, derandomize=True, database=None,
                phases=(Phase.explicit, Phase.generate))  # no shrinking: a hang costs the timeout


@pytest.fixture(scope="module")
def pristine(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("pristine") / "L"
    build(hello_static, layout, "latest", "--env", "A=1", "--cmd", "x")
    return layout


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outside") / "secret"
    path.write_bytes(os.urandom(4321))
    return path


def _path_of(layout: Path, target: str) -> Path:
    if target in ROLES:
        return blob_path(layout, image_blobs(layout, "latest")[target]["digest"])
    return layout / target


def _json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _json_paths(child, (*prefix, i))


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _with(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(document)
    _get(changed, path[:-1])[path[-1]] = value
    return changed


def _without(document: Any, path: tuple[Any, ...]) -> Any:
    changed = copy.deepcopy(document)
    del _get(changed, path[:-1])[path[-1]]
    return changed


def _load(layout: Path, name: str) -> Any:
    return json.loads(_path_of(layout, name).read_bytes())


def _store(layout: Path, name: str, document: Any) -> None:
    """Write a changed document and re-point its parents at it, so every digest is honest."""
    data = canonical(document)
    if name == "index.json":
        (layout / "index.json").write_bytes(data)
        return
    old = image_blobs(layout, "latest")[name]
    new = write_blob(layout, data, old["mediaType"])
    if name == "manifest":
        write_index(layout, [{**descriptor_of(layout, "latest"), "digest": new["digest"],
                              "size": new["size"]}])
    else:
        manifest = _load(layout, "manifest")
        manifest["config"] = {**manifest["config"], "digest": new["digest"], "size": new["size"]}
        _store(layout, "manifest", manifest)


def _mutate(layout: Path, kind: str, data: st.DataObject, secret: Path, outside: Path) -> str:
    """Damage `layout` one way; return what validate must say: valid, invalid or any."""
    if kind in ("bitflip-blob", "bitflip-file", "truncate-blob", "truncate-file"):
        target = data.draw(st.sampled_from(ROLES if kind.endswith("blob") else FILES), label="target")
        path = _path_of(layout, target)
        content = bytearray(path.read_bytes())
        if kind.startswith("bitflip"):
            offset = data.draw(st.integers(0, len(content) - 1), label="offset")
            content[offset] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            del content[data.draw(st.integers(0, len(content) - 1), label="length"):]
        path.write_bytes(bytes(content))
        return "invalid" if kind.endswith("blob") else "any"  # any change to a blob breaks its digest
    if kind in ("type-swap", "missing-key"):
        name = data.draw(st.sampled_from(DOCUMENTS), label="document")
        document = _load(layout, name)
        paths = list(_json_paths(document))
        if kind == "type-swap":
            path = data.draw(st.sampled_from(paths), label="path")
            old = _get(document, path)
            value = data.draw(st.sampled_from([v for v in SWAPS if type(v) is not type(old)]), label="value")
            _store(layout, name, _with(document, path, value))
        else:
            keyed = [p for p in paths if p and isinstance(_get(document, p[:-1]), dict)]
            _store(layout, name, _without(document, data.draw(st.sampled_from(keyed), label="path")))
        return "any"
    if kind == "symlink-out":
        target = data.draw(st.sampled_from(FILES + ROLES + ("blobs",)), label="target")
        to = data.draw(st.sampled_from(("secret", "own copy", "/dev/zero")), label="to")
        path = _path_of(layout, target)
        if to == "own copy":
            destination = outside / target.replace("/", "_")
            (shutil.copytree if path.is_dir() else shutil.copy)(path, destination)
        else:
            destination = secret if to == "secret" else Path(to)
        remove(path)
        path.symlink_to(destination)
        return "invalid"
    if kind in ("special-file", "missing-file"):
        target = data.draw(st.sampled_from(FILES + ROLES), label="target")
        path = _path_of(layout, target)
        what = "missing" if kind == "missing-file" else \
            data.draw(st.sampled_from(("fifo", "socket", "directory")), label="replaced by")
        if what == "fifo":
            replace_with_fifo(path)
        elif what == "socket":
            replace_with_socket(path)
        else:
            remove(path)
            if what == "directory":
                path.mkdir()
        return "invalid"
    if kind == "nested-index":
        depth = data.draw(st.integers(1, 40), label="depth")
        fanout = data.draw(st.integers(1, 3), label="fanout")
        top = nested_index(layout, descriptor_of(layout, "latest"), depth, fanout)
        write_index(layout, [tagged(top, "latest")])
        return "valid" if depth <= MAX_INDEX_DEPTH else "invalid"  # one limit for every command
    raise ValueError(kind)


def _check(results: dict, expected: str, secret: Path) -> None:
    validate, inspect, diff = results["validate"], results["inspect"], results["diff"]
    for result in results.values():
        assert_no_crash(result)
    assert validate.returncode in (0, 1), summary(validate)
    if validate.returncode == 1:
        assert_invalid(validate)
    else:
        assert all(line.startswith(WARNING) for line in stderr_lines(validate)), summary(validate)
    assert inspect.returncode in (0, 1), summary(inspect)
    if inspect.returncode == 1:
        assert_one_error(inspect)
    assert diff.returncode in (0, 1, 2), summary(diff)
    if diff.returncode == 2:
        assert_one_error(diff)
    else:
        assert not any(line.startswith(ERROR) for line in stderr_lines(diff)), summary(diff)
    if expected != "any":
        assert validate.returncode == (0 if expected == "valid" else 1), \
            f"validate should find the layout {expected}: " + summary(validate)
    hidden = hashlib.sha256(secret.read_bytes()).hexdigest()
    for name, result in results.items():
        assert hidden not in result.stdout + result.stderr, f"{name} reported the outside file's hash"


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_readers_answer_any_damaged_layout_in_one_voice(pristine, secret, kind, data):
    with tempfile.TemporaryDirectory(prefix="fuzz") as work:
        layout = Path(work) / "L"
        outside = Path(work) / "outside"
        outside.mkdir()
        shutil.copytree(pristine, layout)
        expected = _mutate(layout, kind, data, secret, outside)
        _check(readers(pristine, layout), expected, secret)

