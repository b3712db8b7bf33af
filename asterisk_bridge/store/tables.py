"""Table definitions of the numcfg store (SQLAlchemy Core, no ORM).

The same metadata serves SQLite (one node, a file) and PostgreSQL (shared by nodes), so only
types that behave alike on both are used: unbounded strings (a VARCHAR length would be
enforced by PostgreSQL only), JSON stored as JSONB on PostgreSQL, and timestamps that are
always timezone-aware UTC in Python whatever the backend keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime, stored as UTC.

    SQLite has no timezone type: SQLAlchemy writes the wall-clock digits and drops the
    offset, so values are converted to UTC before binding and tagged UTC when read back.
    PostgreSQL's timestamptz keeps the instant and answers in the session's zone, which is
    normalised to UTC too so both backends return identical values. Naive datetimes are
    refused: guessing their zone is how call times end up an hour off.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no timezone")
        value = value.astimezone(UTC)
        # SQLite would store the digits of whatever zone it is given; strip the (now UTC)
        # offset so comparisons between stored strings stay chronological.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    # none_as_null: a Python None is SQL NULL rather than the JSON text 'null', so
    # "recording IS NULL" means what it says on both backends.
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


metadata = sa.MetaData()

# One row per call (SPEC section 7). The call id comes from the call handler.
calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("number", sa.String, nullable=True),
    sa.Column("direction", sa.String, nullable=False),
    sa.Column("caller", sa.String, nullable=True),
    sa.Column("callee", sa.String, nullable=True),
    sa.Column("employee", sa.String, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("answered_at", UTCDateTime, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("duration", sa.Integer, nullable=True),
    sa.Column("disposition", sa.String, nullable=True),
    sa.Column("route", _json(), nullable=False),
    sa.Column("recording", _json(), nullable=True),
    sa.Column("recording_skipped", sa.String, nullable=True),
    sa.Column("rating", sa.Integer, nullable=True),
    sa.Column("transcript", sa.Text, nullable=True),
    sa.Column("crm", _json(), nullable=True),
    sa.Column("transfers", _json(), nullable=True),  # SPEC section 8, migration 0003
    # pending | done | failed | skipped_quota (SPEC section 10); null: not transcribed.
    sa.Column("transcript_status", sa.String, nullable=True),
    # What retention removed and when: {"recording"|"voicemail"|"transcript": ISO time}
    # (SPEC section 13, migration 0006_install).
    sa.Column("purged", _json(), nullable=True),
    # A callback's record: the id of the call it calls back (SPEC section 9, migration
    # 0007); null for every other call.
    sa.Column("callback_of", sa.String, nullable=True),
    # `numcfg calls --number X --since T` and the API list are the hot queries.
    sa.Index("ix_calls_number_started", "number", "started_at"),
    sa.Index("ix_calls_started", "started_at"),
)

# Calls in progress, one row each, keyed to the node (host + ARI app) handling them: a
# node killed with calls up finds them here when it starts again and closes their records
# (no call without its details). Its own table, so existing stores gain it without a
# migration and `calls` only ever holds finished calls.
open_calls = sa.Table(
    "open_calls",
    metadata,
    sa.Column("call_id", sa.String, primary_key=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("record", _json(), nullable=False),
    sa.Index("ix_open_calls_node", "node"),
)

workdays = sa.Table(
    "workdays",
    metadata,
    sa.Column("employee", sa.String, primary_key=True),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    # Why she is paused when numcfg did it: "auto" (queues.<id>.auto_pause_after); null
    # when she set it herself. Migration 0006.
    sa.Column("reason", sa.String, nullable=True),
)

# The primary key on `employee` is what makes a claim exclusive across nodes: a second
# INSERT for the same employee conflicts instead of double-booking her phone.
employee_claims = sa.Table(
    "employee_claims",
    metadata,
    sa.Column("employee", sa.String, primary_key=True),
    sa.Column("call_id", sa.String, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Index("ix_employee_claims_node", "node"),
)

queue_cursors = sa.Table(
    "queue_cursors",
    metadata,
    sa.Column("queue", sa.String, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

# One row per quota period (e.g. "2026-11"); `used` only ever moves through a guarded
# UPDATE so concurrent calls on several nodes cannot overshoot the limit.
recording_quota = sa.Table(
    "recording_quota",
    metadata,
    sa.Column("period", sa.String, primary_key=True),
    sa.Column("used", sa.Integer, nullable=False, server_default="0"),
)

# `seq` orders jobs by creation independently of clock resolution; `id` is the public handle.
callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("number", sa.String, nullable=False),
    sa.Column("phone", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("attempts_made", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delay", sa.Float, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("node", sa.String, nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Migration 0007 (virtual hold, SPEC section 9). `queue` and `joined_at`: a kept
    # place in that queue's line, in the order its caller joined (its first attempt waits
    # for its turn, not for `due_at`). `call_id`: the call this job calls back.
    sa.Column("queue", sa.String, nullable=True),
    sa.Column("joined_at", UTCDateTime, nullable=True),
    sa.Column("call_id", sa.String, nullable=True),
    # "<number> <phone>" while a job made by a call (missed, or virtual hold) is pending
    # or in progress, null otherwise: the unique key is what keeps one caller from having
    # two such callbacks at once, even when two nodes add them together.
    sa.Column("active_key", sa.String, nullable=True),
    # Migration 0010 (issue 16): the node in `node` holds the job until then, renewing it
    # while it works; past it the node is taken for dead and another may take the job.
    # Null on jobs claimed before leases (claimed_at + CALLBACK_STALE_AFTER_S rules them).
    sa.Column("lease_until", UTCDateTime, nullable=True),
    # The scheduler polls "pending and due" on every tick.
    sa.Index("ix_callbacks_status_due", "status", "due_at"),
    # Nulls never conflict (SQLite and PostgreSQL alike): finished jobs keep none.
    sa.Index("ux_callbacks_active_key", "active_key", unique=True),
)

number_states = sa.Table(
    "number_states",
    metadata,
    sa.Column("number", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=True),
    sa.Column("undo_token", sa.String, nullable=True),
)

# Builtin CRM. One contact per phone so that re-importing a CSV updates rather than
# duplicates, and a caller lookup has exactly one answer.
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("phone", sa.String, nullable=False, unique=True),
    sa.Column("responsible", sa.String, nullable=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# At most one lead per phone, enforced by the database so two nodes handling calls from the
# same new client at once still create a single lead.
leads = sa.Table(
    "leads",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("phone", sa.String, nullable=False, unique=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("responsible", sa.String, nullable=True),
    sa.Column("call_id", sa.String, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# CRM operations that failed during a call (CRM down, timeout) and are retried later, so a
# caller becomes a lead even when the CRM was unreachable at the time. `claimed_at` lets
# one node at a time work on a row; a claim older than the retry's own timeout is stale.
crm_pending = sa.Table(
    "crm_pending",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("payload", _json(), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_crm_pending_status_due", "status", "due_at"),
)

# Calls registered in a CRM's telephony journal (Bitrix24 CALL_ID) and not finished there
# yet. Kept in the store, not in memory only: a node restarted between register and finish
# still finishes them (with the details the store has), so the portal never shows a call
# hanging forever. `node` is the journal node that owns the call.
crm_calls = sa.Table(
    "crm_calls",
    metadata,
    sa.Column("call_id", sa.String, primary_key=True),
    sa.Column("remote_id", sa.String, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("info", _json(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_crm_calls_node", "node"),
)

# OAuth tokens of a CRM's local application (Bitrix24 crm.auth: app), one row per portal:
# in the store, so every node shares the one refresh token the portal honours (a refresh
# invalidates the previous token) and a restart needs no new install.
crm_tokens = sa.Table(
    "crm_tokens",
    metadata,
    sa.Column("portal", sa.String, primary_key=True),
    sa.Column("access_token", sa.String, nullable=False),
    sa.Column("refresh_token", sa.String, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("application_token", sa.String, nullable=True),
    sa.Column("user_id", sa.String, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

hold_music = sa.Table(
    "hold_music",
    metadata,
    sa.Column("number", sa.String, primary_key=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

# Published configurations (`numcfg apply`); the highest version is the live one.
config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=False),
)

# One transcription job per recorded call (SPEC section 10), worked after the call by one
# node at a time: `claimed_at` marks the claim, and a claim older than the job's longest
# try is stale (its node died). The text itself lands in calls.transcript.
transcription_jobs = sa.Table(
    "transcription_jobs",
    metadata,
    sa.Column("call_id", sa.String, primary_key=True),
    sa.Column("number", sa.String, nullable=True),
    sa.Column("file", sa.String, nullable=False),  # in storage.recordings
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts_made", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("node", sa.String, nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    # The month its seconds were counted toward (transcription.monthly_minutes); null: not
    # counted yet. A job that fails for good gives them back.
    sa.Column("charged_period", sa.String, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Migration 0010 (issue 16): as callbacks.lease_until.
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Index("ix_transcription_jobs_status_due", "status", "due_at"),
)

# Seconds transcribed per month ("2026-12"), moved only by guarded UPDATEs like
# recording_quota, so nodes sharing a store never go past the monthly cap together.
transcription_usage = sa.Table(
    "transcription_usage",
    metadata,
    sa.Column("period", sa.String, primary_key=True),
    sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
)

# People who log in to the web console (SPEC section 11). The password is an argon2 hash
# (console/passwords.py), never the password; `employee` ties an employee-role user to
# the employee whose calls she may see.
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("password_hash", sa.String, nullable=False),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("employee", sa.String, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
