"""Read the facts an image needs from a binary's ELF header, and refuse what cannot run.

The checks catch the mistakes users actually make: packaging a script or an archive, packaging
the build host's binary for a target board, and packaging a dynamically linked program whose
libraries are not in the image (the container then dies with a bare "no such file").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..errors import BinaryError, DynamicBinaryError
from ..oci import platforms
from ..oci.platforms import ElfTarget, Platform

# ARM EABI Tag_CPU_arch values → OCI variant (ARM IHI 0045, "Addenda to the ARM ABI").
# A binary runs on its own level and above, so each value maps to the lowest variant that has it.
_ARM_CPU_ARCH_VARIANT = {
    **{n: "v5" for n in range(0, 6)},  # pre-v4 … v5TEJ
    **{n: "v6" for n in (6, 7, 8, 9, 11, 12)},  # v6, v6KZ, v6T2, v6K, v6-M, v6S-M
    **{n: "v7" for n in (10, 13)},  # v7, v7E-M
}
_VARIANT_ORDER = ("v5", "v6", "v7", "v8")


@dataclass(frozen=True)
class ElfFacts:
    """What the packager needs to know about one ELF file."""

    target: ElfTarget
    interpreter: str | None  # PT_INTERP: the dynamic loader, absent in a static binary
    needed: tuple[str, ...]  # DT_NEEDED: shared libraries it asks for
    arm_variant: str | None  # the lowest ARM level it runs on, from .ARM.attributes

    @property
    def is_dynamic(self) -> bool:
        return self.interpreter is not None or bool(self.needed)


def read_elf(path: Path) -> ElfFacts:
    """Parse `path`'s ELF header, program headers and dynamic section."""
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
            if magic != b"\x7fELF":
                raise BinaryError(
                    f"{path} is not an ELF executable (it starts with {magic!r}); "
                    "give the compiled program, not a script, archive or source file"
                )
            stream.seek(0)
            elf = ELFFile(stream)
            machine = elf["e_machine"]
            if not isinstance(machine, str):
                # pyelftools names only the machines it knows; others come back as a number.
                machine = f"machine {machine:#06x}"
            target = ElfTarget(machine, elf.elfclass, elf.little_endian)
            interpreter = None
            needed: list[str] = []
            for segment in elf.iter_segments():
                if segment["p_type"] == "PT_INTERP":
                    interpreter = segment.get_interp_name()
                elif segment["p_type"] == "PT_DYNAMIC":
                    needed.extend(
                        tag.needed for tag in segment.iter_tags() if tag.entry.d_tag == "DT_NEEDED"
                    )
            return ElfFacts(target, interpreter, tuple(needed), _arm_variant(elf))
    except ELFError as error:
        raise BinaryError(
            f"{path} is not a readable ELF file ({error}); rebuild it or check the path"
        ) from None
    except OSError as error:
        raise BinaryError(f"cannot read binary {path}: {error.strerror}; check the path") from None


def _arm_variant(elf: ELFFile) -> str | None:
    section = elf.get_section_by_name(".ARM.attributes")
    if section is None or not hasattr(section, "iter_subsections"):
        return None
    for subsection in section.iter_subsections():
        for subsubsection in subsection.iter_subsubsections():
            for attribute in subsubsection.iter_attributes():
                if attribute.tag == "TAG_CPU_ARCH":
                    return _ARM_CPU_ARCH_VARIANT.get(attribute.value, "v8")
    return None


def check_binary(path: Path, declared: Platform | None, allow_dynamic: bool) -> Platform:
    """Check that `path` can run on `declared` (or on its own platform) and return the platform.

    With no declared platform the ELF header decides. An ARM binary needs a variant at least as
    high as the level it was compiled for; a lower declared variant would crash on the board.
    """
    facts = read_elf(path)
    if facts.is_dynamic and not allow_dynamic:
        wants = ", ".join(facts.needed) or "no libraries"
        raise DynamicBinaryError(
            f"{path} is dynamically linked (interpreter {facts.interpreter or 'none'}; "
            f"needs {wants}); link it statically (-static) or pass --allow-dynamic"
        )
    own = platforms.for_elf(facts.target.machine, facts.target.bits, facts.target.little_endian)
    if declared is None:
        if own is None:
            raise BinaryError(
                f"{path} is an ELF binary for {facts.target.describe()}, which has no OCI "
                "architecture this packager knows; pass --arch explicitly"
            )
        return own.with_variant(facts.arm_variant if own.architecture in ("arm", "armbe") else None)
    if declared.elf != facts.target:
        raise BinaryError(
            f"{path} is built for {facts.target.describe()}"
            f"{f' ({own.architecture})' if own else ''}, but the image is declared for "
            f"{declared.name()} ({declared.elf.describe()}); cross-compile the binary for "
            f"{declared.architecture} or fix --arch"
        )
    if declared.architecture in ("arm", "armbe"):
        needs = facts.arm_variant
        if declared.variant is None:
            return declared.with_variant(needs)
        if needs and _VARIANT_ORDER.index(needs) > _VARIANT_ORDER.index(declared.variant):
            raise BinaryError(
                f"{path} is compiled for ARM {needs} but the image is declared for "
                f"{declared.name()}; it would not run there: fix --arch/--tune or the compiler's -march"
            )
    return declared
