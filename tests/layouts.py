"""Hand-made image layouts and a fenced-in CLI, for the tests that attack the packager.

The hardening tests build hostile layouts byte by byte with the standard library, so that
making a damaged layout never depends on the packager's own writing code, and run the packager
as a separate process under an address-space cap and a timeout: a hang or a memory blow-up then
fails one test with a clear message instead of stalling or starving the machine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import STRICT, require_tool

PREFIX = "hellocontainer: "
ERROR = PREFIX + "error: "
WARNING = PREFIX + "warning: "
MEMORY_LIMIT = 1 << 30  # far above what any command needs on these small layouts
TIMEOUT = 20.0  # seconds; every command here finishes in well under one on a healthy packager
EPOCH = "1700000000"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = MEDIA_LAYER_TAR + "+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


class Hang(AssertionError):
    """A command did not finish in time: it blocked (a FIFO, a device) or ran away."""


# --- running the CLI ------------------------------------------------------------------------

def cli_argv(*args: object) -> list[str]:
    return [sys.executable, "-m", "hellocontainer", *map(str, args)]


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    # No .pyc writes: a test that counts the build's renames must count only the build's own.
    return {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}


def _cap_memory(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def start(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
          memory: int | None = MEMORY_LIMIT) -> subprocess.Popen[str]:
    """Start a command in its own process group, stdin closed, memory capped."""
    return subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace", env=env if env is not None else cli_env(), cwd=cwd,
        preexec_fn=_cap_memory(memory) if memory else None, start_new_session=True)


def finish(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Wait for `process`; a hang kills its process group and fails with `Hang`."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise Hang(f"`{shown(process.args)}` did not finish within {timeout:g} s (it blocks or "
                   "runs away)") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def cli(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = TIMEOUT, memory: int | None = MEMORY_LIMIT) -> subprocess.CompletedProcess[str]:
    """`python -m hellocontainer ARGS` as a user runs it, fenced by a memory cap and a timeout."""
    return finish(start(cli_argv(*args), cli_env(env), cwd, memory), timeout)


def cli_all(*commands: Sequence[object], timeout: float = TIMEOUT,
            memory: int = MEMORY_LIMIT) -> list[subprocess.CompletedProcess[str]]:
    """Several CLI commands at once (they only read), each fenced like `cli`."""
    processes = [start(cli_argv(*command), memory=memory) for command in commands]
    deadline = time.monotonic() + timeout  # one budget for all: they run side by side
    results: list[subprocess.CompletedProcess[str]] = []
    hang: Hang | None = None
    for process in processes:
        try:
            results.append(finish(process, max(0.1, deadline - time.monotonic())))
        except Hang as error:
            hang = hang or error
    if hang is not None:
        raise hang
    return results


def shown(argv: Any) -> str:
    words = [str(a) for a in argv]
    if len(words) > 2 and words[1:3] == ["-m", "hellocontainer"]:
        words = ["hellocontainer", *words[3:]]
    return " ".join(words)


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def summary(result: subprocess.CompletedProcess[str]) -> str:
    """How a command ended, in one line first (the exception if it crashed), then its stderr."""
    lines = stderr_lines(result)
    if "Traceback" in result.stderr:
        head = f"traceback: {lines[-1] if lines else '?'}"
    elif result.returncode < 0:
        head = f"killed by {signal.Signals(-result.returncode).name}"
    elif lines:
        head = lines[0]
    else:
        out = result.stdout.strip().splitlines()
        head = f"(no stderr; stdout: {out[0][:120] if out else 'none'})"
    tail = "".join(f"\n{line}" for line in lines[-8:] if line != head)
    return f"`{shown(result.args)}` exited {result.returncode}: {head}{tail}"


def assert_no_crash(result: subprocess.CompletedProcess[str]) -> None:
    """No traceback, no death by signal, and every stderr line is ours."""
    assert "Traceback" not in result.stderr + result.stdout, summary(result)
    assert result.returncode >= 0, summary(result)
    foreign = [line for line in stderr_lines(result) if not line.startswith(PREFIX)]
    assert not foreign, summary(result)


def assert_one_error(result: subprocess.CompletedProcess[str], *fragments: str,
                     status: int | None = None) -> str:
    """The user-error contract: non-zero exit, exactly one `hellocontainer: error:` line."""
    assert_no_crash(result)
    assert result.returncode != 0, summary(result)
    if status is not None:
        assert result.returncode == status, summary(result)
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(ERROR), summary(result)
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in: {lines[0]}"
    return lines[0]


def assert_invalid(result: subprocess.CompletedProcess[str]) -> str:
    """`validate` on a bad layout: exit 1, `invalid:` lines, one closing error line."""
    assert_no_crash(result)
    assert result.returncode == 1, summary(result)
    errors = [line for line in stderr_lines(result) if line.startswith(ERROR)]
    assert len(errors) == 1 and stderr_lines(result)[-1] == errors[0], summary(result)
    return result.stderr


def assert_valid(result: subprocess.CompletedProcess[str], warnings: bool = True) -> None:
    """`validate` accepted the layout; `warnings=False` also wants a silent stderr."""
    assert_no_crash(result)
    assert result.returncode == 0, summary(result)
    lines = stderr_lines(result)
    if warnings:
        assert all(line.startswith(WARNING) for line in lines), summary(result)
    else:
        assert not lines, summary(result)


def build(binary: Path, layout: Path, tag: str, *extra: object,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A build that must succeed."""
    result = cli("build", binary, "--output", layout, "--tag", tag, *extra, env=env, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, summary(result)
    return result


# --- the layout on disk, read with nothing but the standard library ------------------------

def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def read_index(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_bytes())


def tags(layout: Path) -> list[str]:
    return sorted(d.get("annotations", {}).get(REF_NAME, "") for d in read_index(layout)["manifests"])


def descriptor_of(layout: Path, tag: str) -> dict[str, Any]:
    (found,) = [d for d in read_index(layout)["manifests"]
                if d.get("annotations", {}).get(REF_NAME) == tag]
    return found


def read_blob_json(layout: Path, digest: str) -> Any:
    return json.loads(blob_path(layout, digest).read_bytes())


def image_blobs(layout: Path, tag: str) -> dict[str, dict[str, Any]]:
    """The manifest, config and (first) layer descriptors of a single-platform tag."""
    manifest_descriptor = descriptor_of(layout, tag)
    manifest = read_blob_json(layout, manifest_descriptor["digest"])
    return {"manifest": manifest_descriptor, "config": manifest["config"],
            "layer": manifest["layers"][0]}


def reachable_files(layout: Path) -> set[str]:
    """Every path a complete, tidy layout holds: its two files, the blob folders and each blob
    some index.json entry reaches (following nested indexes, manifests, configs, layers)."""
    found = {"oci-layout", "index.json", "blobs", "blobs/sha256"}
    seen: set[str] = set()
    stack = list(read_index(layout)["manifests"])
    while stack:
        descriptor = stack.pop()
        digest = descriptor["digest"]
        if digest in seen:
            continue
        seen.add(digest)
        found.add(f"blobs/sha256/{digest.split(':', 1)[1]}")
        if descriptor["mediaType"] in (MEDIA_INDEX, MEDIA_MANIFEST):
            document = read_blob_json(layout, digest)
            stack += document.get("manifests", []) + document.get("layers", [])
            if "config" in document:
                stack.append(document["config"])
    return found


def tree(root: Path) -> set[str]:
    """Every path below `root` (files, folders, links; links are not followed)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def snapshot(root: Path) -> dict[str, str]:
    """Path → kind and content hash (folders: kind only), to prove nothing changed below `root`."""
    state = {}
    for name in tree(root):
        path = root / name
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            state[name] = "file " + hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(mode):
            state[name] = "link " + os.readlink(path)
        else:
            state[name] = "dir" if stat.S_ISDIR(mode) else f"other {stat.S_IFMT(mode):o}"
    return state


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Readable differences between two snapshots, for assertion messages."""
    return ([f"+ {p}" for p in sorted(set(after) - set(before))]
            + [f"- {p}" for p in sorted(set(before) - set(after))]
            + [f"~ {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]])


# --- writing layouts by hand -----------------------------------------------------------------

def new_layout(layout: Path) -> Path:
    """An empty, valid layout: oci-layout, an index with no entries, the blob folder."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(OCI_LAYOUT)
    write_index(layout, [])
    return layout


def write_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    (layout / "index.json").write_bytes(canonical(
        {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests}))


def write_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    """Store `data` under its digest; return its descriptor."""
    digest = digest_of(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def write_json_blob(layout: Path, document: Any, media_type: str) -> dict[str, Any]:
    return write_blob(layout, canonical(document), media_type)


def tagged(descriptor: dict[str, Any], tag: str) -> dict[str, Any]:
    return {**descriptor, "annotations": {REF_NAME: tag}}


def set_tag(layout: Path, descriptor: dict[str, Any], tag: str) -> None:
    """Point `tag` at `descriptor` in index.json, replacing the tag's old entry."""
    kept = [d for d in read_index(layout)["manifests"] if d.get("annotations", {}).get(REF_NAME) != tag]
    write_index(layout, [*kept, tagged(descriptor, tag)])


def tar_bytes(files: Sequence[tuple[str, bytes]], mtime: int = 0) -> bytes:
    """A small deterministic tar of regular files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zeros_layer(size: int, name: str = "zeros") -> tuple[bytes, str]:
    """An honest gzip bomb: a tar holding one file of `size` zero bytes, gzipped (about 1000:1),
    and its diff_id. Made a megabyte at a time, so making it costs no memory."""
    header = tarfile.TarInfo(name)
    header.size, header.mode = size, 0o644
    tar_head = header.tobuf(format=tarfile.USTAR_FORMAT)
    tail = bytes(-size % 512 + 1024)  # padding to a block, then the two end-of-archive blocks
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    diff = hashlib.sha256(tar_head)
    out = [compressor.compress(tar_head)]
    zeros = bytes(1 << 20)
    for offset in range(0, size, len(zeros)):
        chunk = zeros[: min(len(zeros), size - offset)]
        diff.update(chunk)
        out.append(compressor.compress(chunk))
    diff.update(tail)
    out += [compressor.compress(tail), compressor.flush()]
    return b"".join(out), "sha256:" + diff.hexdigest()


def add_image(layout: Path, layer: bytes, tag: str | None = "latest", *,
              media_type: str = MEDIA_LAYER_GZIP, diff_id: str | None = None,
              env: Sequence[str] = ()) -> dict[str, Any]:
    """Write one single-layer linux/amd64 image whose layer blob is exactly `layer` (however
    broken), its config and manifest; tag it. `diff_id` defaults to the honest one when the
    layer can be decompressed."""
    if diff_id is None:
        try:
            raw = gzip.decompress(layer) if media_type.endswith("+gzip") else layer
        except (OSError, EOFError, ValueError):
            raw = layer
        diff_id = digest_of(raw)
    layer_descriptor = write_blob(layout, layer, media_type)
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": list(env)},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    config_descriptor = write_json_blob(layout, config, MEDIA_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_descriptor,
                "layers": [layer_descriptor]}
    descriptor = write_json_blob(layout, manifest, MEDIA_MANIFEST)
    if tag is not None:
        set_tag(layout, descriptor, tag)
    return descriptor


def nested_index(layout: Path, child: dict[str, Any], depth: int, fanout: int = 1) -> dict[str, Any]:
    """`depth` image indexes, each listing the one below `fanout` times, above `child`.

    With fanout 2 the graph has 2**depth paths but only depth+1 distinct blobs: a reader that
    walks paths instead of blobs never finishes.
    """
    descriptor = {k: child[k] for k in ("mediaType", "digest", "size")}
    for _ in range(depth):
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [descriptor] * fanout}
        descriptor = write_json_blob(layout, index, MEDIA_INDEX)
    return descriptor


def replace_with_fifo(path: Path) -> None:
    remove(path)
    os.mkfifo(path)


def replace_with_socket(path: Path) -> None:
    """A unix socket file at `path` (bound, then the socket object closed).

    It is bound under a short temporary name and renamed into place: socket addresses are
    limited to 107 bytes, and test paths are often longer."""
    import socket
    import tempfile

    remove(path)
    short = Path(tempfile.mkdtemp(prefix="sock"))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short / "s"))
        shutil.move(short / "s", path)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def padded_binary(binary: Path, target: Path, extra: int, seed: bytes = b"") -> Path:
    """A valid static ELF (`binary`) followed by `extra` incompressible bytes, made
    deterministically (sha256 counter stream), so its layer is about `extra` bytes."""
    with target.open("wb") as out:
        out.write(binary.read_bytes())
        counter = 0
        while extra > 0:
            block = b"".join(hashlib.sha256(seed + (counter + i).to_bytes(8, "big")).digest()
                             for i in range(2048))[:extra]
            out.write(block)
            extra -= len(block)
            counter += 2048
    target.chmod(0o755)
    return target


# --- file systems with limits ----------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A private tmpfs mounted at `where` with mount `options` (size=, nr_inodes=), unmounted
    afterwards. Needs root; a refused mount skips (fails in CI) like a missing tool."""
    require_tool("mount", "mount")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode=0755,{options}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield where
    finally:
        subprocess.run(["chattr", "-R", "-i", str(where)], capture_output=True)
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(filesystem: Path, name: str = "filler") -> Path:
    """Fill a file system's free space with one file; `free_pages` gives space back."""
    path = filesystem / name
    block = b"\xa5" * (1 << 16)
    with path.open("wb", buffering=0) as stream:
        while True:
            try:
                stream.write(block)
            except OSError:
                break
    with path.open("ab", buffering=0) as stream:  # the last partial block, page by page
        while True:
            try:
                stream.write(b"\xa5" * 4096)
            except OSError:
                break
    return path


def free_pages(filler: Path, pages: int) -> None:
    os.truncate(filler, max(0, filler.stat().st_size - pages * 4096))


def fill_inodes(filesystem: Path, name: str = "inodes") -> list[Path]:
    """Use up every free inode with empty files; return them (delete some to free inodes)."""
    folder = filesystem / name
    folder.mkdir()
    made = []
    while True:
        path = folder / str(len(made))
        try:
            path.touch()
        except OSError:
            return made
        made.append(path)


# --- the three reading commands ---------------------------------------------------------------

def readers(original: Path, suspect: Path | str, timeout: float = TIMEOUT, memory: int = MEMORY_LIMIT,
            ) -> dict[str, subprocess.CompletedProcess[str]]:
    """validate and inspect `suspect`, and diff it against `original`, all at once."""
    validate, inspect, diff = cli_all(("validate", suspect), ("inspect", suspect),
                                      ("diff", original, suspect), timeout=timeout, memory=memory)
    return {"validate": validate, "inspect": inspect, "diff": diff}


def assert_refused(results: dict[str, subprocess.CompletedProcess[str]], *fragments: str) -> None:
    """Each reader says no in its own way: validate lists problems and exits 1, inspect gives one
    error line and exits 1, diff gives one error line and exits 2 (trouble, not "different")."""
    assert_invalid(results["validate"])
    assert_one_error(results["inspect"], *fragments, status=1)
    assert_one_error(results["diff"], *fragments, status=2)


def made_layout(layout: Path, content: bytes = b"hello\n", tag: str = "latest") -> Path:
    """A small valid layout made by hand: one image, one gzip layer holding /hello."""
    new_layout(layout)
    add_image(layout, gzip_bytes(tar_bytes([("hello", content)])), tag)
    return layout
