"""The ELF check: what it refuses (dynamic programs, unknown machines, broken files) and the ARM
level it reads, on binaries the compilers of this machine make in a fraction of a second."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import HELLO_C, require_tool
from hellocontainer.errors import BinaryError
from hellocontainer.image import elfcheck
from hellocontainer.oci import platforms

# A program with no C library at all: linked without -static it still gets a PT_INTERP (the
# dynamic loader), yet asks for no shared library, so DT_NEEDED alone cannot tell it is dynamic.
NO_LIBC = r"""
void _start(void) { __asm__ volatile("mov $60, %eax\n xor %edi, %edi\n syscall"); }
"""


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str,
                          status: int = 1) -> str:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hellocontainer: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def compile_c(compiler: str, source: str, out: Path, *flags: str) -> Path:
    c_file = out.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run([compiler, *flags, "-o", str(out), str(c_file)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def interpreter_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x86-64 program with PT_INTERP and a dynamic section, but no DT_NEEDED entry."""
    cc = require_tool("cc", "gcc")
    # -pie: a position-independent executable always gets the loader, libraries or not.
    return compile_c(cc, NO_LIBC, tmp_path_factory.mktemp("elf") / "no-libc", "-nostdlib", "-pie")


def test_interpreter_without_libraries_is_read_as_dynamic(interpreter_only):
    facts = elfcheck.read_elf(interpreter_only)
    assert facts.needed == ()
    assert facts.interpreter is not None and facts.interpreter.endswith(".so.2")
    assert facts.is_dynamic


def test_program_with_an_interpreter_but_no_libraries_is_refused(hellocontainer, interpreter_only,
                                                                 tmp_path):
    result = hellocontainer("build", interpreter_only, "--output", tmp_path / "o", check=False)
    # Exit status 3: a dynamically linked binary, told apart from every other error.
    assert_one_line_error(result, "dynamically linked", "interpreter /lib64/ld-linux-x86-64.so.2",
                          "needs no libraries", "-static", "--allow-dynamic", status=3)
    assert not (tmp_path / "o").exists()


def test_allow_dynamic_packages_a_program_with_only_an_interpreter(hellocontainer,
                                                                   interpreter_only, tmp_path):
    hellocontainer("build", interpreter_only, "--allow-dynamic", "--output", tmp_path / "o")
    hellocontainer("validate", tmp_path / "o")


def test_static_pie_has_a_dynamic_section_but_is_static(hellocontainer, tmp_path):
    """-static-pie leaves PT_DYNAMIC (for self-relocation) but no loader and no library."""
    cc = require_tool("cc", "gcc")
    binary = tmp_path / "hello-static-pie"
    subprocess.run([cc, "-static-pie", "-Os", "-s", "-o", str(binary), str(HELLO_C)], check=True,
                   capture_output=True)
    facts = elfcheck.read_elf(binary)
    assert (facts.interpreter, facts.needed, facts.is_dynamic) == (None, (), False)
    result = hellocontainer("build", binary, "--output", tmp_path / "o")
    assert result.stdout.endswith(" linux/amd64\n")


def with_machine(binary: Path, target: Path, machine: int) -> Path:
    """A copy of `binary` whose ELF header names another machine (e_machine, bytes 18-19)."""
    data = bytearray(binary.read_bytes())
    data[18:20] = machine.to_bytes(2, "little")
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize(("machine", "named"), [(0x5555, "machine 0x5555"), (0xBA, "STM8")],
                         ids=["unknown-to-pyelftools", "no-oci-architecture"])
def test_elf_for_a_machine_without_an_oci_architecture_is_refused(hellocontainer, hello_static,
                                                                  tmp_path, machine, named):
    binary = with_machine(hello_static, tmp_path / "odd", machine)
    result = hellocontainer("build", binary, "--output", tmp_path / "o", check=False)
    assert_one_line_error(result, f"ELF binary for {named} 64-bit little-endian",
                          "no OCI architecture")
    declared = hellocontainer("build", binary, "--arch", "amd64", "--output", tmp_path / "o",
                              check=False)
    assert_one_line_error(declared, f"built for {named} 64-bit", "linux/amd64", "--arch")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("damage", ["header-cut-short", "bad-class"])
def test_damaged_elf_is_refused(hellocontainer, hello_static, tmp_path, damage):
    data = bytearray(hello_static.read_bytes())
    if damage == "header-cut-short":
        data = data[:40]
    else:
        data[4] = 9  # EI_CLASS: neither 32- nor 64-bit
    binary = tmp_path / "damaged"
    binary.write_bytes(bytes(data))
    result = hellocontainer("build", binary, "--output", tmp_path / "o", check=False)
    assert_one_line_error(result, "damaged", "not a readable ELF file", "rebuild it")


def test_unreadable_binary_is_named(tmp_path):
    with pytest.raises(BinaryError, match=r"cannot read binary .*: Is a directory"):
        elfcheck.read_elf(tmp_path)


def test_non_elf_names_its_first_bytes(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(BinaryError, match=r"starts with b'#!/b'.*not a script"):
        elfcheck.read_elf(script)


# --- ARM levels, read from .ARM.attributes (object files are enough: they carry the section) --

ARM_LEVELS = [("armv5te", "v5"), ("armv6", "v6"), ("armv6t2", "v6"), ("armv7-a", "v7"),
              ("armv8-a", "v8")]


@pytest.fixture(scope="module")
def arm_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One ARM (32-bit, little-endian) object file per -march level."""
    gcc = require_tool("arm-linux-gnueabi-gcc", "gcc-arm-linux-gnueabi")
    out = tmp_path_factory.mktemp("arm")
    objects = {}
    for march, _ in ARM_LEVELS:
        target = out / f"{march}.o"
        subprocess.run([gcc, f"-march={march}", "-marm", "-c", "-o", str(target), str(HELLO_C)],
                       check=True, capture_output=True)
        objects[march] = target
    return objects


@pytest.mark.parametrize(("march", "variant"), ARM_LEVELS)
def test_arm_level_decides_the_variant(arm_objects, march, variant):
    platform = elfcheck.check_binary(arm_objects[march], None, allow_dynamic=False)
    assert (platform.architecture, platform.variant) == ("arm", variant)


@pytest.mark.parametrize(("march", "declared", "kept"), [
    ("armv7-a", "arm", "v7"),  # no declared variant: the binary's own
    ("armv5te", "arm/v7", "v7"),  # an older program runs on a newer board: the declared one
    ("armv7-a", "arm/v7", "v7"),
    ("armv8-a", "arm/v8", "v8"),
])
def test_arm_binary_declared_for_its_level_or_newer_is_accepted(arm_objects, march, declared,
                                                                kept):
    platform = elfcheck.check_binary(arm_objects[march], platforms.resolve(declared, None), False)
    assert platform.name() == f"linux/arm/{kept}"


@pytest.mark.parametrize(("march", "declared"), [("armv7-a", "arm/v6"), ("armv6", "arm/v5"),
                                                 ("armv8-a", "arm/v7")])
def test_arm_binary_declared_for_an_older_level_is_refused(arm_objects, march, declared):
    needs = dict(ARM_LEVELS)[march]
    with pytest.raises(BinaryError, match=f"compiled for ARM {needs} but the image is declared "
                                          f"for linux/{declared}"):
        elfcheck.check_binary(arm_objects[march], platforms.resolve(declared, None), False)


# Tag_CPU_arch values (ARM IHI 0045) and the lowest OCI variant whose CPUs run that code.
TAG_CPU_ARCH_VARIANT = {0: "v5", 1: "v5", 2: "v5", 3: "v5", 4: "v5", 5: "v5",  # pre-v4 … v5TEJ
                        6: "v6", 7: "v6", 8: "v6", 9: "v6", 11: "v6", 12: "v6",  # v6 … v6S-M
                        10: "v7", 13: "v7",  # v7, v7E-M
                        14: "v8", 15: "v8", 16: "v8", 17: "v8", 21: "v8"}  # v8 and later


@pytest.mark.parametrize(("tag", "variant"), TAG_CPU_ARCH_VARIANT.items())
def test_every_tag_cpu_arch_value_maps_to_its_variant(arm_objects, tmp_path, tag, variant):
    """No compiler here makes v5TEJ or pre-v4 code, so the attribute itself is rewritten in a
    copy of an ARMv5TE object: Tag_CPU_name "5TE", then Tag_CPU_arch (6) = 4."""
    data = bytearray(arm_objects["armv5te"].read_bytes())
    at = data.index(b"5TE\0\x06\x04") + 5
    data[at] = tag
    patched = tmp_path / "patched.o"
    patched.write_bytes(bytes(data))
    assert elfcheck.read_elf(patched).arm_variant == variant


def test_host_binary_has_no_arm_level(hello_static):
    platform = elfcheck.check_binary(hello_static, None, allow_dynamic=False)
    assert (platform.name(), elfcheck.read_elf(hello_static).arm_variant) == ("linux/amd64", None)


def test_section_named_like_arm_attributes_in_another_machines_binary_is_ignored(tmp_path):
    """Only ARM binaries carry ARM attributes; another machine's section of that name is data."""
    cc = require_tool("cc", "gcc")
    objcopy = require_tool("objcopy", "binutils")
    obj = tmp_path / "hello.o"
    subprocess.run([cc, "-c", "-o", str(obj), str(HELLO_C)], check=True, capture_output=True)
    (tmp_path / "junk").write_bytes(b"A\x10\x00\x00\x00aeabi\x00")
    subprocess.run([objcopy, "--add-section", f".ARM.attributes={tmp_path / 'junk'}", str(obj)],
                   check=True, capture_output=True)
    assert elfcheck.read_elf(obj).arm_variant is None


def _pyelftools_facts(path: Path) -> tuple:
    """What pyelftools reads from the same file: the packager's own header reader must agree."""
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as stream:
        elf = ELFFile(stream)
        interpreter, needed = None, []
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                interpreter = segment.get_interp_name()
            elif segment["p_type"] == "PT_DYNAMIC":
                needed += [t.needed for t in segment.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return elf["e_machine"], elf.elfclass, elf.little_endian, interpreter, tuple(needed)


CROSS = [("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
         ("arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf"),
         ("i686-linux-gnu-gcc", "gcc-i686-linux-gnu"),
         ("riscv64-linux-gnu-gcc", "gcc-riscv64-linux-gnu"),
         ("powerpc64le-linux-gnu-gcc", "gcc-powerpc64le-linux-gnu"),
         ("cc", "gcc")]


@pytest.mark.parametrize(("compiler", "package"), CROSS, ids=[c for c, _ in CROSS])
@pytest.mark.parametrize("link", ["static", "dynamic"])
def test_header_reader_agrees_with_pyelftools(tmp_path, compiler, package, link):
    """32- and 64-bit, both linkings, five machines: interpreter, libraries, class, machine."""
    gcc = require_tool(compiler, package)
    binary = compile_c(gcc, HELLO_C.read_text(), tmp_path / "hello",
                       *(["-static"] if link == "static" else []))
    facts = elfcheck.read_elf(binary)
    assert (facts.target.machine, facts.target.bits, facts.target.little_endian,
            facts.interpreter, facts.needed) == _pyelftools_facts(binary)
    assert facts.is_dynamic == (link == "dynamic")
