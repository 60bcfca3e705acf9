"""Use cases of sources: gather every source into the database, or read one without storing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import httpx

from digest.app.wiring import Clock, Project, fetch_limits, utc_now
from digest.config import Config
from digest.gather import (
    GatherReport,
    GatherSettings,
    SourceJob,
    SourceOutcome,
    SourceState,
    collect,
    gather,
    settings_from,
    source_jobs,
)
from digest.gather.fetch import SourceFetcher, http_client
from digest.gather.topics import TopicMapping
from digest.models import Post, StoreCounts, Topic, Validators
from digest.stores import posts as post_store


def gather_sources(
    project: Project,
    client: httpx.Client | None = None,
    on_source: Callable[[SourceOutcome], None] | None = None,
) -> GatherReport:
    """Fetch every source and store what is new; a failing source is reported by name and
    the others go on."""
    with project.fetcher(client) as fetcher:
        return gather(
            project.config, _ProjectPostStore(project), fetcher, project.clock(), on_source
        )


class _ProjectPostStore:
    """What gather keeps, in the project database: the posts and the sources' states (their
    validators) in one transaction, so a crash cannot keep the one without the other."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def prepare(
        self, topics: Sequence[Topic], locations: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, Validators]]:
        with self.project.transaction() as conn:
            topic_id = post_store.sync_topics(conn, topics)
            known = {where: post_store.source_validators(conn, where) for where in locations}
        return topic_id, known

    def keep(
        self,
        posts: Sequence[Post],
        states: Sequence[SourceState],
        topic_id: dict[str, int],
        now: datetime,
    ) -> StoreCounts:
        with self.project.transaction() as conn:
            counts = post_store.store_posts(conn, posts, topic_id, now)
            for state in states:
                post_store.save_source_state(
                    conn, state.location, state.validators, now, state.error
                )
        return counts


def inspect_source(
    location: str,
    kind: str = "auto",
    config: Config | None = None,
    clock: Clock = utc_now,
    client: httpx.Client | None = None,
) -> tuple[SourceOutcome, list[Post]]:
    """Read one source exactly as gather would, store nothing.

    A source named in the config keeps its topic mapping; any other source has its posts'
    categories mapped to the config's topics (or shown as they are, without a config).
    """
    settings = settings_from(config) if config else GatherSettings()
    job = _job_for(location, kind, config)
    limits = fetch_limits(config)
    owned = client is None
    client = client or http_client(limits)
    try:
        outcome, posts, _ = collect(
            job, SourceFetcher(client, limits), Validators(), settings, clock()
        )
    finally:
        if owned:
            client.close()
    return outcome, posts


def _job_for(location: str, kind: str, config: Config | None) -> SourceJob:
    if config is not None:
        for job in source_jobs(config):
            if job.location == location:
                return replace(job, kind=kind if kind != "auto" else job.kind)
        names = [(t.slug, t.name) for t in config.topics]
        return SourceJob(location, location, TopicMapping.by_category(names, {}), kind)
    return SourceJob(location, location, TopicMapping(keep_categories=True), kind)
