from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_config, resolve_config_path
from digest.errors import ConfigError
from digest.scaffold import example_site

EXAMPLE = (example_site() / "digest.toml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    return str(caught.value)


def test_example_config_loads_with_paths_next_to_it(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, EXAMPLE),
        {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"},
    )
    assert config.database_url == f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    assert config.outbox_dir == tmp_path / "outbox"
    assert config.source_location(config.topics[0].sources[0]).startswith("file://")
    assert config.secrets.secret_key == "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
    assert [t.slug for t in config.digest_topics(config.digests[0])] == [
        t.slug for t in config.topics
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('timezone = "Europe/Berlin"', 'timezone = "Mars/Base"'),
            "digests[0].timezone: expected an IANA time zone",
        ),
        (
            ('transport = "outbox"', 'transport = "pigeon"'),
            "sending.transport: input should be 'outbox', 'smtp' or 'sendgrid', got 'pigeon'",
        ),
        (
            ("max_posts_per_topic = 4", 'max_posts_per_topic = "four"'),
            "digests[0].max_posts_per_topic: input should be a valid integer",
        ),
        (('outbox_dir = "outbox"', 'outbox_dri = "outbox"'), "sending.outbox_dri: unknown key"),
        (
            ("topics = []", 'topics = ["backend", "cooking"]'),
            "digests[0].topics: unknown topic 'cooking'",
        ),
        (
            ('schedule = "0 8 * * mon"', 'schedule = "every monday"'),
            "digests[0].schedule: expected a cron expression",
        ),
        (
            (
                'url = "https://engineering.northwind.example"',
                'url = "engineering.northwind.example"',
            ),
            "site.url: expected an absolute http(s) URL",
        ),
        (
            (
                'from = "Northwind Engineering <digest@northwind.example>"',
                'from = "digest-at-northwind"',
            ),
            "sending.from: expected an email address",
        ),
        (
            ('transport = "outbox"', 'transport = "sendgrid"\nlease_minutes = 5'),
            "sending.lease_minutes: 5 is shorter than one request with all its retries",
        ),
        (
            ('name = "Frontend"', f'name = "{"F" * 101}"'),
            "topics[3].name: string should have at most 100 characters",
        ),
        (
            ('transport = "outbox"', 'transport = "outbox"\nfeedback_sender_id = "a:b"'),
            "sending.feedback_sender_id: string should match pattern",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_file_and_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in EXAMPLE
    message = error_of(tmp_path, EXAMPLE.replace(change[0], change[1], 1))
    assert message.startswith(f"{tmp_path / 'digest.toml'}: {expected}")
    assert "\n" not in message


def test_missing_section_and_syntax_errors_name_the_file(tmp_path: Path) -> None:
    start = EXAMPLE.index("[sending]")
    end = EXAMPLE.index("[gather]")
    assert error_of(tmp_path, EXAMPLE[:start] + EXAMPLE[end:]).endswith(
        "sending: required key is missing"
    )
    assert "not valid TOML" in error_of(tmp_path, "[site\nname=1")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", {})


def test_config_path_precedence() -> None:
    assert resolve_config_path("a.toml", {"DIGEST_CONFIG": "b.toml"}) == Path("a.toml")
    assert resolve_config_path(None, {"DIGEST_CONFIG": "b.toml"}) == Path("b.toml")
    assert resolve_config_path(None, {}) == Path("digest.toml")


def test_public_url_must_be_https_except_on_localhost(tmp_path: Path) -> None:
    remote = EXAMPLE.replace(
        'public_url = "http://localhost:8000"', 'public_url = "http://n.example"'
    )
    assert "site.public_url: expected an https URL" in error_of(tmp_path, remote)
    secure = EXAMPLE.replace(
        'public_url = "http://localhost:8000"', 'public_url = "https://n.example"'
    )
    assert load_config(write(tmp_path, secure), {}).site.public_url == "https://n.example"
    no_host = EXAMPLE.replace(
        'public_url = "http://localhost:8000"', 'public_url = "https://n..example"'
    )
    assert "site.public_url: expected a host name, not 'n..example'" in error_of(tmp_path, no_host)


def test_approval_keys_have_defaults_and_require_needs_someone_to_ask(tmp_path: Path) -> None:
    digest = load_config(write(tmp_path, EXAMPLE), {}).digests[0]
    assert (digest.approval, digest.approval_lead_hours, digest.misfire_grace_hours) == (
        "auto",
        24,
        6,
    )
    assert digest.notify == []
    cap = "max_posts_per_topic = 4"
    text = EXAMPLE.replace(cap, f'{cap}\napproval = "require"')
    assert error_of(tmp_path, text).endswith(
        "digests[0].notify: approval = 'require' needs at least one editor address to ask, "
        'e.g. notify = ["editor@example.com"]'
    )
    asked = text.replace(
        'approval = "require"', 'approval = "require"\nnotify = ["Ed <ed@example.com>"]', 1
    )
    assert load_config(write(tmp_path, asked), {}).digests[0].notify == ["Ed <ed@example.com>"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('approval = "maybe"', "digests[0].approval: input should be 'auto', 'require' or 'hold'"),
        ("approval_lead_hours = 0", "digests[0].approval_lead_hours: input should be greater"),
        ("misfire_grace_hours = -1", "digests[0].misfire_grace_hours: input should be greater"),
        ('notify = ["not an address"]', "digests[0].notify[0]: expected an email address"),
    ],
)
def test_schedule_keys_are_named_when_wrong(tmp_path: Path, line: str, expected: str) -> None:
    text = EXAMPLE.replace("max_posts_per_topic = 4", f"max_posts_per_topic = 4\n{line}")
    assert expected in error_of(tmp_path, text)


def test_events_keep_days_defaults_to_a_month_and_a_bad_one_names_its_key(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, EXAMPLE), {})
    assert config.file.events.keep_days == 30
    config = load_config(write(tmp_path, EXAMPLE + "\n[events]\nkeep_days = 7\n"), {})
    assert config.file.events.keep_days == 7
    message = error_of(tmp_path, EXAMPLE + "\n[events]\nkeep_days = 0\n")
    assert message.endswith(
        "digest.toml: events.keep_days: input should be greater than or equal to 1, got 0"
    )
    assert "events.keep_dayz: unknown key" in error_of(
        tmp_path, EXAMPLE + "\n[events]\nkeep_dayz = 9\n"
    )
