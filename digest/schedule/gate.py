"""The approval gate: what a slot does given the digest's policy and the issue's approval.

Pure, and tested without I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from digest.lifecycle import Approval

# The approval gate (pure) -------------------------------------------------------------------


class Action(StrEnum):
    SEND = "send"
    """Send the issue now."""
    NOTIFY = "notify"
    """Ask the editors to approve it (``require``, before the slot)."""
    WAIT = "wait"
    """Nothing to do yet: before the slot (or before the approval request is due)."""
    SKIP = "skip"
    """Not approved by the slot: never sent, its posts go into the next issue."""
    HOLD = "hold"
    """Never sent by the scheduler; an editor sends it."""


def gate(policy: str, approval: str, now: datetime, slot: datetime, lead: timedelta) -> Action:
    """What the scheduler does with an issue at ``now``, for the slot it is meant for.

    An editor's decision (approved, held, skipped) wins over the digest's policy; the policy
    decides for issues nobody has looked at (``none``). The slot is the deadline: approval
    after it comes too late, and the issue is skipped rather than sent late.
    """
    if approval == Approval.SKIPPED:
        return Action.SKIP
    if approval == Approval.HELD:
        return Action.HOLD
    if now < slot - lead:
        return Action.WAIT
    if approval == Approval.APPROVED:
        return Action.SEND if now >= slot else Action.WAIT
    if approval == Approval.PENDING:
        return Action.WAIT if now < slot else Action.SKIP
    if policy == "hold":
        return Action.HOLD
    if policy == "require":
        return Action.NOTIFY if now < slot else Action.SKIP
    return Action.SEND if now >= slot else Action.WAIT
