from __future__ import annotations

import html
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.personalize import (
    HTML_TOKENS,
    MANAGE_TOKEN,
    MAX_MANAGE_TOKEN_LENGTH,
    TEXT_TOKENS,
    Growth,
    bind_links,
    compile_template,
    longest_values,
    recipient_values,
    token_values,
    topic_token,
    unfilled_tokens,
)
from subscribers.models import first_name_of
from subscribers.names import MAX_NAME_LENGTH, name_problem
from subscribers.tokens import TokenSigner

TOPICS = {"ai-ml": "https://x.test/unsubscribe/topic/A?b=1&c=2"}
FIELDS = {
    "first_name": '<Zoë> "%%unsubscribe_url%%"',
    "email": "z@example.com",
    "unsubscribe_url": "https://x.test/unsubscribe/T?a=1&b=2",
    "preferences_url": "https://x.test/preferences/T",
}


def test_html_tokens_get_escaped_values_and_text_tokens_raw_ones() -> None:
    template = compile_template(
        f'<p>Hi {HTML_TOKENS["first_name"]}</p><a href="{HTML_TOKENS["unsubscribe_url"]}">'
        f"|{TEXT_TOKENS['first_name']}|{TEXT_TOKENS['unsubscribe_url']}"
    )
    filled = template.fill(token_values(FIELDS, TOPICS))
    assert filled == (
        "<p>Hi &lt;Zoë&gt; &quot;%%unsubscribe_url%%&quot;</p>"
        '<a href="https://x.test/unsubscribe/T?a=1&amp;b=2">'
        '|<Zoë> "%%unsubscribe_url%%"|https://x.test/unsubscribe/T?a=1&b=2'
    )


def test_a_value_cannot_inject_a_token_and_unknown_tokens_stay() -> None:
    template = compile_template(f"{TEXT_TOKENS['first_name']} %%not_ours%%")
    filled = template.fill(token_values(FIELDS, TOPICS))
    assert filled.count("%%unsubscribe_url%%") == 1  # the name, verbatim, not replaced
    assert filled.endswith("%%not_ours%%")
    assert unfilled_tokens(compile_template("x").fill({})) == []
    assert unfilled_tokens(f"a {HTML_TOKENS['email']}") == [HTML_TOKENS["email"]]


def test_topic_tokens_fill_per_topic_and_others_stay() -> None:
    template = compile_template(
        f'<a href="{topic_token("ai-ml")}">|{topic_token("ai-ml", text=True)}'
    )
    assert template.fill(token_values(FIELDS, TOPICS)) == (
        '<a href="https://x.test/unsubscribe/topic/A?b=1&amp;c=2">'
        "|https://x.test/unsubscribe/topic/A?b=1&c=2"
    )
    assert unfilled_tokens(topic_token("data")) == [topic_token("data")]
    assert unfilled_tokens("%%segment_more:data%%") == []


def test_bound_links_fill_to_the_same_email_as_signed_urls() -> None:
    """Binding link tokens to their URLs, then filling five values per recipient, gives the
    email that filling every link token with its full URL gives."""
    template = (
        f'<a href="{HTML_TOKENS["unsubscribe_url"]}">x</a><a href="{topic_token("ai-ml")}">y</a>'
        f"{HTML_TOKENS['first_name']} {HTML_TOKENS['email']}|{TEXT_TOKENS['preferences_url']}|"
        f"{topic_token('data', text=True)}|{TEXT_TOKENS['first_name']}"
    )
    base, token = "https://news.example.com", "42.aBc.d-e_F"
    bound = compile_template(bind_links(template, base))
    filled = bound.fill(recipient_values('Ann "&" Co', "ann+1@example.com", token))
    expected = compile_template(template).fill(
        token_values(
            {
                "first_name": 'Ann "&" Co',
                "email": "ann+1@example.com",
                "unsubscribe_url": f"{base}/unsubscribe/{token}",
                "preferences_url": f"{base}/preferences/{token}",
            },
            {s: f"{base}/unsubscribe/{token}/topic/{s}" for s in ("ai-ml", "data")},
        )
    )
    assert filled == expected
    assert unfilled_tokens(filled) == []


# The most personalizing can add (Growth): the size budget's allowance for the reader.

SECRET = "growth-test-secret-key"
PRINTABLE = st.characters(categories=("L", "M", "N", "P", "S", "Zs"))


def test_the_longest_manage_token_is_the_bound() -> None:
    """The largest 64-bit id at the last second of year 9999: as long as a token gets."""
    token = TokenSigner(SECRET).manage_token(
        2**63 - 1, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    assert len(token) == MAX_MANAGE_TOKEN_LENGTH


def test_longest_values_are_as_long_as_the_rules_allow() -> None:
    values = longest_values()
    first = values[HTML_TOKENS["first_name"]]
    assert html.unescape(first) == '"' * MAX_NAME_LENGTH
    assert name_problem(html.unescape(first)) is None
    assert len(values[MANAGE_TOKEN]) == MAX_MANAGE_TOKEN_LENGTH


def test_growth_is_what_binding_and_filling_the_longest_values_add() -> None:
    public_url = "https://news.example/päth?a=1&b=2"
    template = (
        f"<p>{HTML_TOKENS['first_name']} {HTML_TOKENS['first_name']}</p>"
        f'<a href="{HTML_TOKENS["unsubscribe_url"]}">x</a>'
        f'<a href="{topic_token("ai-ml")}">y</a>{TEXT_TOKENS["email"]} %%not_ours%% 100%%'
    )
    filled = compile_template(bind_links(template, public_url)).fill(longest_values())
    growth = Growth(public_url).of(template)
    assert growth == len(filled.encode()) - len(template.encode())
    assert growth > 2 * 6 * MAX_NAME_LENGTH  # both names at six bytes a character, and more
    assert Growth(public_url).of("<p>no tokens</p>") == 0


@st.composite
def readers(draw: st.DrawFn) -> tuple[str, str, str]:
    """(first name, address, token) of any reader the rules let in."""
    name = draw(st.text(PRINTABLE, max_size=MAX_NAME_LENGTH).filter(lambda n: not name_problem(n)))
    local = draw(st.sampled_from(["a", "o'brien&co", '"quoted"', "x" * 64]))
    email = f"{local}@{draw(st.sampled_from(['example.com', 'exämple.org', 'e.' * 60 + 'io']))}"
    subscriber = draw(st.integers(1, 2**63 - 1))
    at = draw(st.datetimes(datetime(2000, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC)))
    return first_name_of(name) or "there", email, TokenSigner(SECRET).manage_token(subscriber, at)


@given(
    reader=readers(),
    public_url=st.text(PRINTABLE, max_size=300).map(lambda s: "https://" + s),
    slugs=st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,63}", fullmatch=True), max_size=5),
    text=st.text(PRINTABLE, max_size=50),
)
@settings(max_examples=200)
def test_no_reader_fills_a_template_past_its_growth(
    reader: tuple[str, str, str], public_url: str, slugs: list[str], text: str
) -> None:
    first_name, email, token = reader
    template = "".join(
        [
            text,
            HTML_TOKENS["first_name"],
            TEXT_TOKENS["first_name"],
            HTML_TOKENS["email"],
            HTML_TOKENS["preferences_url"],
            TEXT_TOKENS["unsubscribe_url"],
            *(topic_token(s) for s in slugs),
            text,
        ]
    )
    sent = compile_template(bind_links(template, public_url)).fill(
        recipient_values(first_name, email, token)
    )
    assert len(sent.encode()) <= len(template.encode()) + Growth(public_url).of(template)
