"""The application layer: the only layer that composes stages, stores and adapters.

Faces (the CLI, the web app, the scheduler) call these use cases and nothing below them:

* :mod:`digest.app.wiring`: :class:`Project`, a project's config and the adapters built from it
  (database, clock, sleep, source fetcher, transport, signer, mailer, templates);
* :mod:`digest.app.gathering`: gather every source; read one without storing;
* :mod:`digest.app.issues`: plan; approve, hold, skip; leave posts out and reorder; figures;
* :mod:`digest.app.previews`: the preview folder, the web-archive page, a test send;
* :mod:`digest.app.sending`: send by hand, send now, run (gather → plan → send);
* :mod:`digest.app.scheduled`: one scheduled slot (gather → plan → gate → act);
* :mod:`digest.app.readers`: sign-up and confirmation, preferences, unsubscribing;
* :mod:`digest.app.archive`: the web archive (each issue's page, rendered once and kept; the
  index and the Atom feed);
* :mod:`digest.app.editorial`: the editor app's login, dashboard, history, issue page, actions;
* :mod:`digest.app.feedback`: SendGrid's signed event webhook;
* :mod:`digest.app.bounces`: the bounce mailbox of SMTP sends, applied with the webhook's rules;

Each use case owns its transaction.
"""
