"""The golden issue against caniemail's support data (DIGEST_CORPUS_DIR): nothing it relies on
may be unsupported in Gmail, Outlook or Apple Mail, unless it is a progressive enhancement with
a fallback, listed in :data:`digest.render.features.ENHANCEMENTS` with the reason it is safe."""

from __future__ import annotations

from pathlib import Path

from digest.render import render_issue
from digest.render.features import ENHANCEMENTS, email_features, load_unsupported
from tests.digest.render.golden import ALL_KEYS, CTX, ISSUE


def unsupported(corpus: Path) -> dict[str, set[tuple[str, str]]]:
    return load_unsupported(corpus / "caniemail" / "caniemail_latest_support.csv")


def test_every_feature_used_is_supported_or_an_enhancement(corpus: Path) -> None:
    lacking = unsupported(corpus)
    rendered = render_issue(ISSUE, CTX)
    used: set[str] = set()
    for key in ALL_KEYS:
        used |= email_features(rendered.variant(key).html)
    assert {"html-table", "html-img", "css-padding", "css-at-media"} <= used  # the lint sees
    problems = {
        feature: sorted(lacking.get(feature, set()) - ENHANCEMENTS.get(feature, set()))
        for feature in used
        if lacking.get(feature, set()) - ENHANCEMENTS.get(feature, set())
    }
    assert problems == {}, problems
    stale = {f for f in ENHANCEMENTS if f not in used}
    assert not stale, f"allow-list entries no longer needed: {stale}"
