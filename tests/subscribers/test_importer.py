from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from subscribers.importer import DELIMITERS, parse_csv, topic_resolver
from subscribers.names import name_problem

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


NAMES = st.text(max_size=30).filter(lambda n: n == n.strip() and name_problem(n) is None)
TOPIC_CELLS = st.sampled_from(["backend", "Data Engineering;ai-ml", "AI & Machine Learning|data"])


@given(
    people=st.lists(st.tuples(NAMES, TOPIC_CELLS), max_size=8),
    delimiter=st.sampled_from(DELIMITERS),
    sep_line=st.booleans(),
)
def test_a_file_reads_the_same_whichever_delimiter_a_spreadsheet_wrote(
    people: list[tuple[str, str]], delimiter: str, sep_line: bool
) -> None:
    """Names with commas, semicolons and quotes, topic cells with ``;`` and ``|``: whatever
    the delimiter, announced by ``sep=`` or found from the header, the same rows and lines."""
    text = io.StringIO()
    if sep_line:
        text.write(f"sep={delimiter}\r\n")
    writer = csv.writer(text, delimiter=delimiter)
    writer.writerow(["email", "name", "topics"])
    for n, (name, topics) in enumerate(people):
        writer.writerow([f"reader{n}@example.com", name, topics])
    parsed = parse_csv(io.StringIO(text.getvalue(), newline=""), RESOLVE)
    assert parsed.problems == ()
    expected = [
        (n + 2 + sep_line, f"reader{n}@example.com", name, topics.count(";") + topics.count("|"))
        for n, (name, topics) in enumerate(people)
    ]
    assert [(r.line, r.email, r.name, len(r.topics) - 1) for r in parsed.rows] == expected


def test_the_zone_mailchimp_guessed_is_a_guess_and_never_a_reason_to_refuse() -> None:
    """In Mailchimp's export (known by its LEID and EUID columns) TIMEZONE is where the reader
    seemed to sign up from: kept as a guess when it is a zone we know, else left out, never
    a bad row; in any other file a ``timezone`` column is not ours and says nothing."""
    header = "Email Address,TIMEZONE,LEID,EUID\n"
    parsed = parse_csv(
        [
            header,
            "a@example.com,asia/kathmandu,1,x\n",
            "b@example.com,Mars/Olympus_Mons,2,y\n",
            "c@example.com,,3,z\n",
        ],
        RESOLVE,
        topics=["data"],
    )
    assert not parsed.problems
    assert [(r.email, r.kept.time_zone, r.kept.zone_guessed) for r in parsed.rows] == [
        ("a@example.com", "Asia/Kathmandu", True),
        ("b@example.com", None, False),
        ("c@example.com", None, False),
    ]
    not_mailchimp = parse_csv(
        ["email,timezone\n", "a@example.com,Asia/Kathmandu\n"], RESOLVE, topics=["data"]
    )
    assert [r.kept.time_zone for r in not_mailchimp.rows] == [None]
    ours_too = parse_csv(
        ["email,time_zone,timezone,leid,euid\n", "a@example.com,,Asia/Kathmandu,1,x\n"],
        RESOLVE,
        topics=["data"],
    )
    assert [(r.kept.time_zone, r.kept.zone_guessed) for r in ours_too.rows] == [("", False)]
