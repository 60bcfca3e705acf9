"""The demo flow end to end through the real CLI: one email per reader with news, then none."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from digest.personalize import unfilled_tokens
from digest.scaffold import example_site, scaffold
from subscribers.importer import parse_csv, topic_resolver
from subscribers.tokens import Purpose, TokenSigner

SECRET = "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
TOPICS = {
    "backend": ("Backend & Infrastructure", "feeds/backend.xml"),
    "ai-ml": ("AI & Machine Learning", "feeds/ai-ml.atom"),
    "data": ("Data Engineering", "feeds/data.xml"),
    "frontend": ("Frontend", "feeds/frontend.atom"),
    "security": ("Security", "feeds/security.xml"),
}
POST_LINK = re.compile(r'href="(https://engineering\.northwind\.example/2026/[^"]+)"')
ATOM = "{http://www.w3.org/2005/Atom}"


def feed_links(path: Path, newest: int) -> set[str]:
    """The links of the ``newest`` posts, read straight from the feed XML, independently of
    the gather stage."""
    root = ET.parse(path).getroot()
    dated = [
        (parsedate_to_datetime(item.findtext("pubDate", "")), item.findtext("link", "").strip())
        for item in root.iter("item")
    ]
    for entry in root.iter(f"{ATOM}entry"):
        published = datetime.fromisoformat(entry.findtext(f"{ATOM}published", ""))
        for link in entry.findall(f"{ATOM}link"):
            if link.get("rel", "alternate") == "alternate":
                dated.append((published, link.get("href", "")))
    dated.sort(reverse=True)
    return {link for _, link in dated[:newest]}


def max_posts_per_topic() -> int:
    config = tomllib.loads((example_site() / "digest.toml").read_text(encoding="utf-8"))
    return int(config["digests"][0]["max_posts_per_topic"])


def expected_topics() -> dict[str, frozenset[str]]:
    resolve = topic_resolver((slug, name) for slug, (name, _) in TOPICS.items())
    with (example_site() / "subscribers.csv").open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, resolve)
    assert not parsed.problems
    return {row.email.lower(): row.topics for row in parsed.rows}


def run_demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "digest", "demo", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("demo") / "site"
    result = run_demo(folder)
    assert result.returncode == 0, result.stderr
    return folder, result


def emails(folder: Path) -> dict[str, EmailMessage]:
    found = {}
    for path in sorted((folder / "outbox").rglob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[message["To"].addresses[0].addr_spec.lower()] = message
    return found


def test_one_email_per_reader_with_news_and_none_for_the_others(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, result = demo
    wanted = expected_topics()
    with_news = {e for e, topics in wanted.items() if topics - {"security"}}
    sent = emails(folder)
    assert set(sent) == with_news
    assert len(wanted) - len(with_news) == 3  # the Security-only readers get nothing
    assert f"Emails submitted: {len(with_news)}" in result.stdout
    assert "Previews:" in result.stdout and "Outbox:" in result.stdout


def test_each_email_is_complete_and_holds_only_its_readers_topics(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = demo
    wanted = expected_topics()
    newest = max_posts_per_topic()
    links = {slug: feed_links(example_site() / feed, newest) for slug, (_, feed) in TOPICS.items()}
    signer = TokenSigner(SECRET)
    for address, message in emails(folder).items():
        for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id"):
            assert message[header], (address, header)
        unsubscribe = message["List-Unsubscribe"]
        https = re.search(r"<(https?://[^>]+/unsubscribe/([^>]+))>", unsubscribe)
        assert https and "<mailto:unsubscribe@northwind.example?subject=" in unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        text_part, html_part = text.get_content(), html.get_content()
        for part in (text_part, html_part, message["Subject"]):
            assert unfilled_tokens(part) == [] and "%%" not in part
        signer.verify(Purpose.MANAGE, https.group(2))  # raises when not ours
        assert https.group(1) in html_part and https.group(1) in text_part

        topics = wanted[address] - {"security"}
        expected = set().union(*(links[t] for t in topics))
        shown = set(POST_LINK.findall(html_part))
        assert shown == expected, address
        for slug, (name, _) in TOPICS.items():
            heading_shown = f">{name.replace('&', '&amp;')}</h2>" in html_part
            assert heading_shown == (slug in topics), (address, slug)


def test_running_the_demo_again_sends_nothing(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = demo
    before = sorted((folder / "outbox").rglob("*.eml"))
    again = run_demo(folder)
    assert again.returncode == 0, again.stderr
    assert "Nothing new since the last issue" in again.stdout
    assert sorted((folder / "outbox").rglob("*.eml")) == before


def test_bad_config_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    config = (example_site() / "digest.toml").read_text(encoding="utf-8")
    path = tmp_path / "digest.toml"
    path.write_text(
        config.replace('timezone = "Europe/Berlin"', 'timezone = "Europe/Berln"'), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "digest", "plan", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}: digests[0].timezone: expected an IANA time zone such as "
        "'Europe/Berlin', got 'Europe/Berln'"
    ]


def test_bad_csv_rows_are_named_by_line_and_good_rows_imported(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    env = {**os.environ, "COLUMNS": "200", "DIGEST_SECRET_KEY": SECRET}
    subprocess.run(
        [sys.executable, "-m", "digest", "init", str(folder)],
        check=True,
        env=env,
        capture_output=True,
    )
    csv = folder / "more.csv"
    csv.write_text(
        "email,name,topics\nok@example.com,Ok,frontend\nbroken,No,frontend\nx@example.com,X,Cooking\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "digest",
            "subscribers",
            "import",
            str(csv),
            "--config",
            str(folder / "digest.toml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    assert f"{csv}:3: bad address 'broken'" in result.stderr
    assert f"{csv}:4: unknown topic(s): 'Cooking'" in result.stderr
    assert re.search(r"added\s+│\s+1", result.stdout)


def enable_cadences(site: Path) -> Path:
    """Uncomment the example's three cadence lines, as the README says; the config's path."""
    config = site / "digest.toml"
    lines = config.read_text(encoding="utf-8").splitlines()
    chosen = ("# cadences = ", "# default_cadence = ", "# local_delivery = ")
    uncommented = [line[2:] if line.startswith(chosen) else line for line in lines]
    assert sum(a != b for a, b in zip(lines, uncommented, strict=True)) == 3
    config.write_text("\n".join(uncommented) + "\n", encoding="utf-8")
    return config


def digest_cli(config: Path, *command: str) -> str:
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET, "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_cadence_steps_send_each_reader_their_own_cadence_once(
    tmp_path: Path,
) -> None:
    """README, "Cadences": uncomment the example's three cadence lines, import
    subscribers-cadences.csv, run: one issue per cadence, each reader in exactly one."""
    site = tmp_path / "site"
    scaffold(site)
    config = enable_cadences(site)
    digest_cli(config, "subscribers", "import", str(site / "subscribers-cadences.csv"))
    digest_cli(config, "run")
    with (site / "subscribers-cadences.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    wanted = expected_topics()
    expected: dict[str, set[str]] = {"daily": set(), "weekly": set(), "monthly": set()}
    for row in rows:
        address = row["email"].lower()
        if wanted[address] - {"security"}:
            expected[row["cadence"] or "weekly"].add(address)
    got = []
    for folder in sorted((site / "outbox" / "weekly").iterdir()):
        readers = set()
        for path in folder.glob("*.eml"):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            readers.add(message["To"].addresses[0].addr_spec.lower())
        got.append(readers)
    # Issues in the order of the config's cadences: daily, weekly, monthly.
    assert got == [expected["daily"], expected["weekly"], expected["monthly"]]
    assert all(got) and sum(map(len, got)) == 29


def test_turning_cadences_on_after_a_send_sends_nobody_the_same_posts_again(
    tmp_path: Path,
) -> None:
    """Every cadence starts where the digest's one schedule ended."""
    site = tmp_path / "site"
    scaffold(site)
    config = site / "digest.toml"
    digest_cli(config, "subscribers", "import", str(site / "subscribers.csv"))
    assert "Emails submitted: 29" in digest_cli(config, "run")
    enable_cadences(site)
    digest_cli(config, "subscribers", "import", str(site / "subscribers-cadences.csv"))
    again = digest_cli(config, "run")
    assert again.count("Nothing new since the last issue") == 3, again
    assert len(list((site / "outbox").rglob("*.eml"))) == 29


def test_the_demo_previews_each_cadence_issue_it_sent(tmp_path: Path) -> None:
    """With cadences on, the demo sends one issue per cadence and previews each of them, not
    only the last."""
    site = tmp_path / "site"
    scaffold(site)
    config = enable_cadences(site)
    digest_cli(config, "subscribers", "import", str(site / "subscribers-cadences.csv"))
    result = run_demo(site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Previews:") == 3, result.stdout
    indexes = sorted((site / "preview").glob("*/issue-*/index.html"))
    assert len(indexes) == 3
    titles = [re.search(r"<title>([^<]*)</title>", i.read_text(encoding="utf-8")) for i in indexes]
    cadences = [t and t.group(1).split(" · ")[1] for t in titles]
    assert sorted(map(str, cadences)) == ["daily", "monthly", "weekly"]
