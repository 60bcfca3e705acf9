"""Use cases of sources: gather every source into the database, or read one without storing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx

from digest.app.wiring import Clock, Project, fetch_limits, utc_now
from digest.config import Config
from digest.gather import (
    GatherReport,
    GatherSettings,
    SourceJob,
    SourceOutcome,
    collect,
    gather,
    settings_from,
    source_jobs,
)
from digest.gather.fetch import SourceFetcher, Validators, http_client
from digest.gather.topics import TopicMapping
from digest.models import Post


def gather_sources(
    project: Project,
    client: httpx.Client | None = None,
    on_source: Callable[[SourceOutcome], None] | None = None,
) -> GatherReport:
    """Fetch every source and store what is new; a failing source is reported by name and
    the others go on."""
    with project.fetcher(client) as fetcher:
        return gather(project.config, project.engine, fetcher, project.clock(), on_source)


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
