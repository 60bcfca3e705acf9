"""The size budget of an email's HTML: Gmail clips messages whose HTML passes about 102 KB,
hiding the rest (footer and unsubscribe link included) behind "View entire message"."""

from __future__ import annotations

HTML_BUDGET_BYTES = 100 * 1024


def html_bytes(html: str) -> int:
    return len(html.encode("utf-8"))
