"""The Bitrix24 backend speaks the documented REST methods to a real local HTTP server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asterisk_bridge.crm import CallInfo, CrmService, build_crm
from asterisk_bridge.crm.bitrix24 import Bitrix24Crm
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import Store, open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, load, php_parse


def php_parse_command(command: str) -> tuple[str, dict]:
    method, _, query = command.partition("?")
    return method, php_parse(query)


CLIENT = "+33612345678"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
MAPPED = '    crm_user_id: "17"\n'


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeBitrix, FakeServer]]:
    fake = FakeBitrix()
    server = await FakeServer(fake.answer).start()
    yield fake, server
    await server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    yield opened
    opened.close()


def service_for(tmp_path: Path, server: FakeServer, store: Store) -> CrmService:
    config = load(
        tmp_path,
        crm=f"crm:\n  backend: bitrix24\n  url: {server.url}/rest/1/abc123/\n  timeout: 1.0\n",
        employee_extra=MAPPED,
    )
    return build_crm(config, store=store, metrics=Metrics())


def call(call_id: str = "c1", *, employee: str | None = "anna", direction: str = "incoming"):
    return CallInfo(
        call_id=call_id,
        number_id="paris",
        line_number="+33185000000",
        direction=direction,
        phone=CLIENT,
        employee=employee,
        started_at=T0,
    )


async def test_lookup_finds_the_contact_and_maps_its_responsible_to_an_employee(
    portal, tmp_path, store
):
    fake, server = portal
    fake.phones[CLIENT] = {"CONTACT": [275, 2297], "LEAD": [5]}
    fake.entities[("CONTACT", 275)] = {
        "ID": "275",
        "NAME": "Jean",
        "LAST_NAME": "Dupont",
        "ASSIGNED_BY_ID": "17",
    }
    crm = service_for(tmp_path, server, store)
    entity = await crm.lookup("0612345678")  # national: read in the number's country
    await crm.close()

    assert entity is not None
    assert (entity.kind, entity.id, entity.name, entity.responsible) == (
        "contact",
        "275",
        "Jean Dupont",
        "anna",
    )
    find = server.by_method("crm.duplicate.findbycomm")[0].json
    assert find == {"type": "PHONE", "values": [CLIENT]}
    assert server.by_method("crm.contact.get")[0].json == {"id": "275"}
    # The webhook's path carries its secret code and user id: the URL we called.
    assert server.requests[0].path == "/rest/1/abc123/crm.duplicate.findbycomm"


async def test_an_unmapped_bitrix_user_is_no_responsible(portal, tmp_path, store):
    fake, server = portal
    fake.phones[CLIENT] = {"COMPANY": [3]}
    fake.entities[("COMPANY", 3)] = {"ID": "3", "TITLE": "ACME", "ASSIGNED_BY_ID": "99"}
    crm = service_for(tmp_path, server, store)
    entity = await crm.lookup(CLIENT)
    await crm.close()
    assert entity is not None
    assert (entity.kind, entity.name, entity.responsible) == ("company", "ACME", None)


async def test_an_unknown_phone_is_none(portal, tmp_path, store):
    _fake, server = portal
    crm = service_for(tmp_path, server, store)
    assert await crm.lookup(CLIENT) is None
    await crm.close()
    assert server.methods() == ["crm.duplicate.findbycomm"]


async def test_a_lead_numcfg_makes_is_added_once_per_phone_with_documented_fields(portal, tmp_path):
    """numcfg makes a lead itself only when Bitrix24 could not at register (it was down):
    crm.lead.add, after a look-up, for the employee who answered."""
    _fake, server = portal
    backend = Bitrix24Crm(
        url=f"{server.url}/rest/1/abc123/",
        timeout=1.0,
        employees=lambda: load(tmp_path, employee_extra=MAPPED).employees,
    )
    first = await backend.create_lead(phone=CLIENT, source="CALL", responsible="anna", call=call())
    second = await backend.create_lead(
        phone=CLIENT, source="CALL", responsible="anna", call=call("c2")
    )
    await backend.close()

    assert (first.entity.id, first.created) == ("101", True)
    assert (second.entity.id, second.created) == ("101", False)
    adds = server.by_method("crm.lead.add")
    assert len(adds) == 1
    assert adds[0].json == {
        "fields": {
            "TITLE": f"Call from {CLIENT}",
            "PHONE": [{"VALUE": CLIENT, "VALUE_TYPE": "WORK"}],
            "SOURCE_ID": "CALL",
            "ASSIGNED_BY_ID": "17",
        }
    }


async def test_assign_lead_updates_the_responsible(portal, tmp_path, store):
    _fake, server = portal
    crm = service_for(tmp_path, server, store)
    assert await crm.assign_lead("101", "anna") is True
    # boris has no crm_user_id: refused without a request, and reported as a failure.
    assert await crm.assign_lead("101", "boris") is False
    await crm.close()
    updates = server.by_method("crm.lead.update")
    assert [seen.json for seen in updates] == [{"id": "101", "fields": {"ASSIGNED_BY_ID": "17"}}]


async def test_call_journal_registers_finishes_and_attaches_the_recording(portal, tmp_path, store):
    _fake, server = portal
    recording = tmp_path / "c1.wav"
    recording.write_bytes(b"RIFF....WAVEfmt fake audio")
    crm = service_for(tmp_path, server, store)
    info = call("c1", employee=None)
    await crm.notify_started(info)
    await crm.notify_ringing(info, ["anna"])
    await crm.notify_answered(info, "anna")
    await crm.notify_finished(
        info, duration=42, disposition="answered", rating=5, recording_path=str(recording)
    )
    await crm.close()  # drains the fire-and-forget events

    # Registered when anna's phone started ringing, with her card, in one request.
    assert server.methods() == [
        "batch",
        "telephony.externalcall.finish",
        "telephony.externalCall.attachRecord",
    ]
    batch, finish, attach = (seen.json for seen in server.requests)
    commands = {key: php_parse_command(cmd) for key, cmd in batch["cmd"].items()}
    assert commands["register"] == (
        "telephony.externalcall.register",
        {
            "USER_ID": "17",  # anna, whose phone rang first
            "PHONE_NUMBER": CLIENT,
            "LINE_NUMBER": "+33185000000",
            "TYPE": "2",
            "CALL_START_DATE": "2026-11-27T08:00:00+00:00",
            "CRM_CREATE": "0",
            "SHOW": "0",
            "ADD_TO_CHAT": "0",
            "EXTERNAL_CALL_ID": "c1",
        },
    )
    assert commands["show"] == (
        "telephony.externalcall.show",
        {"CALL_ID": "$result[register][CALL_ID]", "USER_ID": ["17"]},
    )
    assert finish == {
        "CALL_ID": "externalCall.c1",
        "USER_ID": "17",  # anna answered
        "DURATION": 42,
        "STATUS_CODE": "200",
        "ADD_TO_CHAT": 0,
        "VOTE": 5,
    }
    assert attach == {
        "CALL_ID": "externalCall.c1",
        "FILENAME": "c1.wav",
        "FILE_CONTENT": base64.b64encode(recording.read_bytes()).decode(),
    }


@pytest.mark.parametrize(
    ("direction", "disposition", "call_type", "status"),
    [
        ("outgoing", "missed", 1, "304"),
        ("callback", "answered", 4, "200"),
        ("incoming", "abandoned", 2, "603-S"),
        ("incoming", "voicemail", 2, "304"),
    ],
)
async def test_call_types_and_status_codes(
    portal, tmp_path, store, direction, disposition, call_type, status
):
    _fake, server = portal
    crm = service_for(tmp_path, server, store)
    info = call("c9", direction=direction)
    await crm.notify_started(info)
    await crm.notify_finished(
        info, duration=0, disposition=disposition, rating=None, recording_path=None
    )
    await crm.close()
    register, finish = (seen.json for seen in server.requests)
    assert register["TYPE"] == call_type
    assert register["CRM_CREATE"] == 0
    assert finish["STATUS_CODE"] == status
    assert "VOTE" not in finish


async def test_a_call_is_bound_to_the_lead_it_was_attached_to(portal, tmp_path, store):
    fake, server = portal
    fake.phones[CLIENT] = {"LEAD": [5]}
    fake.entities[("LEAD", 5)] = {"ID": "5", "TITLE": "old lead", "ASSIGNED_BY_ID": "17"}
    crm = service_for(tmp_path, server, store)
    number = load(tmp_path).numbers["paris"]
    number = number.model_copy(
        update={"crm": number.crm.model_copy(update={"create_lead": "incoming"})}
    )
    info = call("c3")
    assert await crm.lead_for_call(
        number_cfg=number, phone=CLIENT, direction="incoming", call=info
    ) == {"entity": "lead", "id": "5", "created": False}
    await crm.notify_started(info)
    await crm.close()
    register = server.by_method("telephony.externalcall.register")[0].json
    assert (register["CRM_ENTITY_TYPE"], register["CRM_ENTITY_ID"]) == ("LEAD", "5")


async def test_bitrix_error_answers_are_failures_not_results(portal, tmp_path):
    _fake, server = portal
    backend = Bitrix24Crm(url=f"{server.url}/rest/1/abc/", timeout=1.0, employees=dict)
    with pytest.raises(Exception, match="ERROR_METHOD_NOT_FOUND"):
        await backend.call("no.such.method", {})
    await backend.close()
