"""Exported CSV cannot run in a spreadsheet, and still imports back to the same subscribers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from digest.app.wiring import Project
from digest.config import Config, load_config
from digest.scaffold import scaffold
from subscribers.cells import TRIGGERS, guard, unguard
from subscribers.exporter import COLUMNS, write_csv
from subscribers.importer import parse_csv
from subscribers.names import name_problem
from subscribers.store import SubscriberStore
from tests.conftest import DATA, FixedClock
from tests.subscribers.test_import_export import run

SLUGS = ("backend", "data", "frontend")


def resolve(text: str) -> str | None:
    return text if text in SLUGS else None


def opens_a_formula(cell: str) -> bool:
    return cell.startswith(TRIGGERS)


@given(st.text())
def test_the_guard_comes_off_exactly(cell: str) -> None:
    assert unguard(guard(cell)) == cell
    assert not opens_a_formula(guard(cell))


def test_only_cells_a_spreadsheet_would_run_are_guarded() -> None:
    assert guard("Ann") == "Ann" and guard("") == "" and guard("'Tis") == "'Tis"
    assert guard("=1+1") == "'=1+1" and guard("'=1+1") == "''=1+1"
    assert [guard(t + "x") for t in TRIGGERS] == ["'" + t + "x" for t in TRIGGERS]
    assert unguard("'Tis") == "'Tis" and unguard("'=1+1") == "=1+1"


# What the importer reads back is a name without whitespace around it (it strips names), but
# a name may open with anything a spreadsheet runs, after any number of apostrophes.
cores = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")).filter(
    lambda s: s == s.strip()
)
names = st.builds(
    lambda quotes, trigger, core: "'" * quotes + trigger + core,
    st.integers(0, 2),
    st.sampled_from(["", *TRIGGERS]),
    cores,
).filter(lambda name: name == name.rstrip() and name_problem(name) is None)
"""Names a reader may have (the name rule refuses line breaks and other controls, so a cell
that starts with a tab or CR is an address's, never a stored name's)."""
locals_ = st.from_regex(r"['=+\-]{0,3}[a-z0-9]{1,12}", fullmatch=True)
people = st.lists(
    st.tuples(locals_, names, st.sets(st.sampled_from(SLUGS), min_size=1)),
    max_size=12,
    unique_by=lambda person: person[0],
)


@given(people)
def test_an_export_imports_back_to_the_same_data(
    people: list[tuple[str, str, set[str]]],
) -> None:
    items = [
        dict.fromkeys(COLUMNS, "")
        | {"email": f"{local}@example.com", "name": name, "topics": sorted(topics)}
        for local, name, topics in people
    ]
    handle = io.StringIO(newline="")
    write_csv(items, handle)
    exported = handle.getvalue()
    for row in csv.reader(io.StringIO(exported, newline="")):
        assert not any(opens_a_formula(cell) for cell in row), row
    parsed = parse_csv(io.StringIO(exported, newline=""), resolve)
    assert parsed.problems == ()
    assert [(r.email, r.name, set(r.topics)) for r in parsed.rows] == [
        (f"{local}@example.com", name, topics) for local, name, topics in people
    ]


def stored(project: Project) -> list[tuple[str, str, str, frozenset[str]]]:
    with project.engine.connect() as conn:
        return sorted(
            (s.email, s.name, s.status.value, s.topics) for s in SubscriberStore(conn).iterate()
        )


def test_formulas_in_names_and_addresses_leave_the_cli_export_inert(
    example_config: Config, clock: FixedClock, tmp_path: Path, environ: dict[str, str]
) -> None:
    first = Project.open(example_config, clock=clock)
    code, _, stderr = run(
        first.config, "subscribers", "import", str(DATA / "subscribers_formulas.csv")
    )
    assert code == 0, stderr
    exported = tmp_path / "export.csv"
    assert run(first.config, "subscribers", "export", str(exported))[0] == 0
    raw = exported.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert len(rows) == 14
    for row in rows:
        assert not any(opens_a_formula(cell) for cell in row), row
    assert b"'=HYPERLINK(" in raw and b"'=cmd@example.com" in raw and b",'Tis Herself," in raw

    second = Project.open(load_config(scaffold(tmp_path / "second"), environ), clock=clock)
    code, _, stderr = run(second.config, "subscribers", "import", str(exported))
    assert code == 0, stderr
    assert stored(second) == stored(first)
    again = tmp_path / "again.csv"
    run(second.config, "subscribers", "export", str(again))
    kept = ("email", "name", "status", "topics")  # the source names the file imported
    assert [
        [r[k] for k in kept] for r in csv.DictReader(again.open(encoding="utf-8-sig", newline=""))
    ] == [
        [r[k] for k in kept]
        for r in csv.DictReader(exported.open(encoding="utf-8-sig", newline=""))
    ]
