"""A user name in USER, resolved at build time from the target's passwd and group files."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_errors import assert_one_line_error, nothing_written

from oci import image_config

# The target's databases, as Buildroot's skeleton has them (plus a user of our own), with the
# comment and NIS compat lines real files may hold.
PASSWD = """\
# the target's users
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
app:x:1000:1001:App:/home/app:/bin/sh
+@netgroup::::::
nopw::2000:2000::/:/bin/sh
top:x:4294967294:4294967294::/:/bin/sh
"""
GROUP = """\
root:x:0:
staff:x:50:app
nogroup:x:65534:
"""


@pytest.fixture
def databases(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    return tmp_path / "passwd", tmp_path / "group"


def built_user(hellocontainer, binary: Path, out: Path, *args: object) -> str | None:
    hellocontainer("build", binary, "--output", out, *args)
    return image_config(out)["config"].get("User")


@pytest.mark.parametrize(("user", "expected"), [
    ("app", "1000:1001"),  # a name alone: its primary group from passwd, written out
    ("app:staff", "1000:50"),
    ("nobody:0", "65534:0"),
    ("1000:nogroup", "1000:65534"),
    ("1000", "1000"),  # numbers stay exactly as written
    ("0:0", "0:0"),
    ("nopw", "2000:2000"),  # an empty password field is a valid entry
    ("top", "4294967294:4294967294"),  # the highest id there is: (uid_t)-2
], ids=["name", "name-group", "name-gid", "uid-group", "uid", "uid-gid", "no-password", "top-id"])
def test_user_names_become_numbers(hellocontainer, hello_static, tmp_path, databases, user,
                                   expected):
    passwd, group = databases
    assert built_user(hellocontainer, hello_static, tmp_path / "o", "--user", user,
                      "--passwd-file", passwd, "--group-file", group) == expected


def test_numbers_need_no_files(hellocontainer, hello_static, tmp_path):
    # A missing file is only an error when a name needs it.
    assert built_user(hellocontainer, hello_static, tmp_path / "o", "--user", "1000:1000",
                      "--passwd-file", tmp_path / "nope") == "1000:1000"


def test_spec_file_paths_are_relative_to_the_spec_file(hellocontainer, hello_static, tmp_path,
                                                       databases):
    (tmp_path / "image.yaml").write_text("user: app:staff\npasswd_file: passwd\n"
                                         "group_file: group\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    hellocontainer("build", hello_static, "--output", tmp_path / "o",
                   "--spec", tmp_path / "image.yaml", cwd=elsewhere)
    assert image_config(tmp_path / "o")["config"]["User"] == "1000:50"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "deploy").mkdir()
    return tmp_path / "deploy" / "hello-oci"


@pytest.mark.parametrize(("args", "fragments"), [
    (["--user", "ghost", "--passwd-file", "{passwd}"],
     ("no passwd entry 'ghost' in", "give a number")),
    (["--user", "app:wheel", "--passwd-file", "{passwd}", "--group-file", "{group}"],
     ("no group entry 'wheel' in",)),
    (["--user", "app"], ("no passwd file is given", "--passwd-file (spec key passwd_file)")),
    (["--user", "1000:staff", "--passwd-file", "{passwd}"],
     ("no group file is given", "--group-file (spec key group_file)")),
    (["--user", "app", "--passwd-file", "{missing}"],
     ("passwd file", "No such file", "--passwd-file")),
    (["--user", "app", "--passwd-file", "{group}"],
     ("line 1 is not an entry NAME:PASSWORD:UID:GID", "--passwd-file")),
    (["--user", "app:staff", "--passwd-file", "{passwd}", "--group-file", "{passwd}"],
     ("line 2 is not an entry NAME:PASSWORD:GID:MEMBERS", "--group-file")),
    (["--user", "app", "--passwd-file", "/dev/zero"],
     ("/dev/zero", "not a regular file", "--passwd-file")),
    (["--user", "app", "--passwd-file", "{big}"],
     ("larger than 1 MiB", "--passwd-file")),
    (["--user", "two words"], ("--user", "USER[:GROUP]")),
], ids=["unknown-user", "unknown-group", "no-passwd", "no-group", "missing-file", "group-as-passwd",
        "passwd-as-group", "device", "too-large", "blank"])
def test_user_mistakes_are_one_line(hellocontainer, hello_static, out, databases, args, fragments):
    passwd, group = databases
    big = passwd.with_name("big")
    big.write_text("root:x:0:0::/:/bin/sh\n" * 60_000)
    paths = {"passwd": passwd, "group": group, "missing": passwd.with_name("missing"), "big": big}
    result = hellocontainer("build", hello_static, "--output", out,
                            *(a.format(**paths) for a in args), check=False)
    assert_one_line_error(result, *fragments)
    nothing_written(out.parent, set())


@pytest.mark.parametrize("line", [
    "huge:x:4294967295:0::/:/bin/sh",  # (uid_t)-1 means "unchanged" to the kernel: no one's id
    ":x:5:5::/:/bin/sh",  # no name
    "bad:x:abc:1::/:/bin/sh",  # a uid that is no number
    "bad:x:1:-1::/:/bin/sh",  # a gid that is no number
], ids=["id-too-high", "no-name", "uid-not-a-number", "gid-not-a-number"])
def test_malformed_passwd_entry_is_named_by_its_line(hellocontainer, hello_static, out, tmp_path,
                                                    line):
    passwd = tmp_path / "passwd"
    passwd.write_text(PASSWD + line + "\n")
    result = hellocontainer("build", hello_static, "--output", out, "--user", "app",
                            "--passwd-file", passwd, check=False)
    number = PASSWD.count("\n") + 1
    assert_one_line_error(result, f"line {number} is not an entry NAME:PASSWORD:UID:GID",
                          "--passwd-file (spec key passwd_file)")
    nothing_written(out.parent, set())


def test_the_first_entry_of_a_repeated_name_wins(hellocontainer, hello_static, tmp_path):
    """As getpwnam(3) and getgrnam(3) answer: a later duplicate (a merge gone wrong) is ignored."""
    (tmp_path / "passwd").write_text("app:x:1000:1001::/:/bin/sh\napp:x:2000:2002::/:/bin/sh\n")
    (tmp_path / "group").write_text("staff:x:50:\nstaff:x:60:\n")
    assert built_user(hellocontainer, hello_static, tmp_path / "o", "--user", "app:staff",
                      "--passwd-file", tmp_path / "passwd", "--group-file", tmp_path / "group"
                      ) == "1000:50"
    assert built_user(hellocontainer, hello_static, tmp_path / "p", "--user", "app",
                      "--passwd-file", tmp_path / "passwd") == "1000:1001"
