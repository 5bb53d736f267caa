"""Indented JSON text for large reports, as ``json.dumps(value, indent=2)`` writes it.

The standard library writes indented JSON in pure Python, which takes over a
second for the 25 MB trace of a 1,000-plan simulation. :func:`indented` has
orjson write it (in a few tens of milliseconds) and gives the same text:

- non-ASCII characters and DEL are written as ``\\uXXXX`` escapes (surrogate pairs
  beyond the Basic Multilingual Plane), as with ``ensure_ascii=True``;
- the layout is the same: two spaces per level, ``": "`` between key and value,
  ``[]`` and ``{}`` for empty containers.

Two differences remain, both in values JSON has no single spelling for: a float
smaller than 1e-4 in magnitude is written as orjson spells it (``1e-9`` or
``0.00001`` where Python writes ``1e-09`` or ``1e-05``; the same number), and
NaN or an infinity, which JSON cannot hold (``json.dumps`` writes the
non-standard ``NaN``), is written as ``null``. A value orjson refuses (a key
that is not a string, an integer beyond 64 bits, a string with a lone
surrogate) is written by ``json.dumps``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["indented"]

_NON_ASCII = re.compile("[^\x00-\x7e]")  # json.dumps escapes DEL too


def _escaped(match: re.Match[str]) -> str:
    """The ``\\uXXXX`` escape(s) ``json.dumps`` writes for one non-ASCII character."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def indented(value: Any) -> str:
    """``value`` (JSON data) as JSON text indented by two spaces, with a final newline."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, indent=2) + "\n"
    text = raw.decode("utf-8")
    if not text.isascii() or "\x7f" in text:  # both can only be inside strings
        text = _NON_ASCII.sub(_escaped, text)
    return text
