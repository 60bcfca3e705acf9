"""A site's own templates and per-digest subject/preheader templates take effect."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from digest.render import render_issue
from digest.render.environment import make_environment, template_folder
from tests.digest.render.golden import CTX, ISSUE


def test_a_template_folder_overrides_one_partial(tmp_path: Path) -> None:
    partial = tmp_path / "email" / "partials" / "footer.mjml.j2"
    partial.parent.mkdir(parents=True)
    bundled = (template_folder() / "email" / "partials" / "footer.mjml.j2").read_text()
    partial.write_text(bundled.replace("{{ ctx.postal_address }}", "Our own footer"))
    variant = render_issue(ISSUE, CTX, make_environment(tmp_path)).variant(frozenset({"backend"}))
    assert "Our own footer" in variant.html
    assert "Stop getting Backend" in variant.html  # the other partials are still the bundled ones


def test_subject_and_preheader_templates_per_digest() -> None:
    ctx = replace(
        CTX,
        subject_template="{{ ctx.digest_name }} — {{ post_count }} for you",
        preheader_template="First up: {{ titles[0] }}",
    )
    variant = render_issue(ISSUE, ctx).variant(frozenset({"frontend"}))
    assert variant.subject == "The Golden Weekly — 2 for you"
    assert "First up: A card without an image" in variant.html
