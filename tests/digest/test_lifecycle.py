"""The issue lifecycle's rules, pure: sending by hand, and how approval is shown."""

from __future__ import annotations

import pytest

from digest.lifecycle import Approval, IssueStatus, approval_shown, why_not_sendable


@pytest.mark.parametrize(
    ("policy", "status", "approval", "refused"),
    [
        ("auto", "planned", "none", False),
        ("require", "planned", "none", True),
        ("hold", "planned", "none", True),
        ("hold", "planned", "approved", False),
        ("auto", "planned", "held", True),
        ("auto", "planned", "pending", True),
        ("hold", "sending", "none", False),  # allowed to start once: always resumed
        ("auto", "sent", "none", True),
        ("auto", "skipped", "skipped", True),
    ],
)
def test_why_not_sendable(policy: str, status: str, approval: str, refused: bool) -> None:
    assert (why_not_sendable(policy, status, approval) is not None) is refused


def test_only_a_planned_issue_waits_for_approval() -> None:
    for policy in ("require", "hold"):
        assert approval_shown(IssueStatus.PLANNED, Approval.NONE, policy)[1] == (
            "waiting for approval"
        )
        assert approval_shown(IssueStatus.SENT, Approval.NONE, policy)[1] == (
            "sent without approval"
        )
        assert approval_shown(IssueStatus.SENT, Approval.APPROVED, policy) == (
            "approved",
            "approved",
        )
    assert approval_shown(IssueStatus.SENT, Approval.NONE, "auto")[1] == "no approval needed"
