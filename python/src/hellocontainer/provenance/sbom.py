"""The image's SBOM model: what the build knows, checked once, for every format to write.

A static binary is the hardest case for scanners: the C library and every other library linked
into it leave no file, no package database and often no version string behind. Only the build
system knows them, so it names them here (`--sbom-package`, `--sbom-library` or the spec key
`sbom`), and this module holds them in one model that each format's writer (`spdx2`, `spdx3`,
`cyclonedx`; `formats` lists them) renders:

- the image (its manifest digest) is the component the SBOM describes; it contains the
  program, described with the sha256 of the exact bytes packaged;
- the program statically links each library the build system named (the C library first);
- license expressions, CPEs, PURLs, suppliers and download locations are checked here, so a
  typo fails the build rather than the customer's scanner;
- NTIA's minimum elements (supplier, name, version, unique identifiers, relationships, author,
  timestamp) are required before anything is written: `resolve` names the option that gives a
  missing one, unless the build asks for an incomplete SBOM on purpose.

Same inputs, same bytes: every writer takes its time from SOURCE_DATE_EPOCH and derives its
document's identity from the document's own content (never a random UUID).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import __version__
from ..errors import SpecError
from ..oci.model import Descriptor

NAMESPACE_BASE = "https://spdx.org/spdxdocs/"  # the prefix SPDX suggests to tools without a site
# SPDX asks for "name-version". The version is fixed per release, so the same packager gives
# the same bytes; a new release changes the SBOM's digest, as it may change the image's.
TOOL_NAME = f"hellocontainer-{__version__}"

FIELDS = ("name", "version", "license", "supplier", "download_location", "homepage", "cpe", "purl")


@dataclass(frozen=True)
class Component:
    """A package the build system knows: the program, or a library linked into it."""

    name: str = ""  # the program's defaults to the binary's file name
    version: str | None = None
    license: str | None = None  # an SPDX license expression
    supplier: str | None = None  # "Organization: …" or "Person: …"
    download_location: str | None = None
    homepage: str | None = None
    cpe: tuple[str, ...] = ()  # CPE 2.3 names; a product may be known under several
    purl: str | None = None


@dataclass(frozen=True)
class SbomSpec:
    """What to write into the SBOM besides what the build itself knows."""

    package: Component = field(default_factory=Component)
    libraries: tuple[Component, ...] = ()
    # Who supplies the image to its users (the device maker), as "Organization: …" or
    # "Person: …"; also the supplier of record of every component that names none, as
    # oe-core's SPDX_SUPPLIER is for every package of a Yocto build.
    supplier: str | None = None
    creator_organization: str | None = None  # "Organization: …", beside the tool as creator
    formats: tuple[str, ...] = ("spdx2",)  # each written and attached as its own referrer
    incomplete: bool = False  # write NOASSERTION where an NTIA element is missing, not fail
    # Elements of the build system's own SBOM that the image comes from (SPDX2_LINK, SPDX3_LINK).
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageFacts:
    """What the build knows about the image the SBOM describes."""

    manifest: Descriptor
    platform: dict[str, str]
    binary_path: str  # the program's path in the image
    binary_sha256: str  # hex digest of the exact bytes packaged
    binary_sha1: str  # SPDX tools still key files and packages on SHA1


# --- checking the inputs --------------------------------------------------------------------

# Pattern strings, not compiled patterns: `re` compiles each on its first use and keeps it, so a
# build without an SBOM does not pay for compiling them (the CPE one alone takes milliseconds).

# SPDX 2.3 annex D: idstring = 1*(ALPHA / DIGIT / "-" / "."), optionally followed by "+";
# LicenseRef-… and DocumentRef-…:LicenseRef-… for licenses outside the SPDX list.
_LICENSE_ID = r"(?:DocumentRef-[A-Za-z0-9.-]+:)?[A-Za-z0-9.-]+\+?"
_LICENSE_TOKEN = r"\s*(\(|\)|&|\||,|[A-Za-z0-9.+:-]+|\S)"
# CPE 2.3 formatted string (NISTIR 7695 §6.2): part, then ten attributes; each is * or -, or
# characters with backslash-escaped punctuation and optional leading/trailing wildcards.
_CPE_VALUE = r"(?:[*-]|[?*]*(?:[A-Za-z0-9._-]|\\[\\*?!\"#$%&'()+,/:;<=>@\[\]^`{|}~])+[?*]*)"
_CPE_LANGUAGE = r"(?:[*-]|[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?)"
CPE23 = rf"cpe:2\.3:[aho*-](?::{_CPE_VALUE}){{5}}:{_CPE_LANGUAGE}(?::{_CPE_VALUE}){{4}}"
# purl-spec: pkg:TYPE/[NAMESPACE/]NAME[@VERSION][?QUALIFIERS][#SUBPATH]
PURL = r"pkg:[A-Za-z.+-][A-Za-z0-9.+-]*/[^\s/][^\s]*"
# SPDX 2.3 §7.7 and §7.11 with the regular expression of its download-location rule: a URL of
# the schemes SPDX names, on a host that is a dotted name ending in letters (so neither
# `localhost` nor an address), optionally behind a VCS prefix; or git+git@host:path, or
# bzr+lp:name. Anything else (javascript:, file:, a bare path) is refused by spdx-tools, so the
# build refuses it first, naming the option.
_HOST = r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*\.[A-Za-z]{2,}"
_URL = (rf"(?:https?|ftp|sftp|ssh|git|svn)://(?:[\w\-.!~*'()%;:&=+$,]+@)?{_HOST}"
        r"(?::[0-9]{1,5})?(?:/\S*)?")
_DOWNLOAD = (rf"(?:(?:git|hg|svn|bzr)\+)?{_URL}"
             r"|git\+git@[A-Za-z0-9.-]+:[A-Za-z0-9/\\.@-]+|bzr\+lp:[A-Za-z0-9.-]+")
_SUPPLIER = r"(?:Person|Organization): \S.*|NOASSERTION"


MAX_LICENSE_NESTING = 64  # real expressions nest two or three levels


def spdx_license(value: str, what: str) -> str:
    """An SPDX license expression from what a build system writes.

    Yocto spells AND and OR as `&` and `|`; Buildroot lists licenses with commas and adds notes
    in parentheses (`GPL-2.0+ (programs), LGPL-2.1+`). Both are accepted here, in one place, so
    that the build systems pass their variables unchanged. A parenthesis where an operator is due
    cannot be SPDX grouping, so it is such a note and is left out. Words in a row, which no
    SPDX expression has, are a license outside the SPDX list written out (Buildroot's glibc
    lists "other permissive licenses, public domain"): they become one LicenseRef-.
    """
    text = value.strip()
    if text in ("NOASSERTION", "NONE"):
        return text
    tokens: list[str] = []
    raw = re.findall(_LICENSE_TOKEN, text)
    i = 0
    while i < len(raw):
        token = raw[i]
        expecting_operator = bool(tokens) and tokens[-1] not in ("AND", "OR", "WITH", "(")
        if token == "(" and expecting_operator:
            depth = 0
            while i < len(raw):  # skip the note, nested parentheses included
                depth += {"(": 1, ")": -1}.get(raw[i], 0)
                i += 1
                if depth == 0:
                    break
            continue
        token = {"&": "AND", "|": "OR", ",": "AND"}.get(token, token)
        if _is_word(token) and tokens and _is_word(tokens[-1]):
            tokens[-1] = _license_ref(tokens[-1], token)
        else:
            tokens.append(token)
        i += 1
    expression = _render(tokens)
    depth = max(itertools.accumulate({"(": 1, ")": -1}.get(t, 0) for t in tokens), default=0)
    if depth > MAX_LICENSE_NESTING:  # the parser recurses once a level: refuse before it does
        raise SpecError(f"{what} nests parentheses {depth} deep, more than the "
                        f"{MAX_LICENSE_NESTING} this tool reads; write it with fewer levels")
    if not tokens or not _parses(tokens):
        raise SpecError(f"{what} {value!r} is not an SPDX license expression; write SPDX "
                        "identifiers joined by AND, OR and WITH, e.g. 'MIT' or "
                        "'GPL-2.0-only OR BSD-3-Clause'")
    return expression


def _is_word(token: str) -> bool:
    return token not in ("AND", "OR", "WITH") and re.fullmatch(_LICENSE_ID, token) is not None


def _license_ref(first: str, word: str) -> str:
    """`public` then `domain` as LicenseRef-public-domain; a LicenseRef id allows no `+`."""
    name = f"{first.removeprefix('LicenseRef-')}-{word}".replace("+", "-plus")
    return "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", name)


def _render(tokens: list[str]) -> str:
    out = ""
    for token in tokens:
        if out and not out.endswith("(") and token != ")":
            out += " "
        out += token
    return out


def _parses(tokens: list[str]) -> bool:
    """SPDX license-expression grammar: or-expr := and-expr ("OR" and-expr)*, and so on."""
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def identifier() -> bool:
        nonlocal position
        token = peek()
        if token is None or token in ("AND", "OR", "WITH", "(", ")") \
                or not re.fullmatch(_LICENSE_ID, token):
            return False
        position += 1
        return True

    def factor() -> bool:
        nonlocal position
        if peek() == "(":
            position += 1
            if not expression() or peek() != ")":
                return False
            position += 1
            return True
        if not identifier():
            return False
        if peek() == "WITH":
            position += 1
            return identifier()
        return True

    def chain(operand: Any, operator: str) -> bool:
        nonlocal position
        if not operand():
            return False
        while peek() == operator:
            position += 1
            if not operand():
                return False
        return True

    def term() -> bool:
        return chain(factor, "AND")

    def expression() -> bool:
        return chain(term, "OR")

    return expression() and position == len(tokens)


def _check(pattern: str, value: str, what: str, example: str) -> str:
    if not re.fullmatch(pattern, value):
        raise SpecError(f"{what} {value!r} is not valid; expected e.g. {example}")
    return value


def _supplier(value: str, what: str) -> str:
    """SPDX wants "Organization: NAME" or "Person: NAME (EMAIL)"; a bare name is an organization."""
    value = " ".join(value.split())
    if not value.startswith(("Person:", "Organization:")) and value != "NOASSERTION":
        value = f"Organization: {value}"
    return _check(_SUPPLIER, value, what, "'Organization: ACME Inc.'")


def component(raw: Mapping[str, Any], what: str) -> Component:
    """A Component from the spec's shape (schema-checked already), each value checked."""
    def text(key: str) -> str | None:
        value = raw.get(key)
        return value.strip() or None if isinstance(value, str) else None

    cpes = raw.get("cpe") or []
    cpes = [cpes] if isinstance(cpes, str) else list(cpes)
    license_ = text("license")
    supplier, download, homepage, purl = (text("supplier"), text("download_location"),
                                          text("homepage"), text("purl"))
    return Component(
        name=text("name") or "",
        version=text("version"),
        license=spdx_license(license_, f"{what} license") if license_ else None,
        supplier=_supplier(supplier, f"{what} supplier") if supplier else None,
        download_location=_check(_DOWNLOAD, download, f"{what} download_location",
                                 "https://example.com/hello-1.0.tar.gz or "
                                 "git+https://example.com/hello.git@v1.0")
        if download and download not in ("NOASSERTION", "NONE") else download,
        homepage=_check(_URL, homepage, f"{what} homepage", "https://example.com/hello")
        if homepage else None,
        cpe=tuple(sorted(dict.fromkeys(
            _check(CPE23, c.strip(), f"{what} cpe", "cpe:2.3:a:gnu:glibc:2.38:*:*:*:*:*:*:*")
            for c in cpes if c.strip()))),
        purl=_check(PURL, purl, f"{what} purl", "pkg:generic/hello@1.0") if purl else None,
    )


def sbom_spec(raw: Any) -> SbomSpec | None:
    """The spec key `sbom`: false/absent (none), true (defaults only) or a mapping of inputs."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return SbomSpec()
    libraries = tuple(component(item, f"--sbom-library {item.get('name') or i + 1} (spec: sbom.libraries)")
                      for i, item in enumerate(raw.get("libraries", [])))
    supplier, creator = raw.get("supplier"), raw.get("creator_organization")
    formats = raw.get("formats") or ["spdx2"]
    formats = [formats] if isinstance(formats, str) else formats
    return SbomSpec(
        component(raw.get("package", {}), "--sbom-package (spec: sbom.package)"), libraries,
        supplier=_supplier(supplier, "--sbom-supplier (spec: sbom.supplier)")
        if supplier and supplier.strip() else None,
        creator_organization=_organization(creator) if creator and creator.strip() else None,
        formats=tuple(dict.fromkeys(formats)),
        incomplete=bool(raw.get("incomplete", False)),
        links=tuple(dict.fromkeys(raw.get("links", []))),
    )


def _organization(value: str) -> str:
    what = "--sbom-creator-organization (spec: sbom.creator_organization)"
    value = " ".join(value.split()).removeprefix("Organization:").strip()
    if not value or value.startswith("Person:"):
        raise SpecError(f"{what} {value!r} is not an organization's name; write e.g. 'ACME Inc.'")
    return f"Organization: {value}"


def words_to_fields(flag: str, words: Iterable[str]) -> dict[str, Any]:
    """`--sbom-package` / `--sbom-library` words (KEY=VALUE) as the spec's mapping; `cpe` may repeat."""
    fields: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise SpecError(f"--{flag} word {word!r} is not KEY=VALUE; quote values with spaces: "
                            f"--{flag} \"license='MIT OR Apache-2.0'\"")
        key = key.replace("-", "_")
        if key not in FIELDS:
            raise SpecError(f"--{flag}: unknown key {key!r}; valid keys: {', '.join(FIELDS)}")
        if key == "cpe":
            fields.setdefault("cpe", []).append(value)
        elif key in fields:
            raise SpecError(f"--{flag}: {key} is given twice; keep one")
        else:
            fields[key] = value
    return fields




# --- the model every writer renders ---------------------------------------------------------

@dataclass(frozen=True)
class Bom:
    """Everything an SBOM of the image says, complete and checked: what the writers read."""

    image: Component  # the image itself: name, supplier; its identity is facts.manifest
    program: Component
    libraries: tuple[Component, ...]
    facts: ImageFacts
    epoch: int
    creator_organization: str | None
    links: tuple[str, ...]

    @property
    def tool(self) -> str:
        return TOOL_NAME


# An SPDX 2 link: the other document's namespace, '#', the element's id, then the document's
# SHA1 (SPDX 2.3 §6.6 wants it for every external document reference).
SPDX2_LINK = re.compile(r"(\S+)#(SPDXRef-[A-Za-z0-9.-]+) sha1:([0-9a-f]{40})")
# An SPDX 3 link: one absolute IRI, the spdxId the other document gives the element.
SPDX3_LINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s#]+")


def require_complete(spec: SbomSpec, binary_name: str) -> None:
    """NTIA's minimum elements and well-formed links, before anything is built: one line
    naming the option that adds what is missing."""
    program = spec.package
    missing = []
    if not spec.incomplete:
        if not spec.supplier and not (program.supplier
                                      and all(lib.supplier for lib in spec.libraries)):
            missing.append("a supplier (--sbom-supplier 'ACME Inc.', spec key sbom.supplier)")
        if not program.version:
            missing.append(f"the version of the program {program.name or binary_name} "
                           "(--sbom-package version=1.0, spec key sbom.package.version)")
        missing += [f"the version of library {lib.name} (version= in its --sbom-library, spec "
                    "key sbom.libraries[].version)" for lib in spec.libraries if not lib.version]
    if missing:
        raise SpecError("the SBOM lacks NTIA minimum elements: " + "; ".join(missing)
                        + "; or add --sbom-incomplete to write it without them")
    for link in spec.links:
        for name, pattern, example in (
                ("spdx2", SPDX2_LINK, "'https://example.com/doc#SPDXRef-Package-hello sha1:HEX'"),
                ("spdx3", SPDX3_LINK, "'http://spdx.org/spdxdocs/hello-UUID/HASH/package/hello'")):
            if name in spec.formats and not pattern.fullmatch(link):
                raise SpecError(f"--sbom-link {link!r} (spec: sbom.links) is not an element of "
                                f"an SPDX {name[-1]} document; write e.g. {example}, or drop "
                                f"--sbom-format {name}")
        if not {"spdx2", "spdx3"} & set(spec.formats):
            raise SpecError(f"--sbom-link {link!r} names an SPDX element, and no SPDX format is "
                            "written; add --sbom-format spdx3 (or spdx2)")


def resolve(spec: SbomSpec, facts: ImageFacts, epoch: int) -> Bom:
    """The model: the program named after the binary when unnamed, every supplier filled from
    --sbom-supplier, NTIA's minimum elements required (require_complete)."""
    program_name = spec.package.name or facts.binary_path.rsplit("/", 1)[-1]
    require_complete(spec, program_name)
    supplier = spec.supplier

    def filled(part: Component) -> Component:
        return part if part.supplier or not supplier else replace(part, supplier=supplier)

    program = filled(replace(spec.package, name=program_name))
    libraries = tuple(filled(library) for library in spec.libraries)
    image = Component(name=program_name, version=facts.manifest.digest,
                      supplier=supplier or program.supplier)
    return Bom(image, program, libraries, facts, epoch, spec.creator_organization, spec.links)


def image_purl(name: str, manifest: Descriptor, platform: dict[str, str]) -> str:
    """purl-spec's oci type: pkg:oci/NAME@sha256%3AHEX?arch=ARCH (the name in lowercase)."""
    qualifiers = f"?arch={platform['architecture']}" if platform.get("architecture") else ""
    return f"pkg:oci/{slug(name.lower())}@{manifest.digest.replace(':', '%3A')}{qualifiers}"


def slug(name: str) -> str:
    """A name as letters, digits, '.', '_' and '-' only: for ids and URLs made from it."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "image"


def license_refs(parts: Iterable[Component]) -> list[str]:
    """Every LicenseRef- a license expression of `parts` uses, sorted."""
    return sorted({token for part in parts if part.license
                   for token in re.findall(r"(?<![A-Za-z0-9.:-])LicenseRef-[A-Za-z0-9.-]+",
                                           part.license)})
