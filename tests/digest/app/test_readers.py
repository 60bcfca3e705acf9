"""The web archive shows what readers got: not an issue waiting for approval, held or skipped."""

from __future__ import annotations

from digest.app import gathering, issues, sending
from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.stores.issues import set_approval
from tests.conftest import FixedClock


def test_only_issues_that_went_out_are_in_the_archive(
    example_project: Project, clock: FixedClock
) -> None:
    gathering.gather_sources(example_project)
    readers = Readers(example_project, example_project.mailer())
    planned = issues.plan(example_project, without_readers=True)
    assert planned is not None and planned.issue.id is not None
    assert readers.archive("weekly", 1) is None  # planned: not public yet
    with example_project.engine.begin() as conn:
        set_approval(conn, planned.issue.id, "skipped", "ed@example.com", clock())
    assert readers.archive("weekly", 1) is None
    _, report = sending.send(example_project, without_readers=True)
    assert report is not None
    page = readers.archive("weekly", 2)
    assert page is not None and "The Northwind Weekly" in page
    assert readers.archive("weekly", 3) is None
