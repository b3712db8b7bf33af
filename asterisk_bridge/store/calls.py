"""Call details (SPEC section 7) and the journal of calls in progress (`open_calls`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from asterisk_bridge.policy.types import Direction, Disposition, TranscriptStatus
from asterisk_bridge.store.engine import Database, NotFoundError, instant, optional_instant
from asterisk_bridge.store.rows import CallDetails
from asterisk_bridge.store.tables import calls, open_calls
from asterisk_bridge.store.transcripts import add_job

# The last step of a call whose node died while it was up.
INTERRUPTED_STEP = "interrupted"
# Retention's note too: details saved again (a spool replayed) never un-purge a call.
_KEPT_ON_UPDATE = frozenset({"id", "transcript", "transcript_status", "purged"})


class CallLog:
    """Finished calls, one row each, and the calls still up on each node."""

    def __init__(self, *, db: Database) -> None:
        self._db = db
        # Every call writes these two or three times: built once with bound parameters,
        # so SQLAlchemy compiles them once (building an upsert per write was most of the
        # cost of a call's details: 1.3 ms against 0.3 ms).
        self._upserts: dict[tuple[str, ...], Any] = {}
        note = db.insert(open_calls).values(
            {key: sa.bindparam(key) for key in ("call_id", "node", "record")}
        )
        self._note = note.on_conflict_do_update(
            index_elements=[open_calls.c.call_id], set_={"record": note.excluded.record}
        )
        self._close = sa.delete(open_calls).where(open_calls.c.call_id == sa.bindparam("closed"))

    def save(self, details: CallDetails) -> None:
        """Insert or replace the call `details.id`; a finished call is no longer open
        (same transaction)."""
        with self._db.write() as conn:
            self._save(conn, details)

    def note_open(self, details: CallDetails, *, node: str) -> None:
        """Note (or update) a call in progress on `node`, with its details so far."""
        with self._db.write() as conn:
            self._note_open(conn, details, node=node)

    def write(self, notes: Sequence[tuple[CallDetails, bool]], *, node: str) -> None:
        """Several calls' details in one transaction, in order: (details, finished) each,
        a finished call saved (`save`), one still up noted open on `node` (`note_open`).
        All or nothing."""
        with self._db.write() as conn:
            for details, finished in notes:
                if finished:
                    self._save(conn, details)
                else:
                    self._note_open(conn, details, node=node)

    def _save(self, conn: sa.Connection, details: CallDetails) -> None:
        row = _row(details)
        conn.execute(self._upsert_of(row), row)
        conn.execute(self._close, {"closed": details.id})
        if details.transcript_status == TranscriptStatus.PENDING and details.recording:
            # The call and its transcription job in one transaction: a recording to
            # transcribe is never saved without its job, nor a job without its call.
            add_job(
                conn,
                self._db,
                call_id=details.id,
                number=details.number,
                file=str(details.recording["file"]),
                seconds=float(details.recording.get("seconds") or 0.0),
            )

    def _note_open(self, conn: sa.Connection, details: CallDetails, *, node: str) -> None:
        _row(details)  # the same checks as a finished call's details
        # Kept as its SPEC section 7 record: the journal outlives numcfg versions, and that
        # shape is the one that does not change.
        conn.execute(self._note, {"call_id": details.id, "node": node, "record": details.to_json()})

    def close_interrupted(self, *, node: str, now: datetime) -> list[str]:
        """Close the calls `node` left open when it died: each gets its details as last
        noted, ended now, "interrupted" at the end of its route, and the disposition it
        had reached (answered once someone answered, else failed). Returns their ids."""
        now = instant("now", now)
        closed: list[str] = []
        with self._db.write() as conn:
            rows = conn.execute(
                sa.select(open_calls.c.call_id, open_calls.c.record).where(
                    open_calls.c.node == node
                )
            ).all()
            for call_id, snapshot in rows:
                noted = _from_snapshot(snapshot)
                answered = noted.answered_at
                final = dataclasses.replace(
                    noted,
                    ended_at=now,
                    duration=round((now - (answered or noted.started_at)).total_seconds()),
                    disposition=Disposition.ANSWERED if answered else Disposition.FAILED,
                    route=(*noted.route, INTERRUPTED_STEP),
                )
                row = _row(final)
                conn.execute(self._upsert_of(row), row)
                conn.execute(self._close, {"closed": call_id})
                closed.append(call_id)
        return closed

    def get(self, call_id: str) -> CallDetails | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.id == call_id)).mappings().first()
        return None if row is None else _details(row)

    def recent(
        self, *, number: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[CallDetails]:
        """Calls newest first, optionally of one number and started at or after `since`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = sa.select(calls)
        if number is not None:
            query = query.where(calls.c.number == number)
        if since is not None:
            query = query.where(calls.c.started_at >= instant("since", since))
        # id breaks ties so paging through calls started in the same microsecond is stable.
        query = query.order_by(calls.c.started_at.desc(), calls.c.id.desc()).limit(limit)
        with self._db.read() as conn:
            return [_details(row) for row in conn.execute(query).mappings()]

    def in_progress(
        self, *, number: str | None = None, since: datetime | None = None
    ) -> list[CallDetails]:
        """Calls not finished yet, on any node, newest first, with their details as last
        noted (at start and when answered): `ended_at` and `duration` are None."""
        with self._db.read() as conn:
            snapshots = [row[0] for row in conn.execute(sa.select(open_calls.c.record))]
        found = []
        for snapshot in snapshots:
            details = dataclasses.replace(
                CallDetails.from_json(snapshot), ended_at=None, duration=None
            )
            if number is not None and details.number != number:
                continue
            if since is not None and details.started_at < instant("since", since):
                continue
            found.append(details)
        return sorted(found, key=lambda d: (d.started_at, d.id), reverse=True)

    def attach_crm(self, call_id: str, crm: Mapping[str, Any] | None) -> None:
        """Attach a CRM entity to a call after the fact (a lead created by a retry)."""
        value = None if crm is None else dict(crm)
        stmt = sa.update(calls).where(calls.c.id == call_id).values(crm=value)
        with self._db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no call {call_id!r}")

    def unpurged_before(self, cutoff: datetime, *, limit: int) -> list[CallDetails]:
        """Calls started before `cutoff` that retention has not been through yet, oldest
        first (a batch of `limit`: a store of years is purged a batch at a time)."""
        query = (
            sa.select(calls)
            .where(calls.c.started_at < instant("cutoff", cutoff), calls.c.purged.is_(None))
            .order_by(calls.c.started_at, calls.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [_details(row) for row in conn.execute(query).mappings()]

    def note_purged(
        self,
        call_id: str,
        *,
        purged: Mapping[str, str],
        recording: Mapping[str, Any] | None,
        transcript_removed: bool,
    ) -> None:
        """Retention went through the call: what it removed, when (an empty mapping:
        nothing to remove, so it is not looked at again)."""
        values: dict[str, Any] = {"purged": dict(purged), "recording": recording}
        if transcript_removed:
            values["transcript"] = None
        with self._db.write() as conn:
            conn.execute(sa.update(calls).where(calls.c.id == call_id).values(**values))

    def _upsert_of(self, row: Mapping[str, Any]) -> Any:
        """The upsert of a `calls` row with `row`'s keys (always _row's: built once)."""
        keys = tuple(row)
        stmt = self._upserts.get(keys)
        if stmt is None:
            insert = self._db.insert(calls).values({key: sa.bindparam(key) for key in keys})
            # The transcript is the transcription worker's to write: details saved again (a
            # spool replayed) never put a finished transcript back to pending.
            stmt = self._upserts[keys] = insert.on_conflict_do_update(
                index_elements=[calls.c.id],
                set_={key: insert.excluded[key] for key in keys if key not in _KEPT_ON_UPDATE},
            )
        return stmt


def _row(details: CallDetails) -> dict[str, Any]:
    """The `calls` row of `details`, refusing what would read back wrong (naive times,
    words outside the vocabularies, a route that is not a list of steps)."""
    route = details.route
    if not isinstance(route, list | tuple) or not all(isinstance(step, str) for step in route):
        raise ValueError(f"call details: route must be a sequence of strings, not {route!r}")
    return {
        "id": details.id,
        "number": details.number,
        "direction": Direction(details.direction).value,
        "caller": details.caller,
        "callee": details.callee,
        "employee": details.employee,
        "started_at": instant("started_at", details.started_at),
        "answered_at": optional_instant("answered_at", details.answered_at),
        "ended_at": optional_instant("ended_at", details.ended_at),
        "duration": details.duration,
        "disposition": Disposition(details.disposition).value,
        "route": list(route),
        "recording": None if details.recording is None else dict(details.recording),
        "recording_skipped": details.recording_skipped,
        "rating": details.rating,
        "transcript": details.transcript,
        "crm": None if details.crm is None else dict(details.crm),
        "transfers": [dict(entry) for entry in details.transfers] or None,
        "transcript_status": details.transcript_status,
        "purged": None if details.purged is None else dict(details.purged),
        "callback_of": details.callback_of,
    }


def _details(row: Mapping[str, Any]) -> CallDetails:
    return CallDetails(
        id=row["id"],
        number=row["number"],
        direction=Direction(row["direction"]),
        caller=row["caller"],
        callee=row["callee"],
        employee=row["employee"],
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        duration=row["duration"],
        disposition=Disposition(row["disposition"] or Disposition.FAILED),
        route=tuple(row["route"]),
        recording=row["recording"],
        recording_skipped=row["recording_skipped"],
        rating=row["rating"],
        transcript=row["transcript"],
        crm=row["crm"],
        transfers=tuple(row.get("transfers") or ()),
        transcript_status=row.get("transcript_status"),
        purged=row.get("purged"),
        callback_of=row.get("callback_of"),
    )


def _from_snapshot(snapshot: Mapping[str, Any]) -> CallDetails:
    """A journal entry (the JSON written by note_open) as details again."""
    return _details(
        {
            **snapshot,
            "started_at": _parse_time(snapshot["started_at"]),
            "answered_at": _parse_time(snapshot.get("answered_at")),
            "ended_at": _parse_time(snapshot.get("ended_at")),
        }
    )


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
