"""gather: sources → normalized posts in the database.

Sources are read concurrently (one request at a time per host); a source that fails is reported
by name with its reason and the others go on. Every kind of source goes through the same
normalization (:mod:`digest.gather.entry`), so ``digest inspect`` shows what gather stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from digest.config import Config
from digest.errors import SourceError
from digest.gather.entry import NormalizeContext, normalize
from digest.gather.fetch import Fetcher
from digest.gather.images import og_image, to_hero
from digest.gather.sources import read_source
from digest.gather.topics import TopicMapping
from digest.gather.urls import absolute_url, canonical_url
from digest.models import HeroImage, Post, StoreCounts, Topic, Validators

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceJob:
    name: str
    location: str
    mapping: TopicMapping
    kind: str = "auto"
    base_url: str | None = None

    @property
    def topic(self) -> str:
        """What the report shows under "Topic"."""
        return self.mapping.fixed or "by category"


@dataclass(frozen=True)
class SourceOutcome:
    job: SourceJob
    posts: int = 0
    not_modified: bool = False
    error: str | None = None
    kind: str = ""
    unmapped: int = 0
    """Posts skipped because none of their categories maps to a topic."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class GatherReport:
    sources: tuple[SourceOutcome, ...]
    new: int
    updated: int
    unchanged: int

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(s for s in self.sources if not s.ok)


@dataclass(frozen=True)
class SourceState:
    """What is kept of one source after a gather: its validators, or the error it gave."""

    location: str
    validators: Validators
    error: str | None


class PostStore(Protocol):
    """Where gather keeps what it reads (the application keeps it in the project database)."""

    def prepare(
        self, topics: Sequence[Topic], locations: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, Validators]]:
        """Make the configured topics known (slug → id); each source's validators from the
        last time it was read."""
        ...

    def keep(
        self,
        posts: Sequence[Post],
        states: Sequence[SourceState],
        topic_id: dict[str, int],
        now: datetime,
    ) -> StoreCounts:
        """Store the posts and the sources' states in one transaction: a source's new
        validators must never be kept without its posts, or the next gather gets 304 and the
        posts are lost."""
        ...


@dataclass(frozen=True)
class GatherSettings:
    excerpt_words: int = 40
    max_pages: int = 5
    max_bytes: int = 10_000_000
    og_image: bool = False
    concurrency: int = 4
    default_images: tuple[tuple[str, HeroImage], ...] = ()
    """(topic slug, image) for posts that end up without a hero, in config order."""


def settings_from(config: Config) -> GatherSettings:
    defaults = []
    for topic in config.topics:
        url = config.asset_url(topic.default_image)
        if url:
            defaults.append((topic.slug, HeroImage(url, topic.name)))
    g = config.gather
    return GatherSettings(
        g.excerpt_words, g.max_pages, g.max_bytes, g.og_image, g.concurrency, tuple(defaults)
    )


def source_jobs(config: Config) -> list[SourceJob]:
    jobs = [
        SourceJob(
            source.label,
            config.source_location(source),
            TopicMapping.one_topic(topic.slug),
            source.kind,
            source.base_url,
        )
        for topic in config.topics
        for source in topic.sources
    ]
    names = [(t.slug, t.name) for t in config.topics]
    jobs += [
        SourceJob(
            source.label,
            config.source_location(source),
            TopicMapping.by_category(names, source.categories),
            source.kind,
            source.base_url,
        )
        for source in config.file.sources
    ]
    return jobs


def merge_posts(posts: Sequence[Post]) -> list[Post]:
    """One post per guid, then per canonical URL; a post found in several sources keeps every
    topic it was found under (a post in two topics is one post)."""
    merged: dict[str, Post] = {}
    uid_for_url: dict[str, str] = {}
    for post in posts:
        url = canonical_url(post.url)
        key = post.uid if post.uid in merged else uid_for_url.get(url, post.uid)
        if key in merged:
            known = merged[key]
            topics = known.topics + tuple(t for t in post.topics if t not in known.topics)
            merged[key] = replace(known, topics=topics)
        else:
            merged[key] = post
            uid_for_url.setdefault(url, key)
    return list(merged.values())


def collect(
    job: SourceJob,
    fetcher: Fetcher,
    validators: Validators,
    settings: GatherSettings,
    now: datetime,
) -> tuple[SourceOutcome, list[Post], Validators]:
    """Read and normalize one source. Never raises for a bad source: the outcome says why.

    Whatever goes wrong inside one source stays there: a failure we did not foresee (a parser
    tripping over a document nobody imagined) is reported by the source's name, with the
    exception's kind, like a foreseen one, and the other sources are still stored.
    """
    try:
        return _collect(job, fetcher, validators, settings, now)
    except SourceError as err:
        return SourceOutcome(job, error=err.message), [], validators
    except Exception as err:  # one source must not sink the others
        log.warning("source %s failed unexpectedly", job.name, exc_info=True)
        reason = f"unexpected {type(err).__name__} while reading it: {err}"
        return SourceOutcome(job, error=reason[:500]), [], validators


def _collect(
    job: SourceJob,
    fetcher: Fetcher,
    validators: Validators,
    settings: GatherSettings,
    now: datetime,
) -> tuple[SourceOutcome, list[Post], Validators]:
    read = read_source(
        job.location,
        job.kind,
        fetcher,
        validators,
        max_pages=settings.max_pages,
        max_bytes=settings.max_bytes,
        base_url=job.base_url,
    )
    ctx = NormalizeContext.for_source(job.location, job.name, now, settings.excerpt_words)
    posts: list[Post] = []
    unmapped = 0
    for raw in read.entries:
        topics = job.mapping.topics_for(raw.categories)
        if not topics:
            unmapped += 1
            continue
        post = normalize(raw, topics, ctx)
        if post is not None:
            posts.append(_with_fallback_image(post, fetcher, settings, ctx).within_limits())
    outcome = SourceOutcome(job, len(posts), read.not_modified, None, read.kind, unmapped)
    return outcome, posts, read.validators


def _with_fallback_image(
    post: Post, fetcher: Fetcher, settings: GatherSettings, ctx: NormalizeContext
) -> Post:
    if post.image is not None:
        return post
    if settings.og_image and post.url.startswith(("http://", "https://")):
        try:
            page = fetcher.fetch(post.url, Validators())
        except SourceError:
            page = None
        found = og_image(page.body.decode("utf-8", "replace")) if page else None
        if found is not None:
            hero = to_hero(found, post.title, lambda u: absolute_url(u, post.url, ctx.schemes))
            if hero is not None:
                return replace(post, image=hero)
    for slug, image in settings.default_images:
        if slug in post.topics:
            return replace(post, image=replace(image, alt=post.title))
    return post


def gather(
    config: Config,
    store: PostStore,
    fetcher: Fetcher,
    now: datetime,
    on_source: Callable[[SourceOutcome], None] | None = None,
) -> GatherReport:
    jobs = source_jobs(config)
    settings = settings_from(config)
    topic_id, known = store.prepare(
        [Topic(t.slug, t.name) for t in config.topics], [job.location for job in jobs]
    )

    def run(job: SourceJob) -> tuple[SourceOutcome, list[Post], Validators]:
        return collect(job, fetcher, known[job.location], settings, now)

    outcomes: list[SourceOutcome] = []
    found: list[Post] = []
    states: list[SourceState] = []
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for outcome, posts, validators in pool.map(run, jobs):
            outcomes.append(outcome)
            found.extend(posts)
            states.append(SourceState(outcome.job.location, validators, outcome.error))
            if on_source is not None:
                on_source(outcome)
    counts = store.keep(merge_posts(found), states, topic_id, now)
    return GatherReport(tuple(outcomes), counts.new, counts.updated, counts.unchanged)
