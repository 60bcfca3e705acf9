from __future__ import annotations

from digest.personalize import (
    HTML_TOKENS,
    TEXT_TOKENS,
    bind_links,
    compile_template,
    recipient_values,
    token_values,
    topic_token,
    unfilled_tokens,
)

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
