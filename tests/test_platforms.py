"""Every build system's architecture names land on the right OCI platform."""

from __future__ import annotations

import pytest

from hellocontainer.errors import SpecError
from hellocontainer.oci import platforms


@pytest.mark.parametrize(("name", "tune", "expected"), [
    # OCI names
    ("amd64", None, "linux/amd64"), ("arm64", None, "linux/arm64"), ("arm/v7", None, "linux/arm/v7"),
    ("arm64/v8", None, "linux/arm64"), ("linux/arm/v6", None, "linux/arm/v6"),
    # autotools host_cpu / uname -m
    ("x86_64", None, "linux/amd64"), ("i686", None, "linux/386"), ("aarch64", None, "linux/arm64"),
    ("armv7l", None, "linux/arm/v7"), ("armv6l", None, "linux/arm/v6"),
    ("armv5tel", None, "linux/arm/v5"), ("riscv64", None, "linux/riscv64"),
    ("powerpc64le", None, "linux/ppc64le"), ("s390x", None, "linux/s390x"),
    ("mipsel", None, "linux/mipsle"), ("mips64el", None, "linux/mips64le"),
    ("mipsisa32r6el", None, "linux/mipsle"), ("mips", None, "linux/mips"),
    # Yocto TARGET_ARCH + TUNE_FEATURES / TUNE_PKGARCH
    ("arm", "arm vfp cortexa7 neon thumb callconvention-hard armv7ve armv7a armv6 armv5",
     "linux/arm/v7"),
    ("arm", "arm armv5 thumb dsp armv5te", "linux/arm/v5"),
    ("arm", "arm1176jzfshf", None),
    ("i586", None, "linux/386"), ("aarch64_be", None, "linux/arm64be"),
    # Buildroot BR2_ARCH + BR2_GCC_TARGET_ARCH
    ("arm", "armv7-a", "linux/arm/v7"), ("arm", "armv6zk", "linux/arm/v6"),
    ("armeb", "armv7-a", "linux/armbe/v7"), ("powerpc64", None, "linux/ppc64"),
    ("loongarch64", None, "linux/loong64"),
])
def test_names_map_to_oci_platforms(name, tune, expected):
    platform = platforms.resolve(name, tune)
    if expected is None:  # a tune without an armvN word leaves the variant to the ELF file
        assert platform.name() == "linux/arm"
    else:
        assert platform.name() == expected


def test_variant_of_a_non_arm_architecture_is_refused():
    with pytest.raises(SpecError, match="no variant 'v7'"):
        platforms.resolve("amd64/v7")


def test_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(SpecError, match=r"z80.*amd64"):
        platforms.resolve("z80")
