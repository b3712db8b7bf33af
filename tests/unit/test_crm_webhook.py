"""The webhook backend POSTs signed JSON events and reads lookup/lead answers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from asterisk_bridge.crm import CallInfo, build_crm
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.store import CallDetails, open_store
from tests.unit.crm_fakes import FakeServer, Seen, load

CLIENT = "+33612345678"
SECRET = "s3cret"  # crm_fakes.ENV's NUMCFG_CRM_SECRET
INFO = CallInfo(
    call_id="c1",
    number_id="paris",
    line_number="+33185000000",
    direction="incoming",
    phone=CLIENT,
    employee=None,
    started_at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
)


def receiver(seen: Seen) -> web.Response:
    event = seen.json["event"]
    if event == "lookup":
        return web.json_response(
            {"entity": {"kind": "contact", "id": 42, "name": "Jean", "responsible": "anna"}}
        )
    if event == "lead.create":
        return web.json_response(
            {
                "entity": {"kind": "lead", "id": "L1", "name": None, "responsible": None},
                "created": True,
            }
        )
    return web.Response(status=204)


def valid_signature(seen: Seen) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), seen.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(seen.headers.get("X-Numcfg-Signature", ""), expected)


async def test_every_event_is_signed_and_carries_its_documented_fields(tmp_path: Path):
    server = await FakeServer(receiver).start()
    store = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    try:
        config = load(
            tmp_path,
            crm=f"crm:\n  backend: webhook\n  url: {server.url}/numcfg\n"
            "  secret: ${NUMCFG_CRM_SECRET}\n",
        )
        assert "s3cret" not in repr(config.crm)
        crm = build_crm(config, store=store, metrics=Metrics())
        entity = await crm.lookup(CLIENT)
        number = config.numbers["paris"]
        number = number.model_copy(
            update={"crm": number.crm.model_copy(update={"create_lead": "both"})}
        )
        lead = await crm.lead_for_call(
            number_cfg=number, phone=CLIENT, direction="incoming", call=INFO
        )
        assert await crm.assign_lead("L1", "boris")
        await crm.notify_started(INFO)
        await crm.notify_answered(INFO, "anna")
        await crm.notify_finished(
            INFO, duration=42, disposition="answered", rating=4, recording_path="/rec/c1.wav"
        )
        await crm.close()
    finally:
        await server.stop()
        store.close()

    assert entity is not None and (entity.kind, entity.id, entity.responsible) == (
        "contact",
        "42",
        "anna",
    )
    assert lead == {"entity": "lead", "id": "L1", "created": True}
    events = [seen.json for seen in server.requests]
    assert [event["event"] for event in events] == [
        "lookup",
        "lead.create",
        "lead.assign",
        "call.started",
        "call.answered",
        "call.finished",
    ]
    assert all(valid_signature(seen) for seen in server.requests)
    assert all(seen.path == "/numcfg" for seen in server.requests)
    assert all(seen.headers["X-Numcfg-Event"] == seen.json["event"] for seen in server.requests)
    lookup, create, assign, started, answered, finished = events
    assert lookup["phone"] == CLIENT
    assert (create["phone"], create["source"], create["call"]["call_id"]) == (CLIENT, "CALL", "c1")
    assert (assign["lead_id"], assign["employee"]) == ("L1", "boris")
    assert started["call"] == INFO.as_json()
    assert started["entity"] == {"kind": "lead", "id": "L1", "name": None, "responsible": None}
    assert started["create_crm"] is False
    assert answered["employee"] == "anna"
    assert {key: finished[key] for key in ("duration", "disposition", "rating", "recording")} == {
        "duration": 42,
        "disposition": "answered",
        "rating": 4,
        "recording": "/rec/c1.wav",
    }


async def test_a_tampered_body_does_not_verify(tmp_path: Path):
    server = await FakeServer(receiver).start()
    store = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    try:
        config = load(
            tmp_path, crm=f"crm:\n  backend: webhook\n  url: {server.url}/\n  secret: s3cret\n"
        )
        crm = build_crm(config, store=store, metrics=Metrics())
        await crm.lookup(CLIENT)
        await crm.close()
    finally:
        await server.stop()
        store.close()
    seen = server.requests[0]
    tampered = Seen(seen.path, seen.headers, seen.body.replace(b"+336", b"+337"))
    assert valid_signature(seen) and not valid_signature(tampered)


async def test_an_answer_without_entity_is_a_failure(tmp_path: Path):
    server = await FakeServer(lambda _seen: web.json_response({"ok": True})).start()
    store = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    try:
        config = load(tmp_path, crm=f"crm:\n  backend: webhook\n  url: {server.url}/\n")
        metrics = Metrics()
        crm = build_crm(config, store=store, metrics=metrics)
        assert await crm.lookup(CLIENT) is None
        await crm.close()
    finally:
        await server.stop()
        store.close()
    sample = metrics.registry.get_sample_value(
        "numcfg_crm_failures_total", {"reason": "bad_response"}
    )
    assert sample == 1
    assert "X-Numcfg-Signature" not in server.requests[0].headers  # no secret, no signature


async def test_a_transcript_is_sent_as_a_signed_call_transcript_event(tmp_path: Path):
    server = await FakeServer(receiver).start()
    store = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    try:
        config = load(
            tmp_path,
            crm=f"crm:\n  backend: webhook\n  url: {server.url}/numcfg\n"
            "  secret: ${NUMCFG_CRM_SECRET}\n",
        )
        crm = build_crm(config, store=store, metrics=Metrics())
        details = CallDetails(
            id="c9",
            number="paris",
            direction=Direction.INCOMING,
            caller=CLIENT,
            callee="+33185000000",
            employee="anna",
            started_at=INFO.started_at,
            answered_at=None,
            ended_at=None,
            duration=40,
            disposition=Disposition.ANSWERED,
            route=(),
            recording={"file": "c9.wav", "seconds": 40},
            recording_skipped=None,
            rating=None,
            transcript="hello",
            transcript_status="done",
            crm={"entity": "lead", "id": "L1", "created": True},
        )
        assert await crm.notify_transcript(details, "hello there")
        await crm.close()
    finally:
        await server.stop()
        store.close()
    (seen,) = server.requests
    assert valid_signature(seen) and seen.headers["X-Numcfg-Event"] == "call.transcript"
    body = seen.json
    assert body["text"] == "hello there"
    assert body["call"]["call_id"] == "c9" and body["call"]["phone"] == CLIENT
    assert body["entity"] == {"kind": "lead", "id": "L1", "name": None, "responsible": None}
