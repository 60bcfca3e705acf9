"""The first hour with a new project, through the real `digest` command (Typer's runner):
init's next steps, --config on either side of the command, what send says before anything
was gathered, planning with nobody to send to, a weak signing secret, a bad subject template,
the issue commands and the editor's note."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from digest import db
from digest.app import gathering, sending
from digest.app.wiring import Project
from digest.cli import app
from digest.cli.issues import print_sent
from digest.config import load_config
from digest.errors import DigestError
from digest.scaffold import scaffold
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW
from tests.disks import tmpfs

DATA = Path(__file__).parents[2] / "data" / "cli"
SOURCES = Path(__file__).parents[2] / "data" / "sources"
STRONG = "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
ENV = {"DIGEST_SECRET_KEY": STRONG, "COLUMNS": "200"}


def digest(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit code and output, words joined; a DigestError as `digest`'s main() shows it (one
    line, exit 2), anything else raised is a bug and fails the test."""
    result = CliRunner().invoke(app, list(args), env=env or ENV)
    if isinstance(result.exception, DigestError):
        return 2, " ".join(f"{result.output} error: {result.exception}".split())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return scaffold(tmp_path / "site")


def test_init_prints_next_steps_that_work_as_printed(tmp_path: Path) -> None:
    """The printed commands are run as printed (the config before the command), in a
    subprocess: the first issue goes out."""
    folder = tmp_path / "mysite"
    code, text = digest("init", str(folder))
    assert code == 0
    assert f"digest --config {folder / 'digest.toml'} run" in text
    assert f"subscribers import {folder / 'subscribers.csv'}" in text
    assert "secrets.token_urlsafe(32)" in text
    assert (folder / ".gitignore").read_text(encoding="utf-8").startswith("# What digest writes")
    assert "make_images.py" not in (folder / "README.md").read_text(encoding="utf-8")
    steps = [
        line.strip()
        for line in CliRunner().invoke(app, ["init", str(tmp_path / "b")]).output.splitlines()
    ]
    commands = [s for s in steps if s.startswith("digest ")]
    assert len(commands) == 2
    env = {"DIGEST_SECRET_KEY": STRONG, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "digest", *command.split()[1:]],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    assert "Emails submitted: 29" in " ".join(done.stdout.split())


def test_init_inside_a_checkout_says_so(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    result = CliRunner().invoke(app, ["init", str(tmp_path / "mysite")], env=ENV)
    assert result.exit_code == 0
    assert f"is inside the git checkout {tmp_path}" in " ".join(result.output.split())


def test_config_works_before_and_after_the_command(site: Path) -> None:
    before = digest("--config", str(site), "schedule", "list")
    after = digest("schedule", "list", "--config", str(site))
    assert before[0] == after[0] == 0
    assert "Mondays at 08:00, Europe/Berlin" in before[1]
    assert before[1] == after[1]
    nowhere = digest("schedule", "list")
    assert nowhere[0] == 2 and "digest.toml: no such file" in nowhere[1]


def test_send_before_any_gather_says_nothing_was_gathered(site: Path) -> None:
    for args in (["send"], ["send", "--dry-run"], ["plan"]):
        code, text = digest("--config", str(site), *args)
        assert code == 0
        assert text.startswith("Nothing gathered yet for this digest (run `digest gather` first")
    assert digest("--config", str(site), "gather")[0] == 0
    code, text = digest("--config", str(site), "send")
    assert code == 2
    assert "issue 1 would go to nobody: no active subscriber follows" in text
    # Every new post (19): the issue holds them all, each email caps its topics.
    assert "Its 19 posts stay new for the next issue" in text
    code, text = digest("--config", str(site), "issues", "list")
    assert "has no issues yet" in text  # nothing was planned, nothing used up
    code, text = digest("--config", str(site), "plan", "--without-readers")
    assert code == 0 and "Issue 1 of weekly (planned now)" in text


@pytest.mark.parametrize(
    "key",
    [
        "test-secret-key-not-for-production",  # 34 typed characters
        "k" * 64,
        "abcd" * 16,
        "0123456789abcdef" * 2,  # 32 hex characters: 16 bytes
    ],
)
def test_a_weak_signing_secret_is_refused_with_a_clear_message(site: Path, key: str) -> None:
    digest("--config", str(site), "subscribers", "import", str(site.parent / "subscribers.csv"))
    code, text = digest("--config", str(site), "run", env={"DIGEST_SECRET_KEY": key})
    assert code == 2
    assert "error: DIGEST_SECRET_KEY is too weak to sign links:" in text
    assert "needs 256 (32 random bytes)" in text
    assert digest("--config", str(site), "issues", "list")[1].endswith("makes the first.")


def test_a_subject_naming_an_unknown_variable_fails_at_load(site: Path) -> None:
    text = site.read_text(encoding="utf-8").replace(
        "max_posts_per_topic = 4",
        'max_posts_per_topic = 4\nsubject = "{{ post_count }} posts from {{ site_name }}"',
    )
    site.write_text(text, encoding="utf-8")
    code, out = digest("--config", str(site), "plan")
    assert code == 2
    assert f"error: {site}: digests[0].subject: unknown variable 'site_name'" in out
    assert "it may use post_count, topic_names" in out


def test_the_issue_commands_list_show_decide_exclude_and_preflight(site: Path) -> None:
    c = ("--config", str(site))
    digest(*c, "subscribers", "import", str(site.parent / "subscribers.csv"))
    digest(*c, "gather")
    assert digest(*c, "plan")[0] == 0
    code, text = digest(*c, "issues", "list")
    assert code == 0 and "│ 1 │ planned │ no approval needed" in text
    code, text = digest(*c, "issues", "show", "1")
    assert "Status: planned; approval: no approval needed" in text
    assert "Graceful Shutdown on Kubernetes Is Harder Than It Looks" in text
    config = load_config(site, ENV)
    assert config.digests[0].slug == "weekly"
    assert digest(*c, "issues", "exclude", "1", "4") == (0, "Post 4 is left out of issue 1.")
    assert "left out" in digest(*c, "issues", "show", "1")[1]
    code, text = digest(*c, "issues", "note", "1", "Hello <b>readers</b> [bold]all[/]")
    assert code == 0
    assert (
        "Editor's note: Hello <b>readers</b> [bold]all[/]" in digest(*c, "issues", "show", "1")[1]
    )
    assert digest(*c, "issues", "hold", "1", "--note", "wait")[1] == (
        "Held issue 1: it will not be sent until someone approves it."
    )
    assert "approval: held by" in digest(*c, "issues", "show", "1")[1]
    assert digest(*c, "issues", "approve", "1")[0] == 0
    code, text = digest(*c, "issues", "exclude", "1", "5")
    assert code == 2 and "this issue can no longer change: it is approved" in text
    code, text = digest(*c, "issues", "note", "1", "changed")
    assert code == 2 and "it is approved (hold it to change it)" in text
    code, text = digest(*c, "issues", "preflight", "1")
    assert "Preflight of issue 1, Backend & Infrastructure + AI & Machine Learning" in text
    assert "image from this machine (localhost)" in text  # published, but under localhost
    code, text = digest(*c, "issues", "show", "9")
    assert code == 2 and "weekly has no issue 9" in text


def test_a_worker_whose_issue_is_finished_does_not_say_unfinished(site: Path) -> None:
    c = ("--config", str(site))
    digest(*c, "subscribers", "import", str(site.parent / "subscribers.csv"))
    code, text = digest(*c, "run")
    assert code == 0 and "Emails submitted: 29" in text and "unfinished" not in text
    assert digest(*c, "worker") == (0, "No unfinished issue: nothing to do.")


def test_help_and_errors_show_brackets_as_written(tmp_path: Path) -> None:
    """Rich markup used to eat `[[editor.users]]` in help and the slug pattern in errors."""
    code, text = digest("editors", "hash", "--help")
    assert code == 0 and "Print a password hash for `[[editor.users]]` in digest.toml" in text
    bad = tmp_path / "digest.toml"
    bad.write_text((DATA / "bad_slug.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "digest", "plan", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {bad}: topics[0].slug: string should match pattern "
        "'^[a-z0-9]+(?:-[a-z0-9]+)*$', got 'Bad Slug'\n"
    )


def test_one_post_is_one_post() -> None:
    feed = SOURCES / "atom_thumbnail.atom"
    code, text = digest("inspect", str(feed))
    assert code == 0 and text.endswith(f"1 post from {feed} (feed).")


def test_a_schedule_every_minute_gets_one_dst_warning_per_clock_change(site: Path) -> None:
    text = site.read_text(encoding="utf-8").replace(
        'schedule = "0 8 * * mon"', 'schedule = "* * * * *"'
    )
    site.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(site), "schedule", "list"], env=ENV)
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, warnings  # spring forward and fall back, within a year
    assert any(
        "60 run times from 02:00 to 02:59 do not exist in Europe/Berlin (clocks go forward)" in w
        for w in warnings
    )
    assert any("happen twice in Europe/Berlin (clocks go back)" in w for w in warnings)
    assert "cron * * * * *, Europe/Berlin" in " ".join(result.output.split())


def test_numbered_weekdays_are_refused(site: Path) -> None:
    text = site.read_text(encoding="utf-8").replace(
        'schedule = "0 8 * * mon"', 'schedule = "0 8 * * 1"'
    )
    site.write_text(text, encoding="utf-8")
    code, out = digest("--config", str(site), "plan")
    assert code == 2
    assert "digests[0].schedule: name the weekdays, e.g. '0 8 * * mon-fri'" in out
    assert "(1 = Tuesday)" in out


def test_a_subject_failing_on_the_issue_is_one_line_naming_the_key(site: Path) -> None:
    """`issue` is a variable subjects get, but it has no `nope`: known only when rendering."""
    text = site.read_text(encoding="utf-8").replace(
        "max_posts_per_topic = 4", 'max_posts_per_topic = 4\nsubject = "{{ issue.nope }}"'
    )
    site.write_text(text, encoding="utf-8")
    digest("--config", str(site), "gather")
    assert digest("--config", str(site), "plan", "--without-readers")[0] == 0
    code, out = digest("--config", str(site), "preview", "--out", str(site.parent / "p"))
    assert code == 2
    assert "error: weekly.subject: the template fails: " in out
    assert "has no attribute 'nope'" in out


def test_previews_into_a_file_or_a_full_disk_are_one_line(site: Path, tmp_path: Path) -> None:
    digest("--config", str(site), "gather")
    code, out = digest("--config", str(site), "preview", "--out", str(site))
    assert code == 2 and out.endswith("cannot write the previews: Not a directory")
    with tmpfs(tmp_path / "disk", "64k") as disk:
        disk.fill(leave_bytes=4096)
        code, out = digest("--config", str(site), "preview", "--out", str(disk.path))
    assert code == 2 and out.endswith("cannot write the previews: No space left on device")


def test_a_stopped_worker_says_what_is_left_now(
    example_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another worker may finish the issue after this one stopped: the line says what is left
    when it is printed, not when this worker stopped."""
    gathering.gather_sources(example_project)
    with example_project.engine.begin() as conn:
        SubscriberStore(conn).add("r@example.com", "R", frozenset({"data"}), DEMO_NOW, "t")
    planned, report = sending.send(example_project)
    assert planned is not None and report is not None and report.finished
    stopped_early = replace(report, finished=False)
    print_sent(example_project, planned, stopped_early)
    assert "unfinished" not in capsys.readouterr().out
    with example_project.engine.begin() as conn:  # a batch still pending: resumable
        conn.execute(
            update(db.send_batches)
            .where(db.send_batches.c.issue_id == report.issue_id)
            .values(status="pending")
        )
    print_sent(example_project, planned, stopped_early)
    assert "(unfinished: run again to resume)" in " ".join(capsys.readouterr().out.split())
