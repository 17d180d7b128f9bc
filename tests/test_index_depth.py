"""One nesting limit for image indexes, the same verdict from every command that walks a layout.

index.json is depth 0; an image index it lists is depth 1, one listed by that is depth 2, and so
on. MAX_INDEX_DEPTH (32) nested image indexes are allowed, one more is refused: by validate (a
problem), by inspect, diff, gc, and by a build or an `index` that merges into the layout (one
error line each).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from hellocontainer.oci.walk import MAX_INDEX_DEPTH
from layouts import (
    MEDIA_INDEX,
    assert_invalid,
    assert_one_error,
    assert_valid,
    cli,
    descriptor_of,
    made_layout,
    reachable_files,
    set_tag,
    summary,
    write_json_blob,
)

TOO_DEEP = f"image indexes nest deeper than {MAX_INDEX_DEPTH} levels"
DEPTHS = pytest.mark.parametrize(("depth", "refused"), [(MAX_INDEX_DEPTH, False),
                                                        (MAX_INDEX_DEPTH + 1, True)])


def deep_layout(layout: Path, depth: int, content: bytes = b"hello\n") -> Path:
    """A valid image under `depth` nested image indexes, tagged `deep`; the image itself `flat`.

    Each index names its child with the image's platform, so that diff pairs them up.
    """
    made_layout(layout, content, tag="flat")
    descriptor = descriptor_of(layout, "flat")
    for _ in range(depth):
        child = {**descriptor, "platform": {"architecture": "amd64", "os": "linux"}}
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [child]}
        descriptor = write_json_blob(layout, index, MEDIA_INDEX)
    set_tag(layout, descriptor, "deep")
    return layout


def assert_verdict(result, refused: bool, status: int = 1) -> None:
    if refused:
        assert_one_error(result, TOO_DEEP, status=status)
    else:
        assert result.returncode == 0 and result.stderr == "", summary(result)


@DEPTHS
def test_validate(tmp_path, depth, refused):
    result = cli("validate", deep_layout(tmp_path / "L", depth))
    if refused:
        assert TOO_DEEP in assert_invalid(result)
    else:
        assert_valid(result, warnings=False)


@DEPTHS
def test_inspect(tmp_path, depth, refused):
    assert_verdict(cli("inspect", f"{deep_layout(tmp_path / 'L', depth)}:deep"), refused)


@DEPTHS
def test_diff(tmp_path, depth, refused):
    """Both sides nest alike but hold different files, so diff descends every level."""
    a = deep_layout(tmp_path / "A", depth)
    b = deep_layout(tmp_path / "B", depth, content=b"other\n")
    result = cli("diff", f"{a}:deep", f"{b}:deep")
    if refused:
        assert_one_error(result, TOO_DEEP, status=2)
    else:
        assert result.returncode == 1 and "/hello sha256" in result.stdout, summary(result)


@DEPTHS
def test_gc(tmp_path, depth, refused):
    layout = deep_layout(tmp_path / "L", depth)
    (layout / "blobs" / "sha256" / ("0" * 64)).write_bytes(b"garbage")
    assert_verdict(cli("gc", layout), refused)
    assert ((layout / "blobs" / "sha256" / ("0" * 64)).exists()) == refused


@DEPTHS
def test_build_into_the_layout_with_an_archive(hello_static, tmp_path, depth, refused):
    layout = deep_layout(tmp_path / "L", depth)
    archive = tmp_path / "L.tar"
    result = cli("build", hello_static, "--output", layout, "--tag", "new", "--archive", archive,
                 timeout=60)
    assert_verdict(result, refused)
    if not refused:
        with tarfile.open(archive) as tar:
            names = {m.name for m in tar.getmembers()}
        assert names == reachable_files(layout)  # the deep image's blobs and the new one's


@DEPTHS
def test_index_into_the_layout(tmp_path, depth, refused):
    layout = deep_layout(tmp_path / "L", depth)
    source = made_layout(tmp_path / "S", b"source\n")
    assert_verdict(cli("index", "--output", layout, "--tag", "multi", source), refused)
