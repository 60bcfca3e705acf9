"""The web archive shows what readers got: not an issue waiting for approval, held or skipped."""

from __future__ import annotations

from digest import repository
from digest.pipeline import Project
from digest.web.pages import Pages
from tests.conftest import FixedClock


def test_only_issues_that_went_out_are_in_the_archive(
    example_project: Project, clock: FixedClock
) -> None:
    example_project.gather()
    pages = Pages(example_project, example_project.mailer())
    planned = example_project.plan()
    assert planned is not None and planned.issue.id is not None
    assert pages.archive("weekly", 1) is None  # planned: not public yet
    with example_project.engine.begin() as conn:
        repository.set_approval(conn, planned.issue.id, "skipped", "ed@example.com", clock())
    assert pages.archive("weekly", 1) is None
    _, report = example_project.send()
    assert report is not None
    page = pages.archive("weekly", 2)
    assert page is not None and "The Northwind Weekly" in page
    assert pages.archive("weekly", 3) is None
