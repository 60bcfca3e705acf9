"""The first layer: every way a name or an address comes in refuses every hostile class
(tests/data/hostile/), saying which field or which line, and keeps what was good.

Entry points: the sign-up form (served live), CSV and JSON Lines imports, ``digest subscribers
add``, ``digest editors add``. The emails a refused sign-up would have caused are checked by
their absence; what leaves for stored values is tests/digest/send/test_hostile_send.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.app import editors, subscribers
from digest.app.wiring import Project
from digest.cli import app
from digest.errors import DigestError
from tests.conftest import Live
from tests.digest.web.conftest import csrf_of
from tests.hostile import ADDRESSES, NAMES, Hostile

DIGEST = (sys.executable, "-m", "digest")
ALL_NAMES = [pytest.param(h, id=h.kind) for h in NAMES]
ALL_ADDRESSES = [pytest.param(h, id=h.kind) for h in ADDRESSES]


def outbox_files(live: Live) -> list[Path]:
    return sorted(live.project.config.outbox_dir.rglob("*.eml"))


def sign_up(live: Live, email: str, name: str) -> tuple[int, str]:
    live.clock.now += timedelta(hours=1)  # past the sign-up limit's window: every try counts
    with live.client() as client:
        field = csrf_of(client.get("/subscribe"))
        answer = client.post(
            "/subscribe",
            data={"csrf": field, "email": email, "name": name, "topics": ["backend"]},
        )
    return answer.status_code, answer.text


def test_the_sign_up_form_refuses_every_hostile_name_and_address_by_field(live: Live) -> None:
    for hostile in NAMES:
        status, page = sign_up(live, f"{hostile.kind}@example.com", hostile.value)
        assert status == 400, hostile.kind
        error = re.search(r'<p class="error" id="name-error">([^<]*)</p>', page)
        assert error and error.group(1).startswith("Your name "), hostile.kind
        assert 'id="email-error"' not in page
        assert live.subscriber(f"{hostile.kind}@example.com") is None
    for hostile in ADDRESSES:
        status, page = sign_up(live, hostile.value, "Ann")
        assert status == 400, hostile.kind
        assert 'id="email-error">Please enter a valid email address.' in page, hostile.kind
        assert 'id="name-error"' not in page
    live.settle()
    assert outbox_files(live) == []  # no confirmation email for any of them
    status, _ = sign_up(live, "ann@example.com", "Ann Lee")
    live.settle()
    assert status == 303 and len(outbox_files(live)) == 1  # the form still works


def test_the_form_shows_no_more_of_a_huge_name_than_a_name_may_hold(live: Live) -> None:
    [huge] = [h for h in NAMES if h.kind == "huge-900kb"]
    status, page = sign_up(live, "huge@example.com", huge.value)
    assert status == 400 and "is too long (921600 characters; at most 200)" in page
    assert len(page) < 20_000


def _record_lines(rows: list[list[str]]) -> tuple[str, list[int]]:
    """CSV text of ``rows`` after a header, and the line each row starts on (as a reader of
    the file counts lines: CRLF, CR and LF each end one)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name", "topics"])
    starts = []
    for row in rows:
        starts.append(len(re.findall(r"\r\n|\r|\n", buffer.getvalue())) + 1)
        writer.writerow(row)
    return buffer.getvalue(), starts


def stored(project: Project) -> set[str]:
    return {s.email for s in subscribers.listing(project, None, None)}


def run_cli(project: Project, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(project.config.path)])
    if isinstance(result.exception, DigestError):
        return 2, str(result.exception)
    return result.exit_code, result.stdout + result.stderr


def test_a_csv_import_names_every_hostile_line_and_keeps_the_good_ones(
    example_project: Project, tmp_path: Path
) -> None:
    rows = [["good@example.com", "Good Name", "backend"]]
    rows += [[f"{h.kind}@example.com", h.value, "backend"] for h in NAMES]
    rows += [[h.value, "Ann", "backend"] for h in ADDRESSES]
    rows += [["also-good@example.com", "Also Good", "backend"]]
    text, starts = _record_lines(rows)
    path = tmp_path / "hostile.csv"
    path.write_text(text, encoding="utf-8", newline="")
    code, output = run_cli(example_project, "subscribers", "import", str(path))
    assert code == 1
    reported = [int(n) for n in re.findall(rf"{re.escape(str(path))}:(\d+):", output)]
    assert reported == starts[1:-1]
    for hostile, line in zip(NAMES, starts[1:], strict=False):
        reason = re.search(rf":{line}: ([^\n]*)", output)
        assert reason, hostile.kind
        expected = "cannot be read as CSV" if hostile.kind == "huge-900kb" else "the name "
        assert reason.group(1).startswith(expected), (hostile.kind, reason.group(1))
    kept = stored(example_project)
    assert {"good@example.com", "also-good@example.com"} <= kept
    assert not kept & {f"{h.kind}@example.com" for h in NAMES}
    assert "evil@example.com" not in kept


def test_a_json_lines_import_names_every_hostile_line(
    example_project: Project, tmp_path: Path
) -> None:
    items = [
        {"email": f"{h.kind}@example.com", "name": h.value, "topics": "backend"} for h in NAMES
    ]
    items += [{"email": h.value, "name": "Ann", "topics": "backend"} for h in ADDRESSES]
    items.append({"email": "good@example.com", "name": "Good", "topics": "backend"})
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    code, output = run_cli(example_project, "subscribers", "import", str(path))
    assert code == 1
    reported = [int(n) for n in re.findall(rf"{re.escape(str(path))}:(\d+):", output)]
    assert reported == list(range(1, len(items)))
    kept = stored(example_project)
    assert "good@example.com" in kept
    assert not kept & {f"{h.kind}@example.com" for h in NAMES}


@pytest.mark.parametrize("hostile", ALL_NAMES)
def test_subscribers_add_refuses_a_hostile_name(example_project: Project, hostile: Hostile) -> None:
    code, output = run_cli(
        example_project,
        "subscribers",
        "add",
        "ann@example.com",
        "-t",
        "backend",
        "-n",
        hostile.value,
    )
    assert code == 2 and output.startswith("--name: "), output[:200]
    assert "ann@example.com" not in stored(example_project)


@pytest.mark.parametrize("hostile", ALL_ADDRESSES)
def test_subscribers_add_refuses_a_hostile_address(
    example_project: Project, hostile: Hostile
) -> None:
    code, output = run_cli(example_project, "subscribers", "add", hostile.value, "-t", "backend")
    assert code == 2 and output.strip(), hostile.kind
    assert not {a for a in stored(example_project) if a.endswith("@example.com")}


@pytest.mark.parametrize("hostile", ALL_NAMES)
def test_editors_add_refuses_a_hostile_name(example_project: Project, hostile: Hostile) -> None:
    def no_password() -> str:
        raise AssertionError("asked for a password before refusing the name")

    with pytest.raises(DigestError, match=r"^--name: "):
        editors.add(example_project, "ed@example.com", hostile.value, no_password)


def test_the_command_line_says_it_in_one_line_with_no_traceback(example_project: Project) -> None:
    """Through the console script itself (arguments cannot carry a NUL: the other classes)."""
    for hostile in NAMES[:3]:
        args = ["add", "ann@example.com", "-t", "backend", "-n", hostile.value]
        result = subprocess.run(
            [*DIGEST, "subscribers", *args, "--config", str(example_project.config.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0 and "--name: contains a line break" in (
            result.stderr
        )
