"""Hostile inputs, one known attack each: the packager answers in one line, in bounded time.

Every command runs under an address-space cap and a timeout (tests/layouts.py): a bomb that
exhausts memory or a file that blocks fails its test instead of the run. The timeout is not a
speed goal; a healthy packager answers each of these in well under a second.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import require_tool
from layouts import (
    MEDIA_MANIFEST,
    add_image,
    assert_invalid,
    assert_no_crash,
    assert_one_error,
    assert_refused,
    assert_valid,
    blob_path,
    build,
    canonical,
    changes,
    cli,
    descriptor_of,
    digest_of,
    gzip_bytes,
    image_blobs,
    made_layout,
    nested_index,
    read_blob_json,
    readers,
    replace_with_fifo,
    replace_with_socket,
    set_tag,
    snapshot,
    summary,
    tagged,
    tar_bytes,
    write_blob,
    write_index,
    write_json_blob,
    zeros_layer,
)

MIB = 1 << 20


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """A valid layout to diff the hostile ones against. Its file differs from theirs, so every
    digest differs and diff must read each blob of the hostile layout, not skip equal ones."""
    return made_layout(tmp_path / "other", content=b"other\n")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A small valid layout that each test then damages."""
    return made_layout(tmp_path / "hostile")


def _refused_build(tmp_path: Path, *args: object) -> str:
    """A build that must fail in one line and create nothing beside or in its output."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    before = snapshot(tmp_path)
    line = assert_one_error(cli("build", *args, "--output", work / "L"))
    assert not changes(before, snapshot(tmp_path)), changes(before, snapshot(tmp_path))
    return line


# --- the spec file -------------------------------------------------------------------------

def test_spec_with_billion_laughs_aliases_is_refused(hello_static, tmp_path):
    spec = tmp_path / "laughs.yaml"
    levels = ["- &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"- &{name} [{','.join(['*' + previous] * 9)}]")
    spec.write_text("cmd:\n" + "\n".join(levels) + "\n")
    assert len(spec.read_bytes()) < 400  # a billion strings from a few hundred bytes
    _refused_build(tmp_path, hello_static, "--spec", spec)


@pytest.mark.parametrize("depth", [100, 50_000])
def test_spec_nested_too_deeply_is_refused(hello_static, tmp_path, depth):
    spec = tmp_path / "deep.yaml"
    spec.write_text("cmd: " + "[" * depth + "x" + "]" * depth + "\n")
    _refused_build(tmp_path, hello_static, "--spec", spec)


def test_spec_larger_than_1_mib_is_refused(hello_static, tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("cmd: [x]\n" + ("# padding" + " " * 90 + "\n") * (12 * 1024))  # 1.2 MiB
    _refused_build(tmp_path, hello_static, "--spec", spec)


def _make_non_regular(path: Path, kind: str) -> None:
    """Put a FIFO, a socket or a directory at `path` (which must not exist)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        replace_with_socket(path)
    else:
        path.mkdir()


def _non_regular(tmp_path: Path, kind: str) -> Path:
    if kind == "chardev":
        return Path("/dev/zero")
    path = tmp_path / kind
    _make_non_regular(path, kind)
    return path


@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev", "directory"])
@pytest.mark.parametrize("role", ["binary", "spec", "file"])
def test_non_regular_input_is_refused_without_blocking(hello_static, tmp_path, role, kind):
    special = _non_regular(tmp_path, kind)
    args: list[object] = {"binary": [special], "spec": [hello_static, "--spec", special],
                          "file": [hello_static, "--file", f"{special}:/x"]}[role]
    _refused_build(tmp_path, *args)


# --- symbolic links that leave the layout --------------------------------------------------

def _untouched(path: Path) -> None:
    """Give `path` an access time of 0, so any read of it shows (relatime updates it)."""
    os.utime(path, (0, path.stat().st_mtime))


@pytest.mark.parametrize("what", ["layer-to-secret", "layer-to-its-copy", "index.json-to-its-copy",
                                  "blobs-to-their-copy", "config-to-dev-zero"])
def test_symlink_leaving_the_layout_is_refused_and_never_read(other, hostile, tmp_path, what):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_bytes(os.urandom(12_345))
    secret_hash = hashlib.sha256(secret.read_bytes()).hexdigest()  # before its atime is reset
    watched = [secret]
    layer = blob_path(hostile, image_blobs(hostile, "latest")["layer"]["digest"])
    config = blob_path(hostile, image_blobs(hostile, "latest")["config"]["digest"])
    if what == "layer-to-secret":
        layer.unlink()
        layer.symlink_to(secret)
    elif what in ("layer-to-its-copy", "index.json-to-its-copy"):
        target = layer if what.startswith("layer") else hostile / "index.json"
        copy = outside / target.name
        shutil.copy(target, copy)
        target.unlink()
        target.symlink_to(copy)
        watched.append(copy)
    elif what == "blobs-to-their-copy":
        shutil.copytree(hostile / "blobs", outside / "blobs")
        shutil.rmtree(hostile / "blobs")
        (hostile / "blobs").symlink_to(outside / "blobs")
        watched += [p for p in (outside / "blobs").rglob("*") if p.is_file()]
    else:
        config.unlink()
        config.symlink_to("/dev/zero")
    for path in watched:
        _untouched(path)
    results = readers(other, hostile)
    for path in watched:
        assert path.stat().st_atime == 0, f"{path.name} outside the layout was read"
    for name, result in results.items():
        shown = result.stdout + result.stderr
        assert secret_hash not in shown and "12345" not in shown, f"{name} reported the secret"
    assert_refused(results)


def test_a_link_swapped_in_after_the_containment_check_is_not_followed(hostile, tmp_path,
                                                                      monkeypatch):
    """The reader resolves a path, checks that it stays inside the layout, then opens it. A link
    put there between the two (a race, played here by a check that sees no link) must not be
    followed: the open itself refuses links, so what was checked is what is read."""
    from hellocontainer.errors import LayoutError
    from hellocontainer.oci import reader

    copy = tmp_path / "outside-index.json"
    shutil.copy(hostile / "index.json", copy)
    (hostile / "index.json").unlink()
    (hostile / "index.json").symlink_to(copy)
    _untouched(copy)
    monkeypatch.setattr(reader.os.path, "realpath", os.path.abspath)  # the check sees no link
    layout = reader.LayoutReader(hostile)
    with pytest.raises(LayoutError, match="symbolic link"):
        layout.index_document()
    assert copy.stat().st_atime == 0, "the index.json outside the layout was read"


# --- files of the layout that are not regular files ----------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
@pytest.mark.parametrize("target", ["index.json", "oci-layout", "manifest", "layer"])
def test_layout_file_that_is_not_a_regular_file_is_refused_without_blocking(other, hostile,
                                                                             target, kind):
    if target in ("manifest", "layer"):
        path = blob_path(hostile, image_blobs(hostile, "latest")[target]["digest"])
    else:
        path = hostile / target
    path.unlink()
    _make_non_regular(path, kind)
    assert_refused(readers(other, hostile))


# --- graphs: depth and paths ---------------------------------------------------------------

def _retag(layout: Path, descriptor: dict) -> None:
    write_index(layout, [tagged(descriptor, "latest")])


def test_index_chain_600_deep_is_refused(other, hostile):
    _retag(hostile, nested_index(hostile, descriptor_of(hostile, "latest"), 600))
    results = readers(other, hostile)
    assert_invalid(results["validate"])
    assert_one_error(results["inspect"], status=1)
    _diff_finished(results["diff"])


def test_index_chain_within_the_depth_cap_is_valid(other, hostile):
    _retag(hostile, nested_index(hostile, descriptor_of(hostile, "latest"), 8))
    results = readers(other, hostile)
    assert_valid(results["validate"])
    assert results["inspect"].returncode == 0, summary(results["inspect"])
    _diff_finished(results["diff"])


def _diff_finished(result) -> None:
    """diff may answer "different" without descending, or refuse in one line; never crash."""
    assert_no_crash(result)
    assert result.returncode in (1, 2), summary(result)
    if result.returncode == 2:
        assert_one_error(result, status=2)


def test_index_dag_of_41_blobs_with_2_to_the_40_paths_finishes(other, hostile):
    # 40 indexes, each naming the next twice: deeper than the nesting cap, so a refusal in one
    # line is as good as a verdict; walking 2**40 paths is not.
    _retag(hostile, nested_index(hostile, descriptor_of(hostile, "latest"), 40, fanout=2))
    results = readers(other, hostile)
    for name in ("validate", "inspect"):
        assert_no_crash(results[name])
        if results[name].returncode != 0:
            (assert_invalid if name == "validate" else assert_one_error)(results[name])
    _diff_finished(results["diff"])


def test_index_dag_within_the_depth_cap_with_2_to_the_40_paths_is_valid(other, hostile):
    # 20 levels, each naming the next 4 times: 4**20 == 2**40 paths, 20 index blobs.
    _retag(hostile, nested_index(hostile, descriptor_of(hostile, "latest"), 20, fanout=4))
    results = readers(other, hostile)
    assert_valid(results["validate"])
    assert results["inspect"].returncode == 0, summary(results["inspect"])
    assert len(results["inspect"].stdout) < MIB, "inspect printed every path of the DAG"
    _diff_finished(results["diff"])


# --- oversized JSON ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["index.json", "manifest", "config"])
def test_json_document_over_16_mib_is_refused(other, hostile, which):
    padding = b" " * (17 * MIB)  # whitespace: valid JSON, so only the size cap can refuse it
    if which == "index.json":
        data = (hostile / "index.json").read_bytes()
        (hostile / "index.json").write_bytes(data[:-1] + padding + data[-1:])
    else:
        blobs = image_blobs(hostile, "latest")
        manifest = read_blob_json(hostile, blobs["manifest"]["digest"])
        if which == "config":
            data = blob_path(hostile, blobs["config"]["digest"]).read_bytes()
            manifest["config"] = write_blob(hostile, data[:-1] + padding + data[-1:],
                                            blobs["config"]["mediaType"])
            data = canonical(manifest)
        else:
            data = canonical(manifest)
            data = data[:-1] + padding + data[-1:]
        set_tag(hostile, write_blob(hostile, data, MEDIA_MANIFEST), "latest")
    assert_refused(readers(other, hostile))


# --- layers that lie -----------------------------------------------------------------------

def _tar_claiming(claimed: int, pax: bool) -> bytes:
    """A tar whose only member has 10 bytes of data but claims `claimed` bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("huge")
        info.size = 10
        if pax:
            info.pax_headers = {"size": str(claimed)}
        tar.addfile(info, io.BytesIO(b"0123456789"))
    data = bytearray(out.getvalue())
    if not pax:  # patch the ustar size field and its checksum
        data[124:136] = f"{claimed:011o}\0".encode()
        data[148:156] = b" " * 8
        data[148:156] = f"{sum(data[:512]):06o}\0 ".encode()
    return bytes(data[:1024])  # the header and one data block; no end-of-archive blocks


@pytest.mark.parametrize("pax", [True, False], ids=["pax-header", "ustar-header"])
def test_tar_member_larger_than_the_stream_is_an_error(other, hostile, pax):
    add_image(hostile, gzip_bytes(_tar_claiming(1 << 50 if pax else 1 << 30, pax)))
    results = readers(other, hostile)
    assert_no_crash(results["validate"])
    assert_one_error(results["inspect"], status=1)
    assert_one_error(results["diff"], status=2)


def _layer(kind: str) -> bytes:
    payload = gzip_bytes(tar_bytes([("data", os.urandom(256 * 1024))]))
    if kind == "truncated-gzip":
        return payload[: len(payload) // 2]
    if kind == "trailing-garbage":
        return payload + b"this is not a gzip member" * 4
    if kind == "not-gzip":
        return tar_bytes([("data", b"plain tar, labelled gzip")])
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated-gzip", "trailing-garbage", "not-gzip"])
def test_broken_gzip_layer_is_refused(other, hostile, kind):
    # Digests and sizes match the broken bytes: only reading the stream can find the fault.
    add_image(hostile, _layer(kind), diff_id=digest_of(b"not knowable"))
    assert_refused(readers(other, hostile))


def test_layer_blob_that_is_a_directory_is_refused(other, hostile):
    path = blob_path(hostile, image_blobs(hostile, "latest")["layer"]["digest"])
    path.unlink()
    path.mkdir()
    (path / "inside").write_bytes(b"x")
    assert_refused(readers(other, hostile))


# --- builds into a layout that is already damaged ------------------------------------------

@pytest.fixture
def built(hello_static: Path, tmp_path: Path) -> Path:
    layout = tmp_path / "work" / "L"
    build(hello_static, layout, "old")
    return layout


@pytest.mark.parametrize("damage", ["truncated", "flipped-byte", "directory", "fifo",
                                    "symlink-to-outside-copy"])
def test_build_replaces_a_damaged_blob_it_would_reuse(hello_static, built, tmp_path, damage):
    layer = blob_path(built, image_blobs(built, "old")["layer"]["digest"])
    data = layer.read_bytes()
    outside = tmp_path / "outside-copy"
    outside.write_bytes(data)
    if damage == "truncated":
        layer.write_bytes(data[: len(data) // 2])
    elif damage == "flipped-byte":
        layer.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "directory":
        layer.unlink()
        layer.mkdir()
    elif damage == "fifo":
        replace_with_fifo(layer)
    else:
        layer.unlink()
        layer.symlink_to(outside)
    # The same binary: the new image has the very same layer, which the build must not trust.
    build(hello_static, built, "new", "--env", "V=2")
    assert layer.is_file() and not layer.is_symlink(), f"the build kept the {damage} layer blob"
    assert layer.read_bytes() == data, f"the build kept the {damage} layer blob"
    assert outside.read_bytes() == data, "the build wrote through a symlink to outside the layout"
    assert_valid(cli("validate", built))


MALFORMED_INDEXES = {
    "list": b"[]",
    "string": b'"index"',
    "empty-file": b"",
    "truncated": b'{"schemaVersion":2,"manifests":[{"mediaTy',
    "not-utf8": b'{"schemaVersion":2,"manifests":[],"annotations":{"a":"\xff\xfe"}}',
    "manifests-object": b'{"schemaVersion":2,"manifests":{}}',
    "manifests-of-numbers": b'{"schemaVersion":2,"manifests":[1,2]}',
    "digest-number": b'{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":5,"size":1}]}'
                     % MEDIA_MANIFEST.encode(),
    "digest-path": b'{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"sha256:../../../x",'
                   b'"size":1}]}' % MEDIA_MANIFEST.encode(),
    "nested-600": b"[" * 600 + b"]" * 600,
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_INDEXES))
def test_build_refuses_a_malformed_existing_index_json(hello_static, built, tmp_path, shape):
    (built / "index.json").write_bytes(MALFORMED_INDEXES[shape])
    _refused_build(tmp_path, hello_static, "--tag", "new")


@pytest.mark.parametrize("shape", ["list", "no-layers", "layers-object"])
def test_build_refuses_an_existing_tag_whose_manifest_is_malformed(hello_static, built, tmp_path,
                                                                    shape):
    manifest = read_blob_json(built, descriptor_of(built, "old")["digest"])
    if shape == "list":
        bad: object = [manifest]
    elif shape == "no-layers":
        bad = {k: v for k, v in manifest.items() if k != "layers"}
    else:
        bad = {**manifest, "layers": {"0": manifest["layers"][0]}}
    set_tag(built, write_json_blob(built, bad, MEDIA_MANIFEST), "old")
    _refused_build(tmp_path, hello_static, "--tag", "new")


def test_a_manifest_with_two_problems_is_refused_naming_the_first(hello_static, built, tmp_path):
    """One line, so one problem: the first the schema finds (`validate` lists them all)."""
    manifest = read_blob_json(built, descriptor_of(built, "old")["digest"])
    bad = {k: v for k, v in manifest.items() if k not in ("config", "layers")}
    set_tag(built, write_json_blob(built, bad, MEDIA_MANIFEST), "old")
    error = _refused_build(tmp_path, hello_static, "--tag", "new")
    assert "'config' is a required property" in error and "'layers'" not in error, error


def test_an_index_json_with_two_problems_is_refused_naming_the_first(hostile, tmp_path):
    """The same for index.json, read before any manifest."""
    index = json.loads((hostile / "index.json").read_text())
    del index["schemaVersion"]
    index["manifests"] = "none"
    (hostile / "index.json").write_text(json.dumps(index))
    result = cli("bundle", hostile, "--output", tmp_path / "bundle")
    error = assert_one_error(result)
    assert "index.json is malformed: (top level): 'schemaVersion' is a required property" in \
        error and "'none'" not in error, error


# --- the archive ---------------------------------------------------------------------------

@pytest.mark.parametrize("archive", ["same", "inside"])
@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing"])
def test_archive_at_or_inside_the_output_is_refused(hello_static, tmp_path, archive, existing):
    layout = tmp_path / "L"
    if existing:
        build(hello_static, layout, "old")
    before = snapshot(tmp_path)
    target = layout if archive == "same" else layout / "image.tar"
    result = cli("build", hello_static, "--output", layout, "--tag", "new", "--archive", target)
    assert_one_error(result)
    assert not changes(before, snapshot(tmp_path)), changes(before, snapshot(tmp_path))


@pytest.mark.slow
def test_gzip_bomb_is_read_in_bounded_memory(other, hostile):
    """512 MiB of zeros in one file, gzipped to half a megabyte: judged valid, and read under a
    384 MiB address-space cap, which inflating it whole would break (bench/bombs.py: 2 GiB)."""
    layer, diff_id = zeros_layer(512 * MIB)
    add_image(hostile, layer, diff_id=diff_id)
    results = readers(other, hostile, memory=384 * MIB)
    assert_valid(results["validate"])
    assert results["inspect"].returncode == 0, summary(results["inspect"])
    assert "zeros" in results["inspect"].stdout
    assert results["diff"].returncode == 1, summary(results["diff"])


def _tar_with_pax(records: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello")
        info.size = 6
        info.pax_headers = records
        tar.addfile(info, io.BytesIO(b"hello\n"))
    return out.getvalue()


@pytest.mark.parametrize("value", ["nan", "1e400", "abc", "", "0x10", "inf", " 17", "1_0"])
def test_a_pax_mtime_that_is_no_time_is_one_error_line(other, hostile, value):
    add_image(hostile, gzip_bytes(_tar_with_pax({"mtime": value})))
    results = readers(other, hostile)
    assert_no_crash(results["validate"])
    assert_one_error(results["inspect"], "PAX mtime", status=1)
    assert_one_error(results["diff"], "PAX mtime", status=2)


@pytest.mark.parametrize("key", ["uid", "gid", "size"])
def test_a_pax_number_python_would_stretch_to_read_is_one_error_line(other, hostile, key):
    add_image(hostile, gzip_bytes(_tar_with_pax({key: "1_0"})))
    results = readers(other, hostile)
    assert_one_error(results["inspect"], f"PAX {key}", status=1)
    assert_one_error(results["diff"], f"PAX {key}", status=2)


def test_a_pax_mtime_with_a_fraction_is_read_as_whole_seconds(hellocontainer, hostile):
    add_image(hostile, gzip_bytes(_tar_with_pax({"mtime": "1700000000.987654321"})))
    (image,) = json.loads(hellocontainer("inspect", hostile, "--json").stdout)["images"]
    (entry,) = image["layers"][0]["files"]
    assert entry["mtime"] == 1700000000


# --- layers without end-of-archive blocks: one rule for every reader ---------------------------

def test_a_layer_umoci_inserted_without_padding_or_end_blocks_is_read_by_every_command(
        hellocontainer, hello_static, tmp_path):
    """umoci 0.4.7's `insert` ends its layer right after the file's content (umoci issue #436);
    Go's archive/tar, and so podman, reads it. validate, inspect and bundle read it too."""
    umoci = require_tool("umoci", "umoci")
    layout = tmp_path / "L"
    hellocontainer("build", hello_static, "--output", layout)
    (tmp_path / "f").write_bytes(b"x" * 500)
    subprocess.run([umoci, "insert", "--image", f"{layout}:latest", str(tmp_path / "f"), "/f"],
                   check=True, capture_output=True)
    layers = json.loads(blob_path(layout, descriptor_of(layout, "latest")["digest"]).read_text())["layers"]
    inserted = gzip.decompress(blob_path(layout, layers[-1]["digest"]).read_bytes())
    assert len(inserted) == 512 + 500  # the shape this test is about: no padding, no end blocks
    assert hellocontainer("validate", layout).returncode == 0
    assert "/f" in hellocontainer("inspect", layout).stdout
    hellocontainer("bundle", layout, "--output", tmp_path / "B")
    assert (tmp_path / "B" / "rootfs" / "f").read_bytes() == b"x" * 500


def _cut(length: int) -> bytes:
    """A one-file layer of 500 content bytes, cut after `length` bytes of the tar stream."""
    return tar_bytes([("f", b"x" * 500)])[:length]


@pytest.mark.parametrize(("length", "fragment"), [
    (512 + 499, "ends inside the content of f, which claims 500 bytes"),
    (512 + 500 + 5, "ends inside the padding after f"),
], ids=["inside-content", "inside-padding"])
def test_a_layer_cut_inside_content_or_padding_is_refused_saying_where(other, hostile, length,
                                                                      fragment):
    add_image(hostile, gzip_bytes(_cut(length)))
    results = readers(other, hostile)
    assert_one_error(results["inspect"], fragment, status=1)
    assert_one_error(results["diff"], fragment, status=2)
    bundle = cli("bundle", hostile, "--output", hostile.parent / "B")
    assert_one_error(bundle, fragment)


# --- every cap, exactly at it and one byte past ------------------------------------------------

@pytest.mark.parametrize(("name", "cap"), [("oci-layout", 64 << 10), ("index.json", 16 << 20)])
def test_a_layout_file_exactly_at_its_cap_is_read_and_one_byte_more_is_refused(hostile, name, cap):
    path = hostile / name
    document = path.read_bytes().rstrip()
    path.write_bytes(document + b" " * (cap - len(document)))  # JSON allows trailing white space
    assert_valid(cli("validate", hostile), warnings=False)
    path.write_bytes(document + b" " * (cap + 1 - len(document)))
    assert_invalid(cli("validate", hostile))
    assert_one_error(cli("inspect", hostile), name, status=1)


def test_a_manifest_exactly_at_16_mib_is_read_and_one_byte_more_is_refused_naming_the_cap(
        hostile):
    manifest = canonical(read_blob_json(hostile, image_blobs(hostile, "latest")["manifest"]["digest"]))
    cap = 16 << 20
    for size in (cap, cap + 1):
        data = manifest[:-1] + b" " * (size - len(manifest)) + manifest[-1:]
        set_tag(hostile, write_blob(hostile, data, MEDIA_MANIFEST), "latest")
        result = cli("inspect", hostile)
        if size == cap:
            assert result.returncode == 0, result.stderr
        else:
            assert_one_error(result, f"claims {cap + 1} bytes; documents are limited to 16 MiB",
                             status=1)


def test_a_spec_file_exactly_at_the_mebibyte_cap_is_read_and_one_byte_more_is_refused(
        hello_static, tmp_path):
    spec = tmp_path / "image.yaml"
    body = b"path: /hello\n# "
    spec.write_bytes(body + b"x" * ((1 << 20) - len(body) - 1) + b"\n")
    assert cli("build", hello_static, "--output", tmp_path / "a", "--spec", spec).returncode == 0
    spec.write_bytes(body + b"x" * ((1 << 20) - len(body)) + b"\n")
    assert_one_error(cli("build", hello_static, "--output", tmp_path / "b", "--spec", spec),
                     "larger than 1 MiB")


def _tar_with_header(typeflag: bytes, payload: bytes) -> bytes:
    """One extended header (PAX 'x' or GNU long name 'L') of `payload`, then a small file."""
    header = bytearray(tarfile.TarInfo("././@LongLink").tobuf(format=tarfile.USTAR_FORMAT)[:512])
    header[124:136] = f"{len(payload):011o}\0".encode()
    header[156:157] = typeflag
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    padding = b"\0" * (-len(payload) % 512)
    return bytes(header) + payload + padding + tar_bytes([("hello", b"hello\n")])


@pytest.mark.parametrize("typeflag", [b"x", b"L"], ids=["pax", "gnu-long-name"])
def test_an_extended_header_over_its_cap_is_refused(other, hostile, typeflag):
    size = (1 << 20) + 1
    payload = (b"%d path=" % size) + b"a" * (size - len(b"%d path=" % size) - 1) + b"\n"
    if typeflag == b"L":
        payload = b"a" * size
    add_image(hostile, gzip_bytes(_tar_with_header(typeflag, payload)))
    results = readers(other, hostile)
    assert_one_error(results["inspect"], "extended header", "too large", status=1)
    assert_one_error(results["diff"], "too large", status=2)


def test_a_tar_header_with_a_wrong_checksum_is_refused(other, hostile):
    data = bytearray(tar_bytes([("hello", b"hello\n")]))
    data[0:1] = b"j"  # the name changes; the checksum field still sums the old header
    add_image(hostile, gzip_bytes(bytes(data)))
    results = readers(other, hostile)
    assert_one_error(results["inspect"], "checksum", status=1)
    assert_one_error(results["diff"], "checksum", status=2)
