"""A user or group *name* in the image's User, turned into numbers at build time.

A single-binary image has no /etc/passwd, so a runtime could not look a name up (runc and crun
refuse to start such a container). The build system knows the target's user database, though:
Buildroot's TARGET_DIR/etc/passwd, a Yocto sysroot's. So `--user nobody` plus that passwd file
becomes `65534:65534` in the image config. Only the given files are read, never the build
machine's /etc/passwd, whose ids mean nothing on the board.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import SpecError
from ..oci.value import Value
from .inputs import read_input_text

# A few KiB in any real root filesystem; the bound keeps a wrong path (/dev/zero, a disk image)
# from filling the build machine's memory.
USER_DB_CAP = 1 << 20
ID_MAX = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel, so it is no one's id


class _Database(Value):
    """One of the two user databases: its name, line shape and the option that names it."""

    __slots__ = ("flag", "name", "shape")

    def __init__(self, name: str, shape: str, flag: str) -> None:
        self.name = name  # passwd or group
        self.shape = shape  # the line's fields, for errors
        self.flag = flag

    @property
    def option(self) -> str:
        return f"{self.flag} (spec key {self.flag[2:].replace('-', '_')})"

    @property
    def fields(self) -> int:
        return self.shape.count(":") + 1


_PASSWD = _Database("passwd", "NAME:PASSWORD:UID:GID:GECOS:HOME:SHELL", "--passwd-file")
_GROUP = _Database("group", "NAME:PASSWORD:GID:MEMBERS", "--group-file")


def resolve_user(user: str | None, passwd: str | None, group: str | None) -> str | None:
    """`USER[:GROUP]` with every name replaced by its number; numbers are kept as written.

    A user name alone takes the user's primary group from passwd, written out as `UID:GID`:
    the runtime cannot find it by itself without /etc/passwd in the image.
    """
    if not user:
        return user
    name, has_group, group_name = user.partition(":")
    if _is_number(name) and (not has_group or _is_number(group_name)):
        return user  # nothing to look up: no file is needed, none is read
    if _is_number(name):
        uid, primary_gid = int(name), None
    else:
        uid, primary_gid = _lookup(name, passwd, _PASSWD, user)
    if not has_group:
        return f"{uid}:{primary_gid}"
    gid = int(group_name) if _is_number(group_name) else _lookup(group_name, group, _GROUP, user)[0]
    return f"{uid}:{gid}"


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[0-9]+", text) is not None


def _lookup(name: str, path: str | None, db: _Database, user: str) -> tuple[int, int | None]:
    """(id, primary gid; None for a group) of `name` in the database file at `path`."""
    if not path:
        raise SpecError(f"user {user!r} names the {db.name} entry {name!r}, but no {db.name} "
                        f"file is given; pass the target's /etc/{db.name} with {db.option}, "
                        "or give a number")
    entries = _read_table(Path(path), db)
    if name not in entries:
        raise SpecError(f"user {user!r}: no {db.name} entry {name!r} in {path}; add it to the "
                        f"target's /etc/{db.name}, or give a number")
    return entries[name]


def _read_table(path: Path, db: _Database) -> dict[str, tuple[int, int | None]]:
    """name -> (id, primary gid or None) of every entry; the first entry of a name wins, as
    with getpwnam(3). Every line is checked, so a wrong file (group for passwd) is named."""
    entries: dict[str, tuple[int, int | None]] = {}
    for number, line in enumerate(_read_text(path, db).splitlines(), 1):
        # Comments, blank lines and NIS compat entries (+name, -name) name no local id.
        if not line.strip() or line.startswith(("#", "+", "-")):
            continue
        fields = line.split(":")
        ids = fields[2:4] if db is _PASSWD else fields[2:3]
        if len(fields) != db.fields or not fields[0] or not all(map(_valid_id, ids)):
            raise SpecError(f"{db.name} file {path} line {number} is not an entry {db.shape}; "
                            f"pass the target's /etc/{db.name} with {db.option}")
        entries.setdefault(fields[0], (int(ids[0]), int(ids[1]) if len(ids) == 2 else None))
    return entries


def _valid_id(text: str) -> bool:
    return _is_number(text) and int(text) <= ID_MAX


def _read_text(path: Path, db: _Database) -> str:
    fix = f"check {db.flag}"
    return read_input_text(path, f"{db.name} file", USER_DB_CAP, fix, fix)
