"""/api/crm routes against a real Store and a real Config, through aiohttp's test client."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from asterisk_bridge.api import routes_crm
from asterisk_bridge.api.server import build_api
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import open_store
from tests.unit.crm_fakes import load


@pytest.fixture
async def client_for(tmp_path: Path):
    opened = []

    async def make(crm: str = "") -> tuple[TestClient, object]:
        store = open_store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
        config = load(tmp_path, crm=crm)
        app_state = SimpleNamespace(
            services=SimpleNamespace(store=store, metrics=Metrics()),
            config_holder=SimpleNamespace(current=config),
        )
        app = web.Application()
        routes_crm.add_routes(app, app_state)
        client = TestClient(TestServer(app))
        await client.start_server()
        opened.append((client, store))
        return client, store

    yield make
    for client, store in opened:
        await client.close()
        store.close()


async def test_contacts_are_added_and_listed_newest_first(client_for):
    client, _store = await client_for()
    first = await client.post(
        "/api/crm/contacts", json={"name": "Jean", "phone": "+33612345678", "responsible": "anna"}
    )
    assert first.status == 201
    body = await first.json()
    assert (body["name"], body["phone"], body["responsible"], body["kind"]) == (
        "Jean",
        "+33612345678",
        "anna",
        "contact",
    )
    second = await client.post(
        "/api/crm/contacts",
        json={"name": "ACME", "phone": "+33185000099", "responsible": None, "kind": "company"},
    )
    assert second.status == 201
    listed = await (await client.get("/api/crm/contacts")).json()
    assert [contact["name"] for contact in listed["contacts"]] == ["ACME", "Jean"]


async def test_leads_are_listed(client_for):
    client, store = await client_for()
    store.crm.add_lead(phone="+33612345678", source="CALL", responsible=None, call_id="c1")
    response = await client.get("/api/crm/leads")
    assert response.status == 200
    leads = (await response.json())["leads"]
    assert [(lead["phone"], lead["call_id"]) for lead in leads] == [("+33612345678", "c1")]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"phone": "+33612345678", "responsible": "anna"}, "bad_name"),
        ({"name": "  ", "phone": "+33612345678"}, "bad_name"),
        ({"name": "Jean", "phone": "0612345678"}, "bad_phone"),
        ({"name": "Jean", "phone": "+33 6 12 34 56 78"}, "bad_phone"),
        ({"name": "Jean"}, "bad_phone"),
        ({"name": "Jean", "phone": "+33612345678", "responsible": "zoe"}, "unknown_employee"),
        ({"name": "Jean", "phone": "+33612345678", "email": "j@x"}, "unknown_field"),
        (["Jean"], "bad_json"),
    ],
)
async def test_bad_contacts_are_refused_and_nothing_is_stored(client_for, body, code):
    client, store = await client_for()
    response = await client.post("/api/crm/contacts", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"]
    assert store.crm.contacts() == []


async def test_a_body_that_is_not_json_is_refused(client_for):
    client, _store = await client_for()
    response = await client.post("/api/crm/contacts", data=b"name=Jean")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_json"


async def test_other_backends_refuse_with_409(client_for):
    client, _store = await client_for("crm:\n  backend: webhook\n  url: http://127.0.0.1:9/\n")
    response = await client.get("/api/crm/leads")
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "crm_not_builtin"


async def test_the_routes_are_served_by_the_api_behind_its_token(tmp_path: Path):
    config = load(tmp_path)
    config = config.model_copy(update={"api": config.api.model_copy(update={"token": "t0k"})})
    store = open_store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    app_state = SimpleNamespace(
        services=SimpleNamespace(store=store, metrics=Metrics()),
        config_holder=SimpleNamespace(current=config, generation=1, last_error=None),
        stream=SimpleNamespace(connected=True),
    )
    client = TestClient(TestServer(build_api(app_state)))
    await client.start_server()
    try:
        assert (await client.get("/api/crm/contacts")).status == 401
        ok = await client.get("/api/crm/contacts", headers={"Authorization": "Bearer t0k"})
        assert ok.status == 200 and await ok.json() == {"contacts": []}
    finally:
        await client.close()
        store.close()
