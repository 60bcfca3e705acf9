"""The digests: which topics each one carries, when it goes out, and whether an editor must
approve it first."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from jinja2 import Environment, TemplateSyntaxError, meta
from pydantic import Field, field_validator, model_validator

from digest.config.fields import SLUG_PATTERN, EmailAddress, Section, Slug

TEMPLATE_VARIABLES = {
    "post_count": "the number of posts this reader gets",
    "topic_names": "their topics' names, joined with commas",
    "titles": "the titles of their posts",
    "sections": "their topics, each with .topic.name and .cards",
    "issue_label": '"Issue 12"',
    "issue_date": "the issue's date in the digest's language",
    "issue": "the issue (.number, .digest)",
    "ctx": "the digest (.digest_name, .site_name, ...)",
    "theme": "the [theme] colours",
    "image_width": "the width of a card's image",
}
"""What a digest's ``subject`` and ``preheader`` templates may use (what the renderer hands
them; a test holds the two together)."""

ApprovalPolicy = Literal["auto", "require", "hold"]

CadenceName = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=20)]
"""Whether a scheduled issue needs an editor: see CONTEXT.md (approval policy)."""


class DigestConfig(Section):
    slug: Slug
    name: str = Field(min_length=1)
    schedule: str = "0 8 * * mon"
    timezone: str = "UTC"
    cadences: dict[CadenceName, str] = Field(
        default_factory=dict,
        description="the cadences readers may choose, each with its cron schedule "
        "(e.g. daily = '0 8 * * *'); empty: one cadence, `schedule`",
    )
    default_cadence: CadenceName | None = Field(
        default=None, description="the cadence of a reader who has not chosen one"
    )
    local_delivery: bool = Field(
        default=False,
        description="send each slot at the schedule's wall time in every reader's own time "
        "zone (in waves, one per UTC offset); readers without one get `timezone`",
    )
    topics: list[str] = Field(default_factory=list, description="topic slugs; empty = all")
    max_posts_per_topic: int = Field(default=4, ge=1, le=50)
    subject: str | None = Field(default=None, description="Jinja template of the subject line")
    preheader: str | None = Field(default=None, description="Jinja template of the preheader")
    approval: ApprovalPolicy = Field(
        default="auto",
        description="auto: sent at the slot; require: an editor approves before the slot or it "
        "is skipped; hold: never sent by the scheduler, an editor sends it",
    )
    approval_lead_hours: float = Field(
        default=24, gt=0, description="require: editors are asked this long before the slot"
    )
    misfire_grace_hours: float = Field(
        default=6,
        gt=0,
        description="a slot missed by downtime still runs when the scheduler is back this soon",
    )
    notify: list[EmailAddress] = Field(
        default_factory=list, description="editors asked to approve (approval = 'require')"
    )

    @field_validator("subject", "preheader")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        """A template that compiles (known filters and tests) and names only the variables
        it is given, so a typo is reported here rather than when an issue is rendered."""
        if value is None:
            return value
        env = Environment(autoescape=True)
        env.filters["safe_url"] = str
        env.tests["safe_url"] = lambda value: bool(value)
        try:
            parsed = env.parse(value)
            env.compile(parsed)
        except TemplateSyntaxError as err:
            raise ValueError(f"not a valid template ({err.message})") from None
        unknown = sorted(meta.find_undeclared_variables(parsed) - TEMPLATE_VARIABLES.keys())
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise ValueError(
                f"unknown variable {names} in the template; it may use "
                + ", ".join(TEMPLATE_VARIABLES)
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _valid_cron(self) -> DigestConfig:
        for key, schedule in [("schedule", self.schedule)] + [
            (f"cadences.{name}", cron) for name, cron in self.cadences.items()
        ]:
            problem = _cron_problem(schedule, self.zone)
            if problem:
                raise ValueError(f"{key}: {problem}")
        return self

    @model_validator(mode="after")
    def _known_default(self) -> DigestConfig:
        if self.default_cadence is None:
            return self
        if self.default_cadence not in self.cadences:
            offered = ", ".join(repr(c) for c in self.cadences) or "none (no [cadences])"
            raise ValueError(
                f"default_cadence: {self.default_cadence!r} is not one of the digest's "
                f"cadences: {offered}"
            )
        return self

    @model_validator(mode="after")
    def _someone_to_ask(self) -> DigestConfig:
        if self.approval == "require" and not self.notify:
            raise ValueError(
                "notify: approval = 'require' needs at least one editor address to ask, "
                'e.g. notify = ["editor@example.com"]'
            )
        return self

    @property
    def schedules(self) -> dict[str, str]:
        """Cadence name → cron schedule. A digest without ``cadences`` has one, named ''."""
        return dict(self.cadences) if self.cadences else {"": self.schedule}

    @property
    def default(self) -> str:
        """The cadence of readers who have not chosen one: ``default_cadence``, else the
        first cadence offered."""
        if self.default_cadence is not None:
            return self.default_cadence
        return next(iter(self.schedules))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def approval_lead(self) -> timedelta:
        return timedelta(hours=self.approval_lead_hours)

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(hours=self.misfire_grace_hours)


def _cron_problem(schedule: str, zone: ZoneInfo) -> str | None:
    """What is wrong with a cron expression, or None."""
    fields = schedule.split()
    if len(fields) == 5 and any(c.isdigit() for c in fields[4]):
        return (
            f"name the weekdays, e.g. '{' '.join(fields[:4])} mon-fri': a number "
            "is read differently by cron (1 = Monday) and by the scheduler (1 = Tuesday)"
        )
    try:
        CronTrigger.from_crontab(schedule, timezone=zone)
    except ValueError as err:
        return f"expected a cron expression such as '0 8 * * mon' ({err})"
    return None
