"""The Bitrix24 telephony journal against the stand-in portal (tests/unit/crm_fakes): one
lead per unknown caller made by the portal, the call card for exactly the phones that ring,
call types and failure reasons, CALL_IDs that survive a restart, employees matched by inner
number, the portal's work day, batch, and recordings as MP3."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asterisk_bridge.crm import CallInfo, CrmService, build_crm
from asterisk_bridge.crm.bitrix24 import php_query
from asterisk_bridge.crm.bitrix24_record import INLINE_MAX_BYTES
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.store import CallDetails, Store, open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, LeakyBucket, load, php_parse

CLIENT = "+33612345678"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
NODE = "host/numcfg"
ANNA_MAPPED = '    crm_user_id: "17"\n'


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


def service(
    tmp_path: Path, server: FakeServer, store: Store, *, extra: str = "", number_crm: str = ""
) -> CrmService:
    crm = f"crm:\n  backend: bitrix24\n  url: {server.url}/rest/1/abc/\n  timeout: 1.0\n{extra}"
    config = load(tmp_path, crm=crm, employee_extra=ANNA_MAPPED)
    if number_crm:
        config = load(tmp_path, crm=crm + number_crm, employee_extra=ANNA_MAPPED)
    return build_crm(config, store=store, metrics=Metrics(), node=NODE)


def info(call_id: str = "c1", *, direction: str = "incoming", employee: str | None = None):
    return CallInfo(
        call_id=call_id,
        number_id="paris",
        line_number="+33185000000",
        direction=direction,
        phone=CLIENT,
        employee=employee,
        started_at=T0,
    )


def number_with_leads(tmp_path: Path, **rules: object):
    number = load(tmp_path).numbers["paris"]
    return number.model_copy(update={"crm": number.crm.model_copy(update=rules)})


def register_params(fake: FakeBitrix) -> list[dict]:
    return list(fake.calls.values())


async def finish(crm: CrmService, call: CallInfo, disposition: str = "answered") -> None:
    await crm.notify_finished(
        call, duration=30, disposition=disposition, rating=None, recording_path=None
    )
    await crm.drain()


# -- one lead per unknown caller ---------------------------------------------------------


async def test_the_portal_makes_one_lead_per_unknown_caller_owned_by_who_answered(
    portal, tmp_path, store
):
    fake, server = portal
    fake.users["42"] = {"NAME": "Boris", "UF_PHONE_INNER": "102"}  # boris: no crm_user_id
    crm = service(tmp_path, server, store)
    number = number_with_leads(tmp_path, create_lead="incoming", lead_source="WEB")
    for call_id in ("c1", "c2"):  # the same caller twice
        call = info(call_id)
        found = await crm.lead_for_call(
            number_cfg=number, phone=CLIENT, direction="incoming", call=call
        )
        if call_id == "c1":
            assert found is None  # planned: the portal makes it when the call is registered
        else:
            assert found == {"entity": "lead", "id": str(fake.next_lead), "created": False}
        created = crm.created_lead(call_id)
        await crm.notify_started(call)
        await crm.notify_ringing(call, ["anna"])
        await crm.notify_not_taken(call, ["anna"])
        await crm.notify_ringing(call, ["boris"])
        await crm.notify_answered(call, "boris")
        await finish(crm, call)
        if call_id == "c1":
            assert created is not None
            assert await created == {"entity": "lead", "id": str(fake.next_lead), "created": True}
        else:
            # Known by now: bound to the lead, no CRM_CREATE (the portal would make none).
            assert created is None
    await crm.close()

    assert "crm.lead.add" not in server.methods()
    (lead,) = fake.lead_of_phone(CLIENT)
    assert lead["SOURCE_ID"] == "WEB"
    # Registered in anna's name (rung first); boris answered, so finish made him its
    # responsible: never the webhook's owner (user 1).
    assert lead["ASSIGNED_BY_ID"] == "42"
    first, second = register_params(fake)
    assert (str(first["CRM_CREATE"]), first["CRM_SOURCE"]) == ("1", "WEB")
    assert (str(second["CRM_CREATE"]), second["CRM_ENTITY_TYPE"]) == ("0", "LEAD")
    assert str(second["CRM_ENTITY_ID"]) == lead["ID"]


async def test_an_exception_number_is_registered_without_a_lead(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    number = number_with_leads(tmp_path, create_lead="both", exceptions=[CLIENT])
    call = info()
    assert (
        await crm.lead_for_call(number_cfg=number, phone=CLIENT, direction="incoming", call=call)
        is None
    )
    assert crm.created_lead("c1") is None
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await finish(crm, call, "missed")
    await crm.close()
    (registered,) = register_params(fake)
    assert str(registered["CRM_CREATE"]) == "0"
    assert fake.lead_of_phone(CLIENT) == []


async def test_a_lead_the_portal_could_not_make_is_made_later_for_who_answered(
    portal, tmp_path, store
):
    fake, server = portal
    crm = service(tmp_path, server, store)
    number = number_with_leads(tmp_path, create_lead="incoming")
    call = info()
    await crm.lead_for_call(number_cfg=number, phone=CLIENT, direction="incoming", call=call)
    await crm.notify_started(call)
    fake.fail_with = 503
    await crm.notify_ringing(call, ["anna"])
    await crm.notify_answered(call, "anna")
    await finish(crm, call)
    (pending,) = store.crm.pending()
    assert (pending.payload["phone"], pending.payload["responsible"]) == (CLIENT, "anna")
    await crm.close()


# -- the call card ----------------------------------------------------------------------


async def test_the_card_shows_for_exactly_the_ringing_employees_and_hides_for_the_others(
    portal, tmp_path, store
):
    fake, server = portal
    fake.users["42"] = {"UF_PHONE_INNER": "102"}
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    assert server.requests == []  # nothing rang yet: not registered yet
    await crm.notify_ringing(call, ["anna", "boris"])  # an all_at_once queue
    await crm.notify_answered(call, "boris")
    await crm.notify_not_taken(call, ["anna"])
    await finish(crm, call)
    await crm.close()

    remote = "externalCall.c1"
    assert fake.cards == [(remote, "show", "17"), (remote, "show", "42"), (remote, "hide", "17")]
    (registered,) = register_params(fake)
    assert str(registered["SHOW"]) == "0"  # the cards are shown by show, to both
    assert str(registered["USER_ID"]) == "17"
    assert fake.calls[remote]["FINISHED"]["USER_ID"] == "42"
    # Register and the first cards went in one request.
    assert server.methods() == [
        "user.get",
        "batch",
        "telephony.externalcall.hide",
        "telephony.externalcall.finish",
    ]


async def test_a_phone_ringing_before_the_look_up_ended_still_gets_the_card(
    portal, tmp_path, store
):
    """The queue may ring anna while the call's look-up (which comes before the call is
    reported started) is still on its way: she gets the card all the same."""
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_ringing(call, ["anna"])  # before notify_started
    await crm.notify_answered(call, "anna")
    await crm.notify_started(call)
    await finish(crm, call)
    await crm.close()
    assert fake.cards == [("externalCall.c1", "show", "17")]
    (registered,) = register_params(fake)
    assert str(registered["USER_ID"]) == "17"


async def test_a_phone_that_stopped_ringing_before_the_look_up_ended_gets_no_card(
    portal, tmp_path, store
):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_ringing(call, ["anna"])
    await crm.notify_not_taken(call, ["anna"])
    await crm.notify_started(call)
    await finish(crm, call, "missed")
    await crm.close()
    assert fake.cards == []
    (registered,) = register_params(fake)
    assert str(registered["USER_ID"]) == "17"  # still the first one rung
    assert fake.calls["externalCall.c1"]["FINISHED"]["USER_ID"] == "17"


async def test_a_second_round_of_ringing_shows_the_card_to_the_next_member(portal, tmp_path, store):
    fake, server = portal
    fake.users["42"] = {"UF_PHONE_INNER": "102"}
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await crm.notify_not_taken(call, ["anna"])
    await crm.notify_ringing(call, ["boris"])
    await finish(crm, call, "missed")
    await crm.close()
    remote = "externalCall.c1"
    assert fake.cards == [(remote, "show", "17"), (remote, "hide", "17"), (remote, "show", "42")]
    finished = fake.calls[remote]["FINISHED"]
    # Nobody answered: the first employee rung is the call's user, never the webhook's.
    assert finished["USER_ID"] == "17"
    assert finished["STATUS_CODE"] == "304"
    assert finished["FAILED_REASON"] == "nobody answered"


async def test_a_register_refused_inside_the_batch_is_the_problem_ready_shows(
    portal, tmp_path, store
):
    """The portal takes the batch but refuses register in it (WRONG_AUTH_TYPE through a
    webhook): the problem, with what to fix, not a failure per call."""
    fake, server = portal
    fake.refuse("telephony", "WRONG_AUTH_TYPE")
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await finish(crm, call)
    await crm.close()
    assert server.methods() == ["batch"]  # finish of a call never registered: not sent
    assert crm.problem is not None and "WRONG_AUTH_TYPE" in crm.problem
    assert "crm.auth: app" in crm.problem
    assert list(crm.problems) == ["call_started"]


async def test_a_call_the_portal_registered_is_only_finished(portal, tmp_path, store):
    """Click-to-call: the portal registered the call (OnExternalCallStart's CALL_ID)."""
    fake, server = portal
    fake.calls["externalCall.click"] = {"USER_ID": "17", "PHONE_NUMBER": CLIENT, "TYPE": 1}
    crm = service(tmp_path, server, store)
    call = info(direction="outgoing", employee="anna")
    await crm.notify_adopted(call, "externalCall.click")
    await crm.notify_answered(call, "anna")
    await finish(crm, call, "failed")
    await crm.close()
    assert server.methods() == ["telephony.externalcall.finish"]
    finished = fake.calls["externalCall.click"]["FINISHED"]
    assert (finished["USER_ID"], finished["STATUS_CODE"]) == ("17", "OTHER")
    assert finished["FAILED_REASON"].startswith("the call could not be put through")


# -- call types, failure reasons, chat --------------------------------------------------


async def test_a_call_forwarded_before_ringing_anyone_is_type_3(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_forwarding(call, "anna")  # to her mobile
    await finish(crm, call, "forwarded")
    await crm.close()
    (registered,) = register_params(fake)
    assert (int(registered["TYPE"]), str(registered["USER_ID"])) == (3, "17")


async def test_a_call_ending_before_it_rang_anyone_is_still_journaled(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await finish(crm, call, "after_hours")
    await crm.close()
    (registered,) = register_params(fake)
    assert (int(registered["TYPE"]), str(registered["USER_ID"])) == (2, "1")
    finished = fake.calls["externalCall.c1"]["FINISHED"]
    assert (finished["STATUS_CODE"], finished["FAILED_REASON"]) == (
        "304",
        "outside working hours",
    )


async def test_a_callback_is_type_4_in_the_employees_name(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info(direction="callback", employee="anna")
    await crm.notify_started(call)  # registered at once: the employee is known
    await crm.notify_ringing(call, ["anna"])
    await finish(crm, call)
    await crm.close()
    (registered,) = register_params(fake)
    assert (int(registered["TYPE"]), str(registered["USER_ID"])) == (4, "17")
    assert fake.cards == [("externalCall.c1", "show", "17")]


async def test_add_to_chat_follows_the_numbers_setting(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = CallInfo(**{**info().__dict__, "add_to_chat": True})
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await finish(crm, call)
    await crm.close()
    (registered,) = register_params(fake)
    assert str(registered["ADD_TO_CHAT"]) == "1"
    assert fake.calls["externalCall.c1"]["FINISHED"]["ADD_TO_CHAT"] == 1


# -- a restart between register and finish ----------------------------------------------


def saved_details(call: CallInfo, *, duration: int, disposition: Disposition) -> CallDetails:
    return CallDetails(
        id=call.call_id,
        number=call.number_id,
        direction=Direction(call.direction),
        caller=call.phone,
        callee=call.line_number,
        employee="anna",
        started_at=call.started_at,
        answered_at=call.started_at,
        ended_at=call.started_at,
        duration=duration,
        disposition=disposition,
        route=("queue:sales", "employee:anna", "interrupted"),
        recording=None,
        recording_skipped=None,
        rating=None,
        transcript=None,
        crm=None,
    )


async def test_a_call_registered_before_a_restart_is_finished_after_it(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await crm.notify_answered(call, "anna")
    await crm.drain()
    await crm.close()  # numcfg stops here: no finish
    (kept,) = store.crm.open_calls(NODE)
    assert (kept.call_id, kept.remote_id) == ("c1", "externalCall.c1")
    assert "FINISHED" not in fake.calls["externalCall.c1"]

    # The next start closed the call's details as interrupted; its journal follows.
    store.calls.save(saved_details(call, duration=12, disposition=Disposition.ANSWERED))
    restarted = service(tmp_path, server, store)
    assert await restarted.finish_left_open() == 1
    await restarted.close()
    finished = fake.calls["externalCall.c1"]["FINISHED"]
    assert (finished["USER_ID"], finished["DURATION"], finished["STATUS_CODE"]) == ("17", 12, "200")
    assert store.crm.open_calls(NODE) == []


async def test_a_finish_the_portal_refused_is_sent_again_later(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await crm.drain()
    fake.fail_with = 502
    await finish(crm, call)
    assert [row.attempts for row in store.crm.open_calls(NODE)] == [1]
    fake.fail_with = None
    store.calls.save(saved_details(call, duration=5, disposition=Disposition.ANSWERED))
    assert await crm.finish_left_open() == 1
    await crm.close()
    assert fake.calls["externalCall.c1"]["FINISHED"]["DURATION"] == 5


async def test_a_call_in_progress_is_not_finished_by_the_recovery(portal, tmp_path, store):
    fake, server = portal
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await crm.drain()
    assert await crm.finish_left_open() == 0
    assert "FINISHED" not in fake.calls["externalCall.c1"]
    await finish(crm, call)
    await crm.close()


# -- employees and portal users ---------------------------------------------------------


async def test_an_employee_without_crm_user_id_is_the_user_with_her_inner_number(
    portal, tmp_path, store
):
    fake, server = portal
    fake.users.update({"5": {"UF_PHONE_INNER": "999"}, "42": {"UF_PHONE_INNER": "102"}, "43": {}})
    fake.phones[CLIENT] = {"CONTACT": [7]}
    fake.entities[("CONTACT", 7)] = {"ID": "7", "NAME": "Jean", "ASSIGNED_BY_ID": "42"}
    crm = service(tmp_path, server, store)
    entity = await crm.lookup(CLIENT)
    again = await crm.lookup(CLIENT)
    await crm.close()
    assert entity is not None and again is not None
    assert entity.responsible == again.responsible == "boris"
    assert server.methods().count("user.get") == 1  # cached


async def test_anna_with_crm_user_id_needs_no_user_get(portal, tmp_path, store):
    fake, server = portal
    fake.phones[CLIENT] = {"CONTACT": [7]}
    fake.entities[("CONTACT", 7)] = {"ID": "7", "NAME": "Jean", "ASSIGNED_BY_ID": "17"}
    crm = service(tmp_path, server, store)
    entity = await crm.lookup(CLIENT)
    await crm.close()
    assert entity is not None and entity.responsible == "anna"
    assert "user.get" not in server.methods()


async def test_the_portals_work_day_is_read_in_one_batch_and_cached(portal, tmp_path, store):
    fake, server = portal
    fake.users["42"] = {"UF_PHONE_INNER": "102"}
    fake.timeman.update({"17": "PAUSED", "42": "OPENED"})
    crm = service(tmp_path, server, store, extra="  workday: bitrix24\n")
    # Never blocks: the first answer is what is known now (nothing), the read goes on.
    assert crm.portal_workdays() == {}
    backend = crm.backend
    assert await backend.workdays.refreshed() == {"anna": "paused", "boris": "working"}
    assert crm.portal_workdays() == {"anna": "paused", "boris": "working"}
    fake.timeman["17"] = "OPENED"
    assert crm.portal_workdays() == {"anna": "paused", "boris": "working"}  # cached
    await crm.close()
    (batch,) = server.by_method("batch")
    commands = sorted(batch.json["cmd"].values())
    assert commands == ["timeman.status?USER_ID=17", "timeman.status?USER_ID=42"]


async def test_without_crm_workday_the_portal_is_not_asked(portal, tmp_path, store):
    _fake, server = portal
    crm = service(tmp_path, server, store)
    assert crm.portal_workdays() is None
    await asyncio.sleep(0.05)
    await crm.close()
    assert server.requests == []


# -- inside the limits ------------------------------------------------------------------


def test_batch_commands_are_written_as_php_writes_queries() -> None:
    params = {"CALL_ID": "$result[r][CALL_ID]", "USER_ID": ["17", "42"], "F": {"A": True}}
    query = php_query(params)
    assert query == (
        "CALL_ID=%24result%5Br%5D%5BCALL_ID%5D&USER_ID%5B0%5D=17&USER_ID%5B1%5D=42&F%5BA%5D=1"
    )
    assert php_parse(query) == {
        "CALL_ID": "$result[r][CALL_ID]",
        "USER_ID": ["17", "42"],
        "F": {"A": "1"},
    }


async def test_thirty_calls_at_once_stay_under_the_bucket_and_lose_no_journal_entry(
    tmp_path, store
):
    """The stand-in enforces the portal's leaky bucket (here 20 at once, 10/s); numcfg's
    bucket, configured the same, keeps every request under it: no 503, every call
    registered, shown and finished."""
    fake = FakeBitrix(limit=LeakyBucket(capacity=20, leak_per_second=10))
    server = await FakeServer(fake.answer).start()
    try:
        crm = service(tmp_path, server, store, extra="  rate_limit: {per_second: 10, burst: 20}\n")
        calls = [info(f"c{i}") for i in range(30)]
        for call in calls:
            await crm.notify_started(call)
            await crm.notify_ringing(call, ["anna"])
            await crm.notify_answered(call, "anna")
            await crm.notify_finished(
                call, duration=10, disposition="answered", rating=None, recording_path=None
            )
        await crm.drain(timeout=30)
        await crm.close()
    finally:
        await server.stop()
    assert fake.throttled == 0
    assert len(fake.calls) == 30
    assert all("FINISHED" in call for call in fake.calls.values())
    assert len(fake.cards) == 30


# -- recordings -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is a system dependency")
async def test_a_large_recording_goes_as_mp3_through_the_upload_url(portal, tmp_path, store):
    fake, server = portal
    fake.upload_url = f"{server.url}/upload"
    wav = tmp_path / "c1.wav"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=60",
         "-ar", "8000", "-ac", "1", "-y", str(wav)],
        check=True,
    )  # fmt: skip
    assert wav.stat().st_size > INLINE_MAX_BYTES
    crm = service(tmp_path, server, store)
    call = info()
    await crm.notify_started(call)
    await crm.notify_ringing(call, ["anna"])
    await crm.notify_finished(
        call, duration=60, disposition="answered", rating=None, recording_path=str(wav)
    )
    await crm.drain()
    await crm.close()
    (offer,) = server.by_method("telephony.externalCall.attachRecord")
    assert offer.json == {"CALL_ID": "externalCall.c1", "FILENAME": "c1.mp3"}
    ((content_type, body),) = fake.uploads
    assert content_type.startswith("multipart/form-data")
    assert b'filename="c1.mp3"' in body
    assert len(body) < wav.stat().st_size / 3  # MP3, not the WAV
