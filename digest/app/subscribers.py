"""Use cases of the subscriber list kept by hand: read a subscriber file, import it, export the
list, add or unsubscribe one address, list and count. Each owns its transaction."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from digest.app.wiring import Project
from digest.config.environment import SECRET_KEY_ENV
from digest.errors import DigestError
from subscribers.erasure import ErasureHasher
from subscribers.exporter import records, write_csv, write_jsonl
from subscribers.importer import (
    ParsedFile,
    TopicResolver,
    normalize_email,
    parse_csv,
    parse_jsonl,
    split_topics,
    topic_resolver,
)
from subscribers.models import Status, Subscriber
from subscribers.names import name_problem
from subscribers.store import SubscriberStore, UpsertSummary

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def _resolver(project: Project) -> TopicResolver:
    return topic_resolver((t.slug, t.name) for t in project.topics())


def _json_lines(path: Path) -> bool:
    return path.suffix.lower() in JSON_LINES_SUFFIXES


def read_file(project: Project, path: Path) -> ParsedFile:
    """The rows of a CSV or JSON Lines file (by its suffix), its topics matched to the
    project's by name or slug; bad rows are kept as problems, not raised."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if _json_lines(path):
                return parse_jsonl(handle, _resolver(project))
            return parse_csv(handle, _resolver(project))
    except FileNotFoundError:
        raise DigestError("no such file", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise DigestError(
            f"not UTF-8 text ({e.reason} at byte {e.start})", where=str(path)
        ) from None


def erasure_hasher(project: Project, store: SubscriberStore) -> ErasureHasher | None:
    """The hasher that recognises addresses erased on request (:mod:`subscribers.erasure`);
    None while the project has erased nobody and has no secret key. Erased people and no key
    to recognise them by is a DigestError: going on would add them back."""
    secrets = project.config.secrets
    if not secrets.secret_key:
        if store.has_erased():
            raise DigestError(
                f"{SECRET_KEY_ENV} is not set, and it is needed to recognise the addresses "
                "erased on request (they are kept only as a hash keyed with it)",
                where=SECRET_KEY_ENV,
            )
        return None
    return ErasureHasher([k for k in (secrets.secret_key, secrets.previous_secret_key) if k])


def import_file(
    project: Project, parsed: ParsedFile, source: str, dry_run: bool, reactivate: bool = False
) -> UpsertSummary:
    """Upsert the good rows of ``parsed`` (read from ``source``); see
    :meth:`SubscriberStore.upsert` for who is left alone."""
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        return store.upsert(
            parsed.rows,
            project.clock(),
            source=f"import:{Path(source).name}",
            dry_run=dry_run,
            reactivate=reactivate,
            hasher=erasure_hasher(project, store),
        )


def export(project: Project, path: Path) -> int:
    """Write every subscriber to ``path`` (JSON Lines by its suffix, else CSV), in a form
    that imports back; the number written."""
    with project.reading() as conn, path.open("w", encoding="utf-8", newline="") as handle:
        items = records(SubscriberStore(conn))
        return write_jsonl(items, handle) if _json_lines(path) else write_csv(items, handle)


def topic_slugs(project: Project, topics: str) -> frozenset[str]:
    """The slugs of ``topics``: names or slugs, any case, separated as in a CSV file; a
    DigestError naming the unknown ones (and the known) otherwise, or when none is given."""
    resolve = _resolver(project)
    wanted = split_topics(topics)
    unknown = [t for t in wanted if resolve(t) is None]
    if unknown or not wanted:
        known = ", ".join(t.slug for t in project.topics())
        raise DigestError(
            f"unknown topic(s) {', '.join(unknown) or '(none given)'}; known: {known}",
            where="--topics",
        )
    return frozenset(s for s in map(resolve, wanted) if s)


def add(project: Project, email: str, name: str, topics: str) -> Subscriber:
    """Add one active subscriber; ``topics`` is names or slugs separated as in a CSV file."""
    slugs = topic_slugs(project, topics)
    address = checked_address(email, name)
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        if store.get(address) is not None:
            raise DigestError("is already a subscriber", where=address)
        hasher = erasure_hasher(project, store)
        if hasher is not None and store.erased_among(hasher.keys(address)):
            raise DigestError(
                "was erased on request and stays suppressed: it cannot be added again",
                where=address,
            )
        return store.add(address, name, slugs, project.clock())


def unsubscribe(project: Project, email: str) -> Subscriber:
    """Mark an address unsubscribed; it stays on file, so no import brings it back."""
    with project.transaction() as conn:
        found = SubscriberStore(conn).set_status(email, Status.UNSUBSCRIBED, project.clock())
    if found is None:
        raise DigestError("is not a subscriber", where=email)
    return found


def listing(project: Project, status: Status | None, topic: str | None) -> list[Subscriber]:
    """Subscribers of ``status`` (any if None) following ``topic`` (any if None)."""
    with project.reading() as conn:
        return [
            s
            for s in SubscriberStore(conn).iterate(status=status)
            if topic is None or topic in s.topics
        ]


def stats(project: Project) -> tuple[Counter[str], Counter[str]]:
    """Subscribers per status, and active subscribers per topic slug."""
    with project.reading() as conn:
        return SubscriberStore(conn).stats()


def checked_address(email: str, name: str) -> str:
    """The normalized address, once the address and the name given with it pass the rules an
    import applies (:mod:`subscribers.names`); a DigestError naming the bad one otherwise."""
    try:
        address = normalize_email(email)
    except ValueError as e:
        raise DigestError(str(e), where=email) from None
    problem = name_problem(name)
    if problem:
        raise DigestError(problem, where="--name")
    return address
