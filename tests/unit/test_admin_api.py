"""/api/employees, /api/numbers, /api/callbacks against a real Store (SQLite) and Config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from asterisk_bridge.api import routes_callbacks, routes_employees, routes_numbers
from asterisk_bridge.api.server import ApiError, Handler, error_response
from asterisk_bridge.calls.core.context import Runtime
from asterisk_bridge.config import ConfigHolder
from asterisk_bridge.lifecycle import effective_status
from asterisk_bridge.store import Store, open_store
from tests.unit.admin_fixtures import ENV, SmtpSink, closed_port_url, smtp_sink, write_config


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # What build_api's middleware does with ApiError; auth is server.py's and tested there.
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture
def store_and_holder(tmp_path: Path, sink: SmtpSink) -> Iterator[tuple[Store, ConfigHolder]]:
    holder = ConfigHolder(write_config(tmp_path, sink.url), env=ENV)
    store = open_store(holder.current.store)
    yield store, holder
    store.close()


@pytest.fixture
async def client(store_and_holder: tuple[Store, ConfigHolder]) -> AsyncIterator[TestClient]:
    store, holder = store_and_holder
    services = SimpleNamespace(store=store, runtime=Runtime())
    app_state = SimpleNamespace(services=services, config_holder=holder)
    api = web.Application(middlewares=[api_errors])
    for module in (routes_employees, routes_numbers, routes_callbacks):
        module.add_routes(api, app_state)
    async with TestClient(TestServer(api)) as client:
        yield client


@pytest.fixture
def store(store_and_holder: tuple[Store, ConfigHolder]) -> Store:
    return store_and_holder[0]


async def call(client: TestClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await client.request(method, path, json=body)
    return response.status, await response.json()


def error_code(body: dict[str, Any]) -> str:
    return body["error"]["code"]


# -- employees ---------------------------------------------------------------------------------


ANNA = {"id": "anna", "name": "Anna Martin", "extension": "101"}
BORIS = {"id": "boris", "name": "Boris Leroy", "extension": "102"}


async def test_employees_list_their_workday_or_not_started(client: TestClient, store: Store):
    store.people.set_workday("boris", "paused")
    status, body = await call(client, "GET", "/api/employees")
    assert status == 200
    assert body == {
        "employees": [
            {**ANNA, "workday": "not_started", "reason": None},
            {**BORIS, "workday": "paused", "reason": None},
        ]
    }


@pytest.mark.parametrize(
    ("before", "state", "after"),
    [(None, "working", "working"), ("working", "paused", "paused"), ("paused", "ended", "ended")],
)
async def test_workday_post_sets_the_state(
    client: TestClient, store: Store, before: str | None, state: str, after: str
):
    if before:
        store.people.set_workday("anna", before)
    status, body = await call(client, "POST", "/api/employees/anna/workday", {"state": state})
    assert (status, body["workday"]) == (200, after)
    assert store.people.workday("anna") == after


@pytest.mark.parametrize("body", [{"state": "lunch"}, {"state": None}, {}, [1], "working"])
async def test_workday_post_rejects_a_bad_state(client: TestClient, store: Store, body: Any):
    status, answer = await call(client, "POST", "/api/employees/anna/workday", body)
    assert status == 400, answer
    assert store.people.workday("anna") is None


async def test_workday_post_on_unknown_employee_is_404(client: TestClient):
    status, body = await call(client, "POST", "/api/employees/zoe/workday", {"state": "working"})
    assert (status, error_code(body)) == (404, "not_found")


async def test_pausing_a_workday_never_started_is_409(client: TestClient, store: Store):
    status, body = await call(client, "POST", "/api/employees/anna/workday", {"state": "paused"})
    assert (status, error_code(body)) == (409, "workday_transition")
    assert store.people.workday("anna") is None


# -- numbers -----------------------------------------------------------------------------------


async def test_numbers_show_settings_and_status(client: TestClient):
    status, body = await call(client, "GET", "/api/numbers")
    assert status == 200
    assert [n["id"] for n in body["numbers"]] == ["paris", "lyon"]
    paris = body["numbers"][0]
    assert paris["status"] == "active"
    assert paris["number"] == "+33185000000"
    assert paris["settings"]["routing"]["queue"] == "sales"
    assert paris["settings"]["callback"] == {"attempts": 5, "delay": 60.0}
    status, one = await call(client, "GET", "/api/numbers/paris")
    assert (status, one) == (200, paris)


async def test_number_views_hold_no_secrets(client: TestClient):
    _, body = await call(client, "GET", "/api/numbers")
    text = str(body)
    assert ENV["NUMCFG_ARI_PASSWORD"] not in text
    assert ENV["NUMCFG_API_TOKEN"] not in text


async def test_unknown_number_is_404(client: TestClient):
    for method, path in [("GET", "/api/numbers/nice"), ("POST", "/api/numbers/nice/disconnect")]:
        status, body = await call(client, method, path)
        assert (status, error_code(body)) == (404, "not_found")


async def test_disconnect_emails_the_token_and_undo_restores(
    client: TestClient, store: Store, sink: SmtpSink
):
    status, body = await call(client, "POST", "/api/numbers/paris/disconnect")
    assert status == 200, body
    assert body["status"] == "pending_disconnect"
    assert body["email"] == {"sent": True, "to": "admin@example.com"}
    assert "undo_token" not in body  # only the admin's mailbox has it
    token = store.numbers.state("paris").undo_token
    (mail,) = sink.messages
    assert mail["To"] == "admin@example.com"
    assert token in mail.get_payload()

    status, body = await call(client, "POST", "/api/numbers/paris/undo", {"token": "wrong"})
    assert (status, error_code(body)) == (403, "wrong_token")
    status, body = await call(client, "POST", "/api/numbers/paris/undo", {"token": token})
    assert (status, body["status"]) == (200, "active")
    assert store.numbers.state("paris").undo_token is None


async def test_disconnect_stands_when_the_email_fails(
    client: TestClient, store: Store, store_and_holder: tuple[Store, ConfigHolder]
):
    holder = store_and_holder[1]
    holder.current = holder.current.model_copy(
        update={"account": holder.current.account.model_copy(update={"smtp": closed_port_url()})}
    )
    status, body = await call(client, "POST", "/api/numbers/paris/disconnect")
    assert (status, body["status"]) == (200, "pending_disconnect")
    assert body["email"]["sent"] is False
    assert "admin@example.com" in body["email"]["error"]
    # Without the email, the answer is the only place left to learn the token from.
    assert body["undo_token"] == store.numbers.state("paris").undo_token


async def test_disconnect_twice_is_409(client: TestClient):
    assert (await call(client, "POST", "/api/numbers/lyon/disconnect"))[0] == 200
    status, body = await call(client, "POST", "/api/numbers/lyon/disconnect")
    assert (status, error_code(body)) == (409, "number_state")


async def test_undo_after_24h_is_409_and_the_number_reads_disconnected(
    client: TestClient, store: Store
):
    then = datetime.now(UTC) - timedelta(hours=25)
    store.numbers.set_state("paris", "pending_disconnect", undo_token="tok", changed_at=then)
    status, body = await call(client, "POST", "/api/numbers/paris/undo", {"token": "tok"})
    assert (status, error_code(body)) == (409, "undo_expired")
    status, body = await call(client, "GET", "/api/numbers/paris")
    assert body["status"] == "disconnected"
    assert body["lifecycle"]["disconnected_at"] == (then + timedelta(hours=24)).isoformat()
    assert "reconnect_allowed_at" in body["lifecycle"]


async def test_undo_needs_a_token(client: TestClient):
    status, body = await call(client, "POST", "/api/numbers/paris/undo", {})
    assert (status, error_code(body)) == (400, "bad_token")


async def test_reconnect_refused_until_three_months_then_allowed(client: TestClient, store: Store):
    recent = datetime.now(UTC) - timedelta(days=30)
    store.numbers.set_state("paris", "pending_disconnect", undo_token="t", changed_at=recent)
    status, body = await call(client, "POST", "/api/numbers/paris/reconnect")
    assert (status, error_code(body)) == (409, "reconnect_too_early")
    assert "reconnection is allowed from 20" in body["error"]["message"]

    long_ago = datetime.now(UTC) - timedelta(days=100)
    store.numbers.set_state("paris", "pending_disconnect", undo_token="t", changed_at=long_ago)
    status, body = await call(client, "POST", "/api/numbers/paris/reconnect")
    assert (status, body["status"]) == (200, "active")
    assert effective_status(store.numbers.state("paris"), datetime.now(UTC)) == "active"


# -- callbacks ---------------------------------------------------------------------------------


async def test_callback_uses_the_numbers_settings(client: TestClient, store: Store):
    status, job = await call(
        client, "POST", "/api/callbacks", {"number": "paris", "phone": "+33612345678"}
    )
    assert status == 201, job
    assert (job["number"], job["phone"], job["status"]) == ("paris", "+33612345678", "pending")
    assert (job["attempts"], job["delay"], job["reason"]) == (5, 60.0, "requested")
    assert [stored.to_json() for stored in store.callbacks.jobs()] == [job]


async def test_callback_on_a_number_without_callback_settings_uses_defaults(client: TestClient):
    status, job = await call(
        client, "POST", "/api/callbacks", {"number": "lyon", "phone": "+33612345678"}
    )
    assert (status, job["attempts"], job["delay"]) == (201, 3, 300.0)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"number": "nice", "phone": "+33612345678"}, 422, "unknown number"),
        ({"number": "paris", "phone": "0612345678"}, 422, "E.164"),
        ({"number": "paris", "phone": 33612345678}, 422, "E.164"),
        ({"number": "paris", "phone": "+4915112345678"}, 422, "external_allowlist"),
        ({"phone": "+33612345678"}, 400, "number"),
        ({"number": "paris"}, 400, "phone"),
    ],
)
async def test_callback_validation(
    client: TestClient, store: Store, body: dict, status: int, fragment: str
):
    got, answer = await call(client, "POST", "/api/callbacks", body)
    assert got == status, answer
    assert fragment in answer["error"]["message"]
    assert store.callbacks.jobs() == []


async def test_callback_on_a_disconnected_number_is_409(client: TestClient, store: Store):
    then = datetime.now(UTC) - timedelta(days=2)
    store.numbers.set_state("paris", "pending_disconnect", undo_token="t", changed_at=then)
    status, body = await call(
        client, "POST", "/api/callbacks", {"number": "paris", "phone": "+33612345678"}
    )
    assert (status, error_code(body)) == (409, "number_state")


async def test_callbacks_list_newest_first(client: TestClient):
    for phone in ("+33611111111", "+33622222222"):
        await call(client, "POST", "/api/callbacks", {"number": "paris", "phone": phone})
    status, body = await call(client, "GET", "/api/callbacks")
    assert status == 200
    assert [job["phone"] for job in body["callbacks"]] == ["+33622222222", "+33611111111"]
