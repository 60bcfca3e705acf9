"""Use cases of the subscriber list kept by hand: read a subscriber file, import it, export the
list, add or unsubscribe one address, list and count. Each owns its transaction."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from sqlalchemy import Connection

from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config.digests import DigestConfig
from digest.config.environment import PREVIOUS_KEY_ENV, SECRET_KEY_ENV
from digest.config.loaded import Config
from digest.errors import DigestError
from subscribers.cadences import Offered, read_cadences
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
from subscribers.store import DigestReaders, SubscriberStore, UpsertSummary
from subscribers.zones import canonical_zone, zone_problem

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def _resolver(project: Project) -> TopicResolver:
    return topic_resolver((t.slug, t.name) for t in project.topics())


def _json_lines(path: Path) -> bool:
    return path.suffix.lower() in JSON_LINES_SUFFIXES


def read_file(
    project: Project,
    path: Path,
    topics: str = "",
    encoding: str | None = None,
    topics_column: str = "",
) -> ParsedFile:
    """The rows of a CSV or JSON Lines file (by its suffix), its topics matched to the
    project's by name or slug; bad rows are kept as problems, not raised. ``topics`` (names
    or slugs, separated as in a cell): those of every row of a CSV file without a topics
    column, as another tool's export is; with ``topics_column`` (the column another tool keeps
    each reader's interests in, as a Mailchimp group), those of the rows it leaves empty.
    ``encoding``: the file's, when it is not UTF-8 or UTF-16 with its mark (a CSV file saved
    by Excel on Windows is in the system's code page, cp1252 in Western Europe and the
    Americas); never guessed, since a wrong guess imports wrong names without an error."""
    given = sorted(topic_slugs(project, topics)) if topics else []
    if given and _json_lines(path):
        raise DigestError("topics for every row are for a CSV file", where="--topics")
    if topics_column and _json_lines(path):
        raise DigestError("a column of topics is for a CSV file", where="--topics-column")
    named = _named_encoding(encoding) if encoding else None
    read_as = named or "utf-8-sig"
    try:
        read_as = named or _encoding_of(path)
        with path.open(encoding=read_as, newline="") as handle:
            if _json_lines(path):
                return parse_jsonl(handle, _resolver(project), offered(project.config))
            return parse_csv(
                handle, _resolver(project), offered(project.config), given, topics_column
            )
    except FileNotFoundError:
        raise DigestError("no such file", where=str(path)) from None
    except OSError as e:
        raise DigestError(f"cannot read: {e.strerror or e}", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise DigestError(_undecodable(path, read_as, named, e), where=str(path)) from None


def _encoding_of(path: Path) -> str:
    """UTF-16 when the file starts with its byte order mark (Excel's "Unicode text"), else
    UTF-8, with or without its own mark."""
    with path.open("rb") as handle:
        start = handle.read(2)
    return "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"


def _named_encoding(name: str) -> str:
    try:
        found = codecs.lookup(name).name
    except LookupError:
        raise DigestError(
            f"unknown encoding {name!r} (for example utf-8, cp1252, mac_roman, latin-1)",
            where="--encoding",
        ) from None
    return "utf-8-sig" if found == "utf-8" else found


def _undecodable(path: Path, read_as: str, named: str | None, error: UnicodeDecodeError) -> str:
    """Why the file cannot be read, where, and what to do: a file that is not UTF-8 but reads
    as cp1252 is almost always Excel's "CSV (Comma delimited)", so that is named as a
    choice."""
    where = f"line {_first_bad_line(path, read_as)}: {error.reason}"
    if named:
        return f"not {named} text ({where})"
    if read_as == "utf-16":
        return f"not UTF-16 text, though it starts as such ({where})"
    advice = 'a spreadsheet saves it as "CSV UTF-8" or "Unicode text"'
    if _first_bad_line(path, "cp1252") == 0:
        advice = (
            'it reads as cp1252, the code page Excel saves "CSV (Comma delimited)" in on '
            f"Windows: if it came from there, import it as cp1252 (--encoding cp1252); or {advice}"
        )
    return f"not UTF-8 text ({where}); {advice}"


def _first_bad_line(path: Path, encoding: str) -> int:
    """The number of the first line ``encoding`` cannot decode, 0 when it decodes the whole
    file. Fed a line of bytes at a time, the decoder keeps a character split across lines
    (UTF-16) for the next."""
    decoder = codecs.getincrementaldecoder(encoding)()
    seen = 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                seen += decoder.decode(raw).count("\n")
            except UnicodeDecodeError:
                return seen + 1
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return seen + 1
    return 0


def report_rows(summary: UpsertSummary, rejected: int) -> list[tuple[str, int]]:
    """What an import did (or would do), as the CLI's table and the editor's page show it."""
    return [
        ("added", summary.added),
        ("  of which pending, not mailed", summary.added_pending),
        ("  of which kept suppressed", summary.added_suppressed),
        ("updated", summary.updated),
        ("unchanged", summary.unchanged),
        ("reactivated", summary.reactivated),
        ("suppressed, left alone", len(summary.suppressed)),
        ("suppressed, as the file says", len(summary.suppressed_by_file)),
        ("bounced or complained, not reactivated", len(summary.needs_own_confirmation)),
        ("erased on request, left out", len(summary.erased)),
        ("rejected", rejected),
    ]


UPLOAD_HOURS = 1
"""How long an uploaded subscriber file waits for the editor to confirm its import."""
UPLOAD_SUFFIXES = (".csv", ".txt", ".tsv", *JSON_LINES_SUFFIXES)
_UPLOAD_NAME = re.compile(r"(\d{1,12})-[A-Za-z0-9_-]{24}(\.claimed)?(\.[a-z]{3,6})")


class UploadTooLarge(DigestError):
    """An upload over the editor app's limit (``[editor] import_max_mb``)."""


def upload_folder(project: Project) -> Path:
    """Where uploads wait: the machine's temporary folder, one subfolder per project (by its
    configuration file), never the project's own folder, which may not be writable."""
    tag = hashlib.sha256(str(project.config.path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"digest-uploads-{tag}"


def keep_upload(project: Project, source: BinaryIO, filename: str, max_bytes: int) -> str:
    """Keep an uploaded subscriber file until the editor confirms its import (or for
    :data:`UPLOAD_HOURS`); the name to confirm it by: random, and the only thing a later
    request can name, so no path an editor types is ever opened. Uploads older than that are
    removed on the way."""
    suffix = Path(filename).suffix.lower()
    folder = upload_folder(project)
    now = project.clock()
    name = (
        f"{int(now.timestamp())}-{secrets.token_urlsafe(18)}"
        f"{suffix if suffix in UPLOAD_SUFFIXES else '.csv'}"
    )
    path = folder / name
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        _drop_stale_uploads(folder, now)
        with path.open("xb") as kept:
            size = 0
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(
                        f"the file is larger than {max_bytes // 2**20} MB; import it with "
                        "`digest subscribers import`, or raise [editor] import_max_mb",
                        where=filename,
                    )
                kept.write(chunk)
    except OSError as e:
        path.unlink(missing_ok=True)
        raise DigestError(
            f"cannot keep the uploaded file: {e.strerror or e}", where=str(folder)
        ) from None
    except DigestError:
        path.unlink(missing_ok=True)
        raise
    return name


def kept_upload(project: Project, name: str) -> Path:
    """The file :func:`keep_upload` kept as ``name``, or a DigestError when it is gone (or
    is being imported)."""
    found = _UPLOAD_NAME.fullmatch(name)
    path = upload_folder(project) / name
    if found is None or found[2] or _stale(int(found[1]), project.clock()) or not path.is_file():
        raise DigestError(
            f"this upload is no longer kept (uploads wait {UPLOAD_HOURS} hour, and are "
            "imported once); upload the file again"
        )
    return path


@contextmanager
def claimed_upload(project: Project, name: str) -> Iterator[Path]:
    """The kept file, taken for one import: renamed first (one atomic step), so that a second
    confirmation of the same upload, a double click, finds it gone instead of importing it
    again; put back when the import fails, removed when it is done."""
    path = kept_upload(project, name)
    claimed = path.with_name(f"{path.stem}.claimed{path.suffix}")
    try:
        path.rename(claimed)
    except FileNotFoundError:
        raise DigestError("this upload is being imported already; see the subscribers") from None
    try:
        yield claimed
    except BaseException:
        claimed.rename(path)
        raise
    claimed.unlink(missing_ok=True)


def drop_upload(project: Project, name: str) -> None:
    found = _UPLOAD_NAME.fullmatch(name)
    if found and not found[2]:
        (upload_folder(project) / name).unlink(missing_ok=True)


def _stale(stamp: int, now: datetime) -> bool:
    return now.timestamp() - stamp > UPLOAD_HOURS * 3600


def _drop_stale_uploads(folder: Path, now: datetime) -> None:
    for kept in folder.iterdir():
        found = _UPLOAD_NAME.fullmatch(kept.name)
        if found and _stale(int(found[1]), now):
            kept.unlink(missing_ok=True)


def erasure_hasher(project: Project, store: SubscriberStore) -> ErasureHasher | None:
    """The hasher that recognises addresses erased on request (:mod:`subscribers.erasure`);
    None while the project has erased nobody and has no key to hash with. Erased people and
    no key to recognise them by is a DigestError: going on would add them back."""
    keys = project.erasure_keys()
    if keys:
        return ErasureHasher(keys)
    if not store.has_erased():
        return None
    if not project.config.secrets.secret_key:
        raise DigestError(
            f"{SECRET_KEY_ENV} is not set, and it is needed to recognise the addresses "
            "erased on request (they are kept only as a hash keyed with a key it opens)",
            where=SECRET_KEY_ENV,
        )
    raise DigestError(
        "no key set opens the key that recognises the addresses erased on request: it was "
        f"wrapped with the secret key used before; set {PREVIOUS_KEY_ENV} to that key (once "
        "is enough: opening the project rewraps it with the new one). If that key is lost, "
        "`digest subscribers forget-lost-erasures` goes on without recognising them",
        where=PREVIOUS_KEY_ENV,
    )


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
            defaults=defaults(project.config),
            switch=issue_cases.switch_in(conn, project.config, project.clock()),
        )


def export(project: Project, path: Path) -> int:
    """Write every subscriber to ``path`` (JSON Lines by its suffix, else CSV), in a form
    that imports back; the number written. A CSV file starts with UTF-8's byte order mark:
    without it, a spreadsheet opened with a double click reads the names as its own code
    page ("JÃ¼rgen"); the import, and every spreadsheet, take it."""
    jsonl = _json_lines(path)
    try:
        with (
            project.reading() as conn,
            _written_whole(path, "utf-8" if jsonl else "utf-8-sig") as handle,
        ):
            items = records(SubscriberStore(conn), offered=offered(project.config))
            return write_jsonl(items, handle) if jsonl else write_csv(items, handle)
    except OSError as e:
        raise DigestError(f"cannot write: {e.strerror or e}", where=str(path)) from None


@contextmanager
def _written_whole(path: Path, encoding: str) -> Iterator[TextIO]:
    """A text file written beside ``path`` under a temporary name, flushed to the disk and
    renamed over it once complete: an export that fails (a full disk, Ctrl-C) leaves the
    previous file, or none, never one cut short, which would import as a smaller list."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with temporary.open("w", encoding=encoding, newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


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


def add(
    project: Project,
    email: str,
    name: str,
    topics: str,
    cadence: str = "",
    time_zone: str = "",
) -> Subscriber:
    """Add one active subscriber; ``topics`` is names or slugs separated as in a CSV file,
    ``cadence`` a cadence cell (:mod:`subscribers.cadences`), ``time_zone`` an IANA name."""
    slugs = topic_slugs(project, topics)
    address = checked_address(email, name)
    chosen = cadence_cell(project.config, cadence, where="--cadence")
    zone = checked_zone(time_zone, where="--time-zone")
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
        added = store.add(address, name, slugs, project.clock())
        if zone:
            store.set_time_zone(added.id, zone, project.clock())
        if chosen:
            store.choose_cadences(
                added.id,
                chosen,
                defaults(project.config),
                issue_cases.switch_in(conn, project.config, project.clock()),
                project.clock(),
            )
        return store.by_id(added.id) or added


def unsubscribe(project: Project, email: str) -> Subscriber:
    """Mark an address unsubscribed; it stays on file, so no import brings it back."""
    with project.transaction() as conn:
        found = SubscriberStore(conn).set_status(email, Status.UNSUBSCRIBED, project.clock())
    if found is None:
        raise DigestError("is not a subscriber", where=email)
    return found


def listing(project: Project, status: Status | None, topic: str | None) -> list[Subscriber]:
    """Subscribers of ``status`` (any if None) following ``topic`` (a slug or a name; any if
    None): a DigestError naming an unknown one (an empty list would say nobody follows it)."""
    wanted = None if topic is None else topic_slugs(project, topic)
    with project.reading() as conn:
        return [
            s
            for s in SubscriberStore(conn).iterate(status=status)
            if wanted is None or wanted & s.topics
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


# cadences and time zones ---------------------------------------------------------------------


def offered(config: Config) -> dict[str, list[str]]:
    """Digest → the cadences its readers choose from, for the digests that name cadences."""
    return {d.slug: list(d.cadences) for d in config.digests if d.cadences}


def choosing(config: Config) -> list[DigestConfig]:
    """The digests whose readers have a choice to make (more than one cadence)."""
    return [d for d in config.digests if len(d.schedules) > 1]


def defaults(config: Config) -> dict[str, str]:
    """Digest → the cadence of its readers who have not chosen."""
    return {d.slug: d.default for d in config.digests}


def cadence_cell(config: Config, text: str, where: str) -> dict[str, str]:
    """Digest → cadence for a cadence cell, or a DigestError naming the bad word."""
    chosen = read_cadences(text, offered(config))
    if isinstance(chosen, str):
        raise DigestError(chosen, where=where)
    return chosen


def checked_zone(text: str, where: str) -> str | None:
    """The IANA name ``text`` spells (None for empty: the digest's), or a DigestError."""
    problem = zone_problem(text)
    if problem:
        raise DigestError(problem, where=where)
    return canonical_zone(text)


def checked_cadence(config: Config, digest: str, cadence: str) -> tuple[DigestConfig, str]:
    """The digest and one of its cadences by name, or a DigestError naming both and what the
    digest offers."""
    found = config.digest(digest)
    offer: Offered = {found.slug: [c for c in found.schedules if c]}
    if cadence not in found.schedules or not cadence:
        names = ", ".join(offer[found.slug]) or "none (it has one schedule)"
        shown = cadence if len(cadence) <= 40 else cadence[:40] + "…"
        raise DigestError(
            f"digest {found.slug!r} has no cadence {shown!r} (it offers {names})",
            where="cadence",
        )
    return found, cadence


def choose_cadences(
    conn: Connection, config: Config, subscriber_id: int, chosen: Mapping[str, str], now: datetime
) -> dict[str, str]:
    """In the caller's transaction: give the reader ``chosen`` (digest → cadence, checked),
    each switch taking the watermark of the cadence left
    (:func:`~digest.stores.releases.watermarks_at_switch`), the reader's row held meanwhile
    (as a confirmation holds it) so that two switches at once run one after the other.
    What changed."""
    store = SubscriberStore(conn)
    store.lock(subscriber_id)
    switch = issue_cases.switch_in(conn, config, now)
    return store.choose_cadences(subscriber_id, chosen, defaults(config), switch, now)


def choose_cadence(project: Project, subscriber_id: int, digest: str, cadence: str) -> bool:
    """The reader chooses ``cadence`` of ``digest``; True when it changed what they get."""
    found, name = checked_cadence(project.config, digest, cadence)
    with project.transaction() as conn:
        return bool(
            choose_cadences(
                conn, project.config, subscriber_id, {found.slug: name}, project.clock()
            )
        )


def set_time_zone(project: Project, subscriber_id: int, text: str) -> str | None:
    """The reader's zone from what they typed (empty: the digest's); the name stored."""
    zone = checked_zone(text, where="time zone")
    with project.transaction() as conn:
        SubscriberStore(conn).set_time_zone(subscriber_id, zone, project.clock())
    return zone


def cadence_counts(project: Project) -> dict[str, list[tuple[str, int]]]:
    """Digest → (cadence, active readers) for each cadence it offers (in the config's order),
    then any cadence readers still hold that the config no longer offers."""
    config = project.config
    wanted = [
        DigestReaders(d.slug, d.default, frozenset(d.topics) if d.topics else None)
        for d in config.digests
    ]
    with project.reading() as conn:
        counts = SubscriberStore(conn).cadence_counts(wanted)
    shown: dict[str, list[tuple[str, int]]] = {}
    for d in config.digests:
        rows = [(name, counts.get((d.slug, name), 0)) for name in d.schedules]
        rows += sorted(
            (name, n)
            for (slug, name), n in counts.items()
            if slug == d.slug and name not in d.schedules
        )
        shown[d.slug] = rows
    return shown
