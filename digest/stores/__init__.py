"""The SQL of the digest's own tables, one module per noun: posts (topics, sources, posts),
issues (issues, their posts, decisions, schedule log), editors. Subscribers keep their own
store in :mod:`subscribers.store`; the send ledger's SQL is in :mod:`digest.send`."""
