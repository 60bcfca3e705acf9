"""gather: sources → normalized posts in the database.

A source that fails is reported by name with its reason; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine

from digest import repository
from digest.config import Config
from digest.errors import SourceError
from digest.gather.feed import parse_feed
from digest.gather.fetch import Fetcher
from digest.gather.urls import canonical_url
from digest.models import Post, Topic


@dataclass(frozen=True)
class SourceJob:
    name: str
    location: str
    topic: str


@dataclass(frozen=True)
class SourceOutcome:
    job: SourceJob
    posts: int = 0
    not_modified: bool = False
    error: str | None = None

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


def source_jobs(config: Config) -> list[SourceJob]:
    return [
        SourceJob(source.label, config.source_location(source), topic.slug)
        for topic in config.topics
        for source in topic.sources
    ]


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


def gather(
    config: Config,
    engine: Engine,
    fetcher: Fetcher,
    now: datetime,
    on_source: Callable[[SourceOutcome], None] | None = None,
) -> GatherReport:
    jobs = source_jobs(config)
    topics = [Topic(t.slug, t.name) for t in config.topics]
    with engine.begin() as conn:
        topic_id = repository.sync_topics(conn, topics)
    outcomes: list[SourceOutcome] = []
    found: list[Post] = []
    for job in jobs:
        outcome, posts = _gather_one(job, config, engine, fetcher, now)
        outcomes.append(outcome)
        found.extend(posts)
        if on_source is not None:
            on_source(outcome)
    with engine.begin() as conn:
        counts = repository.store_posts(conn, merge_posts(found), topic_id, now)
    return GatherReport(tuple(outcomes), counts.new, counts.updated, counts.unchanged)


def _gather_one(
    job: SourceJob, config: Config, engine: Engine, fetcher: Fetcher, now: datetime
) -> tuple[SourceOutcome, list[Post]]:
    with engine.connect() as conn:
        validators = repository.source_validators(conn, job.location)
    try:
        fetched = fetcher.fetch(job.location, validators)
        posts = (
            []
            if fetched.not_modified
            else parse_feed(
                fetched.body,
                location=job.location,
                source=job.name,
                topics=[job.topic],
                now=now,
                excerpt_words=config.gather.excerpt_words,
            )
        )
    except SourceError as err:
        with engine.begin() as conn:
            repository.save_source_state(conn, job.location, validators, now, err.message)
        return SourceOutcome(job, error=err.message), []
    with engine.begin() as conn:
        repository.save_source_state(conn, job.location, fetched.validators, now, None)
    return SourceOutcome(job, posts=len(posts), not_modified=fetched.not_modified), posts
