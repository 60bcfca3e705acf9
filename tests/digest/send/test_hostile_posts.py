"""A post stored before gather bounded its fields cannot break a send.

Once, one row with a 5 MB title made the compiled email lose that card's block markers; the
size guard then raised KeyError inside the sender after two batches were leased, and the issue
stayed in 'sending' with those batches marked ambiguous though nothing had gone out.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest import db
from digest.app import sending
from digest.errors import DigestError
from digest.lifecycle import IssueStatus
from digest.models import FieldLimits, Topic
from digest.render.assemble import Cut, check_blocks
from digest.render.layout import CardView, SectionView
from digest.send import ledger, reporting
from tests.conftest import FixedClock
from tests.digest.send.test_send import project_with

HUGE = 5_000_000


def test_a_stored_post_with_huge_fields_is_sent_cut(tmp_path: Path, clock: FixedClock) -> None:
    project = project_with(tmp_path, clock)
    with project.transaction() as conn:
        newest = conn.execute(
            select(db.posts.c.id).order_by(db.posts.c.published_at.desc()).limit(1)
        ).scalar_one()
        conn.execute(
            update(db.posts)
            .where(db.posts.c.id == newest)
            .values(title="T" * HUGE, excerpt="E" * HUGE, image_alt="A" * HUGE)
        )
    planned, report = sending.send(project)
    assert planned is not None and report is not None and report.finished
    with project.reading() as conn:
        status = conn.execute(select(db.issues.c.status)).scalar_one()
        counts = reporting.counts(conn, report.issue_id)
    assert status == IssueStatus.SENT and counts == {ledger.SUBMITTED: 29}

    folder = sending.outbox_folder(project, planned.issue)
    assert folder is not None
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 29
    shown = 0
    for path in files:
        raw = path.read_bytes()
        assert len(raw) < 300_000, f"{path.name} is {len(raw)} bytes"
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        for part in message.walk():
            if part.get_content_maintype() == "text":
                text = part.get_content()
                assert "T" * (FieldLimits.TITLE + 1) not in text
                assert "E" * (FieldLimits.EXCERPT + 1) not in text
                assert "A" * (FieldLimits.ALT + 1) not in text
                shown += "T" * (FieldLimits.TITLE - 1) + "…" in text
    assert shown > 0, "the cut title is in the emails of the readers of its topic"


def card(post_id: int) -> CardView:
    return CardView(post_id, "t", "https://x.example/", "e", None, "1 Nov", 1, None)


def test_a_block_lost_in_compiling_is_an_error_before_sending() -> None:
    sections = [SectionView(Topic("all", "All"), (card(1), card(2)))]
    endings = {"topic-end:all": "", "topic-collapsed:all": "", "rest:topics": ""}
    intact = Cut("<!--digest:sections-->", {"topic:all": "", "card:1": "", "card:2": "", **endings})
    check_blocks(intact, sections)
    lost = Cut("<!--digest:sections-->", {"topic:all": "", "card:1": "", **endings})
    with pytest.raises(DigestError, match=r"lost 1 of its blocks \(card:2\)"):
        check_blocks(lost, sections)
