"""SOURCE_DATE_EPOCH: the one clock every timestamp in an image comes from.

https://reproducible-builds.org/specs/source-date-epoch/ — a decimal count of seconds since the
Unix epoch. Unset means 0 (1970-01-01T00:00:00Z): an image never carries the wall-clock time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

from .errors import SpecError

_MAX = 253402300799  # 9999-12-31T23:59:59Z: RFC 3339 has four-digit years


def source_date_epoch(environ: Mapping[str, str] = os.environ) -> int:
    """SOURCE_DATE_EPOCH from the environment, or 0 when it is unset or empty."""
    raw = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return 0
    # ASCII digits only: str.isdigit() also accepts "²" and Arabic-Indic digits.
    if not re.fullmatch(r"[0-9]+", raw):
        raise SpecError(
            f"SOURCE_DATE_EPOCH='{raw}' is not a non-negative integer count of seconds; "
            "set it to e.g. $(git log -1 --format=%ct) or unset it"
        )
    # The length first: int() refuses over 4300 digits with a ValueError of its own.
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(_MAX)) or int(digits) > _MAX:
        raise SpecError(
            f"SOURCE_DATE_EPOCH='{raw}' is after 9999-12-31T23:59:59Z, the last time RFC 3339 "
            "can write; set it to e.g. $(git log -1 --format=%ct) or unset it"
        )
    return int(digits)


def rfc3339(epoch: int) -> str:
    """`epoch` as the RFC 3339 UTC string the image-spec uses for `created`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
