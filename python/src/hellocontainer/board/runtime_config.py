"""config.json of a runtime bundle (runtime-spec v1.2), from an image config (image-spec conversion.md).

Two halves. What the image says is converted as conversion.md requires: args = Entrypoint + Cmd,
Env and WorkingDir verbatim, User resolved to numbers (through the image's own /etc/passwd and
/etc/group for names), Volumes as tmpfs mounts, and the image's fields as annotations with its
Labels taking precedence. Everything else is our default, chosen to be safe for a single
static binary on a board; each choice carries its reason below.

The document depends on the image and the flags only, so one layout always gives the same bytes.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, Any

from ..errors import LayoutError
from ..oci import schema

if TYPE_CHECKING:  # `build --help` reads NETWORKS; the bundle reader is not needed for it
    from .rootfs import Tree

# The document is written and checked against runtime-spec v1.2, but uses only fields that
# exist since 1.0.2, and says so: ociVersion is the version a config *complies with*, and a
# runtime of that version or later accepts it. crun before 1.15 (Debian 12's 1.8, and the crun
# of many board SDKs) refuses any ociVersion not containing "1.0" ("unknown version
# specified"), so declaring "1.2.0" would cost the default runtime of the boards we target.
OCI_VERSION = "1.0.2"
NETWORKS = ("none", "host")
# What runc, Docker and umoci put in PATH when the image sets none: a program that runs
# `sh -c` or execvp() a bare name must find it. conversion.md forbids only *changing* an
# image's variable, so an image with its own PATH keeps it untouched.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# One capability, in the sets that matter for a process started as root. The greeting needs
# none; a device service on --network host typically listens on a port below 1024 (HTTP, DNS,
# Modbus), which is what CAP_NET_BIND_SERVICE allows. runc's default adds CAP_KILL (signal
# processes of *other* users: a single-binary image has one user) and CAP_AUDIT_WRITE (for
# login programs such as sshd and su, which a static binary is not). No inheritable or ambient
# set: a non-root user keeps nothing across exec, so a file capability cannot be escalated.
CAPABILITIES = ["CAP_NET_BIND_SERVICE"]
# 1024 open files is runc's default and every Linux's default soft limit. It must not exceed
# the hard limit of whoever starts the runtime: raising a hard limit needs CAP_SYS_RESOURCE.
NOFILE = 1024
# runc's default spec, plus powercap (RAPL energy counters leak what other code computes,
# CVE-2020-8694), which Docker and containerd also mask.
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# The file systems config-linux.md says a container should have, with runc's options: nothing
# executable or setuid where the image's files are not, /sys read-only. No /sys/fs/cgroup:
# without a cgroup namespace it would show the host's whole hierarchy.
MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
]
# The root is read-only, so a volume needs a writable mount to be any use; its data is lost
# when the container stops, as conversion.md allows ("need not use mountpoints").
VOLUME_OPTIONS = ["nosuid", "nodev", "mode=755"]
HOSTNAME_FALLBACK = "container"
USER_DB_CAP = 1 << 20  # /etc/passwd and /etc/group: a few KiB in any real image
ID_MAX = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel, so it is no one's id

# conversion.md "Annotation Fields": image config field -> runtime annotation.
_ANNOTATED = {
    "os": "org.opencontainers.image.os",
    "architecture": "org.opencontainers.image.architecture",
    "variant": "org.opencontainers.image.variant",
    "os.version": "org.opencontainers.image.os.version",
    "author": "org.opencontainers.image.author",
    "created": "org.opencontainers.image.created",
}


def runtime_config(image_config: dict[str, Any], tree: Tree, network: str) -> dict[str, Any]:
    """The config.json document for an image whose rootfs is `tree`, checked against our schema."""
    if network not in NETWORKS:
        raise LayoutError(f"network {network!r} is not one of {', '.join(NETWORKS)}")
    settings = image_config.get("config") or {}
    args = list(settings.get("Entrypoint") or []) + list(settings.get("Cmd") or [])
    if not args:
        raise LayoutError("the image has neither Entrypoint nor Cmd, so there is nothing to run; "
                          "rebuild it with --entrypoint")
    namespaces = ["pid", "ipc", "uts", "mount"] + (["network"] if network == "none" else [])
    document: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "root": {"path": "rootfs", "readonly": True},
        "process": {
            "terminal": False,  # a service on a board has no TTY; its output goes to the log
            "user": resolve_user(settings.get("User") or "", tree),
            "args": args,
            "env": _env(settings.get("Env") or []),
            "cwd": working_dir(settings),
            "capabilities": {key: list(CAPABILITIES)
                             for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": NOFILE, "hard": NOFILE}],
            "noNewPrivileges": True,
        },
        "hostname": hostname(args[0]),
        "mounts": [dict(m) for m in MOUNTS] + volume_mounts(settings),
        "linux": {
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            # Deny every device; the runtime then allows only the standard ones it creates
            # (/dev/null, zero, full, random, urandom, tty, ptmx).
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }
    annotations = _annotations(image_config)
    if annotations:
        document["annotations"] = annotations
    problems = schema.problems(document, "runtime-config")
    if problems:
        raise LayoutError(f"the image's settings make an invalid config.json: {problems[0]}")
    return document


def _env(env: list[str]) -> list[str]:
    for entry in env:
        if not isinstance(entry, str) or not re.match(r"[^=]+=", entry):
            raise LayoutError(f"the image's Env entry {entry!r} is not NAME=VALUE")
    if any(entry.startswith("PATH=") for entry in env):
        return list(env)
    return [*env, DEFAULT_PATH]


def working_dir(settings: dict[str, Any]) -> str:
    """The image's WorkingDir as an absolute path (the runtime-spec requires one), default /."""
    directory = settings.get("WorkingDir") or "/"
    # A relative WorkingDir is taken from /, as Docker does; normpath drops `.` and `..`, which
    # cannot climb above / here.
    return "/" + posixpath.normpath("/" + directory).lstrip("/")


def volume_mounts(settings: dict[str, Any]) -> list[dict[str, Any]]:
    paths = sorted({working_dir({"WorkingDir": v}) for v in settings.get("Volumes") or {}})
    return [{"destination": path, "type": "tmpfs", "source": "tmpfs",
             "options": list(VOLUME_OPTIONS)} for path in paths if path != "/"]


def mount_points(document: dict[str, Any]) -> list[str]:
    """Directories the runtime needs in rootfs/: top-level mount points and the working dir.

    /dev/pts and the like live inside the /dev tmpfs, where the runtime makes them itself.
    """
    needed = {m["destination"] for m in document["mounts"]} | {document["process"]["cwd"]}
    covered = {m["destination"] for m in document["mounts"] if m["type"] == "tmpfs"}
    return sorted(p for p in needed
                  if p != "/" and not any(p.startswith(c + "/") for c in covered))


def hostname(program: str) -> str:
    """The program's name (`hello` for /hello): what a log line from the container should say."""
    name = re.sub(r"[^a-z0-9-]+", "-", posixpath.basename(program).lower()).strip("-")[:63]
    return name.strip("-") or HOSTNAME_FALLBACK


def _annotations(image_config: dict[str, Any]) -> dict[str, str]:
    """conversion.md's implicit annotations, then the Labels, which take precedence.

    Manifest annotations are left out on purpose: conversion.md says a converter SHOULD NOT
    take annotations from manifests or indexes.
    """
    settings = image_config.get("config") or {}
    out = {key: image_config[field] for field, key in _ANNOTATED.items()
           if isinstance(image_config.get(field), str) and image_config[field]}
    features = image_config.get("os.features")
    if features:
        out["org.opencontainers.image.os.features"] = ",".join(features)
    if settings.get("StopSignal"):
        out["org.opencontainers.image.stopSignal"] = settings["StopSignal"]
    if settings.get("ExposedPorts"):
        out["org.opencontainers.image.exposedPorts"] = ",".join(sorted(settings["ExposedPorts"]))
    out.update(settings.get("Labels") or {})
    return out


# --- Config.User -------------------------------------------------------------------------------

def resolve_user(user: str, tree: Tree) -> dict[str, Any]:
    """process.user for the image's `User`, as conversion.md "Config.User" says.

    Numbers are taken as they are; a name is looked up in the image's /etc/passwd (and a group
    name in /etc/group), never the build machine's. A name the image does not know is an
    error: the runtime-spec has no names, and guessing root would be the worst guess.
    """
    if not user:
        return {"uid": 0, "gid": 0}  # conversion.md leaves it to us; every runtime picks root
    name, has_group, group = user.partition(":")
    if not name or (has_group and not group):
        raise LayoutError(f"the image's User {user!r} is not USER[:GROUP]")
    entry = _find_user(name, tree, user)
    result: dict[str, Any] = {"uid": entry[0] if entry is not None else _number(name, user)}
    if has_group:
        result["gid"] = _number(group, user) if _is_number(group) else _find_group(group, tree, user)
    else:
        result["gid"] = entry[1] if entry is not None else 0
        if not _is_number(name):
            # Supplementary groups only for a user named without a group (conversion.md).
            extra = sorted({gid for gid, members in _groups(tree, user).values()
                            if name in members and gid != result["gid"]})
            if extra:
                result["additionalGids"] = extra
    return result


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9]+", text))


def _number(text: str, user: str) -> int:
    value = int(text)
    if value > ID_MAX:
        raise LayoutError(f"the image's User {user!r}: {value} is not a valid id (at most {ID_MAX})")
    return value


def _find_user(name: str, tree: Tree, user: str) -> tuple[int, int] | None:
    """(uid, gid) of a user name or number in /etc/passwd; None for an unlisted number."""
    table = _table(tree, "etc/passwd", user, required=not _is_number(name))
    for fields in table:
        if len(fields) < 4 or not (_is_number(fields[2]) and _is_number(fields[3])):
            continue
        if fields[0] == name or (_is_number(name) and fields[2] == name):
            return _number(fields[2], user), _number(fields[3], user)
    if _is_number(name):
        return None  # a uid need not be listed; its group is then 0, as runc and Docker do
    raise LayoutError(f"the image's User {user!r}: no user {name!r} in the image's /etc/passwd; "
                      "use a numeric UID[:GID] or add the user to the image")


def _find_group(group: str, tree: Tree, user: str) -> int:
    found = _groups(tree, user, required=True).get(group)
    if found is not None:
        return found[0]
    raise LayoutError(f"the image's User {user!r}: no group {group!r} in the image's /etc/group; "
                      "use a numeric GID or add the group to the image")


def _groups(tree: Tree, user: str, required: bool = False) -> dict[str, tuple[int, set[str]]]:
    """group name -> (gid, member names) from the image's /etc/group."""
    out: dict[str, tuple[int, set[str]]] = {}
    for fields in _table(tree, "etc/group", user, required):
        if len(fields) >= 3 and _is_number(fields[2]) and fields[0] not in out:
            members = set(fields[3].split(",")) - {""} if len(fields) > 3 else set()
            out[fields[0]] = (_number(fields[2], user), members)
    return out


def _table(tree: Tree, path: str, user: str, required: bool) -> list[list[str]]:
    """The colon-separated lines of a user database in the image; comments skipped."""
    data = tree.read_file(path, USER_DB_CAP)
    if data is None:
        if required:
            raise LayoutError(f"the image's User {user!r} is a name, but the image has no "
                              f"/{path} (as a regular file) to look it up in; use a numeric "
                              "UID[:GID]")
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return [line.split(":") for line in lines if line and not line.startswith("#")]
