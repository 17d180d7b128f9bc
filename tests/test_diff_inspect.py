"""`diff` explains a non-identical rebuild; `inspect` shows what an image holds.

diff's exit status follows diff(1): 0 identical, 1 different, 2 trouble.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

from hellocontainer.image.pgzip import GzipWriter
from layouts import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    gzip_bytes,
    new_layout,
    set_tag,
    tar_bytes,
    write_blob,
    write_json_blob,
)
from oci import blob, manifest


def test_identical_images_diff_clean(hellocontainer, hello_static, tmp_path):
    for name in ("a", "b"):
        hellocontainer("build", hello_static, "--output", tmp_path / name)
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'a'} and {tmp_path / 'b'} are identical\n"


def test_diff_names_the_config_field_and_the_file_header_that_differ(hellocontainer, hello_static,
                                                                      tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--env", "MODE=fast",
                   env={"SOURCE_DATE_EPOCH": "100"})
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--env", "MODE=slow",
                   env={"SOURCE_DATE_EPOCH": "200"})
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "tag latest config.config.Env[0]: 'MODE=fast' → 'MODE=slow'" in lines
    assert f"tag latest layer 0: /{hello_static.name} mtime 100 → 200" in lines


def test_diff_names_a_changed_file_content_and_mode(hellocontainer, hello_static, tmp_path):
    (tmp_path / "motd").write_text("one\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "a",
                   "--file", f"{tmp_path}/motd:/etc/motd:0644")
    (tmp_path / "motd").write_text("two\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "b",
                   "--file", f"{tmp_path}/motd:/etc/motd:0600")
    result = hellocontainer("diff", f"{tmp_path}/a:latest", f"{tmp_path}/b:latest", check=False)
    assert result.returncode == 1
    assert "/etc/motd mode 0644 → 0600" in result.stdout
    assert "/etc/motd sha256" in result.stdout


def gzip_at(data: bytes, level: int) -> bytes:
    """Our gzip of `data` at `level` (test_pgzip proves it is zlib's deflate at that level)."""
    sink = io.BytesIO()
    with GzipWriter(sink, level=level, jobs=1) as writer:
        writer.write(data)
    return sink.getvalue()


def test_diff_says_when_only_compression_differs(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--gzip-level", "9")
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--gzip-level", "1")
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 1
    assert "same files and headers, different compressed bytes" in result.stdout
    # Each layer really is compressed at its level, not only labelled so in the header's XFL.
    layers = {name: blob(tmp_path / name, manifest(tmp_path / name)["layers"][0]["digest"])
              for name in ("a", "b")}
    tar = gzip.decompress(layers["a"])
    assert gzip.decompress(layers["b"]) == tar
    assert layers["a"] == gzip_at(tar, 9) and layers["b"] == gzip_at(tar, 1)
    assert len(layers["a"]) < len(layers["b"])


def test_diff_names_a_changed_layer_media_type(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a")
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--compression", "none")
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"tag latest layer 0: media type {MEDIA_LAYER_GZIP} → {MEDIA_LAYER_GZIP[:-5]}"]


def test_diff_lists_tags_present_on_one_side(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--tag", "1.0 latest")
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--tag", "latest 2.0")
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["tag 1.0 only in A", "tag 2.0 only in B"]


def test_diff_of_two_tags_in_one_layout_compares_them_whatever_their_names(
        hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--tag", "1.0",
                   "--env", "V=1")
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--tag", "2.0",
                   "--env", "V=2")
    result = hellocontainer("diff", f"{tmp_path}/a:1.0", f"{tmp_path}/a:2.0", check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["tag 1.0 ↔ 2.0 config.config.Env[0]: 'V=1' → 'V=2'"]


def test_diff_trouble_exits_2_not_1(hellocontainer, hello_static, tmp_path):
    """"Cannot compare" must not read as "they differ" to a script checking for 1."""
    hellocontainer("build", hello_static, "--output", tmp_path / "a")
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "missing", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("hellocontainer: error: ") and result.stderr.count("\n") == 1
    assert "missing" in result.stderr and result.stdout == ""


def platform_image(layout: Path, architecture: str, env: str) -> dict:
    """A hand-made single-layer image for linux/`architecture`; its platform-tagged descriptor."""
    tar = tar_bytes([("hello", architecture.encode())])
    layer = write_blob(layout, gzip_bytes(tar), MEDIA_LAYER_GZIP)
    config = write_json_blob(layout, {
        "architecture": architecture, "os": "linux", "config": {"Env": [env]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}},
        MEDIA_CONFIG)
    descriptor = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                          "config": config, "layers": [layer]}, MEDIA_MANIFEST)
    return {**descriptor, "platform": {"architecture": architecture, "os": "linux"}}


def multi_platform(layout: Path, platforms: dict[str, str]) -> Path:
    """A layout whose tag `latest` is an image index of one image per architecture."""
    new_layout(layout)
    manifests = [platform_image(layout, arch, env) for arch, env in sorted(platforms.items())]
    index = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                     "manifests": manifests}, MEDIA_INDEX)
    set_tag(layout, index, "latest")
    return layout


def test_diff_of_multi_platform_images_goes_platform_by_platform(hellocontainer, tmp_path):
    a = multi_platform(tmp_path / "a", {"amd64": "A=1", "arm64": "A=1", "s390x": "A=1"})
    b = multi_platform(tmp_path / "b", {"amd64": "A=2", "arm64": "A=1", "riscv64": "A=1"})
    result = hellocontainer("diff", a, b, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "tag latest: platform linux/s390x only in A",
        "tag latest: platform linux/riscv64 only in B",
        "tag latest [linux/amd64] config.config.Env[0]: 'A=1' → 'A=2'",
    ]


def test_diff_of_a_multi_platform_image_with_a_single_platform_one(hellocontainer, tmp_path):
    a = multi_platform(tmp_path / "a", {"amd64": "A=1"})
    b = new_layout(tmp_path / "b")
    set_tag(b, platform_image(b, "amd64", "A=1"), "latest")
    result = hellocontainer("diff", a, b, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"tag latest: media type {MEDIA_INDEX} → {MEDIA_MANIFEST}"]


def test_inspect_json_shows_settings_and_files(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--path", "/bin/hello",
                   "--tag", "1.0 latest", "--user", "1000:1000", "--port", "8080 53/udp",
                   "--env", "GREETING='hi there'", "--annotation",
                   "org.opencontainers.image.licenses=MIT")
    report = json.loads(hellocontainer("inspect", "--json", f"{tmp_path}/o:1.0").stdout)
    [image] = report["images"]
    assert image["tags"] == ["1.0"]
    assert image["platform"] == {"architecture": "amd64", "os": "linux"}
    assert image["entrypoint"] == ["/bin/hello"]
    assert image["user"] == "1000:1000"
    assert image["ports"] == ["53/udp", "8080/tcp"]
    assert image["env"] == ["GREETING=hi there"]
    assert image["annotations"] == {"org.opencontainers.image.licenses": "MIT"}
    assert [f["path"] for f in image["layers"][0]["files"]] == ["/bin", "/bin/hello"]
    assert report["bytes"] == sum(p.stat().st_size for p in (tmp_path / "o").rglob("*") if p.is_file())


def test_inspect_text_lists_tags_and_files(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--tag", "1.0 latest")
    out = hellocontainer("inspect", tmp_path / "o").stdout
    assert "tags      1.0, latest" in out
    assert f"/{hello_static.name}" in out and "linux/amd64" in out


# --- layers larger than what the report keeps in memory (check/streaming.py) -----------------

WIDE = 25_000  # past both the in-memory head of a Spill and one sorting run


def _wide_layout(path: Path, files: list[tuple[str, bytes]]) -> Path:
    from layouts import add_image

    new_layout(path)
    add_image(path, gzip_bytes(tar_bytes(files)))
    return path


def test_diff_of_wide_layers_names_each_change_once_in_path_order(hellocontainer, tmp_path):
    names = [f"d{i // 1000:02d}/f{i % 1000:03d}" for i in range(WIDE)]
    a = _wide_layout(tmp_path / "a", [(n, b"") for n in names])
    changed = [(n, b"x" if n == names[7] else b"") for n in names if n != names[20_000]]
    # A path repeated later in the tar: the last entry stands for it, as extraction leaves it.
    b = _wide_layout(tmp_path / "b", [*changed, ("zz/new", b""), (names[3], b""), (names[3], b"y")])
    result = hellocontainer("diff", a, b, check=False)
    assert result.returncode == 1, result.stderr
    lines = [line.split(" layer 0: ", 1)[1] for line in result.stdout.splitlines()
             if " layer 0: " in line]
    empty, x, y = (hashlib.sha256(data).hexdigest() for data in (b"", b"x", b"y"))
    assert lines == [f"/{names[20_000]} only in A", "/zz/new only in B",
                     f"/{names[3]} size 0 → 1", f"/{names[3]} sha256 {empty} → {y}",
                     f"/{names[7]} size 0 → 1", f"/{names[7]} sha256 {empty} → {x}"]


def test_diff_of_wide_layers_in_another_order_says_so(hellocontainer, tmp_path):
    files = [(f"d{i // 1000:02d}/f{i % 1000:03d}", b"") for i in range(WIDE)]
    a = _wide_layout(tmp_path / "a", files)
    b = _wide_layout(tmp_path / "b", files[1:] + files[:1])
    result = hellocontainer("diff", a, b, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].endswith("same files in a different order in the tar")


def test_inspect_of_a_wide_layer_lists_every_entry_in_tar_order(hellocontainer, tmp_path):
    names = [f"d{i // 1000:02d}/f{i % 1000:03d}" for i in range(WIDE)][::-1]
    layout = _wide_layout(tmp_path / "a", [(n, b"") for n in names])
    (image,) = json.loads(hellocontainer("inspect", layout, "--json").stdout)["images"]
    assert [f["path"] for f in image["layers"][0]["files"]] == ["/" + n for n in names]
    text = hellocontainer("inspect", layout).stdout.splitlines()
    assert [line.split()[-1] for line in text if line.startswith("  0644")] == ["/" + n for n in names]
