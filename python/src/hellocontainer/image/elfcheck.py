"""Read the facts an image needs from a binary's ELF header, and refuse what cannot run.

The checks catch the mistakes users actually make: packaging a script or an archive, packaging
the build host's binary for a target board, and packaging a dynamically linked program whose
libraries are not in the image (the container then dies with a bare "no such file").
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ..errors import BinaryError, DynamicBinaryError
from ..oci import platforms
from ..oci.platforms import ElfTarget, Platform
from ..oci.value import Value

# ARM EABI Tag_CPU_arch values → OCI variant (ARM IHI 0045, "Addenda to the ARM ABI").
# A binary runs on its own level and above, so each value maps to the lowest variant that has it.
_ARM_CPU_ARCH_VARIANT = {
    **{n: "v5" for n in range(0, 6)},  # pre-v4 … v5TEJ
    **{n: "v6" for n in (6, 7, 8, 9, 11, 12)},  # v6, v6KZ, v6T2, v6K, v6-M, v6S-M
    **{n: "v7" for n in (10, 13)},  # v7, v7E-M
}
_VARIANT_ORDER = ("v5", "v6", "v7", "v8")


class ElfFacts(Value):
    """What the packager needs to know about one ELF file."""

    __slots__ = ("arm_variant", "interpreter", "needed", "target")

    def __init__(
        self,
        target: ElfTarget,
        interpreter: str | None,
        needed: tuple[str, ...],
        arm_variant: str | None,
    ) -> None:
        self.target = target
        self.interpreter = interpreter  # PT_INTERP: the dynamic loader, absent in a static binary
        self.needed = needed  # DT_NEEDED: shared libraries it asks for
        self.arm_variant = arm_variant  # the lowest ARM level it runs on, from .ARM.attributes

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
            header = _Header.read(stream)
            interpreter, needed = header.dynamic_facts(stream)
            target = ElfTarget(_machine_name(header.machine), header.bits, header.little_endian)
            arm_variant = _arm_variant(stream) if header.machine == _EM_ARM else None
            return ElfFacts(target, interpreter, needed, arm_variant)
    except _Damaged as error:
        raise BinaryError(
            f"{path} is not a readable ELF file ({error}); rebuild it or check the path"
        ) from None
    except OSError as error:
        raise BinaryError(f"cannot read binary {path}: {error.strerror}; check the path") from None


# The ELF header and program headers are read here with struct (System V gABI, "ELF Header",
# "Program Header", "Dynamic Section"): a build needs only these few fields, and pyelftools,
# which reads everything else, costs more to import than the rest of a small build. It is
# still the reader of ARM attributes (ARM binaries only) and of machine names we do not know.

_EM_ARM = 40
# e_machine numbers of the platforms table, by the names pyelftools gives them.
_MACHINES = {3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390",
             _EM_ARM: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV",
             258: "EM_LOONGARCH"}
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5
# Larger than any real loader path or library name, smaller than any harm.
_MAX_NAME = 4096


class _Damaged(Exception):
    """The file claims to be ELF but its headers cannot be read."""


def _machine_name(number: int) -> str:
    """pyelftools' name for e_machine (`EM_AARCH64`), or `machine 0x5555` for one it lacks."""
    name = _MACHINES.get(number)
    if name is None:
        # Only a machine without an OCI architecture gets here, on the way to an error.
        from elftools.elf.enums import ENUM_E_MACHINE

        name = next((n for n, v in ENUM_E_MACHINE.items() if v == number and n != "_default_"),
                    f"machine {number:#06x}")
    return name


def _read(stream: BinaryIO, offset: int, size: int, what: str) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise _Damaged(f"{what} at offset {offset} is cut short")
    return data


class _Header(NamedTuple):  # not a dataclass, whose methods are compiled at every start
    bits: int
    little_endian: bool
    machine: int
    program_headers: tuple[tuple[int, int, int, int], ...]  # (type, offset, vaddr, filesz)

    @classmethod
    def read(cls, stream: BinaryIO) -> _Header:
        ident = _read(stream, 0, 16, "the ELF identification")
        if ident[4] not in (1, 2):
            raise _Damaged(f"invalid EI_CLASS {ident[4]}")
        if ident[5] not in (1, 2):
            raise _Damaged(f"invalid EI_DATA {ident[5]}")
        bits, endian = (32 if ident[4] == 1 else 64), ("<" if ident[5] == 1 else ">")
        layout = "HHIIIIIHHHHHH" if bits == 32 else "HHIQQQIHHHHHH"
        fields = struct.unpack(endian + layout, _read(stream, 16, struct.calcsize(endian + layout),
                                                      "the ELF header"))
        machine, phoff, phentsize, phnum = fields[1], fields[4], fields[8], fields[9]
        entry = endian + ("IIIIIIII" if bits == 32 else "IIQQQQQQ")
        if phnum and phentsize < struct.calcsize(entry):
            raise _Damaged(f"program header entries of {phentsize} bytes")
        table = _read(stream, phoff, phnum * phentsize, "the program header table")
        headers = []
        for index in range(phnum):
            values = struct.unpack_from(entry, table, index * phentsize)
            # 32-bit: type, offset, vaddr, paddr, filesz…; 64-bit: type, flags, offset, vaddr,
            # paddr, filesz…
            kind, offset, vaddr, filesz = ((values[0], values[1], values[2], values[4])
                                           if bits == 32 else
                                           (values[0], values[2], values[3], values[5]))
            headers.append((kind, offset, vaddr, filesz))
        return cls(bits, endian == "<", machine, tuple(headers))

    def dynamic_facts(self, stream: BinaryIO) -> tuple[str | None, tuple[str, ...]]:
        """PT_INTERP's loader path and the DT_NEEDED library names."""
        interpreter = None
        needed: list[str] = []
        for kind, offset, _, size in self.program_headers:
            if kind == _PT_INTERP:
                raw = _read(stream, offset, min(size, _MAX_NAME), "PT_INTERP")
                interpreter = raw.split(b"\0", 1)[0].decode(errors="replace")
            elif kind == _PT_DYNAMIC:
                needed += self._needed(stream, offset, size)
        return interpreter, tuple(needed)

    def _needed(self, stream: BinaryIO, offset: int, size: int) -> list[str]:
        entry = ("<" if self.little_endian else ">") + ("iI" if self.bits == 32 else "qQ")
        width = struct.calcsize(entry)
        data = _read(stream, offset, size - size % width, "the dynamic section")
        names, strtab = [], None
        for tag, value in struct.iter_unpack(entry, data):
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                names.append(value)
            elif tag == _DT_STRTAB:
                strtab = value
        if not names:
            return []
        where = self._file_offset(strtab) if strtab is not None else None
        if where is None:
            raise _Damaged("DT_NEEDED without a string table in a loaded segment")
        return [_read_name(stream, where + name) for name in names]

    def _file_offset(self, address: int) -> int | None:
        """Where the byte loaded at `address` lies in the file (the PT_LOAD segment holding it)."""
        for kind, offset, vaddr, filesz in self.program_headers:
            if kind == _PT_LOAD and vaddr <= address < vaddr + filesz:
                return offset + address - vaddr
        return None


def _read_name(stream: BinaryIO, offset: int) -> str:
    stream.seek(offset)
    raw = stream.read(_MAX_NAME).split(b"\0", 1)
    if len(raw) != 2:
        raise _Damaged(f"unterminated name at offset {offset}")
    return raw[0].decode(errors="replace")


def _arm_variant(stream: BinaryIO) -> str | None:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        section = ELFFile(stream).get_section_by_name(".ARM.attributes")
    except ELFError as error:
        raise _Damaged(str(error)) from None
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
