"""The delivery ledger: one row per (issue, subscriber), written before anything is sent.

Deliveries are grouped into batches (one variant, up to 1000 recipients) when an issue is
recorded, a group of whole segments per transaction, and a batch can be sent as soon as its
group is committed. A batch is what workers claim, lease and mark, and a delivery's
state is its batch's, unless the delivery has an outcome of its own (failed: refused by the
provider, or no longer active). So recording writes each delivery row once, batch after
batch, and an outcome changes one batch row and only the deliveries that differ from it: the
deliveries of a million-recipient send are written once, not rewritten a thousand rows per
commit (which, through the (issue, subscriber) index, cost more than everything else).

Batch states: pending → submitting (claimed under a lease by one worker, maybe waiting in its
reserve) → handed (the worker is handing it to the transport: one write per batch, just
before the request) → submitted, or failed, or ambiguous (left ``handed`` by a worker that
died or whose lease ran out, or handed without an answer, so nobody knows whether the
provider got it). A batch a dead worker left ``submitting`` was never handed over: it is
pending again, not ambiguous. Each time a batch becomes ambiguous its ``ambiguities`` grows:
the audit of what a ``resend`` may have duplicated.

This module holds what the ledger's stages share; each stage has its own:
:mod:`digest.send.recording` writes an issue's batches and deliveries,
:mod:`digest.send.leases` leases batches and records their outcomes, and
:mod:`digest.send.reporting` counts them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, func

from digest import db

PENDING = "pending"
SUBMITTING = "submitting"
HANDED = "handed"
SUBMITTED = "submitted"
FAILED = "failed"
AMBIGUOUS = "ambiguous"
LEASED = (SUBMITTING, HANDED)
"""The states of a batch a worker holds: it may be handed over only in the second."""

STATE = func.coalesce(db.deliveries.c.status, db.send_batches.c.status)
"""A delivery's state: its own outcome, else its batch's."""


def bound(conn: Connection, moment: datetime) -> Any:
    """``moment`` as the driver stores it in a UtcDateTime column (for statements written as
    text, which SQLAlchemy's types do not see)."""
    processor = _stamp_processor(conn.dialect)
    return processor(moment) if processor else moment


@functools.cache
def _stamp_processor(dialect: Dialect) -> Callable[[Any], Any] | None:
    """Looked up once per dialect: a send binds a time into every statement it writes out."""
    return db.deliveries.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
