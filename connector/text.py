"""Text every backend stores as it is, and the checks on it that several packages share (ingestion, manual
segment uploads)."""

from __future__ import annotations

import re

EMAIL_RE = re.compile(r"^[^\s@\"(),:;<>\[\]\\]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$")


def check_text(value: str) -> str:
    """A string every backend stores as it is: no NUL (PostgreSQL refuses it), valid Unicode."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def normalize_email(value: str) -> str:
    value = check_text(value).strip().lower()
    if len(value) > 320 or not EMAIL_RE.match(value):
        raise ValueError("is not a valid email address")
    return value
