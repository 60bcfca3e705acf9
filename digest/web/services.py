"""What the endpoints share, built once per app and kept on ``app.state``: the project, its
reader and editor use cases, the background thread that sends the readers' emails, the CSRF
and session signers, and the rate limits (in memory, per process)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from starlette.requests import Request

from digest.app.archive import ArchivePages
from digest.app.background import Background
from digest.app.editorial import Editorial
from digest.app.feedback import Drainer
from digest.app.readers import Readers
from digest.app.wiring import Mailer, Project
from digest.web.security import Csrf, LoginGuard, RateLimit
from digest.web.session import Sessions


@dataclass(frozen=True)
class Services:
    project: Project
    readers: Readers
    archive: ArchivePages
    """The web archive's pages, index and feed, each rendered once and kept."""
    background: Background
    """Sends the readers' emails after the answer; closed (drained) when the app stops."""
    drainer: Drainer
    """Applies the webhook's staged batches; started and stopped with the app."""
    editorial: Editorial
    csrf: Csrf
    sessions: Sessions
    signup_limit: RateLimit
    link_limit: RateLimit
    address_limit: RateLimit
    """Emails to one address, whoever asks for them: sign-ups and link requests together."""
    logins: LoginGuard
    """Failed logins: per client, per account, per known device (see LoginGuard)."""
    secure_cookie: bool
    """Cookies carry Secure when the public URL is https."""

    @classmethod
    def build(cls, project: Project, mailer: Mailer) -> Services:
        """``mailer`` sends confirmation emails (the configured transport)."""
        background = Background("digest-reader-mail")
        readers = Readers(project, mailer, background)
        secret_key = project.config.secrets.require_secret_key()
        web = project.config.file.web
        signups = timedelta(seconds=web.subscribe_window_seconds)
        editor = project.config.file.editor
        logins = timedelta(seconds=editor.login_window_seconds)
        return cls(
            project=project,
            readers=readers,
            archive=ArchivePages(project),
            background=background,
            drainer=Drainer(project),
            editorial=Editorial(project),
            csrf=Csrf(secret_key),
            sessions=Sessions(secret_key, timedelta(hours=editor.session_hours), project.clock),
            signup_limit=RateLimit(web.subscribe_limit, signups, project.clock),
            link_limit=RateLimit(web.subscribe_limit, signups, project.clock),
            address_limit=RateLimit(web.address_limit, signups, project.clock),
            logins=LoginGuard(editor.login_limit, logins, project.clock),
            secure_cookie=urlsplit(project.config.site.public_url).scheme == "https",
        )


def services(request: Request) -> Services:
    found = request.app.state.services
    assert isinstance(found, Services)
    return found
