"""The ``cadence`` cell of a subscriber file: which cadence a reader gets of each digest.

A cell holds words separated by blanks. ``digest:cadence`` names one digest's cadence; a bare
``cadence`` applies to every digest offering one of that name (so a project with one digest
writes ``weekly``). An empty cell says nothing: the reader keeps what they have (a new reader
gets each digest's default). Exports write only ``digest:cadence`` pairs, sorted by digest,
so they import back the same whatever the configuration adds later.

Pure: the digests and the cadences they offer are handed in (the subscriber list never reads
the digest configuration)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MAX_CELL_LENGTH = 2000
_WORD = re.compile(r"^(?:([a-z0-9][a-z0-9-]*):)?([a-z0-9][a-z0-9-]*)$")

Offered = Mapping[str, Sequence[str]]
"""Digest slug → the cadence names readers may choose (digests with a choice only)."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")


def read_cadences(cell: str, offered: Offered) -> dict[str, str] | str:
    """Digest → cadence for what ``cell`` says, or why it cannot be read (naming the word)."""
    if len(cell) > MAX_CELL_LENGTH:
        return f"the cadence cell is {len(cell)} characters long (at most {MAX_CELL_LENGTH})"
    chosen: dict[str, str] = {}
    for word in cell.split():
        match = _WORD.match(word.lower())
        if match is None:
            return f"{_shown(word)} is not a cadence (expected a name or digest:name)"
        digest, cadence = match.groups()
        if digest is not None:
            if digest not in offered:
                known = ", ".join(sorted(offered)) or "none offers a choice"
                return f"unknown digest {digest!r} in {_shown(word)} (digests: {known})"
            if cadence not in offered[digest]:
                return (
                    f"digest {digest!r} has no cadence {cadence!r} "
                    f"(it offers {', '.join(offered[digest])})"
                )
            targets: list[str] = [digest]
        else:
            targets = [d for d, names in offered.items() if cadence in names]
            if not targets:
                names = sorted({n for offer in offered.values() for n in offer})
                return f"unknown cadence {cadence!r} (offered: {', '.join(names) or 'none'})"
        for target in targets:
            if chosen.get(target, cadence) != cadence:
                return f"two cadences for digest {target!r}: {chosen[target]!r} and {cadence!r}"
            chosen[target] = cadence
    return chosen


def write_cadences(chosen: Mapping[str, str]) -> str:
    """The cell an export writes: ``digest:cadence`` pairs by digest."""
    return " ".join(f"{digest}:{chosen[digest]}" for digest in sorted(chosen))
