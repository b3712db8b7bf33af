"""AriClient (asterisk_bridge/ari/client.py) against the fake ARI, over both transports.

`rest_client` runs each behaviour twice, over HTTP and over REST-on-the-event-websocket,
and every test checks which transport carried the request: a client that silently fell
back to HTTP would otherwise pass the websocket run.
"""

from __future__ import annotations

import asyncio

import pytest

from asterisk_bridge.ari import client as client_module
from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.errors import (
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
    AriUnprocessable,
)
from asterisk_bridge.ari.events import USED_EVENT_TYPES
from tests.fakeari import FakeAri, Reply
from tests.fakeari.clients import make_client, websocket_attached
from tests.fakeari.server import Request

# fake_ari, ari_client, rest_client
pytest_plugins = ["tests.fakeari.fixtures"]


def transport_of(client: AriClient) -> str:
    """What the fake should have seen the request on, given how the client is set up."""
    return "ws" if client._ws is not None else "http"


# -- typed errors ------------------------------------------------------------------------
async def test_404_raises_ari_not_found_with_aris_message(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    with pytest.raises(AriNotFound) as caught:
        await rest_client.get_channel("gone")
    assert (caught.value.status, caught.value.message) == (404, "Channel not found")
    assert (caught.value.method, caught.value.path) == ("GET", "/channels/gone")
    assert fake_ari.requests[-1].transport == transport_of(rest_client)


async def test_409_raises_ari_conflict(rest_client: AriClient, fake_ari: FakeAri) -> None:
    fake_ari.add_channel("c1", in_stasis=False)
    with pytest.raises(AriConflict) as caught:
        await rest_client.answer("c1")
    assert caught.value.status == 409
    assert fake_ari.requests[-1].transport == transport_of(rest_client)


@pytest.mark.parametrize("status", [400, 422])
async def test_400_and_422_raise_ari_unprocessable(
    rest_client: AriClient, fake_ari: FakeAri, status: int
) -> None:
    fake_ari.respond("POST", "/channels/{id}/play/{pid}", status, {"message": "bad media"})
    with pytest.raises(AriUnprocessable) as caught:
        await rest_client.play("c1", "sound:nope", playback_id="p1")
    assert (caught.value.status, caught.value.message) == (status, "bad media")
    assert fake_ari.requests[-1].transport == transport_of(rest_client)


async def test_500_raises_plain_ari_error_not_a_subclass(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/channels/{id}/variable", 500, {"message": "Unable to read"})
    with pytest.raises(AriError) as caught:
        await rest_client.get_variable("c1", "PJSIP_HEADER(read,To)")
    assert type(caught.value) is AriError
    assert (caught.value.status, caught.value.message) == (500, "Unable to read")


async def test_http_error_with_non_json_body_keeps_the_text(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/asterisk/info", 503, raw=b"Service Unavailable")
    with pytest.raises(AriError) as caught:
        await ari_client.info()
    assert (caught.value.status, caught.value.message) == (503, "Service Unavailable")


async def test_refused_http_connection_raises_ari_unavailable(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.refuse_connections = True
    with pytest.raises(AriUnavailable) as caught:
        await ari_client.answer("c1")
    assert caught.value.status == 0


async def test_wrong_password_is_a_401_ari_error(fake_ari: FakeAri) -> None:
    client = AriClient(base_url=fake_ari.base_url, username="numcfg", password="x", app="numcfg")
    try:
        with pytest.raises(AriError) as caught:
            await client.info()
    finally:
        await client.close()
    assert caught.value.status == 401
    assert fake_ari.requests == []


# -- parameters and bodies ---------------------------------------------------------------
async def test_bool_params_are_sent_as_true_false(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.add_channel("c1")
    await rest_client.record_channel(
        "c1", name="vm-1", format="wav", beep=True, ifExists="overwrite", terminateOn="none"
    )
    await rest_client.record_channel("c1", name="vm-2", format="wav", beep=False)
    first, second = fake_ari.requests[-2:]
    assert first.params["beep"] == "true"
    assert second.params["beep"] == "false"
    assert first.transport == transport_of(rest_client)


async def test_none_params_are_dropped(rest_client: AriClient, fake_ari: FakeAri) -> None:
    fake_ari.add_channel("c1")
    await rest_client.start_moh("c1")
    await rest_client.play("c1", ["sound:a", "digits:12"], playback_id="p1")
    moh, play = fake_ari.requests[-2:]
    assert moh.params == {}
    assert "mohClass" not in moh.query
    assert play.params == {"media": "sound:a,digits:12"}
    assert play.path == "/channels/c1/play/p1"


async def test_int_params_are_sent_as_decimal_text(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.add_channel("c1")
    await rest_client.send_dtmf("c1", "12#", between_ms=80)
    assert fake_ari.requests[-1].params == {"dtmf": "12#", "between": "80"}


async def test_json_body_is_sent_as_json(rest_client: AriClient, fake_ari: FakeAri) -> None:
    created = await rest_client.create_channel(
        endpoint="PJSIP/101", channel_id="out-1", app_args="employee,101", caller_id="+33100"
    )
    req = await fake_ari.wait_request("POST", "/channels/create")
    assert req.json == {"variables": {"CALLERID(num)": "+33100", "CONNECTEDLINE(num)": "+33100"}}
    assert req.params == {
        "endpoint": "PJSIP/101",
        "app": "numcfg",
        "appArgs": "employee,101",
        "channelId": "out-1",
    }
    assert created["id"] == "out-1"
    assert req.transport == transport_of(rest_client)


async def test_no_json_body_when_there_is_nothing_to_send(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    await rest_client.create_channel(endpoint="PJSIP/101", channel_id="out-2")
    req = fake_ari.requests[-1]
    assert req.json is None
    assert req.body == b""


async def test_json_response_is_returned_as_dict(rest_client: AriClient, fake_ari: FakeAri) -> None:
    fake_ari.add_channel("c1", caller_number="+33612345678")
    channel = await rest_client.get_channel("c1")
    assert channel["id"] == "c1"
    assert channel["caller"]["number"] == "+33612345678"


async def test_204_returns_none(rest_client: AriClient, fake_ari: FakeAri) -> None:
    fake_ari.add_channel("c1", state="Ring")
    assert await rest_client.request("POST", "/channels/c1/answer") is None
    assert fake_ari.channels["c1"]["state"] == "Up"


async def test_empty_list_answers_become_empty_lists(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/channels", 200, None)
    assert await rest_client.list_channels() == []


async def test_event_filter_is_put_as_allowed_types(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    await rest_client.set_event_filter(USED_EVENT_TYPES)
    req = await fake_ari.wait_request("PUT", "/applications/numcfg/eventFilter")
    assert req.json == {"allowed": [{"type": kind} for kind in USED_EVENT_TYPES]}
    assert fake_ari.event_filter["allowed"] == USED_EVENT_TYPES


async def test_application_lists_channels_and_bridges_to_take_back(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.add_channel("c1")
    fake_ari.add_channel("c2", in_stasis=False)
    fake_ari.add_bridge("b1")
    app = await rest_client.application()
    assert (app["channel_ids"], app["bridge_ids"]) == (["c1"], ["b1"])


async def test_recording_file_returns_raw_bytes_over_http(
    rest_client: AriClient, fake_ari: FakeAri
) -> None:
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt \x00\xff\xfe"
    fake_ari.add_stored_recording("vm 1", audio)
    assert await rest_client.recording_file("vm 1") == audio
    req = fake_ari.requests[-1]
    # Raw bodies never go over the websocket, even when one is attached.
    assert (req.transport, req.path) == ("http", "/recordings/stored/vm 1/file")


# -- latency observer --------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_latency_observer_gets_method_and_seconds_also_on_errors(
    fake_ari: FakeAri, transport: str
) -> None:
    seen: list[tuple[str, float]] = []
    client = make_client(fake_ari, latency_observer=lambda m, s: seen.append((m, s)))
    fake_ari.respond("DELETE", "/channels/{id}", delay=0.05, handler=lambda r, m: Reply(204))
    try:
        if transport == "ws":
            async with websocket_attached(client, fake_ari):
                await client.hangup("c1")
                with pytest.raises(AriNotFound):
                    await client.get_channel("gone")
        else:
            await client.hangup("c1")
            with pytest.raises(AriNotFound):
                await client.get_channel("gone")
    finally:
        await client.close()
    assert [m for m, _ in seen] == ["DELETE", "GET"]
    assert seen[0][1] >= 0.05
    assert fake_ari.requests[-1].transport == transport


# -- REST over the event websocket -------------------------------------------------------
async def test_ws_request_message_has_relative_uri_query_and_json_body(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    async with websocket_attached(ari_client, fake_ari):
        await ari_client.originate(
            endpoint="PJSIP/101", channel_id="o1", timeout=20, variables={"A": "1"}
        )
    req = await fake_ari.wait_request("POST", "/channels", transport="ws")
    assert req.message is not None
    assert req.message["uri"].startswith("channels?")
    assert req.message["content_type"] == "application/json"
    assert req.json == {"variables": {"A": "1"}}
    assert req.params["timeout"] == "20"
    assert "otherChannelId" not in req.params


async def test_ws_probe_succeeds_when_asterisk_answers_rest_requests(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    async with websocket_attached(ari_client, fake_ari, attach=False) as ws:
        assert await ari_client.websocket_rest_works(ws) is True
        ari_client.attach_websocket(ws)
        fake_ari.add_channel("c1")
        await ari_client.answer("c1")
    assert [(r.method, r.path, r.transport) for r in fake_ari.requests] == [
        ("GET", "/asterisk/ping", "ws"),
        ("POST", "/channels/c1/answer", "ws"),
    ]


async def test_ws_probe_falls_back_to_http_when_rest_request_is_ignored(
    ari_client: AriClient, fake_ari: FakeAri, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "WS_REST_PROBE_SECONDS", 0.1)
    fake_ari.set_ws_rest(False)
    fake_ari.add_channel("c1")
    async with websocket_attached(ari_client, fake_ari, attach=False) as ws:
        assert await ari_client.websocket_rest_works(ws) is False
        await ari_client.answer("c1")
    probe, answer = fake_ari.requests
    assert (probe.path, probe.transport, probe.status) == ("/asterisk/ping", "ws", None)
    assert (answer.path, answer.transport, answer.status) == ("/channels/c1/answer", "http", 204)


async def test_ws_probe_falls_back_to_http_when_ping_answers_an_error(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/asterisk/ping", 404, {"message": "Resource not found"})
    async with websocket_attached(ari_client, fake_ari, attach=False) as ws:
        assert await ari_client.websocket_rest_works(ws) is False
        await ari_client.info()
    assert fake_ari.requests[-1].transport == "http"


def answer_only_over_http(fake_ari: FakeAri) -> tuple[list[str], asyncio.Event]:
    """POST .../answer held forever on the websocket (its answer lost with the socket),
    answered at once over HTTP; returns the transports seen and the event releasing the
    held one at the end of the test."""
    seen: list[str] = []
    release = asyncio.Event()

    async def handler(req: Request, _m: dict[str, str]) -> Reply:
        seen.append(req.transport)
        if req.transport == "ws":
            await release.wait()
        return Reply(204)

    fake_ari.respond("POST", "/channels/{id}/answer", handler=handler)
    return seen, release


async def test_a_request_pending_when_the_websocket_is_detached_is_sent_again_over_http(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    seen, release = answer_only_over_http(fake_ari)
    async with websocket_attached(ari_client, fake_ari):
        pending = asyncio.create_task(ari_client.answer("c1"))
        await fake_ari.wait_request("POST", "/channels/c1/answer", transport="ws")
        ari_client.detach_websocket()
        assert await asyncio.wait_for(pending, 1.0) is None
    release.set()
    assert seen == ["ws", "http"]


async def test_a_request_pending_when_the_server_closes_the_socket_is_sent_again_over_http(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    seen, release = answer_only_over_http(fake_ari)
    async with websocket_attached(ari_client, fake_ari):
        pending = asyncio.create_task(ari_client.answer("c1"))
        await fake_ari.wait_request("POST", "/channels/c1/answer", transport="ws")
        await fake_ari.cut()
        assert await asyncio.wait_for(pending, 1.0) is None
    release.set()
    assert seen == ["ws", "http"]


async def test_a_request_pending_when_asterisk_goes_away_fails_as_unavailable(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    seen, release = answer_only_over_http(fake_ari)
    async with websocket_attached(ari_client, fake_ari):
        pending = asyncio.create_task(ari_client.answer("c1"))
        await fake_ari.wait_request("POST", "/channels/c1/answer", transport="ws")
        await fake_ari.stop_listening()  # the websocket and HTTP alike
        with pytest.raises(AriUnavailable):
            await asyncio.wait_for(pending, 5.0)
    release.set()
    assert seen == ["ws"]


async def test_requests_go_over_http_once_the_attached_socket_is_closed(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.add_channel("c1")
    url = fake_ari.base_url.replace("http", "ws", 1) + "/events?app=numcfg"
    ws = await ari_client.session.ws_connect(url)
    ari_client.attach_websocket(ws)
    await ws.close()
    await ari_client.answer("c1")
    assert fake_ari.requests[-1].transport == "http"


async def test_ws_request_times_out_as_unavailable(
    ari_client: AriClient, fake_ari: FakeAri, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "REST_TIMEOUT_SECONDS", 0.1)
    fake_ari.set_ws_rest(False)
    async with websocket_attached(ari_client, fake_ari):
        with pytest.raises(AriUnavailable):
            await ari_client.info()
        assert ari_client._pending == {}


async def test_ws_responses_are_matched_by_request_id_not_order(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/playbacks/slow", 200, {"id": "slow"}, delay=0.1)
    fake_ari.respond("GET", "/playbacks/fast", 200, {"id": "fast"})
    async with websocket_attached(ari_client, fake_ari):
        slow, fast = await asyncio.gather(
            ari_client.get_playback("slow"), ari_client.get_playback("fast")
        )
    assert (slow["id"], fast["id"]) == ("slow", "fast")
    assert {r.transport for r in fake_ari.requests} == {"ws"}


async def test_ws_error_with_non_json_body_is_a_typed_ari_error(
    ari_client: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.respond("GET", "/asterisk/info", 500, raw=b"Internal Server Error")
    async with websocket_attached(ari_client, fake_ari):
        with pytest.raises(AriError) as caught:
            await ari_client.info()
    assert caught.value.status == 500
