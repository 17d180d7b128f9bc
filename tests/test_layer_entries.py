"""validate and bundle judge every layer entry by one rule, so a user who validates before
flashing learns what bundle will do.

For each hostile or unusual entry: what bundle refuses, validate calls a problem (exit 1); what
bundle skips or reads otherwise and reports, validate warns of (exit 0, and --strict exits 1).
A property test draws small random layers and holds the two verdicts to each other.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_bundle import add_image, entry, layer, make_layout, write_index

from hellocontainer.board.bundle import BundleRequest, write_bundle
from hellocontainer.check.validate import validate_layout
from hellocontainer.errors import LayoutError
from layouts import ERROR, WARNING, assert_invalid, assert_no_crash, cli, stderr_lines, summary

NOTE = "hellocontainer: note: "


def _raw_layer(*headers: tuple[bytes, bytes]) -> bytes:
    """A tar of raw (typeflag, payload) members after a PAX-capable header, then a file."""
    out = b""
    for typeflag, payload in headers:
        header = bytearray(tarfile.TarInfo("././@PaxHeader").tobuf(format=tarfile.USTAR_FORMAT))
        header[124:136] = f"{len(payload):011o}\0".encode()
        header[156:157] = typeflag
        header[148:156] = b" " * 8
        header[148:156] = f"{sum(header):06o}\0 ".encode()
        out += bytes(header) + payload + b"\0" * (-len(payload) % 512)
    return out + layer(entry("hello", data=b"hi"))


def _typed(name: str, typeflag: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info, data = entry(name)
    info.type = typeflag
    return info, data


def _pax_path(path: str) -> tuple[tarfile.TarInfo, bytes]:
    info, data = entry("placeholder", data=b"x")
    info.pax_headers = {"path": path}
    return info, data


SYMLINK = entry("a", "symlink", link="/etc")
PASSWD = entry("a/passwd", data=b"root::0:0::/:/bin/sh\n")

# name → (layers, verdict, what both tools say)
CASES = {
    "dotdot": ([layer(entry("../escape", data=b"x"))], "problem", "'..'"),
    "dotdot-inside": ([layer(entry("a/../../escape", data=b"x"))], "problem", "'..'"),
    "absolute": ([layer(entry("/etc/x", data=b"x"))], "warning", "absolute name(s)"),
    "through-symlink": ([layer(SYMLINK, PASSWD)], "problem", "/a is a symbolic link"),
    "through-symlink-across-layers": ([layer(SYMLINK), layer(PASSWD)], "problem",
                                      "/a is a symbolic link"),
    "through-file": ([layer(entry("a", data=b"x"), entry("a/b", data=b"y"))], "problem",
                     "/a is not a directory"),
    "through-file-across-layers": ([layer(entry("a", data=b"x")), layer(entry("a/b/c"))],
                                   "problem", "/a is not a directory"),
    "hardlink-out-of-root": ([layer(entry("x", "hardlink", link="../../etc/shadow"))],
                             "problem", "'..'"),
    "hardlink-missing": ([layer(entry("x", "hardlink", link="etc/shadow"))], "problem",
                         "hardlink target /etc/shadow is not in the image before it"),
    "hardlink-through-symlink": ([layer(entry("host", "symlink", link="/etc"),
                                        entry("x", "hardlink", link="host/shadow"))],
                                 "problem", "hardlink target /host/shadow is not in the image"),
    "hardlink-to-directory": ([layer(entry("d", "dir"), entry("x", "hardlink", link="d"))],
                              "problem", "a hardlink to the directory /d"),
    "hardlink-to-root": ([layer(entry("x", "hardlink", link="/"))], "problem",
                         "a hardlink to the directory /"),
    "hardlink-below-itself": ([layer(entry("d/f"), entry("d", "hardlink", link="d/f"))],
                              "problem", "inside the path the hardlink replaces"),
    "hardlink-after-whiteout": ([layer(entry("f")), layer(entry(".wh.f")),
                                 layer(entry("x", "hardlink", link="f"))], "problem",
                                "not in the image before it"),
    "hardlink-after-opaque": ([layer(entry("d/f")), layer(entry("d/.wh..wh..opq")),
                               layer(entry("x", "hardlink", link="d/f"))], "problem",
                              "not in the image before it"),
    "hardlink-after-dir-replaced": ([layer(entry("d/f")), layer(entry("d", data=b"file")),
                                     layer(entry("x", "hardlink", link="d/f"))], "problem",
                                    "not in the image before it"),
    "nul-in-pax-path": ([layer(_pax_path("etc/pass\0wd"))], "problem", "NUL"),
    "broken-pax-record": ([_raw_layer((b"x", b"99 path=x\n"))], "problem",
                          "PAX header is malformed"),
    "unknown-type": ([layer(_typed("thing", b"Z"))], "warning", "tar type"),
    "char-device": ([layer(entry("dev/console", "char"))], "warning", "device node(s)"),
    "block-device": ([layer(entry("dev/sda", "block"))], "warning", "device node(s)"),
    "empty-symlink": ([layer(entry("l", "symlink", link=""))], "problem", "empty target"),
    "long-name": ([layer(entry("n" * 256, data=b"x"))], "problem", "longer than 255 bytes"),
}

# Unusual but sound: validate and bundle accept them without a word.
SOUND = {
    "symlink-whited-out-then-dir": [layer(SYMLINK), layer(entry(".wh.a")), layer(PASSWD)],
    "symlink-replaced-by-dir": [layer(SYMLINK), layer(entry("a", "dir"), PASSWD)],
    "file-replaced-by-dir": [layer(entry("a", data=b"x")), layer(entry("a", "dir"), PASSWD)],
    "hardlink-to-lower-file": [layer(entry("f", data=b"x")), layer(entry("g", "hardlink",
                                                                         link="f"))],
    "hardlink-to-symlink": [layer(SYMLINK, entry("b", "hardlink", link="a"))],
    "hardlink-to-own-layer-under-lower-whiteout": [
        layer(entry("d/f")), layer(entry("d/f", data=b"new"), entry("d/.wh.f"),
                                   entry("x", "hardlink", link="d/f"))],
    "opaque-keeps-own-layer": [layer(entry("d/old")),
                               layer(entry("d/new"), entry("d/.wh..wh..opq"),
                                     entry("x", "hardlink", link="d/new"))],
}


def _verdicts(layout: Path, out: Path) -> tuple[list, list, list]:
    validate, strict = cli("validate", layout), cli("validate", "--strict", layout)
    bundle = cli("bundle", layout, "--output", out)
    for result in (validate, strict, bundle):
        assert_no_crash(result)
    return [validate, strict, bundle]  # type: ignore[return-value]


@pytest.mark.parametrize("case", CASES)
def test_validate_and_bundle_agree_on_a_hostile_or_unusual_entry(tmp_path, case):
    layers, verdict, fragment = CASES[case]
    layout = make_layout(tmp_path / "layout", *layers)
    validate, strict, bundle = _verdicts(layout, tmp_path / "bundle")
    if verdict == "problem":
        text = assert_invalid(validate)
        assert fragment in text, summary(validate)
        assert strict.returncode == 1, summary(strict)
        assert bundle.returncode == 1, summary(bundle)
        (line,) = stderr_lines(bundle)
        assert line.startswith(ERROR) and fragment in line, summary(bundle)
        assert not (tmp_path / "bundle").exists()
    else:
        assert validate.returncode == 0, summary(validate)
        warnings = [line for line in stderr_lines(validate) if line.startswith(WARNING)]
        assert len(warnings) == 1 and fragment in warnings[0], summary(validate)
        assert strict.returncode == 1, summary(strict)
        assert bundle.returncode == 0, summary(bundle)
        notes = [line for line in stderr_lines(bundle) if line.startswith(NOTE)]
        assert len(notes) == 1 and fragment in notes[0], summary(bundle)
        # One sentence for both: what bundle says is what validate warns of.
        assert warnings[0].endswith(notes[0].removeprefix(NOTE)), (warnings, notes)


@pytest.mark.parametrize("case", SOUND)
def test_sound_layers_pass_both_without_a_word(tmp_path, case):
    layout = make_layout(tmp_path / "layout", *SOUND[case])
    validate, strict, bundle = _verdicts(layout, tmp_path / "bundle")
    for result in (validate, strict, bundle):
        assert result.returncode == 0 and not stderr_lines(result), summary(result)


def test_validate_lists_a_few_refused_entries_and_counts_the_rest(tmp_path):
    layout = make_layout(tmp_path / "layout",
                         layer(*(entry(f"../x{i}", data=b"x") for i in range(12))))
    text = assert_invalid(cli("validate", layout))
    assert text.count("'..' component") == 5
    assert "7 more layer entries are refused likewise" in text


def test_a_deep_tree_is_checked_in_linear_time(tmp_path):
    """4,000 nested directories, each with a file: every entry's ancestors are checked
    against the previous entry's only, so this takes about as long as reading the layer."""
    depth = 4000
    members, path = [], ""
    for _ in range(depth):
        path = f"{path}/d" if path else "d"
        members += [entry(path, "dir"), entry(f"{path}/f", data=b"")]
    members.append(entry("link", "hardlink", link=f"{path}/f"))
    layout = make_layout(tmp_path / "layout", layer(*members))
    started = time.monotonic()
    result = cli("validate", "--strict", layout, timeout=120)
    assert result.returncode == 0, summary(result)
    assert time.monotonic() - started < 60


def test_a_link_deep_in_a_tree_is_found_after_the_layer_went_up_and_down_again(tmp_path):
    """The model keeps only some of a deep directory's hashes; going up and down again must
    still find the link at depth 150, and a hardlink to a deep file."""
    deep = ["/".join(["d"] * k) for k in range(1, 151)]
    members = [entry(path, "dir") for path in deep]
    members += [entry(f"{deep[-1]}/l", "symlink", link="/etc"), entry(f"{deep[-2]}/f"),
                entry(f"{deep[64]}/up"), entry("top", "hardlink", link=f"{deep[-2]}/f"),
                entry(f"{deep[10]}/x"), entry(f"{deep[-1]}/l/passwd")]
    layout = make_layout(tmp_path / "layout", layer(*members))
    validate, _, bundle = _verdicts(layout, tmp_path / "bundle")
    fragment = f"/{deep[-1]}/l is a symbolic link"
    assert fragment in assert_invalid(validate)
    assert bundle.returncode == 1 and fragment in bundle.stderr, summary(bundle)
    assert validate.stderr.count("invalid:") == 1, summary(validate)


def test_a_layer_shared_by_two_images_is_judged_above_each_ones_lower_layers(tmp_path):
    """The link layer alone is sound; under the file layer it is not. Read once for the first
    image, it is read again for the second, whose tree differs."""
    plant, write = layer(SYMLINK), layer(PASSWD)
    root = tmp_path / "layout"
    images = [add_image(root, [plant]), add_image(root, [write]), add_image(root, [plant, write])]
    for descriptor, tag in zip(images, ("plant", "write", "both")):
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    write_index(root, images)
    assert cli("validate", f"{root}:plant").returncode == 0
    assert cli("validate", f"{root}:write").returncode == 0
    text = assert_invalid(cli("validate", root))
    assert "(both) > layers[1]" in text and "/a is a symbolic link" in text, text
    assert text.count("invalid:") == 1, text


# --- the two verdicts, held to each other on random layers -------------------------------------

# Plain names mostly, so that entries meet each other; now and then one the rule refuses.
NAMES = ("a", "b", "c") * 5 + ("..", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh.", "")
KINDS = ("file", "dir", "dir", "symlink", "hardlink", "hardlink", "fifo", "char")
LINKS = ("a", "/etc", "../..", "a/b")

names = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
members = st.tuples(st.booleans(), names, st.sampled_from(KINDS), st.sampled_from(LINKS), names)
layers = st.lists(st.lists(members, min_size=1, max_size=6), min_size=1, max_size=3)


def _tar(drawn: list[tuple[bool, str, str, str, str]]) -> bytes:
    made = []
    for absolute, name, kind, link, target in drawn:
        name = ("/" if absolute else "") + (name or ".")
        made.append(entry(name, kind, data=b"x" if kind == "file" else b"",
                          link=target if kind == "hardlink" else link))
    return layer(*made)


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow],
          phases=(Phase.explicit, Phase.generate, Phase.shrink))
@given(drawn=layers)
def test_validate_is_clean_exactly_when_bundle_succeeds(drawn):
    work = Path(tempfile.mkdtemp(prefix="agree-", dir="/tmp"))
    try:
        layout = make_layout(work / "layout", *(_tar(d) for d in drawn))
        report = validate_layout(layout)
        try:
            result = write_bundle(BundleRequest(layout, None, work / "bundle"))
        except LayoutError as error:
            bundled, notes = f"refused: {error}", []
        else:
            bundled, notes = "ok", list(result.notes)
        assert (not report.problems) == (bundled == "ok"), (report.problems, bundled)
        if bundled == "ok":
            assert [w.split(": when bundled, ", 1)[1] for w in report.warnings] == notes
    finally:
        shutil.rmtree(work, ignore_errors=True)
