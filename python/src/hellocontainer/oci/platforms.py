"""One table that maps every architecture name a build system uses onto an OCI platform.

Yocto (`TARGET_ARCH`, `TUNE_FEATURES`), Buildroot (`BR2_ARCH`), autotools (`host_cpu`) and the
OCI/Go names all describe the same few CPUs with different words. Everything that needs a
platform asks this module, so the Yocto class, the Buildroot package and configure.ac never map
names themselves. Each platform also says which ELF header it must see, so the ELF check can
refuse "the host binary packaged for arm64".
"""

from __future__ import annotations

import re

from ..errors import SpecError
from .value import Value


class ElfTarget(Value):
    """The ELF header fields a binary for a platform carries."""

    __slots__ = ("bits", "little_endian", "machine")

    def __init__(self, machine: str, bits: int, little_endian: bool) -> None:
        self.machine = machine  # pyelftools' e_machine name, e.g. "EM_AARCH64"
        self.bits = bits  # ELFCLASS32 or ELFCLASS64 as 32 / 64
        self.little_endian = little_endian

    def describe(self) -> str:
        endian = "little" if self.little_endian else "big"
        return f"{self.machine.removeprefix('EM_')} {self.bits}-bit {endian}-endian"


class Platform(Value):
    """An OCI platform (image-spec `architecture`, `os`, `variant`) plus its expected ELF header."""

    __slots__ = ("architecture", "elf", "os", "variant")

    def __init__(
        self,
        architecture: str,
        elf: ElfTarget,
        variant: str | None = None,
        os: str = "linux",
    ) -> None:
        self.architecture = architecture
        self.elf = elf
        self.variant = variant
        self.os = os

    def name(self) -> str:
        """The name podman's `--platform` takes, e.g. `linux/arm/v7`."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def with_variant(self, variant: str | None) -> Platform:
        return Platform(self.architecture, self.elf, variant, self.os)

    def to_oci(self) -> dict[str, str]:
        """The `platform` object of an index descriptor (and the config's matching fields)."""
        oci = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            oci["variant"] = self.variant
        return oci


def _p(arch: str, machine: str, bits: int, little: bool) -> Platform:
    return Platform(arch, ElfTarget(machine, bits, little))


# OCI architecture (Go GOARCH) → expected ELF header.
PLATFORMS: dict[str, Platform] = {
    p.architecture: p
    for p in (
        _p("amd64", "EM_X86_64", 64, True),
        _p("386", "EM_386", 32, True),
        _p("arm64", "EM_AARCH64", 64, True),
        _p("arm64be", "EM_AARCH64", 64, False),
        _p("arm", "EM_ARM", 32, True),
        _p("armbe", "EM_ARM", 32, False),
        _p("riscv64", "EM_RISCV", 64, True),
        _p("ppc64le", "EM_PPC64", 64, True),
        _p("ppc64", "EM_PPC64", 64, False),
        _p("ppc", "EM_PPC", 32, False),
        _p("s390x", "EM_S390", 64, False),
        _p("mips", "EM_MIPS", 32, False),
        _p("mipsle", "EM_MIPS", 32, True),
        _p("mips64", "EM_MIPS", 64, False),
        _p("mips64le", "EM_MIPS", 64, True),
        _p("loong64", "EM_LOONGARCH", 64, True),
    )
}

# Every other spelling → OCI architecture. Sources: Yocto TARGET_ARCH, Buildroot BR2_ARCH,
# GNU config.sub host_cpu, Debian architecture names, `uname -m`.
ALIASES: dict[str, str] = {
    "x86_64": "amd64", "x86-64": "amd64", "x64": "amd64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386", "x86": "386",
    "aarch64": "arm64", "aarch64_be": "arm64be", "arm64_be": "arm64be",
    "armel": "arm", "armhf": "arm", "armeb": "armbe",
    "riscv64gc": "riscv64",
    "powerpc64le": "ppc64le", "ppc64el": "ppc64le", "powerpc64": "ppc64", "powerpc": "ppc",
    "mipsel": "mipsle", "mips64el": "mips64le",
    "loongarch64": "loong64",
}

# Variants the image-spec lists for each architecture.
VARIANTS: dict[str, tuple[str, ...]] = {
    "arm": ("v5", "v6", "v7", "v8"),
    "armbe": ("v5", "v6", "v7", "v8"),
    "arm64": ("v8",),
}

# `armv7a`, `armv7l`, `armv6`, `armv5te`, `armv7-a`, `armv7ve`: the digit is the OCI variant.
_ARM_LEVEL = re.compile(r"^armv(\d+)")
# config.sub's MIPS spellings: mipsisa32r6el, mips64r6el, mipsisa64r2 …
_MIPS = re.compile(r"^mips(?:isa)?(32|64)?(?:r\d+)?(el)?$")


def _arm_level(word: str) -> str | None:
    match = _ARM_LEVEL.match(word.lower())
    return f"v{match.group(1)}" if match else None


def _lookup(name: str) -> tuple[Platform, str | None]:
    """Map one architecture word to a platform plus the variant the word itself implies."""
    word = name.strip().lower()
    if "/" in word:  # OCI form: arm/v7, arm64/v8, linux/arm/v7
        parts = word.split("/")
        if parts[0] == "linux":
            parts = parts[1:]
        if len(parts) == 2 and parts[0] in PLATFORMS:
            return PLATFORMS[parts[0]], parts[1]
        if len(parts) == 1 and parts[0] in PLATFORMS:
            return PLATFORMS[parts[0]], None
        raise _unknown(name)
    if word in PLATFORMS:
        return PLATFORMS[word], None
    if word in ALIASES:
        return PLATFORMS[ALIASES[word]], None
    level = _arm_level(word)
    if level is not None:  # armv7l, armv7a, armv6l, armv5tel, armv7eb …
        big = word.endswith("b") and not word.endswith("hf")
        return PLATFORMS["armbe" if big else "arm"], level
    mips = _MIPS.match(word)
    if mips:
        bits, little = mips.group(1), mips.group(2)
        return PLATFORMS["mips" + ("64" if bits == "64" else "") + ("le" if little else "")], None
    raise _unknown(name)


def _unknown(name: str) -> SpecError:
    known = ", ".join(sorted(PLATFORMS))
    return SpecError(
        f"unknown architecture '{name}'; use an OCI name ({known}) or a GNU/Yocto/Buildroot "
        "name such as x86_64, aarch64, armv7l, riscv64, powerpc64le, mipsel"
    )


def variant_from_tune(tune: str) -> str | None:
    """The ARM variant named by tune words (Yocto TUNE_FEATURES/TUNE_PKGARCH, gcc -march).

    Yocto's TUNE_FEATURES for an armv7 board reads e.g. "arm vfp cortexa7 neon armv7ve", and
    TUNE_PKGARCH "cortexa7t2hf-neon-vfpv4"; Buildroot's BR2_GCC_TARGET_ARCH reads "armv7-a".
    The highest `armvN` word wins because Yocto lists the base levels a tune includes too.
    """
    levels = [lvl for lvl in (_arm_level(w) for w in re.split(r"[\s,]+", tune)) if lvl]
    return max(levels, key=lambda v: int(v[1:])) if levels else None


def resolve(arch: str, tune: str | None = None) -> Platform:
    """The platform for `--arch` (any known spelling), refined by `--tune` for ARM variants."""
    platform, variant = _lookup(arch)
    if tune and platform.architecture in ("arm", "armbe"):
        variant = variant_from_tune(tune) or variant
    if variant is not None:
        allowed = VARIANTS.get(platform.architecture, ())
        if variant not in allowed:
            choices = ", ".join(allowed) or "none"
            raise SpecError(
                f"architecture '{arch}' has no variant '{variant}' (allowed: {choices}); "
                "fix --arch/--tune"
            )
        if platform.architecture.startswith("arm64"):
            variant = None  # arm64 means v8; podman matches "arm64" without a variant best
    return platform.with_variant(variant)


def for_elf(machine: str, bits: int, little_endian: bool) -> Platform | None:
    """The platform whose ELF header matches, or None for a machine we do not map."""
    target = ElfTarget(machine, bits, little_endian)
    for platform in PLATFORMS.values():
        if platform.elf == target:
            return platform
    return None
