"""Cells of the CSV files we write (persona exports, consent history, the import error report),
safe to open in a spreadsheet. One rule for every file we hand to staff."""

from __future__ import annotations

import re

# A number as a spreadsheet reads one: an optional sign, digits with an optional decimal part,
# an optional exponent. No spaces, no thousands separators, no "inf" or "nan".
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def escape_cell(value: str) -> str:
    """The text of a CSV cell we write (exports, the import error report), safe to open in a
    spreadsheet: a cell a spreadsheet would run as a formula gets a leading apostrophe.

    That is a cell starting with ``=``, ``@``, a tab or a carriage return, or starting with
    ``+`` or ``-`` unless the whole cell is a plain number: ``+12025550101``, ``-5`` and
    ``-3.5`` stay as they are, while ``+cmd``, ``-2+3`` and ``+1 202-555-0101`` (a spreadsheet
    evaluates each as a formula) are escaped. Every other cell is returned unchanged, so
    removing one leading apostrophe from an escaped cell gives back the value."""
    if not value:
        return value
    first = value[0]
    if first in ("=", "@", "\t", "\r") or (
        first in ("+", "-") and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value
