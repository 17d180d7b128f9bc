"""The board archive (tests/board.py) and a mirror in mid-sync.

Debian's mirrors update a release's Release file and its indexes one after the other; for a
while an index is not the size the Release file promises, and `apt-get update` fails on it
(seen for bookworm-security's armhf index). The board then uses the release's main index,
with older security versions; a failure of the main index itself stays an error.
"""

from __future__ import annotations

from board import _only_extra_suites_failed

MID_SYNC = """\
Err:6 http://deb.debian.org/debian-security bookworm-security/main armhf Packages
  File has unexpected size (356624 != 356976). Mirror sync in progress? [IP: 203.0.113.80 80]
E: Some index files failed to download. They have been ignored, or old ones used instead.
"""


def test_a_security_index_in_mid_sync_is_not_fatal() -> None:
    assert _only_extra_suites_failed(MID_SYNC)


def test_an_updates_index_in_mid_sync_is_not_fatal() -> None:
    assert _only_extra_suites_failed(MID_SYNC.replace("debian-security bookworm-security",
                                                      "debian bookworm-updates"))


def test_the_main_index_failing_is_fatal() -> None:
    assert not _only_extra_suites_failed(MID_SYNC.replace("debian-security bookworm-security",
                                                          "debian bookworm"))


def test_a_failure_without_a_failed_index_is_fatal() -> None:
    assert not _only_extra_suites_failed("E: The repository is not signed.\n")
