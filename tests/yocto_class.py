"""hellocontainer.bbclass without BitBake: the layer's Python library on a dict datastore.

CI has no BitBake, yet the files the class installs must be tested (and booted: tests/board.py).
The class keeps its logic in the layer's library, meta-hellocontainer/lib/hellocontainer_layer
(BitBake imports it through `addpylib` in conf/layer.conf): the argv builders, the parse-time
checks and `image.package`, the whole body of do_hellocontainer. This module imports that library
like any other, with a stand-in for the `bb` module it uses, and runs its functions against
`DataStore`: a dict with BitBake's `${VAR}` and `${@python}` expansion, holding the few
bitbake.conf paths they read, the class's own `?=` defaults (read from the class file), and a
recipe's values. The packager commands they build then run for real.

    d_image = yocto_oci_files(tmp / "yocto", program, "aarch64")   # ${D} after do_hellocontainer

What is NOT BitBake here: overrides (`VAR:pkg`), flags (`VAR[flag]` keys of the dict), and the
rootfs step, whose update-rc.d call makes the rc?.d links (`update_rc_links` imitates it for the
boot test).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LAYER = REPO / "meta-hellocontainer"
CLASS = LAYER / "classes-recipe" / "hellocontainer.bbclass"

# bitbake.conf's paths, as they are with usrmerge (which systemd distros have).
BITBAKE_CONF = {
    "prefix": "/usr",
    "exec_prefix": "${prefix}",
    "bindir": "${exec_prefix}/bin",
    "datadir": "${prefix}/share",
    "sysconfdir": "/etc",
    "localstatedir": "/var",
    "nonarch_base_libdir": "${exec_prefix}/lib",
    "systemd_unitdir": "${nonarch_base_libdir}/systemd",
    "systemd_system_unitdir": "${systemd_unitdir}/system",
    "BPN": "${PN}",
    "PR": "r0",
    "MACHINE": "qemux86-64",
    "IMAGE_MACHINE_SUFFIX": "-${MACHINE}",
    "TUNE_FEATURES": "",
    "INHIBIT_PACKAGE_STRIP": "",
    "BBFILE_COLLECTIONS": "core hellocontainer virtualization-layer",
}


class BBFatal(Exception):
    """bb.fatal: in BitBake it ends the parse or the task with this message."""


def _to_boolean(value: str | None) -> bool:
    """bb.utils.to_boolean."""
    if value is None or value.lower() in ("", "n", "no", "0", "false"):
        return False
    if value.lower() in ("y", "yes", "1", "true"):
        return True
    raise ValueError(f"invalid boolean value {value!r}")


def _fatal(message: str) -> None:
    raise BBFatal(message)


# What bb.warn printed, oldest first; a test empties it before the call it checks.
warnings: list[str] = []

bb = SimpleNamespace(
    fatal=_fatal,
    note=lambda *args: None,
    warn=lambda *args: warnings.append(" ".join(map(str, args))),
    utils=SimpleNamespace(
        to_boolean=_to_boolean,
        mkdirhier=lambda path: os.makedirs(path, exist_ok=True),
    ),
)

# The library imports `bb`; outside BitBake, this stand-in is that module.
sys.modules.setdefault("bb", bb)  # type: ignore[arg-type]
if str(LAYER / "lib") not in sys.path:
    sys.path.insert(0, str(LAYER / "lib"))
image = importlib.import_module("hellocontainer_layer.image")
index = importlib.import_module("hellocontainer_layer.index")

_VAR = re.compile(r"\$\{[a-zA-Z0-9\-_+./~:]+?\}")
_PYTHON = re.compile(r"\$\{@(?:\\.|.)+?\}")


class DataStore:
    """The part of BitBake's datastore the class's functions use: getVar, setVar, appendVar,
    expand, with BitBake's two expansion passes repeated until nothing changes."""

    def __init__(self, values: Mapping[str, str], namespace: dict[str, Any]) -> None:
        self.values = dict(values)
        self.namespace = namespace

    def getVar(self, name: str, expand: bool = True) -> str | None:  # BitBake's names
        value = self.values.get(name)
        return self.expand(value) if expand and value is not None else value

    def getVarFlag(self, name: str, flag: str, expand: bool = True) -> str | None:
        return self.getVar(f"{name}[{flag}]", expand)

    def setVar(self, name: str, value: str) -> None:
        self.values[name] = value

    def appendVar(self, name: str, value: str) -> None:
        self.values[name] = (self.values.get(name) or "") + value

    def expand(self, text: str) -> str:
        while True:
            new = _VAR.sub(self._variable, text)
            new = _PYTHON.sub(self._python, new)
            if new == text:
                return new
            text = new

    def _variable(self, match: re.Match[str]) -> str:
        value = self.getVar(match.group(0)[2:-1])
        return match.group(0) if value is None else value

    def _python(self, match: re.Match[str]) -> str:
        return str(eval(match.group(0)[3:-1], {**self.namespace, "d": self}))


def _logical_lines(text: str) -> list[str]:
    """The class's lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def load_class(path: Path = CLASS) -> dict[str, str]:
    """The class's plain `NAME ?= "…"` / `NAME = "…"` values.

    Values of names with overrides or flags (`FILES:${PN}-oci`, `do_x[doc]`) and the bodies of
    tasks are skipped; `+=` is skipped too (packaging variables, see `class_appends`).
    """
    values: dict[str, str] = {}
    in_block = False
    for line in _logical_lines(path.read_text()):
        if in_block:
            in_block = line != "}"
            continue
        if line.rstrip().endswith("{"):
            in_block = True
            continue
        match = re.match(r'^([A-Za-z0-9_]+)\s*(\?=|=)\s*"(.*)"\s*$', line)
        if match and (match.group(2) == "=" or match.group(1) not in values):
            values[match.group(1)] = match.group(3)
    return values


def class_appends(name: str, path: Path = CLASS) -> str:
    """Every `NAME += "…"` of the class, joined (e.g. FILES:${PN}-oci)."""
    words = [m.group(1) for line in _logical_lines(path.read_text())
             for m in [re.match(rf'^{re.escape(name)}\s*\+=\s*"(.*)"\s*$', line)] if m]
    return " ".join(words)


def datastore(recipe: Mapping[str, str]) -> DataStore:
    """A recipe that inherits the class: bitbake.conf, the class's defaults, then `recipe`."""
    namespace = {"bb": bb, "os": os, "hellocontainer_layer": sys.modules["hellocontainer_layer"]}
    return DataStore({**BITBAKE_CONF, **load_class(), **recipe}, namespace)


def call(function: str, d: DataStore, *args: Any) -> Any:
    """Run the library's function `function` of hellocontainer_layer.image (e.g. target_argvs)
    on `d`."""
    fn: Callable[..., Any] = getattr(image, function)
    return fn(d, *args)


def recipe_values(top: Path, program: Path, arch: str, **variables: str) -> dict[str, str]:
    """A recipe like the layer's test recipe: do_install put `program` at ${bindir}/hello."""
    return {
        "PN": "hello-prebuilt",
        "PV": "1.0",
        "SUMMARY": "Prebuilt static hello",
        "LICENSE": "MIT",
        "WORKDIR": str(top / "work"),
        "D": str(top / "image"),
        "TARGET_ARCH": arch,
        "DISTRO_FEATURES": "sysvinit",
        "SOURCE_DATE_EPOCH": "1700000000",
        # The packager of the Python running this, as HOSTTOOLS would link it.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HELLOCONTAINER_BINARY": "${bindir}/hello",
        # Already stripped; the target's strip would need a cross binutils.
        "HELLOCONTAINER_STRIP": "0",
        "HELLOCONTAINER_AUTOSTART": "crun",
        **variables,
    }


def yocto_oci_files(top: Path, program: Path, arch: str, **variables: str) -> Path:
    """${D} after do_install and do_hellocontainer of a recipe that installs `program`.

    `arch` is Yocto's TARGET_ARCH (x86_64, aarch64, arm); `variables` set the recipe's
    HELLOCONTAINER_* (default: HELLOCONTAINER_AUTOSTART = "crun") or DISTRO_FEATURES
    ("sysvinit" by default; "systemd" installs the unit instead). The parse-time checks run
    first, as BitBake would run them. Everything below ${D} except ${bindir}/hello is what
    the ${PN}-oci package holds.
    """
    d = datastore(recipe_values(top, program, arch, **variables))
    call("check_autostart", d)
    image = Path(d.getVar("D"))
    shutil.rmtree(image, ignore_errors=True)
    (image / d.getVar("HELLOCONTAINER_BINARY").lstrip("/")).parent.mkdir(parents=True)
    shutil.copy2(program, image / d.getVar("HELLOCONTAINER_BINARY").lstrip("/"))
    shutil.rmtree(d.getVar("HELLOCONTAINER_OUTDIR"), ignore_errors=True)  # [cleandirs]
    os.makedirs(d.getVar("HELLOCONTAINER_OUTDIR"))
    call("package", d)
    return image


def update_rc_links(root: Path, name: str, start: int = 95, stop: int = 5) -> None:
    """What `update-rc.d -r ROOT NAME defaults START STOP` adds at rootfs time (the class's
    INITSCRIPT_PARAMS): start links in rc2-5.d, stop links in rc0, 1 and 6.d."""
    for level, kind, number in [(n, "S", start) for n in "2345"] + [(n, "K", stop) for n in "016"]:
        folder = root / "etc" / f"rc{level}.d"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{kind}{number:02d}{name}").symlink_to(f"../init.d/{name}")
