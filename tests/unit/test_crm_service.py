"""CrmService never blocks a call: failing CRMs give None in time, leads wait for a retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from asterisk_bridge.config import Config
from asterisk_bridge.config.schema import Number
from asterisk_bridge.crm import CallInfo, build_crm
from asterisk_bridge.crm.rules import wants_lead
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.store import CallDetails, Store, open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, load

CLIENT = "+33612345678"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
TIMEOUT = 0.5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    yield opened
    opened.close()


def failures(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("numcfg_crm_failures_total", {"reason": reason})
    return value or 0.0


def call(call_id: str = "c1", *, direction: str = "incoming", phone: str = CLIENT) -> CallInfo:
    return CallInfo(
        call_id=call_id,
        number_id="paris",
        line_number="+33185000000",
        direction=direction,
        phone=phone,
        employee="anna",
        started_at=T0,
    )


def with_leads(config: Config, create_lead: str, exceptions: list[str] | None = None) -> Number:
    number = config.numbers["paris"]
    rules = number.crm.model_copy(
        update={"create_lead": create_lead, "exceptions": exceptions or []}
    )
    return number.model_copy(update={"crm": rules})


# -- a failing CRM ----------------------------------------------------------------------------


async def _sleepy(_seen):
    await asyncio.sleep(5)
    return web.json_response({"result": []})


def _server_error(_seen):
    return web.Response(status=500, text="Internal Server Error")


def _malformed(_seen):
    return web.Response(status=200, text='{"result": [', content_type="application/json")


@pytest.fixture
async def reset_server() -> AsyncIterator[str]:
    """Accepts a connection, reads the request, and drops the socket without answering."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("backend", ["bitrix24", "webhook"])
@pytest.mark.parametrize(
    ("answer", "reason"),
    [(_sleepy, "timeout"), (_server_error, "http_5xx"), (_malformed, "bad_response")],
    ids=["slow", "500", "malformed-json"],
)
async def test_a_failing_crm_gives_none_within_the_timeout(
    tmp_path, store, backend, answer, reason
):
    server = await FakeServer(answer).start()
    try:
        url = f"{server.url}/rest/1/abc/" if backend == "bitrix24" else f"{server.url}/hook"
        config = load(
            tmp_path, crm=f"crm:\n  backend: {backend}\n  url: {url}\n  timeout: {TIMEOUT}\n"
        )
        metrics = Metrics()
        crm = build_crm(config, store=store, metrics=metrics)
        started = time.monotonic()
        assert await crm.lookup(CLIENT) is None
        assert time.monotonic() - started < TIMEOUT + 0.5
        assert failures(metrics, reason) == 1
        await crm.close()
    finally:
        await server.stop()


async def test_a_reset_connection_gives_none_within_the_timeout(tmp_path, store, reset_server):
    config = load(
        tmp_path,
        crm=f"crm:\n  backend: bitrix24\n  url: {reset_server}/rest/1/abc/\n  timeout: {TIMEOUT}\n",
    )
    metrics = Metrics()
    crm = build_crm(config, store=store, metrics=metrics)
    started = time.monotonic()
    assert await crm.lookup(CLIENT) is None
    assert time.monotonic() - started < TIMEOUT + 0.5
    assert failures(metrics, "connection") == 1
    await crm.close()


async def test_journal_events_return_at_once_even_when_the_crm_hangs(tmp_path, store):
    server = await FakeServer(_sleepy).start()
    try:
        config = load(
            tmp_path, crm=f"crm:\n  backend: webhook\n  url: {server.url}/\n  timeout: {TIMEOUT}\n"
        )
        metrics = Metrics()
        crm = build_crm(config, store=store, metrics=metrics)
        started = time.monotonic()
        await crm.notify_started(call())
        await crm.notify_finished(
            call(), duration=3, disposition="answered", rating=None, recording_path=None
        )
        assert time.monotonic() - started < 0.05
        await crm.close()
        # Both events ran and timed out (in order, each within its own budget).
        assert failures(metrics, "timeout") == 2
        assert len(server.requests) == 2
    finally:
        await server.stop()


# -- lead rules on the builtin CRM ------------------------------------------------------------


@pytest.mark.parametrize(
    ("create_lead", "direction", "wanted"),
    [
        ("incoming", "incoming", True),
        ("incoming", "outgoing", False),
        ("outgoing", "outgoing", True),
        ("outgoing", "callback", True),
        ("outgoing", "incoming", False),
        ("both", "incoming", True),
        ("both", "outgoing", True),
        ("never", "incoming", False),
        ("never", "outgoing", False),
    ],
)
def test_wants_lead(create_lead, direction, wanted):
    assert wants_lead(create_lead, direction) is wanted


@pytest.mark.parametrize(
    ("create_lead", "direction", "creates"),
    [
        ("incoming", "incoming", True),
        ("incoming", "outgoing", False),
        ("outgoing", "outgoing", True),
        ("outgoing", "incoming", False),
        ("both", "incoming", True),
        ("both", "outgoing", True),
        ("never", "incoming", False),
    ],
)
async def test_lead_rules_on_the_builtin_crm(tmp_path, store, create_lead, direction, creates):
    config = load(tmp_path)
    crm = build_crm(config, store=store, metrics=Metrics())
    crm_field = await crm.lead_for_call(
        number_cfg=with_leads(config, create_lead),
        phone=CLIENT,
        direction=direction,
        call=call(direction=direction),
    )
    leads = store.crm.leads()
    if creates:
        assert crm_field == {"entity": "lead", "id": leads[0].id, "created": True}
        assert (leads[0].phone, leads[0].source, leads[0].call_id) == (
            CLIENT,
            "CALL",
            "c1",
        )
    else:
        assert crm_field is None
        assert leads == []


async def test_exceptions_create_no_lead_even_written_nationally(tmp_path, store):
    config = load(tmp_path)
    crm = build_crm(config, store=store, metrics=Metrics())
    number = with_leads(config, "both", exceptions=[CLIENT])
    assert (
        await crm.lead_for_call(
            number_cfg=number, phone="0612345678", direction="incoming", call=call()
        )
        is None
    )
    assert store.crm.leads() == []


async def test_at_most_one_lead_per_phone_even_when_calls_race(tmp_path, store):
    config = load(tmp_path)
    crm = build_crm(config, store=store, metrics=Metrics())
    number = with_leads(config, "both")
    results = await asyncio.gather(
        *(
            crm.lead_for_call(
                number_cfg=number, phone=CLIENT, direction="incoming", call=call(f"c{i}")
            )
            for i in range(5)
        )
    )
    assert len(store.crm.leads()) == 1
    assert sorted(result["created"] for result in results) == [False] * 4 + [True]
    assert len({result["id"] for result in results}) == 1


async def test_a_known_contact_gets_the_call_not_a_lead(tmp_path, store):
    config = load(tmp_path)
    contact = store.crm.add_contact(name="Jean Dupont", phone=CLIENT, responsible="boris")
    crm = build_crm(config, store=store, metrics=Metrics())
    assert await crm.lead_for_call(
        number_cfg=with_leads(config, "both"), phone=CLIENT, direction="incoming", call=call()
    ) == {"entity": "contact", "id": contact.id, "created": False}
    assert store.crm.leads() == []
    entity = await crm.lookup(CLIENT)
    assert entity is not None and (entity.name, entity.responsible) == ("Jean Dupont", "boris")


async def test_lookup_drops_a_responsible_who_is_no_employee(tmp_path, store):
    config = load(tmp_path)
    store.crm.add_contact(name="Old client", phone=CLIENT, responsible="carla")  # left the company
    crm = build_crm(config, store=store, metrics=Metrics())
    entity = await crm.lookup(CLIENT)
    assert entity is not None and entity.responsible is None


async def test_anonymous_callers_are_not_looked_up(tmp_path, store):
    crm = build_crm(load(tmp_path), store=store, metrics=Metrics())
    assert await crm.lookup("anonymous") is None
    assert await crm.lookup("") is None


# -- retry of failed lead creations -----------------------------------------------------------


async def test_a_failed_lead_is_kept_and_created_by_a_later_retry(tmp_path, store):
    fake = FakeBitrix()
    fake.fail_with = 503
    server = await FakeServer(fake.answer).start()
    try:
        config = load(tmp_path, crm=bitrix_settings(server.url))
        crm = build_crm(config, store=store, metrics=Metrics())
        number = with_leads(config, "incoming")
        info = call()
        assert (
            await crm.lead_for_call(
                number_cfg=number, phone=CLIENT, direction="incoming", call=info
            )
            is None
        )
        # Bitrix24 was to make the lead when the call is registered (CRM_CREATE); it is
        # down, so at the call's end numcfg keeps the lead to make it itself later.
        await journal_whole_call(crm, info)
        pending = store.crm.pending()
        assert [(op.kind, op.payload["phone"]) for op in pending] == [("lead", CLIENT)]

        # Not due yet: nothing is retried.
        assert await crm.retry_pending() == 0
        later = datetime.now(UTC) + timedelta(minutes=5)
        # Still down: the attempt is counted and pushed back.
        assert await crm.retry_pending(now=later) == 0
        assert store.crm.pending()[0].attempts == 1

        fake.fail_with = None
        assert await crm.retry_pending(now=later + timedelta(hours=2)) == 1
        assert store.crm.pending() == []
        assert len(server.by_method("crm.lead.add")) == 1
        await crm.close()
    finally:
        await server.stop()


async def test_a_retried_lead_is_written_into_the_call_record(tmp_path, store):
    fake = FakeBitrix()
    fake.fail_with = 502
    server = await FakeServer(fake.answer).start()
    try:
        config = load(tmp_path, crm=bitrix_settings(server.url))
        crm = build_crm(config, store=store, metrics=Metrics())
        number = with_leads(config, "both")
        info = call()
        assert (
            await crm.lead_for_call(
                number_cfg=number, phone=CLIENT, direction="incoming", call=info
            )
            is None
        )
        await journal_whole_call(crm, info)
        store.calls.save(call_details(info))
        fake.fail_with = None
        assert await crm.retry_pending(now=datetime.now(UTC) + timedelta(minutes=1)) == 1
        saved = store.calls.get("c1")
        assert saved is not None
        assert saved.crm == {"entity": "lead", "id": "101", "created": True}
        await crm.close()
    finally:
        await server.stop()


async def journal_whole_call(crm, info: CallInfo) -> None:
    await crm.notify_started(info)
    await crm.notify_finished(
        info, duration=0, disposition="missed", rating=None, recording_path=None
    )
    await crm.drain()


def bitrix_settings(url: str) -> str:
    return f"crm:\n  backend: bitrix24\n  url: {url}/rest/1/abc/\n  timeout: {TIMEOUT}\n"


def call_details(info: CallInfo) -> CallDetails:
    return CallDetails(
        id=info.call_id,
        number=info.number_id,
        direction=Direction(info.direction),
        caller=info.phone,
        callee=info.line_number,
        employee=None,
        started_at=info.started_at,
        answered_at=None,
        ended_at=info.started_at,
        duration=0,
        disposition=Disposition.MISSED,
        route=(),
        recording=None,
        recording_skipped=None,
        rating=None,
        transcript=None,
        crm=None,
    )
