"""The Bitrix24 local application (crm.auth: app) against the stand-in portal: the install
hands over tokens that are confirmed and kept in the store, access tokens are refreshed
when they expire, events are accepted only from the portal, lines are registered, and
OnExternalCallStart reaches the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from asterisk_bridge.api.routes_bitrix24 import add_routes, event_fields
from asterisk_bridge.crm import CrmService, build_crm
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import Store, open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, load

CLIENT = "+33612345678"


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeBitrix, FakeServer]]:
    fake = FakeBitrix()
    server = await FakeServer(fake.answer).start()
    fake.url = server.url
    yield fake, server
    await server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    yield opened
    opened.close()


def app_service(tmp_path: Path, fake: FakeBitrix, server: FakeServer, store: Store) -> CrmService:
    crm = (
        "crm:\n  backend: bitrix24\n  auth: app\n"
        f"  url: {server.url}\n  oauth_url: {server.url}/oauth/token/\n"
        f"  client_id: {fake.client_id}\n  client_secret: {fake.client_secret}\n"
        "  timeout: 1.0\n"
    )
    config = load(tmp_path, crm=crm, employee_extra='    crm_user_id: "17"\n')
    return build_crm(config, store=store, metrics=Metrics(), node="n")


def install_auth(fake: FakeBitrix) -> dict[str, str]:
    return event_fields(fake.install_form())["auth"]


async def test_before_the_install_the_crm_says_what_to_do(portal, tmp_path, store):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    assert await crm.lookup(CLIENT) is None
    await crm.close()
    assert crm.problem is not None and "local application is not installed" in crm.problem
    assert server.requests == []


async def test_the_install_keeps_confirmed_tokens_and_rest_calls_use_them(portal, tmp_path, store):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    assert await crm.install_app(install_auth(fake)) is True
    kept = store.crm.tokens("127.0.0.1")
    assert kept is not None and kept.application_token == fake.application_token
    assert kept.endpoint == f"{server.url}/rest/"
    assert await crm.lookup(CLIENT) is None  # a REST call with the stored access token
    await crm.close()
    find = server.by_method("crm.duplicate.findbycomm")[0]
    assert find.path == "/rest/crm.duplicate.findbycomm"
    assert find.json["auth"] == kept.access_token
    # The install's own tokens were confirmed by a refresh with numcfg's client secret.
    assert fake.grants == 1


async def test_a_forged_install_is_refused(portal, tmp_path, store):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    forged = dict(install_auth(fake), refresh_token="made-up")
    assert await crm.install_app(forged) is False
    await crm.close()
    assert store.crm.tokens("127.0.0.1") is None


async def test_an_expired_access_token_is_refreshed_and_the_request_retried(
    portal, tmp_path, store
):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    await crm.install_app(install_auth(fake))
    first = store.crm.tokens("127.0.0.1")
    fake.expire_access_tokens()
    assert await crm.lookup(CLIENT) is None
    assert crm.problem is None
    await crm.close()
    second = store.crm.tokens("127.0.0.1")
    assert second is not None and first is not None
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # the new one is kept
    finds = server.by_method("crm.duplicate.findbycomm")
    assert [seen.json["auth"] for seen in finds] == [first.access_token, second.access_token]

    # A restart reads the refreshed tokens from the store: no new install needed.
    again = app_service(tmp_path, fake, server, store)
    assert await again.lookup(CLIENT) is None
    await again.close()
    assert server.by_method("crm.duplicate.findbycomm")[-1].json["auth"] == second.access_token


async def test_events_count_only_with_the_installs_application_token(portal, tmp_path, store):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    await crm.install_app(install_auth(fake))
    event = event_fields(fake.call_start_form(user_id="17", phone=CLIENT, line="+33185000000"))
    assert event["data"]["CALL_ID"].startswith("externalCall.")
    assert await crm.is_portal_event(event["auth"]) is True
    assert await crm.is_portal_event(dict(event["auth"], application_token="x")) is False
    assert await crm.is_portal_event({}) is False
    await crm.close()


async def test_numbers_are_registered_as_lines_and_click_to_call_is_bound(portal, tmp_path, store):
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    await crm.install_app(install_auth(fake))
    await crm.set_up_portal({"+33185000000": "Paris main line"}, "https://pbx.example/b24")
    await crm.close()
    (batch,) = server.by_method("batch")
    assert sorted(batch.json["cmd"].values()) == [
        "event.bind?event=OnExternalCallStart&handler=https%3A%2F%2Fpbx.example%2Fb24",
        "telephony.externalLine.add?NUMBER=%2B33185000000&NAME=Paris%20main%20line",
    ]


async def test_the_events_route_refuses_strangers_and_takes_the_portals_clicks(
    portal, tmp_path, store
):
    """/bitrix24/events, as the API serves it, with a stand-in for the running App."""
    fake, server = portal
    crm = app_service(tmp_path, fake, server, store)
    config = load(
        tmp_path,
        crm=(
            f"crm:\n  backend: bitrix24\n  auth: app\n  url: {server.url}\n"
            "  client_id: a\n  client_secret: b\n"
        ),
    )
    clicks: list[dict] = []

    class Holder:
        current = config

    class AppState:
        config_holder = Holder()

        def __init__(self) -> None:
            self.crm = crm

        async def set_up_portal(self) -> None:
            return None

        def click_to_call(self, **kwargs: object) -> None:
            clicks.append(kwargs)

    api = web.Application()
    add_routes(api, AppState())
    runner = web.AppRunner(api)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/bitrix24/events"
    try:
        async with aiohttp.ClientSession() as http:
            start = fake.call_start_form(user_id="17", phone=CLIENT, line="+33185000000")
            async with http.post(url, data=start) as resp:
                assert resp.status == 403  # not installed: nobody's events are taken
            async with http.post(url, data=fake.install_form()) as resp:
                assert resp.status == 200
            forged = dict(start, **{"auth[application_token]": "guess"})
            async with http.post(url, data=forged) as resp:
                assert resp.status == 403
            async with http.post(url, data=start) as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()
        await crm.close()
    assert clicks == [
        {
            "employee_id": "anna",
            "phone": CLIENT,
            "line": "+33185000000",
            "remote_id": start["data[CALL_ID]"],
        }
    ]
