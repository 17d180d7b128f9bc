"""The settings of one image: read from a YAML spec file, overridden by flags, validated once.

Both sources are turned into the same raw shape (the spec file's) and checked against the
image-spec JSON Schema, so a flag and a spec key obey the same rules and errors name whichever
the user wrote. Flag values that hold lists are shell words (`--env "A=1 B='two words'"`):
one string that build systems can pass through unchanged, spaces in values included.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..oci import model, schema
from ..oci.value import Value
from .inputs import read_input_text
from .users import resolve_user

if TYPE_CHECKING:
    from ..provenance.sbom import SbomSpec

# provenance.sbom is imported where an SBOM is asked for: most builds have none, and its
# checks' dataclasses and patterns cost start-up time.

# Flags whose values are lists of shell words, and the spec key each fills.
WORD_FLAGS = {"entrypoint": "entrypoint", "cmd": "cmd", "env": "env", "port": "ports",
              "label": "labels", "annotation": "annotations", "tag": "tags", "file": "files"}
MAP_KEYS = ("env", "labels", "annotations")
# Keys whose `.KEY` means `org.opencontainers.image.KEY`, as in Buildroot's fs/oci labels:
# the pre-defined OCI keys are long, and typing them out invites typos that no tool catches.
OCI_SHORT_KEYS = ("labels", "annotations")
OCI_KEY_PREFIX = "org.opencontainers.image"
# Spec keys naming files on the build machine: relative to the spec file's folder, like a
# `files` source.
PATH_KEYS = ("passwd_file", "group_file", "sign_key")


class ExtraFile(Value):
    """A file copied from the build machine into the image."""

    __slots__ = ("base", "dest", "gid", "mode", "origin", "src", "uid")

    def __init__(
        self,
        src: str,
        dest: str,
        mode: int | None,
        uid: int = 0,
        gid: int = 0,
        base: Path = Path(),
        origin: str = "--file",
    ) -> None:
        self.src = src  # as written: relative to `base`, or absolute (inside the sysroot, if one is given)
        self.dest = dest
        self.mode = mode  # None: 0755 if the source is executable, else 0644
        self.uid = uid
        self.gid = gid
        self.base = base  # the spec file's folder, or the current directory for --file
        # Where the user wrote it, for an error about its source: the spec key
        # (`files[3].src in image.yaml`) or the flag (`--file motd:/etc/motd`).
        self.origin = origin


class ImageSpec(Value):
    """Everything about an image except the binary's bytes; defaults apply where None."""

    __slots__ = (
        "allow_dynamic",
        "annotations",
        "arch",
        "cmd",
        "compression",
        "entrypoint",
        "env",
        "files",
        "gzip_level",
        "labels",
        "path",
        "ports",
        "sbom",
        "sign_identity",
        "sign_key",
        "stop_signal",
        "tags",
        "tune",
        "user",
        "workdir",
    )

    def __init__(
        self,
        path: str | None = None,
        entrypoint: tuple[str, ...] | None = None,
        cmd: tuple[str, ...] | None = None,
        env: tuple[tuple[str, str], ...] = (),
        user: str | None = None,
        workdir: str | None = None,
        ports: tuple[str, ...] = (),
        labels: tuple[tuple[str, str], ...] = (),
        annotations: tuple[tuple[str, str], ...] = (),
        stop_signal: str | None = None,
        tags: tuple[str, ...] = ("latest",),
        files: tuple[ExtraFile, ...] = (),
        compression: str = "gzip",
        gzip_level: int | str | None = None,
        arch: str | None = None,
        tune: str | None = None,
        allow_dynamic: bool = False,
        sbom: SbomSpec | None = None,
        sign_key: str | None = None,
        sign_identity: str = "",
    ) -> None:
        self.path = path
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
        self.user = user
        self.workdir = workdir
        self.ports = ports
        self.labels = labels
        self.annotations = annotations
        self.stop_signal = stop_signal
        self.tags = tags
        self.files = files
        self.compression = compression
        self.gzip_level = gzip_level  # 1-9 or "max"; None: by layer size (layer.gzip_level_for)
        self.arch = arch
        self.tune = tune
        self.allow_dynamic = allow_dynamic
        self.sbom = sbom  # None: no SBOM
        self.sign_key = sign_key  # the private key's path (never its content); None: unsigned
        self.sign_identity = sign_identity  # the signature's docker-reference (provenance/signature.py)


def split_words(flag: str, value: str) -> list[str]:
    """Split a flag value the way a POSIX shell splits words."""
    try:
        return shlex.split(value)
    except ValueError as error:
        raise SpecError(
            f"--{flag} {value!r} cannot be split into words ({error}); balance the quotes"
        ) from None


def check_tags(tags: tuple[str, ...]) -> None:
    """Each tag must be an OCI ref name (image-layout spec), or `oci:DIR:TAG` cannot find it."""
    for tag in tags:
        if not model.REF_NAME.fullmatch(tag):
            raise SpecError(
                f"tag {tag!r} is not a valid OCI reference name; use letters and digits "
                "separated by . _ - : @ + or /, e.g. 1.0 or latest"
            )


# Limits on a spec file, far above any real one (a few dozen lines), so that a hostile or
# mistaken one (a "billion laughs" of aliases, /dev/zero) is refused in milliseconds instead of
# eating the build machine's memory.
SPEC_MAX_BYTES = 1 << 20
SPEC_MAX_DEPTH = 64
SPEC_MAX_NODES = 100_000  # counting every alias as the copy it expands to


def _read_spec_text(path: Path) -> str:
    return read_input_text(path, "spec file", SPEC_MAX_BYTES, "check --spec", "save it as UTF-8")


def _check_expansion(root: Any, path: Path) -> None:
    """Refuse a YAML node graph that expands (aliases counted as copies) past the limits.

    Aliases make the graph a DAG whose expansion can be exponential in the file's size, so sizes
    and depths are memoised per node: the check itself is linear in the number of nodes.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not done:
            if id(node) in open_nodes:
                raise SpecError(f"spec file {path} refers to itself through a YAML alias; "
                                "write it without aliases")
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(id(node))
        size = 1 + sum(sizes[id(c)][0] for c in children)
        depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
        if size > SPEC_MAX_NODES:
            raise SpecError(f"spec file {path} expands to more than {SPEC_MAX_NODES} values "
                            "(YAML aliases count as copies); write it without them")
        if depth > SPEC_MAX_DEPTH:
            raise SpecError(f"spec file {path} nests deeper than {SPEC_MAX_DEPTH} levels; "
                            "flatten it")
        sizes[id(node)] = (size, depth)


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read and validate a YAML spec file; a relative `files[].src` is relative to its folder."""
    import yaml  # here, not at the top: most builds have no spec file and skip its import

    class StrictLoader(yaml.SafeLoader):
        """YAML that refuses what would silently change the image: a repeated key (the last
        would win) and a key that is not a string (`yes:` is a boolean, `0x10:` the number 16)."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.tag != "tag:yaml.org,2002:str":
                    raise SpecError(f"spec file {path} line {line}: key {key_node.value!r} is not "
                                    "a string (YAML reads it as a boolean, number or null); quote it")
                if key_node.value in seen:
                    raise SpecError(f"spec file {path} line {line}: key {key_node.value!r} is given "
                                    "twice; keep one")
                seen.add(key_node.value)
            return super().construct_mapping(node, deep)

    text = _read_spec_text(path)
    loader = StrictLoader(text)  # a SafeLoader: no arbitrary objects
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, path)
        document = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise SpecError(f"spec file {path} nests deeper than {SPEC_MAX_DEPTH} levels; "
                        "flatten it") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise SpecError(f"spec file {path}{where}: {problem}; fix the YAML syntax") from None
    finally:
        loader.dispose()
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SpecError(f"spec file {path} must be a mapping of settings, not a {type(document).__name__}")
    _require_valid(document, f"spec file {path}")
    for number, item in enumerate(document.get("files", [])):
        item["base"] = path.parent  # a relative src is relative to the spec file
        item["origin"] = f"files[{number}].src in {path}"
    for key in PATH_KEYS:
        if key in document:
            document[key] = str(path.parent / document[key])  # an absolute path stays as it is
    for key in OCI_SHORT_KEYS:
        if key in document:
            document[key] = dict(_oci_keys(_pairs(document[key]), f"spec file {path}: {key} key"))
    return document


def flags_document(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Turn parsed command-line flags (None when not given) into the spec file's shape."""
    document: dict[str, Any] = {}
    flags = dict(flags)
    sbom = _sbom_flags(flags.pop("sbom", None), flags.pop("sbom-package", None),
                       flags.pop("sbom-library", None),
                       {key: flags.pop(f"sbom-{flag}", None) for flag, key in SBOM_SETTINGS.items()})
    if sbom is not None:
        document["sbom"] = sbom
    for flag, value in flags.items():
        if value is None:
            continue
        key = WORD_FLAGS.get(flag, flag.replace("-", "_"))
        if flag in WORD_FLAGS:
            words = [w for v in value for w in split_words(flag, v)]
            if key in MAP_KEYS:
                for word in words:
                    if "=" not in word or word.startswith("="):
                        raise SpecError(f"--{flag} word {word!r} is not KEY=VALUE; "
                                        f"quote values with spaces: --{flag} \"KEY='a b'\"")
            if key in OCI_SHORT_KEYS:
                words = [f"{k}={v}" for k, v in _oci_keys(_pairs(words), f"--{flag} key")]
            document[key] = [_file_word(w) for w in words] if flag == "file" else words
        else:
            document[key] = value
    found = schema.problems(document, "image-spec")
    if found:
        # Name the flag the user typed, not the spec key it fills: "--port" rather than "ports".
        message = found[0]
        key = re.split(r"[\[ .:]", message, maxsplit=1)[0]
        flag = next((f for f, k in WORD_FLAGS.items() if k == key), key.replace("_", "-"))
        detail = re.sub(r"^\[\d+\]", "", message[len(key):])  # the word's index means nothing here
        raise SpecError(f"--{flag}{detail}")
    for item in document.get("files", []):
        item["origin"] = "--file " + ":".join(item[k] for k in ("src", "dest", "mode") if k in item)
    return document


# The SBOM flags that set one key of the spec's `sbom` each: flag (after --sbom-) → key.
SBOM_SETTINGS = {"supplier": "supplier", "creator-organization": "creator_organization",
                 "format": "formats", "incomplete": "incomplete", "link": "links"}


def _sbom_flags(enable: bool | None, package: list[str] | None, libraries: list[str] | None,
                settings: Mapping[str, Any]) -> bool | dict[str, Any] | None:
    """`--sbom`, `--sbom-package WORDS` (repeatable, one package), `--sbom-library WORDS`
    (one library per flag) and the settings (SBOM_SETTINGS) in the spec key's shape; giving
    any of them asks for the SBOM too."""
    document: dict[str, Any] = {key: value for key, value in settings.items() if value is not None}
    if not package and not libraries and not document:
        return True if enable else None
    from ..provenance.sbom import words_to_fields

    if package:
        words = [w for value in package for w in split_words("sbom-package", value)]
        document["package"] = words_to_fields("sbom-package", words)
    if libraries:
        document["libraries"] = []
        for value in libraries:
            fields = words_to_fields("sbom-library", split_words("sbom-library", value))
            if not fields.get("name"):
                raise SpecError(f"--sbom-library {value!r} has no name=; each --sbom-library names "
                                "one library, e.g. --sbom-library 'name=musl version=1.2.4'")
            document["libraries"].append(fields)
    return document


def _merge_sbom(file_value: Any, flag_value: Any) -> Any:
    """Flags over the spec file's `sbom`: package keys one by one, libraries and every other
    key as a whole."""
    base = file_value if isinstance(file_value, Mapping) else {}
    if flag_value is True:
        return file_value if base else True
    merged = {**base, **flag_value}
    if "package" in flag_value:
        merged["package"] = {**base.get("package", {}), **flag_value["package"]}
    return merged


def _file_word(word: str) -> dict[str, Any]:
    parts = word.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise SpecError(f"--file {word!r} is not SRC:DEST[:MODE]; e.g. --file 'motd:/etc/motd:0644'")
    if not parts[1].startswith("/"):
        raise SpecError(f"--file {word!r}: destination {parts[1]!r} must be an absolute path in the image")
    item: dict[str, Any] = {"src": parts[0], "dest": parts[1]}
    if len(parts) == 3:
        item["mode"] = parts[2]
    return item


def _require_valid(document: dict[str, Any], source: str) -> None:
    found = schema.problems(document, "image-spec")
    if found:
        raise SpecError(f"{source}: {found[0]}")


def merge(spec_file: Mapping[str, Any], flags: Mapping[str, Any]) -> ImageSpec:
    """Flags override the spec file: lists and scalars are replaced, maps merge key by key."""
    merged = dict(spec_file)
    for key, value in flags.items():
        if key in MAP_KEYS:
            merged[key] = dict(_pairs(merged.get(key, {}))) | dict(_pairs(value))
        elif key == "sbom":
            merged[key] = _merge_sbom(merged.get(key), value)
        else:
            merged[key] = value
    return _to_spec(merged)


def _pairs(value: Mapping[str, str] | list[str]) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return list(value.items())
    return [tuple(item.split("=", 1)) for item in value]  # type: ignore[misc]


def _oci_keys(pairs: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
    """`.KEY` spelled out as `org.opencontainers.image.KEY`; other keys as written."""
    out = []
    for key, value in pairs:
        if key == ".":
            raise SpecError(f"{what} '.' has no name after the dot; write .KEY=VALUE for "
                            f"{OCI_KEY_PREFIX}.KEY, e.g. .vendor='ACME Inc'")
        out.append((OCI_KEY_PREFIX + key if key.startswith(".") else key, value))
    return out


NAME_MAX = 255  # bytes in one path component on Linux file systems: runtimes cannot unpack more


def _image_path(value: str, what: str, root_allowed: bool = False) -> str:
    """Normalise an absolute image path, refusing any that climbs out of the root."""
    if ".." in value.split("/"):
        raise SpecError(f"{what} {value!r} contains '..'; give a plain absolute path")
    path = "/" + posixpath.normpath(value).lstrip("/")  # normpath keeps a leading "//"
    if path == "/" and not root_allowed:
        raise SpecError(f"{what} {value!r} names the root directory; give a file path")
    long = next((c for c in path.split("/") if len(c.encode()) > NAME_MAX), None)
    if long is not None:
        raise SpecError(f"{what} has a component of {len(long.encode())} bytes; "
                        f"a file name may have at most {NAME_MAX}")
    return path


def _mode(value: str | None) -> int | None:
    return int(value, 8) if value is not None else None


def _to_spec(raw: Mapping[str, Any]) -> ImageSpec:
    files = tuple(
        ExtraFile(f["src"], _image_path(f["dest"], "file destination"), _mode(f.get("mode")),
                  f.get("uid", 0), f.get("gid", 0), f.get("base", Path()),
                  f.get("origin", "--file"))
        for f in raw.get("files", [])
    )
    entrypoint, cmd = raw.get("entrypoint"), raw.get("cmd")
    return ImageSpec(
        path=_image_path(raw["path"], "path") if "path" in raw else None,
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        cmd=tuple(cmd) if cmd is not None else None,
        env=tuple(_pairs(raw.get("env", {}))),
        user=resolve_user(raw.get("user"), raw.get("passwd_file"), raw.get("group_file")),
        workdir=_image_path(raw["workdir"], "workdir", root_allowed=True) if "workdir" in raw else None,
        ports=tuple(dict.fromkeys(raw.get("ports", []))),
        labels=tuple(_pairs(raw.get("labels", {}))),
        annotations=tuple(_pairs(raw.get("annotations", {}))),
        stop_signal=raw.get("stop_signal"),
        tags=tuple(dict.fromkeys(raw.get("tags", ["latest"]))),
        files=files,
        compression=raw.get("compression", "gzip"),
        gzip_level=raw.get("gzip_level"),
        arch=raw.get("arch"),
        tune=raw.get("tune"),
        allow_dynamic=raw.get("allow_dynamic", False),
        sbom=_sbom_spec(raw.get("sbom")),
        sign_key=raw.get("sign_key"),
        sign_identity=raw.get("sign_identity", ""),
    )


def _sbom_spec(raw: Any) -> SbomSpec | None:
    if raw is None or raw is False:
        return None
    from ..provenance.sbom import sbom_spec

    return sbom_spec(raw)
