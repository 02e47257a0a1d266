"""A repodata section's file names checked in one scan (a conda-forge subdir has 300,000): the rule of
:func:`airgap.core.manifest.is_safe_package_filename` for names ending in the section's suffix, as one pattern."""

from __future__ import annotations

import itertools
import re
from typing import Any


# is_safe_package_filename for names ending in a section's suffix, one a line (tests/test_delta_select.py compares them)
def _names_pattern(suffix: str) -> re.Pattern[str]:
    name = rf"[A-Za-z0-9_][A-Za-z0-9_.+!=~,-]{{0,{254 - len(suffix)}}}{re.escape(suffix)}"
    return re.compile(rf"{name}(?:\n{name})*")  # one name a line, no empty line


_NAMES = {suffix: _names_pattern(suffix) for suffix in (".tar.bz2", ".conda")}


def safe_names(entries: dict[Any, Any], suffix: str) -> bool:
    """Every key of ``entries`` is a safe package file name ending in ``suffix``: a scan of 4,096 names at a
    time rather than a call per record (a conda-forge subdir has 300,000). False: look at each one."""
    names, pattern = iter(entries), _NAMES[suffix]
    while chunk := list(itertools.islice(names, 4096)):
        try:
            text = "\n".join(chunk)
        except TypeError:  # a key that is no string (JSON's always are; a document built in code may not be)
            return False
        if ".." in text or pattern.fullmatch(text) is None:
            return False
    return True
