from __future__ import annotations

from pathlib import Path

from subscribers.importer import parse_csv, topic_resolver

DATA = Path(__file__).parents[1] / "data"
RESOLVE = topic_resolver(
    [
        ("backend", "Backend & Infrastructure"),
        ("ai-ml", "AI & Machine Learning"),
        ("data", "Data Engineering"),
    ]
)


def test_bad_rows_are_reported_by_line_and_good_rows_kept() -> None:
    with (DATA / "subscribers_mixed.csv").open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, RESOLVE)
    assert [(r.line, r.email, sorted(r.topics)) for r in parsed.rows] == [
        (2, "ana@example.com", ["backend"]),
        (3, "Bo.Chen@example.org", ["ai-ml", "data"]),
        (4, "cleo@example.net", ["ai-ml", "backend", "data"]),
    ]
    assert [(p.line, p.reason.split(":")[0].split(" (")[0]) for p in parsed.problems] == [
        (5, "bad address 'not-an-address'"),
        (6, "duplicate of line 3"),
        (7, "unknown topic(s)"),
        (8, "no topics"),
        (9, "the name contains a line break"),  # a quoted name over two lines: a header's end
        (12, "has 2 fields, the header has 3"),
    ]
    assert "'Gardening'" in parsed.problems[2].reason


def test_a_file_without_the_columns_is_one_problem_on_line_1() -> None:
    parsed = parse_csv(["mail,topic\n", "a@example.com,backend\n"], RESOLVE)
    assert parsed.rows == ()
    assert parsed.problems[0].line == 1 and "email, topics" in parsed.problems[0].reason
