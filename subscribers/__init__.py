"""Who gets what: subscribers, their topics, segments and signed links."""
