"""The ``cadence`` and ``time_zone`` columns of a subscriber file: what a cell may say, and
a bad cell reported by its line while the good rows are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.cadences import MAX_CELL_LENGTH, read_cadences, write_cadences
from subscribers.importer import parse_csv, topic_resolver
from subscribers.zones import canonical_zone, zone_problem

DATA = Path(__file__).parent.parent / "data"
OFFERED = {"weekly": ["daily", "weekly", "monthly"], "news": ["daily", "weekly"]}
RESOLVE = topic_resolver([("backend", "Backend"), ("data", "Data")])


@pytest.mark.parametrize(
    ("cell", "chosen"),
    [
        ("", {}),
        ("monthly", {"weekly": "monthly"}),
        ("daily", {"weekly": "daily", "news": "daily"}),  # every digest offering it
        ("weekly:monthly news:weekly", {"weekly": "monthly", "news": "weekly"}),
        ("  WEEKLY:Daily\t", {"weekly": "daily"}),
        ("daily news:daily", {"weekly": "daily", "news": "daily"}),
    ],
)
def test_cells_name_cadences_per_digest(cell: str, chosen: dict[str, str]) -> None:
    assert read_cadences(cell, OFFERED) == chosen


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("hourly", "unknown cadence 'hourly'"),
        ("news:monthly", "digest 'news' has no cadence 'monthly' (it offers daily, weekly)"),
        ("other:daily", "unknown digest 'other'"),
        ("daily news:weekly", "two cadences for digest 'news'"),
        ("daily\x00", "is not a cadence"),
        ("../../etc/passwd", "is not a cadence"),
        ("d" * (MAX_CELL_LENGTH + 1), f"at most {MAX_CELL_LENGTH}"),
    ],
)
def test_bad_cells_say_why(cell: str, problem: str) -> None:
    said = read_cadences(cell, OFFERED)
    assert isinstance(said, str) and problem in said and len(said) < 200


@given(
    st.dictionaries(st.sampled_from(sorted(OFFERED)), st.just("")).flatmap(
        lambda ds: st.fixed_dictionaries({d: st.sampled_from(OFFERED[d]) for d in ds})
    )
)
def test_what_an_export_writes_reads_back(chosen: dict[str, str]) -> None:
    assert read_cadences(write_cadences(chosen), OFFERED) == chosen


@pytest.mark.parametrize(
    "zone",
    ["../../etc/passwd", "Europe/Berlin\r\nX:", "/etc/localtime", "Z" * 100_000, "Etc/../UTC"],
)
def test_hostile_zones_name_no_zone(zone: str) -> None:
    assert canonical_zone(zone) is None
    problem = zone_problem(zone)
    assert problem is not None and len(problem) < 150 and "\n" not in problem


def test_a_file_keeps_its_good_rows_and_reports_each_bad_cell_by_line() -> None:
    with (DATA / "subscribers_cadences.csv").open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, RESOLVE, OFFERED)
    good = {r.email: (dict(r.kept.cadences), r.kept.time_zone) for r in parsed.rows}
    assert good == {
        "ann@example.com": ({"weekly": "daily", "news": "daily"}, "Europe/Berlin"),
        "bob@example.com": ({"weekly": "monthly", "news": "weekly"}, ""),
        "cy@example.com": ({}, "Asia/Kathmandu"),
        "jo@example.com": ({"weekly": "monthly"}, "Pacific/Chatham"),
    }
    problems = {p.line: p.reason for p in parsed.problems}
    assert sorted(problems) == [5, 6, 7, 8, 9, 11]
    assert "unknown cadence 'hourly'" in problems[5]
    assert "two cadences for digest 'weekly'" in problems[6]
    assert "time_zone '../../etc/passwd' is not a time zone" in problems[7]
    assert "unknown digest 'other'" in problems[8]
    assert "'X:' is not a cadence" in problems[9]
    assert "time_zone 'Europe/Berlin\\r\\nX:' is not a time zone" in problems[11]


def test_a_file_without_the_columns_says_nothing_of_cadence_or_zone() -> None:
    parsed = parse_csv(["email,topics\n", "a@example.com,backend\n"], RESOLVE, OFFERED)
    (row,) = parsed.rows
    assert row.kept.cadences == {} and row.kept.time_zone is None
