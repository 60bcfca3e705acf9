"""Use cases of readers: subscribe and confirm, ask for one's link, change preferences,
unsubscribe, read the web archive. Sync code over the stores, the signer and the templates;
the web face calls it in a worker thread.

What may mail an address is queued on a :class:`~digest.app.background.Background` when one is
given (the web app's), so the answer to "subscribe me" or "email me my link" is made and sent
before anyone looks the address up: it is the same, in content and in time, whether the
address is known, unknown or suppressed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from digest.app import subscribers as subscriber_list
from digest.app.background import Background
from digest.app.images import IMAGES_ROUTE
from digest.app.wiring import Project
from digest.errors import DigestError
from digest.lifecycle import approval_shown
from digest.render.inline import inline_css
from digest.render.mjml import compile_mjml
from digest.send.message import ONE_CLICK, compose, list_unsubscribe, mailbox
from subscribers.erasure import ReturnSeal
from subscribers.importer import normalize_email
from subscribers.models import Status, Subscriber
from subscribers.names import MAX_NAME_LENGTH, name_problem, usable_name
from subscribers.store import SubscriberStore
from subscribers.tokens import InvalidToken, Purpose
from subscribers.zones import MAX_ZONE_LENGTH

NO_CONFIRMATION = frozenset({Status.BOUNCED, Status.COMPLAINED})
"""Addresses that bounced or complained get no mail on a stranger's say-so: the sign-up form,
where anyone can type any address, sends them nothing, not even a confirmation request. Their
owner may come back, but only by a fresh double opt-in: from their preferences page (reached
through a link we mailed to that address, so whoever holds it reads that mailbox) they ask
for one confirmation email (:meth:`Readers.reconfirm`), and opening its link makes them
active. Nothing else does: "Subscribe again" is for those who unsubscribed themselves, and
unsubscribing or leaving a topic never turns a bounce or a complaint into an unsubscription
that could then be undone."""

COME_BACK_BY_EMAIL = (
    "We stopped sending to this address, so it needs a fresh confirmation: ask for a "
    "confirmation link below and open it."
)

CHANGED_ELSEWHERE = (
    "Nothing was saved: your choices were changed after this page was opened (in another "
    "window, or by a link in one of our emails). Here they are as they are now; make your "
    "change again."
)


def preferences_version(
    topics: frozenset[str], cadences: Mapping[str, str], zone: str | None
) -> str:
    """A short fingerprint of the choices a preferences page shows, sent back with its form:
    a save from a page whose choices have since changed (a second tab, or "stop getting this
    topic" from an email) would silently undo that change, so it is refused instead."""
    shown = json.dumps([sorted(topics), sorted(cadences.items()), zone or ""])
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()[:16]


class Readers:
    """The reader-facing use cases of one project, with its templates and signer loaded once."""

    def __init__(
        self,
        project: Project,
        mailer: Callable[[EmailMessage], None],
        background: Background | None = None,
    ) -> None:
        """``background`` runs the work that may send mail after the answer; without one
        (the CLI, tests of the use cases) it runs at once."""
        self.project = project
        self.mailer = mailer
        self.background = background
        self._env = project.environment()
        self._env.globals["approval_shown"] = approval_shown  # the editor pages' badges
        self._signer = project.signer()
        project.config.secrets.require_secret_key()
        self._return_seal = ReturnSeal(project.config.secrets.secret_keys())
        self._env.globals["logo_src"] = self._logo_src()

    def _logo_src(self) -> str | None:
        """The site's logo for the readers' pages: published with the emails' images, and
        named by path when this app serves it (the pages then work on any host)."""
        logo = self.project.images().url(self.project.config.logo_url())
        if logo is None or not logo.startswith(("http://", "https://")):
            return None
        base = self.project.images().url_base
        if logo.startswith(base) and base.startswith(self.project.config.site.public_url):
            return IMAGES_ROUTE + logo[len(base) :]
        return logo

    def render(self, template: str, **values: Any) -> str:
        site = self.project.config.site
        names = {t.slug: t.name for t in self.project.topics()}
        return str(
            self._env.get_template(template).render(
                site=site,
                topics=self.project.topics(),
                digest=self.project.config.digests[0],
                topic_name=lambda slug: names.get(slug, slug),
                topics_named=lambda slugs: [names[s] for s in slugs if s in names],
                name_max=MAX_NAME_LENGTH,
                zone_max=MAX_ZONE_LENGTH,
                choosing=subscriber_list.choosing(self.project.config),
                digests=self.project.config.digests,
                **values,
            )
        )

    # tokens ----------------------------------------------------------------------------

    def manage_token(self, subscriber_id: int) -> str:
        return self._signer.manage_token(subscriber_id)

    def subscriber_for(self, purpose: Purpose, token: str) -> tuple[Subscriber, Any]:
        """The subscriber a token names, and a confirmation's topics."""
        payload = self._signer.verify(purpose, token)
        with self.project.reading() as conn:
            subscriber = SubscriberStore(conn).by_id(int(str(payload["s"])))
        if subscriber is None or subscriber.status is Status.ERASED:
            raise InvalidToken("unknown")  # erased on request: their old links lead nowhere
        return subscriber, payload.get("topics")

    def confirming(self, token: str) -> tuple[str, Any]:
        """The address a confirmation link would start sending to, and its topics (for the
        page that asks "start sending?"); InvalidToken when it would start nothing."""
        payload = self._signer.verify(Purpose.CONFIRM, token)
        if "back" not in payload:
            subscriber, topics = self.subscriber_for(Purpose.CONFIRM, token)
            return subscriber.email, topics
        address, _ = self._returning(payload)
        with self.project.reading() as conn:
            store = SubscriberStore(conn)
            erased = store.erased_ids(self._erased_as(store, address))
            if payload["s"] not in erased and store.get(address) is None:
                raise InvalidToken("unknown")
        return address, payload.get("topics")

    def _erased_as(self, store: SubscriberStore, address: str) -> list[str]:
        """Every hash ``address`` is kept under if it was erased on request."""
        hasher = subscriber_list.erasure_hasher(self.project, store)
        return hasher.keys(address) if hasher is not None else []

    def _returning(self, payload: Mapping[str, object]) -> tuple[str, str]:
        """The address and name a returning person's confirmation link carries sealed."""
        try:
            return self._return_seal.open(str(payload["back"]))
        except ValueError:
            raise InvalidToken("invalid") from None

    # subscribe and confirm -------------------------------------------------------------

    def check_subscription(
        self, email: str, topics: Sequence[str], name: str = ""
    ) -> tuple[dict[str, str], str, list[str]]:
        """Errors per field, the normalized address and the known topics chosen."""
        errors = {}
        try:
            email = normalize_email(email)
        except ValueError:
            errors["email"] = "Please enter a valid email address."
        problem = name_problem(name)
        if problem:
            errors["name"] = f"Your name {problem}."
        known = {t.slug for t in self.project.topics()}
        chosen = [t for t in topics if t in known]
        if not chosen:
            errors["topics"] = "Choose at least one topic."
        return errors, email, chosen

    def check_choices(
        self, cadences: Mapping[str, str], zone: str
    ) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Errors per field (``cadence-<digest>``, ``time_zone``), the cadences chosen of the
        digests that offer a choice (digest → cadence; a digest left out keeps what it has)
        and the IANA zone (None: the digest's)."""
        errors: dict[str, str] = {}
        chosen: dict[str, str] = {}
        for digest in subscriber_list.choosing(self.project.config):
            name = cadences.get(digest.slug, "")
            if not name:
                continue
            try:
                subscriber_list.checked_cadence(self.project.config, digest.slug, name)
            except DigestError as bad:
                errors[f"cadence-{digest.slug}"] = f"Choose how often: {bad.message}."
                continue
            chosen[digest.slug] = name
        try:
            checked = subscriber_list.checked_zone(zone, where="time zone")
        except DigestError as bad:
            errors["time_zone"] = f"{bad.message}."
            checked = None
        return errors, chosen, checked

    def _later(self, job: Callable[[], None]) -> None:
        if self.background is None:
            job()
        else:
            self.background.submit(job)

    def subscribe(
        self,
        email: str,
        name: str,
        topics: Sequence[str],
        cadences: Mapping[str, str] | None = None,
        zone: str | None = None,
    ) -> None:
        """A new address is stored as pending; any address that may get mail is sent a
        confirmation link carrying the chosen topics, cadences and time zone, which apply
        only when it is opened. All of it after the answer (see the module's docstring)."""
        chosen = list(topics)
        how_often = dict(cadences or {})
        self._later(lambda: self._subscribe_now(email, name, chosen, how_often, zone))

    def _subscribe_now(
        self,
        email: str,
        name: str,
        topics: Sequence[str],
        cadences: Mapping[str, str] | None = None,
        zone: str | None = None,
    ) -> None:
        now = self.project.clock()
        erased: list[int] = []
        with self.project.transaction() as conn:
            store = SubscriberStore(conn)
            subscriber = store.get(email)
            if subscriber is None:
                erased = store.erased_ids(self._erased_as(store, email))
                if not erased:
                    subscriber = store.add(
                        email, name, frozenset(topics), now, "web", Status.PENDING
                    )
            elif subscriber.status in NO_CONFIRMATION:
                return
            how_often = self._how_often(store, subscriber, cadences, zone)
        extra: dict[str, object] = {}
        if cadences:
            extra["cadences"] = dict(cadences)
        if zone:
            extra["zone"] = zone
        if subscriber is None:
            # Erased on request: nothing is stored; the address travels sealed in the link,
            # and only its owner's click brings them back (see subscribers.erasure).
            back = self._return_seal.seal(email, name)
            token = self._signer.sign(
                Purpose.CONFIRM, erased[0], topics=sorted(topics), back=back, **extra
            )
            self.mailer(self._confirmation(email, name, topics, token, how_often, returning=True))
            return
        token = self._signer.sign(Purpose.CONFIRM, subscriber.id, topics=sorted(topics), **extra)
        self.mailer(
            self._confirmation(subscriber.email, name or subscriber.name, topics, token, how_often)
        )

    def reconfirm(self, subscriber_id: int) -> None:
        """The owner of a bounced, complained or pending address asks, from their preferences
        page, for a confirmation link: one is sent, with the topics they had (the fresh
        double opt-in of :data:`NO_CONFIRMATION`). Anyone else gets nothing."""
        self._later(lambda: self._reconfirm_now(subscriber_id))

    def _reconfirm_now(self, subscriber_id: int) -> None:
        with self.project.reading() as conn:
            store = SubscriberStore(conn)
            subscriber = store.by_id(subscriber_id)
            if subscriber is None or subscriber.status not in {*NO_CONFIRMATION, Status.PENDING}:
                return
            how_often = self._how_often(store, subscriber)
        topics = sorted(subscriber.topics)
        token = self._signer.sign(Purpose.CONFIRM, subscriber.id, topics=topics)
        self.mailer(self._confirmation(subscriber.email, subscriber.name, topics, token, how_often))

    def confirm(self, token: str) -> str:
        """Make the token's subscriber active with its topics; the one call that turns them
        active (the first click; a second click, even at the same moment, finds them active
        already) queues the welcome email. The preferences token."""
        payload = self._signer.verify(Purpose.CONFIRM, token)
        carried = payload.get("topics")
        known = {t.slug for t in self.project.topics()}
        listed = carried if isinstance(carried, list) else []
        topics = frozenset(t for t in listed if isinstance(t, str) and t in known)
        cadences, zone = self._choices_in(payload)
        now = self.project.clock()
        with self.project.transaction() as conn:
            store = SubscriberStore(conn)
            subscriber_id = self._confirmed(store, payload, topics, now)
            store.lock(subscriber_id)  # two clicks at once: one after the other
            became_active = store.activate(subscriber_id, now)
            store.set_topics(subscriber_id, topics)
            if zone is not None:
                store.set_time_zone(subscriber_id, zone, now)
            if cadences:
                subscriber_list.choose_cadences(
                    conn, self.project.config, subscriber_id, cadences, now
                )
        if became_active:
            self._later(lambda: self._welcome_now(subscriber_id))
        return self.manage_token(subscriber_id)

    def _confirmed(
        self,
        store: SubscriberStore,
        payload: Mapping[str, object],
        topics: frozenset[str],
        now: datetime,
    ) -> int:
        """The subscriber a confirmation link confirms. For a person erased on request who
        asked to come back: a new pending row, made by the click that lifts their erasure
        (the link names the erased row, so it stops working if they are erased again); a
        second click finds the row the first one made."""
        subscriber_id = int(str(payload["s"]))
        if "back" not in payload:
            found = store.by_id(subscriber_id)
            if found is None or found.status is Status.ERASED:
                raise InvalidToken("unknown")
            return subscriber_id
        address, name = self._returning(payload)
        lifted = store.lift_erasure(subscriber_id, self._erased_as(store, address), now)
        live = store.get(address)
        if live is not None:
            return live.id
        if not lifted:
            raise InvalidToken("unknown")
        return store.add(address, name, topics, now, "web", Status.PENDING).id

    def _choices_in(self, payload: Mapping[str, object]) -> tuple[dict[str, str], str | None]:
        """The cadences and zone a confirmation link carries, as far as the configuration
        still offers them (it may have changed in the week the link lives)."""
        carried = payload.get("cadences")
        wanted = {str(d): str(c) for d, c in carried.items()} if isinstance(carried, dict) else {}
        errors, cadences, zone = self.check_choices(wanted, str(payload.get("zone") or ""))
        return cadences, zone if "time_zone" not in errors else None

    def _how_often(
        self,
        store: SubscriberStore,
        subscriber: Subscriber | None,
        carried: Mapping[str, str] | None = None,
        zone: str | None = None,
    ) -> dict[str, str]:
        """What the confirmation and welcome emails say of how often the digest comes: the
        reader's cadence (as ``carried`` by a confirmation link, else as stored, else the
        default) of a digest offering a choice, and, where it goes out at an hour of the
        reader's own, in which zone. Empty values for a digest of one schedule."""
        digest = self.project.config.digests[0]
        cadence = ""
        if digest.cadences:
            stored = store.cadences_of(subscriber.id) if subscriber is not None else {}
            cadence = (carried or {}).get(digest.slug) or stored.get(digest.slug, digest.default)
        local_zone = ""
        if digest.local_delivery:
            own = subscriber.time_zone if subscriber is not None else None
            local_zone = zone or own or digest.timezone
        return {"cadence": cadence, "local_zone": local_zone}

    def _welcome_now(self, subscriber_id: int) -> None:
        config = self.project.config
        digest = config.digests[0]
        with self.project.reading() as conn:
            store = SubscriberStore(conn)
            subscriber = store.by_id(subscriber_id)
            if subscriber is None or subscriber.status is not Status.ACTIVE:
                return  # left, or erased, before the welcome went
            how_often = self._how_often(store, subscriber)
        token = self.manage_token(subscriber.id)
        base = config.site.public_url
        message = self._service_email(
            "confirm/welcome",
            mailbox(subscriber.name, subscriber.email),
            f"Welcome to {digest.name}",
            first_name=usable_name(subscriber.first_name),
            topic_names=[t.name for t in self.project.topics() if t.slug in subscriber.topics],
            **how_often,
            preferences_url=f"{base}/preferences/{token}",
            unsubscribe_url=f"{base}/unsubscribe/{token}",
        )
        message["List-Unsubscribe"] = list_unsubscribe(
            config.sending.unsubscribe_mailto, f"{base}/unsubscribe/{token}"
        )
        message["List-Unsubscribe-Post"] = ONE_CLICK
        self.mailer(message)

    def _confirmation(
        self,
        address: str,
        name: str,
        topics: Sequence[str],
        token: str,
        how_often: Mapping[str, str],
        returning: bool = False,
    ) -> EmailMessage:
        config = self.project.config
        names = [t.name for t in self.project.topics() if t.slug in topics]
        return self._service_email(
            "confirm/confirm",
            mailbox(name, address),
            f"Confirm your subscription to {config.digests[0].name}",
            topic_names=names,
            confirm_url=f"{config.site.public_url}/confirm/{token}",
            returning=returning,
            **how_often,
        )

    def check_link_request(self, entered: str) -> tuple[str | None, str]:
        """An error for the reader (None when the address is well formed) and the normalized
        address, for the form that asks for one's preferences link."""
        try:
            return None, normalize_email(entered)
        except ValueError:
            return "Please enter a valid email address.", entered

    def send_link(self, email: str) -> None:
        """Mail a subscriber who gets the digest (active, possibly paused) the link to their
        preferences; any other address gets nothing, and the page says the same either way.
        After the answer (see the module's docstring)."""
        self._later(lambda: self._send_link_now(email))

    def _send_link_now(self, email: str) -> None:
        with self.project.reading() as conn:
            subscriber = SubscriberStore(conn).get(email)
        if subscriber is None or subscriber.status is not Status.ACTIVE:
            return
        config = self.project.config
        self.mailer(
            self._service_email(
                "confirm/link",
                mailbox(subscriber.name, subscriber.email),
                f"Your preferences for {config.digests[0].name}",
                preferences_url=f"{config.site.public_url}/preferences/"
                f"{self.manage_token(subscriber.id)}",
            )
        )

    def _service_email(
        self, template: str, to: Address, subject: str, **values: object
    ) -> EmailMessage:
        """A one-off email to one reader (not a digest): MJML and text from ``template``."""
        config = self.project.config
        context = {
            "site": config.site,
            "digest": config.digests[0],
            "theme": config.file.theme,
            **values,
        }
        compiled = compile_mjml(self._env.get_template(f"{template}.mjml.j2").render(context))
        # mj-button declares the browser's own default pointer, a property most clients
        # drop (caniemail: css-cursor); without it every client shows the same button.
        html = inline_css(compiled.replace("cursor:auto;", ""))
        text = self._env.get_template(f"{template}.txt.j2").render(context)
        sending = config.sending
        message = compose(
            mailbox(sending.from_name, sending.from_email),
            to,
            subject,
            text,
            html,
            self.project.clock(),
        )
        message["Auto-Submitted"] = "auto-generated"
        return message

    # preferences -----------------------------------------------------------------------

    def update_preferences(
        self,
        subscriber_id: int,
        action: str,
        topics: Sequence[str],
        cadences: Mapping[str, str] | None = None,
        zone: str | None = None,
        seen: str | None = None,
    ) -> str | None:
        """Apply a form's action; an error message for the reader, or None. Saving takes the
        topics, and the cadences and time zone when the form holds them (``zone`` None: the
        form has no zone field), all in one transaction; ``seen``: the
        :func:`preferences_version` of the page the form came from (None from a form without
        it: saved as it is), :data:`CHANGED_ELSEWHERE` when the choices changed since."""
        now = self.project.clock()
        known = {t.slug for t in self.project.topics()}
        errors, how_often, checked_zone = self.check_choices(cadences or {}, zone or "")
        with self.project.transaction() as conn:
            store = SubscriberStore(conn)
            if action == "save":
                chosen = frozenset(t for t in topics if t in known)
                if errors:
                    return " ".join(errors.values())
                if not chosen:
                    return "Choose at least one topic, or leave everything below."
                store.lock(subscriber_id)
                if seen is not None and seen != self._version(store, subscriber_id):
                    return CHANGED_ELSEWHERE
                store.set_topics(subscriber_id, chosen)
                store.update(subscriber_id, now)
                if zone is not None:
                    store.set_time_zone(subscriber_id, checked_zone, now)
                if how_often:
                    subscriber_list.choose_cadences(
                        conn, self.project.config, subscriber_id, how_often, now
                    )
            elif action == "pause":
                weeks = timedelta(days=self.project.config.file.web.pause_days)
                store.update(subscriber_id, now, paused_until=now + weeks)
            elif action == "resume":
                store.update(subscriber_id, now, paused_until=None)
            elif action == "resubscribe":
                return self._resubscribe(store, subscriber_id, now)
            else:
                return "Unknown action."
        return None

    @staticmethod
    def _resubscribe(store: SubscriberStore, subscriber_id: int, now: datetime) -> str | None:
        """Only who unsubscribed themselves comes back with a click; see NO_CONFIRMATION."""
        subscriber = store.by_id(subscriber_id)
        if subscriber is None or subscriber.status is Status.ACTIVE:
            return None
        if subscriber.status is not Status.UNSUBSCRIBED:
            return COME_BACK_BY_EMAIL
        store.set_status_of(subscriber_id, Status.ACTIVE, now)
        return None

    def choices_of(self, subscriber_id: int) -> tuple[dict[str, str], str | None]:
        """The reader's cadence of each digest offering a choice (their own, else its
        default: also when the config no longer offers theirs, since the default is what they
        get from now on) and their time zone, for the preferences page."""
        with self.project.reading() as conn:
            return self._choices(SubscriberStore(conn), subscriber_id)

    def _choices(
        self, store: SubscriberStore, subscriber_id: int
    ) -> tuple[dict[str, str], str | None]:
        own = store.cadences_of(subscriber_id)
        zone = store.time_zone_of(subscriber_id)
        return {
            d.slug: chosen if (chosen := own.get(d.slug)) in d.schedules else d.default
            for d in subscriber_list.choosing(self.project.config)
        }, zone

    def _version(self, store: SubscriberStore, subscriber_id: int) -> str:
        """The :func:`preferences_version` of the reader's choices as stored now."""
        subscriber = store.by_id(subscriber_id)
        cadences, zone = self._choices(store, subscriber_id)
        topics = subscriber.topics if subscriber is not None else frozenset()
        return preferences_version(topics, cadences, zone)

    def unsubscribe(self, subscriber_id: int) -> None:
        """Stop the digest; a bounce or a complaint stays what it is (see NO_CONFIRMATION)."""
        with self.project.transaction() as conn:
            store = SubscriberStore(conn)
            subscriber = store.by_id(subscriber_id)
            if subscriber is not None and subscriber.status not in NO_CONFIRMATION:
                store.set_status_of(subscriber_id, Status.UNSUBSCRIBED, self.project.clock())

    def leave_topic(self, subscriber_id: int, topic: str) -> None:
        with self.project.transaction() as conn:
            store = SubscriberStore(conn)
            subscriber = store.by_id(subscriber_id)
            if subscriber is None:
                return
            remaining = subscriber.topics - {topic}
            if remaining:
                store.set_topics(subscriber_id, remaining)
                store.update(subscriber_id, self.project.clock())
            elif subscriber.status not in NO_CONFIRMATION:  # leaving the last topic is leaving
                store.set_status_of(subscriber_id, Status.UNSUBSCRIBED, self.project.clock())
