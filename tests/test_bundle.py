"""`hellocontainer bundle`: a runtime bundle that runc and crun start, built safely from any layout.

Hostile and unusual layers are made here with Python's tarfile into small hand-written layouts, so
each image-spec rule (whiteouts, opaque directories, links, devices) and each attack (`..`,
absolute paths, writing through a planted symlink) is tested on exactly the entries it concerns.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from conftest import STRICT, require_tool

EPOCH = 1700000000
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The runtime-spec's own JSON Schema, as Debian ships it: an independent judge of our config.json.
SPEC_SCHEMA = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")
MOUNT_POINTS = {"dev", "proc", "sys"}


# --- running the packager ----------------------------------------------------------------------

def cli(*args: Any, umask: int = 0o022, epoch: int = EPOCH) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    return subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)],
                          capture_output=True, text=True, env=env, umask=umask)


def ok(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The stderr of a failed run, checked to be exactly one `hellocontainer: error:` line."""
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stderr.startswith("hellocontainer: error: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def no_debris(folder: Path) -> None:
    """No staging folder or other hidden leftover beside the output."""
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


# --- hand-made layers and layouts --------------------------------------------------------------

TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


def entry(name: str, kind: str = "file", data: bytes = b"", mode: int | None = None,
          uid: int = 0, gid: int = 0, mtime: int = EPOCH, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = TYPES[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime, info.linkname = uid, gid, mtime, link
    info.size = len(data) if kind == "file" else 0
    if kind in ("char", "block"):
        info.devmajor, info.devminor = (5, 1) if kind == "char" else (8, 0)
    return info, data


def layer(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def _descriptor(root: Path, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _blob(root, data), "size": len(data), **extra}


def add_image(root: Path, layers: list[bytes], settings: dict[str, Any] | None = None,
              arch: str = "amd64", os_name: str = "linux",
              diff_ids: list[str] | None = None) -> dict[str, Any]:
    """Blobs of one image (uncompressed tar layers); returns its manifest descriptor. `diff_ids`:
    what the config claims, when not the layers' own."""
    if diff_ids is None:
        diff_ids = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers]
    config = {"architecture": arch, "os": os_name, "created": "2023-11-14T22:13:20Z",
              "config": {"Entrypoint": ["/hello"], **(settings or {})},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor(root, "application/vnd.oci.image.config.v1+json",
                              json.dumps(config).encode()),
        "layers": [_descriptor(root, "application/vnd.oci.image.layer.v1.tar", data) for data in layers],
    }
    return _descriptor(root, manifest["mediaType"], json.dumps(manifest).encode(),
                       platform={"architecture": arch, "os": os_name})


def write_index(root: Path, manifests: list[dict[str, Any]]) -> Path:
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    return root


def make_layout(root: Path, *layers: bytes, **settings: Any) -> Path:
    """A layout whose tag `latest` is one image of `layers`, with image config `settings`."""
    descriptor = add_image(root, list(layers), settings)
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    return write_index(root, [descriptor])


def listing(root: Path) -> list[tuple[Any, ...]]:
    """Every path under `root` with what a deterministic tree must keep: type and mode, owner,
    mtime, and the content (hash) or link target. Sorted, so directory order does not count."""
    out = []
    for folder, subfolders, files in os.walk(root):
        for name in ["", *subfolders, *files]:
            path = Path(folder, name)
            if name == "" and Path(folder) != root:
                continue  # each folder is listed once, by its parent
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            else:
                content = ""
            out.append((str(path.relative_to(root)), oct(info.st_mode), info.st_uid, info.st_gid,
                        info.st_mtime_ns, content))
    return sorted(out)


def rootfs_names(bundle: Path) -> set[str]:
    """Paths in rootfs/, without the mount points every bundle has."""
    root = bundle / "rootfs"
    names = {str(p.relative_to(root)) for p in root.rglob("*")}
    return names - MOUNT_POINTS


# --- the real runtimes -------------------------------------------------------------------------

@pytest.fixture
def hello_layout(hello_static: Path, tmp_path: Path) -> Path:
    layout = tmp_path / "layout"
    ok("build", hello_static, "--output", layout)
    return layout


def run_runc(bundle: Path, state: Path) -> subprocess.CompletedProcess[str]:
    runc = require_tool("runc", "runc")
    if os.geteuid() != 0:
        pytest.skip("runc run needs root")
    return subprocess.run([runc, "--root", str(state), "run", "--bundle", str(bundle),
                           f"hellocontainer-test-{os.getpid()}"], capture_output=True, text=True)


def test_runc_runs_the_bundle_and_prints_the_greeting(hello_layout, tmp_path):
    bundle = tmp_path / "bundle"
    result = ok("bundle", hello_layout, "--output", bundle)
    assert result.stdout.startswith(f"{bundle}: runtime bundle of sha256:")
    run = run_runc(bundle, tmp_path / "runc")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Hello container!\n"


def run_crun(bundle: Path, state: Path) -> subprocess.CompletedProcess[str]:
    crun = require_tool("crun", "crun")
    if os.geteuid() != 0:
        pytest.skip("crun run needs root")
    argv = [crun, "--root", str(state), "run", "--bundle", str(bundle),
            f"hellocontainer-test-{os.getpid()}"]
    if os.path.ismount("/sys/fs/cgroup/unified"):
        # A hybrid cgroup host whose v2 part has a controller (hugetlb here), which crun refuses
        # outright ("cgroups in hybrid mode not supported"). In a private mount namespace without
        # that mount, crun sees a v1 host; a board has one hierarchy or the other.
        unshare = require_tool("unshare", "util-linux")
        argv = [unshare, "--mount", "sh", "-c", 'umount /sys/fs/cgroup/unified && exec "$0" "$@"',
                *argv]
    return subprocess.run(argv, capture_output=True, text=True)


def test_crun_runs_the_bundle_and_prints_the_greeting(hello_layout, tmp_path):
    bundle = tmp_path / "bundle"
    ok("bundle", f"{hello_layout}:latest", "--output", bundle)
    run = run_crun(bundle, tmp_path / "crun")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Hello container!\n"


def test_running_the_bundle_leaves_it_unchanged(hello_layout, tmp_path):
    """Mount points are in rootfs/ already: a runtime need not write into a read-only board root."""
    bundle = tmp_path / "bundle"
    ok("bundle", hello_layout, "--output", bundle)
    before = listing(bundle)
    assert run_runc(bundle, tmp_path / "runc").returncode == 0
    assert listing(bundle) == before


def test_build_with_bundle_writes_layout_and_bundle(hello_static, tmp_path):
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    result = ok("build", hello_static, "--output", layout, "--tag", "1.0", "--bundle", bundle)
    assert f"{layout}:1.0 sha256:" in result.stdout
    assert f"{bundle}: runtime bundle of sha256:" in result.stdout
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["/hello"]
    run = run_runc(bundle, tmp_path / "runc")
    assert run.stdout == "Hello container!\n", run.stderr


def test_build_bundle_takes_the_bundle_options_and_platform(hello_static, tmp_path):
    """`build --bundle` takes every setting `bundle` does, and `--platform` as `bundle` spells
    it (`--arch`, its other name, for the build systems)."""
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    ok("build", hello_static, "--output", layout, "--platform", "linux/amd64", "--bundle", bundle,
       "--network", "host")
    config = json.loads((bundle / "config.json").read_text())
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]
    assert config["annotations"]["org.opencontainers.image.architecture"] == "amd64"


def test_build_refuses_a_bundle_setting_without_bundle(hello_static, tmp_path):
    error = one_line_error(cli("build", hello_static, "--output", tmp_path / "layout",
                               "--network", "host"), status=2)
    assert "--network" in error and "add --bundle DIR" in error
    assert not (tmp_path / "layout").exists()


def test_build_refuses_an_unwritable_bundle_before_publishing(hello_static, tmp_path):
    (tmp_path / "taken").write_text("not a bundle")
    error = one_line_error(cli("build", hello_static, "--output", tmp_path / "layout",
                               "--bundle", tmp_path / "taken"))
    assert "exists and is not a directory" in error
    assert not (tmp_path / "layout").exists()


# --- config.json -------------------------------------------------------------------------------

def test_config_json_validates_against_our_schema_and_the_runtime_spec_schema(hello_layout, tmp_path):
    from hellocontainer.oci import schema

    ok("bundle", hello_layout, "--output", tmp_path / "bundle")
    document = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert schema.problems(document, "runtime-config") == []
    if not (SPEC_SCHEMA / "config-schema.json").exists():
        message = ("runtime-spec schema not found; install it with: apt-get install "
                   "golang-github-opencontainers-specs-dev")
        pytest.fail(message) if STRICT else pytest.skip(message)
    base = "https://runtime-spec.invalid/schema/"
    registry = Registry().with_resources(
        (base + path.name, Resource.from_contents(json.loads(path.read_text()),
                                                  default_specification=DRAFT4))
        for path in SPEC_SCHEMA.glob("*.json"))
    official = {**json.loads((SPEC_SCHEMA / "config-schema.json").read_text()),
                "id": base + "config-schema.json"}
    import jsonschema

    errors = [e.message for e in jsonschema.Draft4Validator(official, registry=registry)
              .iter_errors(document)]
    assert errors == []


def test_config_json_has_the_safe_defaults(hello_layout, tmp_path):
    ok("bundle", hello_layout, "--output", tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    process = config["process"]
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert process["args"] == ["/hello"] and process["cwd"] == "/" and process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["noNewPrivileges"] is True
    assert process["capabilities"] == {key: ["CAP_NET_BIND_SERVICE"]
                                       for key in ("bounding", "effective", "permitted")}
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
    assert process["env"] == [DEFAULT_PATH]
    assert [n["type"] for n in config["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount",
                                                                  "network"]
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert "ro" in mounts["/sys"]["options"]
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "/proc/sys" in config["linux"]["readonlyPaths"]
    assert config["annotations"]["org.opencontainers.image.architecture"] == "amd64"


def test_network_host_shares_the_boards_network(hello_layout, tmp_path):
    ok("bundle", hello_layout, "--output", tmp_path / "bundle", "--network", "host")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]


def test_image_settings_become_the_process(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(entry("hello", data=b"x", mode=0o755)),
                         Entrypoint=["/hello", "--greet"], Cmd=["world"], Env=["PATH=/bin", "A=1"],
                         WorkingDir="/srv/app", Volumes={"/data": {}}, StopSignal="SIGINT",
                         Labels={"org.opencontainers.image.os": "from-label"})
    ok("bundle", layout, "--output", tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["args"] == ["/hello", "--greet", "world"]
    assert config["process"]["env"] == ["PATH=/bin", "A=1"]  # an image's PATH is never changed
    assert config["process"]["cwd"] == "/srv/app"
    assert {"destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=755"]} in config["mounts"]
    assert config["annotations"]["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert config["annotations"]["org.opencontainers.image.os"] == "from-label"  # Labels win
    assert {"srv", "srv/app", "data"} <= rootfs_names(tmp_path / "bundle")


PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1001:\nvideo:x:44:app\naudio:x:29:other,app\n"


@pytest.mark.parametrize(("user", "expected"), [
    ("app", {"uid": 1000, "gid": 1001, "additionalGids": [29, 44]}),
    ("app:video", {"uid": 1000, "gid": 44}),
    ("1000", {"uid": 1000, "gid": 1001}),
    ("42", {"uid": 42, "gid": 0}),
    ("42:7", {"uid": 42, "gid": 7}),
])
def test_user_is_resolved_in_the_images_own_passwd(tmp_path, user, expected):
    layout = make_layout(tmp_path / "layout",
                         layer(entry("etc", "dir"), entry("etc/passwd", data=PASSWD),
                               entry("etc/group", data=GROUP)), User=user)
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["user"] == expected


@pytest.mark.parametrize(("files", "user", "message"), [
    ((("etc/passwd", PASSWD),), "ghost", "no user 'ghost' in the image's /etc/passwd"),
    ((), "app", "the image has no /etc/passwd"),
    ((("etc/passwd", PASSWD), ("etc/group", GROUP)), "app:ghosts", "no group 'ghosts'"),
])
def test_an_unknown_user_is_one_line_error(tmp_path, files, user, message):
    layout = make_layout(tmp_path / "layout",
                         layer(entry("etc", "dir"), *(entry(n, data=d) for n, d in files)), User=user)
    assert message in one_line_error(cli("bundle", layout, "--output", tmp_path / "bundle"))
    assert not (tmp_path / "bundle").exists()
    no_debris(tmp_path)


# --- determinism and publishing ----------------------------------------------------------------

def varied_layout(root: Path) -> Path:
    """Directories, modes, owners, links and a whiteout: everything a tree listing can show."""
    return make_layout(
        root,
        layer(entry("ro", "dir", mode=0o555, mtime=1000), entry("ro/f", data=b"data", mode=0o4755,
              uid=1000, gid=1000, mtime=2000), entry("ro/l", "symlink", link="f", uid=7, mtime=3000),
              entry("x/y/z", data=b"deep"), entry("gone", data=b"old")),
        layer(entry(".wh.gone"), entry("ro/h", "hardlink", link="ro/f"), entry("hello", data=b"x")),
    )


def test_two_bundles_of_one_layout_are_identical(tmp_path):
    layout = varied_layout(tmp_path / "layout")
    # Whoever bundles, with whatever umask and clock, gets the same tree.
    ok("bundle", layout, "--output", tmp_path / "one", umask=0o022, epoch=1)
    ok("bundle", layout, "--output", tmp_path / "two", umask=0o077, epoch=EPOCH)
    assert listing(tmp_path / "one") == listing(tmp_path / "two")
    assert (tmp_path / "one" / "config.json").read_bytes() == \
        (tmp_path / "two" / "config.json").read_bytes()
    # What we write ourselves: the folder private to its owner, its files readable by all.
    modes = {name: stat.S_IMODE(os.lstat(tmp_path / "two" / name).st_mode)
             for name in ("", "config.json", "hellocontainer.json")}
    assert modes == {"": 0o700, "config.json": 0o644, "hellocontainer.json": 0o644}


def test_modes_owners_and_mtimes_come_from_the_layer(tmp_path):
    ok("bundle", varied_layout(tmp_path / "layout"), "--output", tmp_path / "bundle")
    root = tmp_path / "bundle" / "rootfs"
    directory, file, link = (os.lstat(root / name) for name in ("ro", "ro/f", "ro/l"))
    # The directory's mtime is its entry's, although its children were written after it.
    assert (stat.S_IMODE(directory.st_mode), directory.st_mtime) == (0o555, 1000)
    assert (stat.S_IMODE(file.st_mode), file.st_mtime) == (0o4755, 2000)
    assert (os.readlink(root / "ro/l"), link.st_mtime) == ("f", 3000)
    if os.geteuid() == 0:  # only root can give files away; others keep their own
        assert (file.st_uid, file.st_gid, link.st_uid) == (1000, 1000, 7)
    assert os.path.samefile(root / "ro/h", root / "ro/f")
    implied = os.lstat(root / "x" / "y")  # a parent no entry describes
    assert (stat.S_IMODE(implied.st_mode), implied.st_mtime, implied.st_uid) == (0o755, EPOCH, 0)


def test_a_bundle_replaces_the_previous_bundle(hello_layout, tmp_path):
    bundle = tmp_path / "out" / "bundle"
    ok("bundle", hello_layout, "--output", bundle)
    ok("bundle", hello_layout, "--output", bundle, "--network", "host")
    config = json.loads((bundle / "config.json").read_text())
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]
    no_debris(tmp_path / "out")


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(hello_layout, tmp_path):
    debris = tmp_path / ".bundle.bundle-killed" / "rootfs"
    debris.mkdir(parents=True)
    (debris / "half-written").write_bytes(b"x")
    ok("bundle", hello_layout, "--output", tmp_path / "bundle")
    no_debris(tmp_path)


def test_a_failed_bundle_leaves_the_previous_bundle_in_place(hello_layout, tmp_path):
    bundle = tmp_path / "bundle"
    ok("bundle", hello_layout, "--output", bundle)
    before = listing(bundle)
    hostile = make_layout(tmp_path / "hostile", layer(entry("../escape", data=b"x")))
    one_line_error(cli("bundle", hostile, "--output", bundle))
    assert listing(bundle) == before
    no_debris(tmp_path)


# --- hostile and unusual layers ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "ok/../../../../tmp/escape"])
def test_a_dotdot_entry_is_refused(tmp_path, name):
    layout = make_layout(tmp_path / "layout", layer(entry(name, data=b"evil")))
    error = one_line_error(cli("bundle", layout, "--output", tmp_path / "out" / "bundle"))
    assert "'..'" in error
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()
    no_debris(tmp_path)


def test_an_absolute_entry_lands_inside_the_root(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(entry("/etc/motd", data=b"hi"),
                                                    entry("/hello", data=b"x", mode=0o755)))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "motd").read_bytes() == b"hi"


@pytest.mark.parametrize("split", [False, True], ids=["one-layer", "two-layers"])
@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_an_entry_through_a_planted_symlink_is_refused(tmp_path, split, target):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = str(outside) if target == "absolute" else "../" * 30 + str(outside).lstrip("/")
    plant, write = entry("lib", "symlink", link=link), entry("lib/evil", data=b"evil")
    layers = [layer(plant), layer(write)] if split else [layer(plant, write)]
    layout = make_layout(tmp_path / "layout", *layers)
    error = one_line_error(cli("bundle", layout, "--output", tmp_path / "bundle"))
    assert "/lib is a symbolic link in the rootfs" in error
    assert list(outside.iterdir()) == []
    no_debris(tmp_path)


@pytest.mark.parametrize(("target", "message"), [
    ("host/passwd", "hardlink target /host/passwd is not in the image before it"),
    ("../../../etc/passwd", "'..'"),
])
def test_a_hardlink_leading_out_of_the_root_is_refused(tmp_path, target, message):
    layout = make_layout(tmp_path / "layout", layer(entry("host", "symlink", link="/etc"),
                                                    entry("stolen", "hardlink", link=target)))
    error = one_line_error(cli("bundle", layout, "--output", tmp_path / "bundle"))
    assert message in error


def test_device_nodes_are_skipped_and_fifos_kept(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(
        entry("dev", "dir"), entry("dev/console", "char"), entry("dev/sda", "block"),
        entry("run/fifo", "fifo", mode=0o620), entry("hello", data=b"x", mode=0o755)))
    result = ok("bundle", layout, "--output", tmp_path / "bundle")
    assert "2 device node(s) of the image not created (/dev/console, /dev/sda)" in result.stderr
    root = tmp_path / "bundle" / "rootfs"
    assert list((root / "dev").iterdir()) == []
    fifo = os.lstat(root / "run" / "fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620


def test_hardlinks_at_any_depth_share_their_file(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(
        entry("top", data=b"top"), entry("a/b/deep", data=b"deep"),
        entry("link-to-top", "hardlink", link="top"),
        entry("a/link-to-deep", "hardlink", link="a/b/deep")))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    root = tmp_path / "bundle" / "rootfs"
    assert os.stat(root / "link-to-top").st_ino == os.stat(root / "top").st_ino
    assert os.stat(root / "a" / "link-to-deep").st_ino == os.stat(root / "a" / "b" / "deep").st_ino


@pytest.mark.parametrize("where", ["", "x/y/"], ids=["top", "two-down"])
def test_a_whiteout_spares_what_its_own_layer_made_below_it(tmp_path, where):
    layout = make_layout(tmp_path / "layout", layer(entry(f"{where}a/old", data=b"old")),
                         layer(entry(f"{where}a/new", data=b"new"), entry(f"{where}.wh.a")))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert sorted(os.listdir(tmp_path / "bundle" / "rootfs" / where / "a")) == ["new"]


def test_whiteouts_delete_lower_files_and_are_not_kept(tmp_path):
    layout = make_layout(
        tmp_path / "layout",
        layer(entry("a", "dir"), entry("a/file1"), entry("a/file2"), entry("b/x"), entry("c")),
        layer(entry(".wh.b"), entry("a/.wh.file1"), entry(".wh.c"), entry("d"),
              # Same layer as its whiteout: only a later layer can hide it (layer.md).
              entry("a/file3"), entry("a/.wh.file3")),
    )
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"a", "a/file2", "a/file3", "d"}


@pytest.mark.parametrize("marker", [".wh.a", ".wh..wh..opq"])
def test_whiteouts_in_the_lowest_layer_hide_nothing_of_it(tmp_path, marker):
    """layer.md: a whiteout hides lower layers only; the lowest layer has none below it."""
    layout = make_layout(tmp_path / "layout", layer(entry("a"), entry(marker), entry("b/c")))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"a", "b", "b/c"}


def test_a_whiteout_naming_nothing_is_refused_in_the_lowest_layer_too(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(entry("a"), entry("d/.wh.")))
    assert "a whiteout must name the file it deletes" in one_line_error(
        cli("bundle", layout, "--output", tmp_path / "bundle"))


@pytest.mark.parametrize("marker_last", [False, True])
def test_an_opaque_whiteout_hides_every_lower_child(tmp_path, marker_last):
    opaque = [entry("bin", "dir"), entry("bin/.wh..wh..opq")]
    new = [entry("bin/new"), entry("bin/tools/mine")]
    layout = make_layout(
        tmp_path / "layout",
        layer(entry("bin/one"), entry("bin/tools/two"), entry("keep/x")),
        # layer.md: the marker applies first, wherever it is in the layer.
        layer(*(new + opaque if marker_last else opaque + new)),
    )
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"bin", "bin/new", "bin/tools", "bin/tools/mine",
                                                 "keep", "keep/x"}


def test_an_opaque_whiteout_spares_its_own_layer_across_directory_changes(tmp_path):
    """What a layer made is recorded folder by folder (rootfs._Made): entries that leave a
    folder and come back, go up to a folder's own entry, or jump between trees must all be
    spared by the layer's opaque marker, and only the lower layer's files go."""
    layout = make_layout(
        tmp_path / "layout",
        layer(entry("bin/one"), entry("bin/sub/sub"), entry("etc/x")),
        layer(entry("bin/tools/mine"), entry("bin/new"),  # up one, without a folder entry
              entry("etc/deep/y"), entry("bin/sub/a"),  # to another tree and back
              entry("bin/sub", "dir"),  # the folder's own entry after its child
              entry("bin/.wh..wh..opq")),
    )
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {
        "bin", "bin/tools", "bin/tools/mine", "bin/new", "bin/sub", "bin/sub/a",
        "etc", "etc/x", "etc/deep", "etc/deep/y"}


def test_a_whiteout_in_a_folder_no_lower_layer_has_makes_nothing(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(entry("a")),
                         layer(entry("none/.wh.x"), entry("gone/.wh..wh..opq")))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"a"}


@pytest.mark.parametrize("target", ["../keep", "/"])
def test_an_opaque_whiteout_never_follows_its_layers_link_to_a_folder(tmp_path, target):
    """The layer's own link to a folder is spared by the marker, never entered or judged by
    what it points at: an absolute target would name a folder of the host."""
    layout = make_layout(
        tmp_path / "layout",
        layer(entry("keep/x"), entry("d/old"), entry("d/sub/old")),
        layer(entry("d/link", "symlink", link=target), entry("d/sub/link", "symlink", link=target),
              entry("d/.wh..wh..opq")),
    )
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"keep", "keep/x", "d", "d/link", "d/sub",
                                                 "d/sub/link"}
    assert os.readlink(tmp_path / "bundle" / "rootfs" / "d" / "sub" / "link") == target


@pytest.mark.parametrize("cwd", ["/.", "/a/../b"])
def test_mount_points_are_made_whatever_the_working_directory_says(tmp_path, cwd):
    """A working directory with nothing to make (the root, or a '..' the runtime resolves)
    does not stop the mount points after it."""
    layout = make_layout(tmp_path / "layout", layer(entry("hello", data=b"x")), WorkingDir=cwd)
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert {"proc", "dev", "sys"} <= {p.name for p in (tmp_path / "bundle" / "rootfs").iterdir()}


@pytest.mark.parametrize("same_layer", [True, False])
def test_a_folder_whited_out_and_made_again_gets_the_new_files(tmp_path, same_layer):
    """The whiteout deletes the lower folder the previous entries were written into; what
    comes after goes into the new folder, not the deleted one."""
    again = [entry(".wh.d"), entry("d/y"), entry("d/z/w")]
    layers = [layer(entry("d/x"), entry("d/z/v"))]
    layers += [layer(*again)] if same_layer else [layer(*again[:1]), layer(*again[1:])]
    layout = make_layout(tmp_path / "layout", *layers)
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert rootfs_names(tmp_path / "bundle") == {"d", "d/y", "d/z", "d/z/w"}


def test_an_entry_error_names_the_layer_by_its_short_digest(tmp_path):
    upper = layer(entry("d/.wh."))
    layout = make_layout(tmp_path / "layout", layer(entry("a")), upper)
    error = one_line_error(cli("bundle", layout, "--output", tmp_path / "bundle"))
    short = "sha256:" + hashlib.sha256(upper).hexdigest()[:12]
    assert f"layer {short} entry " in error, error


@pytest.mark.parametrize("workdir", ["/srv/data", "/hello/data", "/a/hello/data"])
def test_the_working_directory_is_made_or_left_to_the_runtime(tmp_path, workdir):
    """A working directory the image has is kept, a missing one is made; one whose way holds
    a file is the runtime's to judge, and the mount points are still made."""
    layout = make_layout(tmp_path / "layout", layer(entry("srv/data", "dir", mode=0o750),
                                                    entry("hello", data=b"x"),
                                                    entry("a/hello", data=b"x")),
                         WorkingDir=workdir)
    ok("bundle", layout, "--output", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    assert {"proc", "dev", "sys"} <= {p.name for p in rootfs.iterdir()}
    if workdir == "/srv/data":
        assert stat.S_IMODE((rootfs / "srv" / "data").stat().st_mode) == 0o750


@pytest.mark.parametrize("content", [[entry("a/b", mtime=0)], []])
def test_folders_the_layer_does_not_name_take_its_newest_mtime_even_zero(tmp_path, content):
    """A folder no entry names (a's, the root's, the mount points') gets the image's newest
    mtime: 0 for an image of epoch 0 or of no entries at all."""
    layout = make_layout(tmp_path / "layout", layer(*content))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    assert rootfs.stat().st_mtime == 0 and (rootfs / "proc").stat().st_mtime == 0
    if content:
        assert (rootfs / "a").stat().st_mtime == 0


def test_a_file_replaces_a_lower_directory(tmp_path):
    layout = make_layout(tmp_path / "layout", layer(entry("p/q/r")), layer(entry("p", data=b"file")))
    ok("bundle", layout, "--output", tmp_path / "bundle")
    assert (tmp_path / "bundle" / "rootfs" / "p").read_bytes() == b"file"


# --- errors --------------------------------------------------------------------------------------

def test_missing_tag_is_one_line_error(hello_layout, tmp_path):
    error = one_line_error(cli("bundle", f"{hello_layout}:nope", "--output", tmp_path / "bundle"))
    assert "no tag 'nope'" in error
    assert "(tags: latest)" in error, error  # what there is to choose from


@pytest.mark.parametrize("version", ["1", "{}", '"1.0.0"'])
def test_an_oci_layout_file_without_a_version_string_is_one_line(hello_layout, tmp_path, version):
    """oci-layout must be an object with imageLayoutVersion, a string; anything else is no
    layout this tool reads, said before any other file is opened."""
    document = version if version != "1" else '{"imageLayoutVersion": 1}'
    (hello_layout / "oci-layout").write_text(document)
    error = one_line_error(cli("bundle", hello_layout, "--output", tmp_path / "bundle"))
    assert f"{hello_layout}/oci-layout has no imageLayoutVersion" in error


def test_a_multi_platform_image_needs_platform(tmp_path):
    root = tmp_path / "layout"
    hello = layer(entry("hello", data=b"x", mode=0o755))
    children = [add_image(root, [hello], arch=arch) for arch in ("amd64", "arm64")]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": children}
    descriptor = _descriptor(root, index["mediaType"], json.dumps(index).encode(),
                             annotations={"org.opencontainers.image.ref.name": "latest"})
    write_index(root, [descriptor])
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "bundle"))
    assert "--platform" in error and "linux/arm64" in error
    result = ok("bundle", root, "--output", tmp_path / "bundle", "--platform", "linux/arm64")
    assert result.stdout.endswith(" linux/arm64\n")
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "other", "--platform",
                               "linux/riscv64"))
    assert "the image has no platform linux/riscv64 (platforms: linux/amd64, linux/arm64)" \
        in error


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_output_that_is_not_a_bundle_is_refused(hello_layout, tmp_path, existing):
    output = tmp_path / "output"
    if existing == "file":
        output.write_text("x")
    else:
        output.mkdir()
        (output / "precious").write_text("x")
    error = one_line_error(cli("bundle", hello_layout, "--output", output))
    assert "choose another --output" in error
    assert output.is_file() or (output / "precious").exists()


def _tagged(root: Path, descriptor: dict[str, Any]) -> Path:
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    return write_index(root, [descriptor])


def test_an_image_for_another_os_is_refused(tmp_path):
    root = tmp_path / "layout"
    _tagged(root, add_image(root, [layer(entry("hello", data=b"x", mode=0o755))], os_name="windows"))
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "bundle"))
    assert "the image is for windows/amd64; runtime bundles are made for Linux images" in error
    assert not (tmp_path / "bundle").exists()
    no_debris(tmp_path)


def test_several_untagged_images_are_named_by_their_short_digests(tmp_path):
    root = tmp_path / "layout"
    images = [add_image(root, [layer(entry("hello", data=data, mode=0o755))]) for data in (b"1", b"2")]
    write_index(root, images)
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "bundle"))
    short = ", ".join(sorted(image["digest"][:19] for image in images))  # sha256: and 12 digits
    assert f"holds several images ({short}); name one as LAYOUT:TAG" in error
    assert not (tmp_path / "bundle").exists()


def test_a_config_listing_fewer_diff_ids_than_layers_is_refused(tmp_path):
    root = tmp_path / "layout"
    layers = [layer(entry("a", data=b"a")), layer(entry("b", data=b"b"))]
    _tagged(root, add_image(root, layers, diff_ids=[f"sha256:{hashlib.sha256(layers[0]).hexdigest()}"]))
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "bundle"))
    assert "the image config lists 1 diff_ids for 2 layers" in error
    assert not (tmp_path / "bundle").exists()
    no_debris(tmp_path)


def test_a_layer_whose_diff_id_the_config_contradicts_is_refused(tmp_path):
    """The blob's own digest is right; only the config's diff_id names other bytes: a rootfs
    from content the image never declared is not written, and no bundle appears."""
    root = tmp_path / "layout"
    real, declared = layer(entry("hello", data=b"x", mode=0o755)), layer(entry("hello", data=b"y"))
    descriptor = add_image(root, [real])
    manifest = json.loads((root / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes())
    config = json.loads((root / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    config["rootfs"]["diff_ids"] = [f"sha256:{hashlib.sha256(declared).hexdigest()}"]
    manifest["config"] = _descriptor(root, manifest["config"]["mediaType"], json.dumps(config).encode())
    descriptor = _descriptor(root, manifest["mediaType"], json.dumps(manifest).encode(),
                             annotations={"org.opencontainers.image.ref.name": "latest"})
    write_index(root, [descriptor])
    error = one_line_error(cli("bundle", root, "--output", tmp_path / "bundle"))
    assert "diff_id" in error
    assert not (tmp_path / "bundle").exists()
    no_debris(tmp_path)
