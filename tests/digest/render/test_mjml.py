"""mrml's attribute values: what a title, an alt text or a site name holds is what an HTML parser
reads back from the compiled email's ``alt``, ``title`` and ``aria-label`` (mrml itself writes
them with Rust's string escapes: ``\\u{fe0f}``, ``\\\\``)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html
from markupsafe import escape

from digest.models import HeroImage, Issue, IssueSection
from digest.render import render_issue
from digest.render.environment import TOKEN_GUARD, make_environment
from digest.render.mjml import compile_mjml, unescape_attributes
from tests.digest.render.golden import CTX, ISSUE, NOW, TOPICS, stored

# Every code point a str can carry through UTF-8 (no lone surrogates), weighted towards the
# ones Rust's Debug formatting escapes: format characters, combining marks, odd spaces.
TRICKY = "\\{}\"'&<>%\t\n\r\u00ad\u00a0\u200b\u200c\u200d\u200e\u200f\u202e\u2028\u3000\ufe0f\u0301"
TEXT = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(TRICKY) | st.sampled_from("é❤"),
    max_size=80,
)


def printed(text: str) -> str:
    """What the template environment prints for ``text`` (its documented changes only)."""
    env = make_environment()
    finalize = env.finalize
    assert finalize is not None
    return str(finalize(text))


def values(html: str, attribute: str) -> list[str]:
    document = lxml_html.document_fromstring(html)
    return [str(e.get(attribute)) for e in document.iter() if e.get(attribute) is not None]


@given(TEXT)
@example("We ❤\ufe0f Postgres")
@example("a\\b \\u{200b} \\\\ \\n {braces}")
@example("\u05e9\u05dc\u05d5\u05dd\u200f soft\u00adhyphen zwj\u200d e\u0301")
@example("\"double\" and 'single' quotes")
@settings(max_examples=150, deadline=None)
def test_compiled_attribute_values_are_the_input(text: str) -> None:
    value = str(escape(printed(text)))
    source = (
        "<mjml><mj-body><mj-section><mj-column>"
        f'<mj-image src="https://x.example/a.png" alt="{value}" />'
        f'<mj-raw><img src="https://x.example/b.png" alt="{value}"></mj-raw>'
        f'<mj-text><a href="https://x.example/" title="{value}" aria-label="{value}">x</a>'
        "</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    html = compile_mjml(source)
    want = printed(text)
    assert values(html, "alt") == [want, want]
    assert values(html, "title") == [want]
    assert values(html, "aria-label") == [want]


def issue_with(title: str, alt: str) -> Issue:
    post = stored(1, ("backend",), title, HeroImage("https://img.example/1.png", alt, 1200, 600))
    return Issue("weekly", 1, (IssueSection(TOPICS[0], (post,)),), cutoff=NOW, id=1, created_at=NOW)


@given(title=TEXT.filter(str.strip), alt=TEXT, site=TEXT.filter(str.strip))
@example(title="We ❤\ufe0f Postgres", alt="C:\\path\\u{41}", site="Caf\u00e9\u200b")
@settings(max_examples=25, deadline=None)
def test_whole_email_keeps_titles_and_alt_texts(title: str, alt: str, site: str) -> None:
    """Jinja, mrml, the CSS inliner and the assembly: the reader's email, read back."""
    ctx = replace(CTX, site_name=site)
    rendered = render_issue(issue_with(title, alt), ctx)
    html = rendered.variant(frozenset({"backend"})).html
    assert f"Read more: {printed(title)}" in values(html, "aria-label")
    assert printed(alt) in values(html, "alt")
    assert printed(site) in values(html, "alt")  # the logo's


def test_rust_escapes_outside_attributes_are_left_alone() -> None:
    """Text between tags is written as given: a title that spells an escape keeps it."""
    html = '<p title="a\\u{200b}b \\\\ \\"q\\"">\\u{200b} \\\\ \\"</p>'
    want = '<p title="a\u200bb \\ &quot;q&quot;">\\u{200b} \\\\ \\"</p>'
    assert unescape_attributes(html) == want


def test_control_characters_are_dropped_not_fatal() -> None:
    """mrml refuses C0 controls: one in a title must not fail the issue."""
    title = "Bell\x07 and \x0bvertical tab\ufffe"
    html = render_issue(issue_with(title, "alt\x00"), CTX).variant(frozenset({"backend"})).html
    assert "Read more: Bell and vertical tab" in values(html, "aria-label")
    assert "alt" in values(html, "alt")


def test_golden_issue_has_no_rust_escape_left() -> None:
    html = render_issue(ISSUE, CTX).variant(frozenset(t.slug for t in TOPICS)).html
    assert "\\u{" not in html
    assert f"Read more: Quotes \" and ' <script>alert(1)</script> {{{{ 7*7 }}}} {TOKEN_GUARD}" in (
        " ".join(values(html, "aria-label"))
    )
