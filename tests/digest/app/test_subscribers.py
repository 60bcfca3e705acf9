"""The subscriber use cases the CLI calls, on SQLite and PostgreSQL: read a file, import it,
export, add, unsubscribe, list and count."""

from __future__ import annotations

import codecs
import io
import json
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from digest.app import subscribers
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import DigestError
from subscribers import tables
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock
from tests.disks import tmpfs


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    return Project.open(example_config, clock=clock, engine=engine)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_is_read_by_its_suffix_and_its_bad_rows_kept_as_problems(
    project: Project, tmp_path: Path
) -> None:
    csv = write(tmp_path / "a.csv", "email,name,topics\nA@example.com,A,Frontend\nbroken,B,data\n")
    parsed = subscribers.read_file(project, csv)
    assert [(r.email, r.topics) for r in parsed.rows] == [
        ("A@example.com", frozenset({"frontend"}))
    ]
    assert [p.line for p in parsed.problems] == [3]
    jsonl = write(tmp_path / "b.jsonl", json.dumps({"email": "b@example.com", "topics": ["data"]}))
    assert [r.email for r in subscribers.read_file(project, jsonl).rows] == ["b@example.com"]
    with pytest.raises(DigestError, match="no such file"):
        subscribers.read_file(project, tmp_path / "missing.csv")
    with pytest.raises(DigestError, match="cannot read: Is a directory"):
        subscribers.read_file(project, tmp_path)
    broken = tmp_path / "broken.txt"
    broken.write_bytes(codecs.BOM_UTF16_LE + "email\tname\ttopics\r\n".encode("utf-16-le")[:-1])
    with pytest.raises(DigestError, match="not UTF-16 text, though it starts as such"):
        subscribers.read_file(project, broken)


def test_a_file_in_another_encoding_is_refused_by_line_unless_its_encoding_is_named(
    project: Project, tmp_path: Path
) -> None:
    """Never guessed (a wrong guess imports wrong names silently); the error names the line
    and, for what reads as Windows' code page, the option that reads it."""
    rows = "".join(f"r{n}@example.com,R,data\n" for n in range(3000))  # past a read's chunk
    windows = tmp_path / "windows.csv"
    windows.write_bytes(f"email,name,topics\n{rows}z@example.com,Zoë ‘Z’,data\n".encode("cp1252"))
    with pytest.raises(DigestError, match=r"not UTF-8 text \(line 3002: .*--encoding cp1252") as e:
        subscribers.read_file(project, windows)
    assert e.value.where == str(windows)
    parsed = subscribers.read_file(project, windows, encoding="Windows-1252")
    assert parsed.rows[-1].name == "Zoë ‘Z’"
    assert not parsed.problems

    neither = tmp_path / "neither.csv"
    neither.write_bytes(b"email,name,topics\nz@example.com,\x81\xff,data\n")
    with pytest.raises(DigestError) as e:
        subscribers.read_file(project, neither)
    assert "line 2" in e.value.message and "cp1252" not in e.value.message
    with pytest.raises(DigestError, match=r"not cp1252 text \(line 2: ") as e:
        subscribers.read_file(project, neither, encoding="cp1252")
    with pytest.raises(DigestError, match="unknown encoding 'klingon'") as e:
        subscribers.read_file(project, neither, encoding="klingon")
    assert e.value.where == "--encoding"

    marked = write(tmp_path / "marked.csv", "\ufeffemail,name,topics\na@example.com,Å,data\n")
    assert [r.name for r in subscribers.read_file(project, marked, encoding="UTF8").rows] == ["Å"]


SPREADSHEETS = Path(__file__).parents[2] / "data" / "spreadsheets"


@pytest.mark.parametrize(
    ("file", "bad_line"),
    [
        ("excel_semicolons.csv", 3),  # where the comma is the decimal mark
        ("excel_semicolons_sep_line.csv", 4),  # with the line Excel reads its delimiter from
        ("excel_unicode_text.txt", 3),  # "Unicode text": UTF-16 LE, tabs
        ("unicode_text_big_endian.txt", 3),
        ("excel_windows_code_page.csv", 3),  # "CSV (Comma delimited)": cp1252, named
    ],
)
def test_what_spreadsheets_save_is_read_as_it_was_meant(
    project: Project, file: str, bad_line: int
) -> None:
    encoding = "cp1252" if "code_page" in file else None
    parsed = subscribers.read_file(project, SPREADSHEETS / file, encoding=encoding)
    assert [(r.email, r.name, r.topics) for r in parsed.rows] == [
        ("juergen@example.de", "Jürgen Müller", frozenset({"backend", "data"})),
        ("chloe@example.fr", "Chloé Dubois", frozenset({"frontend"})),
    ]
    assert [(p.line, p.reason.split(":")[0]) for p in parsed.problems] == [
        (bad_line, "bad address 'not-an-address'")
    ]
    summary = subscribers.import_file(project, parsed, file, dry_run=False)
    assert summary.added == 2


def test_a_mailchimp_export_imports_with_its_topics_given_and_its_suppressed_kept_so(
    project: Project,
) -> None:
    """Its three files as they come: the subscribed are added active, the unsubscribed and
    the cleaned are kept from mail (and a known address in them is suppressed), names joined
    from first and last, and the zone Mailchimp guessed given to those who have none."""
    subscribers.add(project, "ana@example.com", "Ana", "data")
    subscribers.add(project, "chloe@example.fr", "Chloé", "backend", time_zone="America/Toronto")
    read = {
        part: subscribers.read_file(
            project, SPREADSHEETS / f"mailchimp_{part}_members.csv", "Backend & Infrastructure"
        )
        for part in ("subscribed", "unsubscribed", "cleaned")
    }
    assert [(p.line, p.reason.split(":")[0]) for p in read["subscribed"].problems] == [
        (4, "bad address 'no-at-sign.example.com'")
    ]
    for part, parsed in read.items():
        subscribers.import_file(project, parsed, part, dry_run=False)
    found = {s.email: s for s in subscribers.listing(project, None, None)}
    assert {e: (s.name, s.status, set(s.topics), s.time_zone) for e, s in found.items()} == {
        "juergen@example.de": ("Jürgen Müller", Status.ACTIVE, {"backend"}, "Europe/Berlin"),
        "chloe@example.fr": ("Chloé", Status.ACTIVE, {"backend"}, "America/Toronto"),  # hers
        "left@example.org": ("Lee Left", Status.UNSUBSCRIBED, {"backend"}, None),
        "ana@example.com": ("Ana", Status.UNSUBSCRIBED, {"data"}, None),  # suppressed, as she was
        "gone@example.net": ("Gone Away", Status.BOUNCED, {"backend"}, None),
    }
    with project.transaction() as conn:
        SubscriberStore(conn).set_time_zone(found["chloe@example.fr"].id, None, project.clock())
    again = subscribers.import_file(project, read["subscribed"], "again", dry_run=False)
    assert (again.updated, again.unchanged) == (1, 1)
    found = {s.email: s for s in subscribers.listing(project, None, None)}
    assert found["chloe@example.fr"].time_zone == "Europe/Paris"  # had none: the guess
    without = subscribers.read_file(project, SPREADSHEETS / "mailchimp_subscribed_members.csv")
    assert [p.reason for p in without.problems] == [
        "header lacks column(s) topics; expected columns email, name, topics"
    ]
    own = subscribers.read_file(project, SPREADSHEETS / "excel_semicolons.csv", "data")
    assert [p.reason for p in own.problems] == [
        "the file has a topics column of its own; topics for every row are for a file without one"
    ]
    with pytest.raises(DigestError, match=r"--topics: unknown topic\(s\) gardening"):
        subscribers.read_file(project, SPREADSHEETS / "excel_semicolons.csv", "gardening")


def test_each_readers_interests_come_from_the_column_another_tool_keeps_them_in(
    project: Project,
) -> None:
    """A Mailchimp group lists the interests each reader picked, separated by commas: with
    its column named they become the readers' topics, --topics going to those who picked
    none, and an interest that is no topic here is a bad row naming it."""
    file = SPREADSHEETS / "mailchimp_members_with_groups.csv"
    parsed = subscribers.read_file(
        project, file, "security", topics_column="What would you like to read about?"
    )
    assert [(r.email, r.name, sorted(r.topics)) for r in parsed.rows] == [
        ("ines@example.pt", "Inês Costa", ["backend", "data"]),
        ("ravi@example.in", "Ravi Kumar", ["frontend"]),
        ("sam@example.com", "Sam", ["security"]),
    ]
    assert [(p.line, p.reason) for p in parsed.problems] == [(5, "unknown topic(s): 'Gardening'")]
    subscribers.import_file(project, parsed, file.name, dry_run=False)
    zones = {s.email: s.time_zone for s in subscribers.listing(project, None, None)}
    assert zones == {
        "ines@example.pt": "Europe/Lisbon",
        "ravi@example.in": "Asia/Kolkata",
        "sam@example.com": None,
    }

    no_fallback = subscribers.read_file(
        project, file, topics_column="WHAT WOULD YOU LIKE TO READ ABOUT?"
    )
    first = no_fallback.problems[0]
    assert (first.line, first.reason) == (4, "no topics")
    wrong = subscribers.read_file(project, file, topics_column="Interests")
    assert [p.line for p in wrong.problems] == [1]
    assert wrong.problems[0].reason.startswith(
        "no column 'Interests'; the header has 'Email Address', 'First Name', 'Last Name', "
        "'What would you like to read about?',"
    )


def test_a_ghost_members_export_imports_with_its_labels_and_who_gets_no_email(
    project: Project,
) -> None:
    """Ghost's export as it comes: labels as topics, members who get no email (its
    ``subscribed_to_emails`` false) kept unsubscribed, its dates kept, and a flag that is
    neither true nor false refused by line, as an unknown status is."""
    file = SPREADSHEETS / "ghost_members.csv"
    parsed = subscribers.read_file(project, file, "data", topics_column="labels")
    assert [(p.line, p.reason) for p in parsed.problems] == [
        (5, "subscribed_to_emails 'maybe' is neither true nor false")
    ]
    subscribers.import_file(project, parsed, file.name, dry_run=False)
    found = {s.email: s for s in subscribers.listing(project, None, None)}
    assert {e: (s.name, s.status, sorted(s.topics)) for e, s in found.items()} == {
        "maya@example.org": ("Maya Okafor", Status.ACTIVE, ["backend", "security"]),
        "tom@example.org": ("Tom Berg", Status.UNSUBSCRIBED, ["frontend"]),
        "lin@example.org": ("Lin Wei", Status.ACTIVE, ["data"]),
    }
    with project.reading() as conn:
        created = conn.execute(
            select(tables.subscribers.c.created_at).where(
                tables.subscribers.c.email == "maya@example.org"
            )
        ).scalar_one()
    assert created.replace(tzinfo=UTC) == datetime(2023, 2, 14, 10, 11, 12, tzinfo=UTC)


def test_an_export_is_written_whole_or_not_at_all(project: Project, tmp_path: Path) -> None:
    people = "".join(f"reader{n}@example.com,Reader {n},data\n" for n in range(60))
    listed = write(tmp_path / "list.csv", "email,name,topics\n" + people)
    subscribers.import_file(project, subscribers.read_file(project, listed), "list", False)
    with pytest.raises(DigestError, match=r"missing/out\.csv: cannot write: No such file"):
        subscribers.export(project, tmp_path / "missing" / "out.csv")
    with tmpfs(tmp_path / "disk", "64k") as disk:
        target = disk.path / "export.csv"
        target.write_bytes(b"the previous export\n")
        disk.fill(leave_bytes=1024)
        with pytest.raises(DigestError, match=r"export\.csv: cannot write: No space left"):
            subscribers.export(project, target)
        assert target.read_bytes() == b"the previous export\n"
        assert sorted(p.name for p in disk.path.iterdir()) == ["export.csv", "filler"]
        disk.grow()
        assert subscribers.export(project, target) == 60
        # Marked as UTF-8 for a spreadsheet opened with a double click; read back the same.
        assert target.read_bytes().startswith(codecs.BOM_UTF8 + b"email,name,status,")
        assert len(subscribers.read_file(project, target).rows) == 60


def test_an_upload_is_kept_whole_under_a_random_name_for_an_hour(
    project: Project, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the editor app keeps between checking a file and importing it: never more than
    the limit, never a part of a file (a full disk, a file too big), only names uploads are
    given, and nothing after an hour."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    body = b"email,name,topics\n" + b"".join(
        b"reader%d@example.com,R,data\n" % n for n in range(2000)
    )
    name = subscribers.keep_upload(project, io.BytesIO(body), "list.CSV", len(body))
    assert re.fullmatch(r"\d+-[A-Za-z0-9_-]{24}\.csv", name)
    assert subscribers.kept_upload(project, name).read_bytes() == body
    folder = subscribers.upload_folder(project)
    assert folder.parent == tmp_path and folder.stat().st_mode & 0o777 == 0o700
    with pytest.raises(subscribers.UploadTooLarge, match=r"list\.csv: the file is larger than 0"):
        subscribers.keep_upload(project, io.BytesIO(body), "list.csv", len(body) - 1)
    assert [p.name for p in folder.iterdir()] == [name]
    for forged in ("../list.csv", name + "/", "/etc/passwd", name.replace(".csv", ".csv.x")):
        with pytest.raises(DigestError, match="no longer kept"):
            subscribers.kept_upload(project, forged)
    subscribers.drop_upload(project, "../" + name)
    assert [p.name for p in folder.iterdir()] == [name]

    with subscribers.claimed_upload(project, name) as claimed:
        assert claimed.read_bytes() == body and claimed.suffix == ".csv"
        with pytest.raises(DigestError, match="imported once"):  # a double click
            subscribers.claimed_upload(project, name).__enter__()
        for taken in (name, claimed.name):
            with pytest.raises(DigestError, match="no longer kept"):
                subscribers.kept_upload(project, taken)
        subscribers.drop_upload(project, claimed.name)
        assert claimed.exists()
    assert [p.name for p in folder.iterdir()] == []
    name = subscribers.keep_upload(project, io.BytesIO(body), "list.csv", len(body))
    # The import failed: the upload is kept again, to try once more.
    with (
        pytest.raises(DigestError, match="the database"),
        subscribers.claimed_upload(project, name),
    ):
        raise DigestError("the database is gone")
    assert [p.name for p in folder.iterdir()] == [name]

    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(DigestError, match="no longer kept"):
        subscribers.kept_upload(project, name)
    odd = subscribers.keep_upload(project, io.BytesIO(b"{}"), "../../x.exe", 10)
    assert odd.endswith(".csv") and [p.name for p in folder.iterdir()] == [odd]

    with tmpfs(tmp_path / "disk", "64k") as disk:
        monkeypatch.setattr(tempfile, "tempdir", str(disk.path))
        disk.fill(leave_bytes=8192)
        with pytest.raises(DigestError, match="cannot keep the uploaded file: No space left"):
            subscribers.keep_upload(project, io.BytesIO(body), "list.csv", len(body))
        assert [p.name for p in subscribers.upload_folder(project).iterdir()] == []


def test_import_dry_run_changes_nothing_and_export_round_trips(
    project: Project, tmp_path: Path
) -> None:
    csv = write(tmp_path / "a.csv", "email,name,topics\na@example.com,A,Frontend;Data\n")
    parsed = subscribers.read_file(project, csv)
    assert subscribers.import_file(project, parsed, str(csv), dry_run=True).added == 1
    assert subscribers.listing(project, None, None) == []
    assert subscribers.import_file(project, parsed, str(csv), dry_run=False).added == 1
    exported = tmp_path / "out.csv"
    assert subscribers.export(project, exported) == 1
    again = subscribers.read_file(project, exported)
    assert subscribers.import_file(project, again, str(exported), dry_run=False).unchanged == 1


def test_an_export_of_a_digest_without_cadences_names_none(
    project: Project, tmp_path: Path
) -> None:
    """Cadences turned off leave readers a row of the one schedule (''), which a cadence cell
    cannot name: the export leaves it out and the file imports back."""
    reader = subscribers.add(project, "off@example.com", "", "data")
    with project.transaction() as conn:
        conn.execute(
            insert(tables.reader_cadences).values(
                subscriber_id=reader.id, digest="weekly", cadence="", changed_at=project.clock()
            )
        )
    exported = tmp_path / "out.csv"
    assert subscribers.export(project, exported) == 1
    assert "weekly:" not in exported.read_text(encoding="utf-8")
    again = subscribers.read_file(project, exported)
    assert not again.problems
    assert subscribers.import_file(project, again, str(exported), dry_run=False).unchanged == 1


def test_add_unsubscribe_list_and_stats(project: Project) -> None:
    added = subscribers.add(project, "New@Example.com", "New", "Frontend|data")
    assert (added.email, added.topics) == ("New@example.com", frozenset({"frontend", "data"}))
    with pytest.raises(DigestError, match="is already a subscriber"):
        subscribers.add(project, "new@example.com", "", "frontend")
    with pytest.raises(DigestError, match=r"unknown topic\(s\) Cooking; known: backend"):
        subscribers.add(project, "other@example.com", "", "Cooking")
    with pytest.raises(DigestError, match="none given"):
        subscribers.add(project, "other@example.com", "", " ; ")
    with pytest.raises(DigestError, match="must have an @-sign"):
        subscribers.add(project, "nobody", "", "data")
    subscribers.add(project, "second@example.com", "", "security")
    assert [s.email for s in subscribers.listing(project, None, "data")] == ["New@example.com"]
    assert subscribers.unsubscribe(project, "new@example.com").status is Status.UNSUBSCRIBED
    with pytest.raises(DigestError, match="is not a subscriber"):
        subscribers.unsubscribe(project, "nobody@example.com")
    unsubscribed = subscribers.listing(project, Status.UNSUBSCRIBED, None)
    assert [s.email for s in unsubscribed] == ["New@example.com"]
    per_status, per_topic = subscribers.stats(project)
    assert per_status == {"active": 1, "unsubscribed": 1}
    assert per_topic == {"security": 1}
