"""Use cases of looking before sending: the preview folder (one file per segment, the
web-archive page and an index), the web-archive page itself, and a test send to an editor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digest.app import issues as issue_cases
from digest.app.archive import archive_links
from digest.app.wiring import Project
from digest.errors import DigestError, NoReaders
from digest.models import Issue, Owed
from digest.personalize import compile_template, token_values
from digest.render import RenderedIssue
from digest.render.layout import post_count
from digest.render.size import HTML_BUDGET_BYTES, html_bytes
from digest.send.message import compose, mailbox
from subscribers.importer import normalize_email
from subscribers.store import SubscriberStore

PREVIEW_INDEX = "web/preview_index.html.j2"


@dataclass(frozen=True)
class PreviewResult:
    folder: Path
    index: Path
    files: dict[Owed, Path]
    html_bytes: dict[Owed, int]
    trimmed: dict[Owed, dict[str, int]]

    @property
    def over_budget(self) -> dict[Owed, int]:
        return {k: n for k, n in self.html_bytes.items() if n > HTML_BUDGET_BYTES}


def sample_values(
    public_url: str,
    slugs: tuple[str, ...],
    first_name: str = "Alex",
    email: str = "alex@example.com",
) -> dict[str, str]:
    """Personal values for previews: a sample reader (or a named one's name and address) whose
    links lead to the generic pages, so clicking around a preview unsubscribes nobody."""
    return token_values(
        {
            "first_name": first_name,
            "email": email,
            "unsubscribe_url": f"{public_url}/unsubscribe",
            "preferences_url": f"{public_url}/preferences",
        },
        {slug: f"{public_url}/unsubscribe?topic={slug}" for slug in slugs},
    )


def archive_html(project: Project, issue: Issue, rendered: RenderedIssue | None = None) -> str:
    """The web-archive page: every topic, no personal link (:mod:`digest.app.archive` serves
    it, rendered once, for issues that went out)."""
    return (rendered or project.render(issue)).archive_page(archive_links(project, issue.digest))


def preview(
    project: Project, digest_slug: str | None, folder: Path, issue: Issue | None = None
) -> PreviewResult:
    """One HTML file per segment of the issue (as its readers will get it, tokens filled with
    sample values), the issue's web-archive page (``archive.html``, every topic, no personal
    links: what "view in browser" serves) and an index.html linking them."""
    segments: dict[Owed, int] | None = None
    if issue is None:
        try:
            planned = issue_cases.plan(project, digest_slug)
        except NoReaders:  # shown as it would be, but not planned: nobody would get it
            planned = issue_cases.plan(project, digest_slug, save=False)
        if planned is not None:
            issue, segments = planned.issue, planned.segments
        else:
            issue = issue_cases.latest(project, digest_slug)
    if issue is None:
        raise DigestError("no issue to preview: nothing new has been gathered yet")
    rendered = project.render(issue)
    if segments is None:
        segments = issue_cases.segments(project, issue)
    target = folder / issue.digest / f"issue-{issue.number:04d}"
    try:
        return _write_previews(project, issue, rendered, segments, target)
    except OSError as e:
        where = str(e.filename) if e.filename else str(target)
        raise DigestError(f"cannot write the previews: {e.strerror or e}", where=where) from None


def _write_previews(
    project: Project,
    issue: Issue,
    rendered: RenderedIssue,
    segments: dict[Owed, int],
    target: Path,
) -> PreviewResult:
    target.mkdir(parents=True, exist_ok=True)
    files: dict[Owed, Path] = {}
    sizes: dict[Owed, int] = {}
    trimmed: dict[Owed, dict[str, int]] = {}
    sample = sample_values(project.config.site.public_url, issue.topic_slugs)
    for key in list(segments) or [Owed(frozenset(issue.topic_slugs))]:
        variant = rendered.variant(key)
        since = "" if key.since is None else f"@{key.since}"
        name = "segment-" + "+".join(s for s in issue.topic_slugs if s in key) + since + ".html"
        path = target / name
        path.write_text(compile_template(variant.html).fill(sample), encoding="utf-8")
        files[key] = path
        sizes[key] = html_bytes(variant.html)
        trimmed[key] = variant.trimmed
    (target / "archive.html").write_text(archive_html(project, issue, rendered), encoding="utf-8")
    index = target / "index.html"
    index.write_text(_preview_index(rendered, files, segments, sizes, trimmed), encoding="utf-8")
    return PreviewResult(target, index, files, sizes, trimmed)


def send_test(
    project: Project,
    to: str,
    digest_slug: str | None = None,
    segment: Owed | frozenset[str] | None = None,
    as_email: str | None = None,
    issue: Issue | None = None,
) -> tuple[Issue, Owed, str]:
    """One variant of ``issue`` (default: the next one) to an editor, marked [TEST],
    outside the ledger.

    The variant is the given topic set, else the one ``as_email`` would get, else every
    topic. Personal links are the sample ones, so a test can unsubscribe nobody.
    """
    if issue is None:
        planned = issue_cases.plan(project, digest_slug, save=False)
        issue = planned.issue if planned else issue_cases.latest(project, digest_slug)
    if issue is None:
        raise DigestError("no issue to test: nothing new has been gathered yet")
    try:
        address = normalize_email(to)
    except ValueError as err:
        raise DigestError(str(err), where=to) from None
    key = _test_segment(project, issue, segment, as_email)
    variant = project.render(issue).variant(key)
    values = sample_values(project.config.site.public_url, issue.topic_slugs)
    sending = project.config.sending
    subject = f"[TEST] {compile_template(variant.subject).fill(values)}"
    message = compose(
        mailbox(sending.from_name, sending.from_email),
        mailbox("", address),
        subject,
        compile_template(variant.text).fill(values),
        compile_template(variant.html).fill(values),
        project.clock(),
    )
    project.mailer()(message)
    return issue, key, subject


def _test_segment(
    project: Project, issue: Issue, segment: Owed | frozenset[str] | None, as_email: str | None
) -> Owed:
    owed = Owed.of(segment) if segment is not None else Owed(frozenset(issue.topic_slugs))
    key = owed.topics or frozenset(issue.topic_slugs)
    if as_email:
        with project.reading() as conn:
            reader = SubscriberStore(conn).get(as_email)
        if reader is None:
            raise DigestError("is not a subscriber", where=as_email)
        key = reader.topics & frozenset(issue.topic_slugs)
        if not key:
            raise DigestError(
                "gets nothing from this issue (no topic of theirs is in it)", where=as_email
            )
    unknown = key - frozenset(issue.topic_slugs)
    if unknown:
        raise DigestError(
            f"topics not in this issue: {', '.join(sorted(unknown))} "
            f"(it has {', '.join(issue.topic_slugs)})",
            where="--segment",
        )
    return Owed(key, None if as_email else owed.since)


def _preview_index(
    rendered: RenderedIssue,
    files: dict[Owed, Path],
    segments: dict[Owed, int],
    sizes: dict[Owed, int],
    trimmed: dict[Owed, dict[str, int]],
) -> str:
    issue = rendered.issue
    names = {s.topic.slug: s.topic.name for s in issue.sections}
    rows: list[dict[str, object]] = []
    for key, path in files.items():
        sections = rendered.sections(key)
        rows.append(
            {
                "file": path.name,
                "topics": ", ".join(names[s] for s in issue.topic_slugs if s in key)
                + ("" if key.since is None else f" (switched: since release {key.since})"),
                "readers": segments.get(key, 0),
                "posts": post_count(sections),
                "subject": rendered.subject(sections),
                "kib": f"{sizes[key] / 1024:.0f}",
                "over_budget": sizes[key] > HTML_BUDGET_BYTES,
                "trimmed": ", ".join(f"{names[s]} −{n}" for s, n in trimmed[key].items()),
            }
        )
    cadence = f" · {issue.cadence}" if issue.cadence else ""
    title = f"{rendered.ctx.digest_name}{cadence} · issue {issue.number} · preview"
    return rendered.env.get_template(PREVIEW_INDEX).render(
        title=title, rows=rows, budget_kib=HTML_BUDGET_BYTES // 1024
    )
