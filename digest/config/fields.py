"""The value types the sections share: URLs, addresses, slugs, and the strict base model.

Each check raises ``ValueError`` with what was expected, so the loader can report it as
``key: expected …`` for the person editing ``digest.toml``.
"""

from __future__ import annotations

import re
from ipaddress import ip_network
from typing import Annotated
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL such as 'https://blog.example.com'")
    try:
        # The ASCII form links in mail headers need (digest.send.message.ascii_uri).
        (parts.hostname or "").encode("idna")
    except UnicodeError:
        raise ValueError(f"expected a host name, not {parts.netloc!r}") from None
    return value.rstrip("/")


def _email_address(value: str) -> str:
    _, address = split_display_name(value)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"expected an email address ({err})") from None
    return value


def split_display_name(value: str) -> tuple[str, str]:
    """``'Name <a@b>'`` → ``('Name', 'a@b')``; a bare address has an empty name."""
    if value.endswith(">") and "<" in value:
        name, _, rest = value.rpartition("<")
        return name.strip().strip('"'), rest[:-1].strip()
    return "", value.strip()


def _public_url(value: str) -> str:
    """Mail clients only honour https unsubscribe links; plain http is for local testing."""
    value = _http_url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("expected an https URL (http is accepted for localhost only)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
PublicUrl = Annotated[str, AfterValidator(_public_url)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]


class Section(BaseModel):
    """A table of ``digest.toml``: unknown keys are errors (a typo must not be ignored
    silently), and a loaded section never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def reachable_host(value: str) -> str:
    """An entry of ``[gather] allow_private``: an address, a network, or a host name."""
    entry = value.strip().lower()
    try:
        ip_network(entry, strict=False)
        return entry
    except ValueError:
        pass
    labels = entry.rstrip(".").split(".")
    if all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return entry
    raise ValueError(
        "expected an IP address ('127.0.0.1', '::1'), a network ('10.0.0.0/8') or a host "
        "name ('feeds.internal')"
    )
