"""URL rules for gathered posts: absolute, allowed schemes, canonical form for dedupe."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

WEB_SCHEMES = frozenset({"http", "https"})


def allowed_schemes(source_location: str) -> frozenset[str]:
    """A local example site may link to its own files; anything fetched over HTTP may not."""
    if urlsplit(source_location).scheme == "file":
        return WEB_SCHEMES | {"file"}
    return WEB_SCHEMES


def absolute_url(value: str, base: str, schemes: frozenset[str]) -> str | None:
    """``value`` resolved against ``base``, or None when its scheme is not allowed."""
    value = value.strip()
    if not value:
        return None
    resolved = urljoin(base, value)
    parts = urlsplit(resolved)
    if parts.scheme.lower() not in schemes:
        return None
    if parts.scheme in WEB_SCHEMES and not parts.netloc:
        return None
    return resolved


def canonical_url(url: str) -> str:
    """Lower-cased scheme and host, no fragment, no ``utm_*`` tracking parameters."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_")
    ]
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), "")
    )
