from __future__ import annotations

from digest.personalize import (
    HTML_TOKENS,
    TEXT_TOKENS,
    compile_template,
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
