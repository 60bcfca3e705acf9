"""The size budget of an email's HTML: Gmail clips messages whose HTML passes about 102 KB,
hiding the rest (footer and unsubscribe link included) behind "View entire message".

What is measured: the HTML part as sent, after personalization, in UTF-8 bytes as decoded,
not as transfer-encoded. No statement from Google exists; the published tests (collected in
shared/corpus/email_headers/gmail_clipping.md) describe the limit as the HTML code's size,
and the one that compared encodings found the cut-off only moved a little (about 105 KB), not
by the third base64 adds or the tenth quoted-printable adds. The encoding is also not ours to
choose on every path: SendGrid encodes the content it is given. So the budget is on the
decoded bytes, with a margin: 100,000 bytes is 2 % under 102 KB read as 102,000 bytes (and
4 % under 102 × 1024), room for how the cut-off moves with the encoding.

The budget holds for every reader by construction (:mod:`digest.render`): rendering counts
the most personalizing can add (:class:`digest.personalize.Growth`)."""

from __future__ import annotations

HTML_BUDGET_BYTES = 100_000


def html_bytes(html: str) -> int:
    return len(html.encode("utf-8"))
