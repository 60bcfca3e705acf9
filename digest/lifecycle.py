"""An issue's lifecycle: its status, its approval, and the rules over both. Pure.

Status is what happened to the issue (planned → sending → sent, or skipped); approval is the
editors' gate on it (none, pending, approved, held, skipped). Every path that changes either
one, or sends, asks this module, so a rule lives in one place.
"""

from __future__ import annotations

from enum import StrEnum

from digest.errors import ApprovalError


class IssueStatus(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    """Not approved by its slot (or skipped by an editor): never sent, its posts free again."""

    @property
    def finished(self) -> bool:
        return self in (IssueStatus.SENT, IssueStatus.SKIPPED)


class Approval(StrEnum):
    NONE = "none"
    """No gate: made by hand, or scheduled under the ``auto`` policy."""
    PENDING = "pending"
    """Waiting for an editor; skipped when its slot passes unapproved."""
    APPROVED = "approved"
    HELD = "held"
    """Never sent by the scheduler; an editor sends it (approve in the editor app, or
    ``digest send --force``)."""
    SKIPPED = "skipped"


EDITOR_DECISIONS: dict[str, Approval] = {
    "approve": Approval.APPROVED,
    "send-now": Approval.APPROVED,
    "hold": Approval.HELD,
    "skip": Approval.SKIPPED,
}
"""What an editor's action records as the issue's approval."""


def approval_of(value: str) -> Approval:
    """The approval named by ``value``; ApprovalError naming the choices otherwise."""
    try:
        return Approval(value)
    except ValueError:
        choices = ", ".join(a.value for a in Approval)
        raise ApprovalError(
            f"unknown approval {value!r} (expected one of: {choices})", where="approval"
        ) from None


def status_after(approval: Approval) -> IssueStatus:
    """The status a planned issue has once ``approval`` is recorded: skipping finishes it,
    which frees its posts for the next issue; any other decision leaves it planned."""
    return IssueStatus.SKIPPED if approval is Approval.SKIPPED else IssueStatus.PLANNED


def why_not_editable(status: str, approval: str) -> str | None:
    """Why the issue's posts can no longer change, or None while they can.

    The readers' emails must equal what was approved, so the list is final once approved,
    once sending has started, and once the issue is finished."""
    if status == IssueStatus.SENT:
        return "it has been sent"
    if status == IssueStatus.SKIPPED or approval == Approval.SKIPPED:
        return "it was skipped"
    if status == IssueStatus.SENDING:
        return "sending has started"
    if approval == Approval.APPROVED:
        return "it is approved (hold it to change it)"
    return None


def why_no_decision(status: str) -> str | None:
    """Why an editor can no longer approve, hold or skip the issue, or None while they can:
    once sending has begun the decision was acted on, and a skipped issue's posts may already
    be in a newer issue."""
    if status in (IssueStatus.SENT, IssueStatus.SENDING):
        return "this issue is already being sent or was sent"
    if status == IssueStatus.SKIPPED:
        return "this issue was skipped"
    return None


def why_not_sendable(policy: str, status: str, approval: str) -> str | None:
    """Why an issue may not be sent by hand now, said of it ("is held"), or None when it may.
    Every way to send by hand asks this: the CLI's send, run and worker, an editor's "send
    now", the Python API.

    An issue already sending was allowed to start: the ledger finishes it exactly once, so it
    may always be resumed. Otherwise an editor's approval lets it go; an issue waiting for
    approval or held by a colleague, and one that nobody approved under a digest whose policy
    asks for approval (``require``, ``hold``), does not go: forcing it means recording the
    approval first, which the caller does. The scheduler decides with its gate
    (:mod:`digest.schedule.gate`), which adds the slot's timing to the same rule.
    """
    if status == IssueStatus.SENDING:
        return None
    if status in (IssueStatus.SENT, IssueStatus.SKIPPED):
        return f"was {status}"
    if approval == Approval.SKIPPED:
        return "was skipped"
    if approval == Approval.APPROVED:
        return None
    if approval in (Approval.PENDING, Approval.HELD):
        return f"is {approval}"
    if policy in ("require", "hold"):
        return f"is not approved (the digest's approval policy is {policy!r})"
    return None


def approval_shown(status: str, approval: str, policy: str) -> tuple[str, str]:
    """How the editor app shows an issue's approval: a badge class and its words.

    "Waiting for approval" is said only of an issue that can still be approved (planned);
    a sent one whose digest needed no approval says so, and one that went out unapproved
    (sent before its digest's policy changed) says that, instead of waiting forever."""
    if approval in (Approval.APPROVED, Approval.HELD, Approval.SKIPPED):
        return approval, approval
    if status == IssueStatus.PLANNED:
        if approval == Approval.PENDING or policy != "auto":
            return "waiting", "waiting for approval"
        return "", "no approval needed"
    return ("", "no approval needed") if policy == "auto" else ("", "sent without approval")
