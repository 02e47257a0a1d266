"""Secrets inside channel URLs, kept out of archives, logs and messages.

The guide's Wakari config lists ``https://conda.anaconda.org/t/<TOKEN>/anaconda-nb-extensions``:
anaconda.org's tokens travel in the URL path (``/t/TOKEN/``), and some servers take
``user:password@`` in the URL. airgap fetches with the URL as given but records and shows it with
the secret replaced: the manifest (signed, carried across the gap), log lines and error messages.
Pure: text in, text out.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(://\S*?)/t/[^/\s'\"]+")
_USERINFO = re.compile(r"(://[^/\s:@'\"]+):[^@/\s'\"]+@")


def redact(text: str) -> str:
    """``text`` with every URL's ``/t/TOKEN`` and ``user:password@`` replaced by placeholders."""
    if "://" not in text:
        return text
    return _USERINFO.sub(r"\1:***@", _TOKEN.sub(r"\1/t/<TOKEN>", text))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
