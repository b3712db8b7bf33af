"""ARI REST over one keep-alive aiohttp session (or over the event websocket, 22.4+).

ARI's URLs and JSON belong in this package: the typed methods below (AppSnapshot,
ChannelInfo, LiveRecording, RecordOptions) are what the rest of numcfg should call.
Some callers outside ari/ still build paths or read raw JSON through the older methods;
tests/unit/test_import_contract.py lists them (PENDING) and refuses new ones. Methods
are thin and named after what they do to a call; errors come back typed (see errors.py).
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from .errors import AriError, AriNotFound, AriUnavailable, AriWebsocketClosed, error_for_status
from .types import ChannelState, TransferProgress

log = logging.getLogger("numcfg.ari")

# A REST call to a local Asterisk answers in milliseconds; past this something is wrong
# and the call flow should get an error rather than hang.
REST_TIMEOUT_SECONDS = 10.0


# A local Asterisk answers a ping in milliseconds; one that does not answer the probe at
# all does not speak REST over websocket.
WS_REST_PROBE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class AppSnapshot:
    """What Asterisk holds for our Stasis app (GET /applications/{app}): after a websocket
    gap, the channels and bridges to take back."""

    name: str
    channel_ids: frozenset[str]
    bridge_ids: frozenset[str]
    endpoint_ids: frozenset[str]
    device_names: frozenset[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppSnapshot:
        return cls(
            name=str(data.get("name", "")),
            channel_ids=frozenset(data.get("channel_ids") or ()),
            bridge_ids=frozenset(data.get("bridge_ids") or ()),
            endpoint_ids=frozenset(data.get("endpoint_ids") or ()),
            device_names=frozenset(data.get("device_names") or ()),
        )


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel as GET /channels/{id} reports it. `app_name` / `app_data` are the dialplan
    application it is in (ARI 22's `dialplan.app_name` / `app_data`: "Stasis" and our
    arguments while we own it)."""

    id: str
    name: str
    state: ChannelState
    app_name: str
    app_data: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelInfo:
        dialplan = data.get("dialplan") or {}
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            state=ChannelState.parse(data.get("state")),
            app_name=str(dialplan.get("app_name", "")),
            app_data=str(dialplan.get("app_data", "")),
        )


@dataclass(frozen=True, slots=True)
class LiveRecording:
    """A recording in progress (GET /recordings/live/{name}). `state`: queued, recording,
    paused, done, failed or canceled."""

    name: str
    state: str
    target_uri: str = ""
    duration: int | None = None
    cause: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveRecording:
        duration = data.get("duration")
        return cls(
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            target_uri=str(data.get("target_uri", "")),
            duration=int(duration) if duration is not None else None,
            cause=data.get("cause"),
        )


@dataclass(frozen=True, slots=True)
class SoundInfo:
    """A sound file Asterisk can play (GET /sounds). Asterisk takes the first folder under
    its sounds directory for a language, so numcfg's sounds/numcfg/en/welcome.wav is id
    `en/welcome` in "language" `numcfg`; `media_names` gives both readings."""

    id: str
    languages: frozenset[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SoundInfo:
        formats = data.get("formats") or []
        return cls(
            id=str(data.get("id", "")),
            languages=frozenset(str(f.get("language", "")) for f in formats if f.get("language")),
        )

    def media_names(self) -> set[str]:
        """What `sound:<name>` may say to play this file."""
        return {self.id} | {f"{lang}/{self.id}" for lang in self.languages}


IfExists = Literal["fail", "overwrite", "append"]
TerminateOn = Literal["none", "any", "*", "#"]
_IF_EXISTS = ("fail", "overwrite", "append")
_TERMINATE_ON = ("none", "any", "*", "#")


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """The options of POST /channels/{id}/record and /bridges/{id}/record, checked when
    built (a bad value is a ValueError here, not a 400 in the middle of a call).

    Durations are whole seconds, 0 meaning no limit. `terminate_on`: the DTMF digit that
    stops the recording ("none", "any", "*" or "#").
    """

    name: str
    format: str = "wav"
    max_duration_seconds: int = 0
    max_silence_seconds: int = 0
    if_exists: IfExists = "overwrite"
    beep: bool = False
    terminate_on: TerminateOn = "none"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a recording needs a name")
        if self.max_duration_seconds < 0 or self.max_silence_seconds < 0:
            raise ValueError("recording limits are seconds, 0 for none")
        if self.if_exists not in _IF_EXISTS:
            raise ValueError(f"if_exists must be one of {', '.join(_IF_EXISTS)}")
        if self.terminate_on not in _TERMINATE_ON:
            raise ValueError(f"terminate_on must be one of {', '.join(_TERMINATE_ON)}")

    def params(self) -> dict[str, Any]:
        """ARI's query parameters (request() sends booleans as "true" / "false")."""
        return {
            "name": self.name,
            "format": self.format,
            "maxDurationSeconds": self.max_duration_seconds,
            "maxSilenceSeconds": self.max_silence_seconds,
            "ifExists": self.if_exists,
            "beep": self.beep,
            "terminateOn": self.terminate_on,
        }


def basic_auth_header(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class AriClient:
    """REST half of ARI. The websocket half lives in stream.py and shares the session."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        app: str,
        session: aiohttp.ClientSession | None = None,
        latency_observer: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.auth_header = basic_auth_header(username, password)
        self._session = session
        self._own_session = session is None
        # Called with (method, seconds) after each request, for the ARI latency metric.
        self._latency_observer = latency_observer
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # One pooled keep-alive connection set for the process: no TCP setup per call.
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self.auth_header},
                timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=60),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    # -- REST over the event websocket (Asterisk 22.4+) ------------------------------------
    def attach_websocket(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send REST requests over the event websocket from now on: no HTTP request to
        build, send and parse per operation, on either side (the bulk of a call's cost
        in numcfg was aiohttp's HTTP client)."""
        self._ws = ws

    async def websocket_rest_works(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Asterisk older than 22.4 ignores RESTRequest: probe once per connection, before
        attaching `ws`, so requests made meanwhile go over HTTP instead of waiting on a
        probe that may fail (attach only when this returns True)."""
        try:
            async with asyncio.timeout(WS_REST_PROBE_SECONDS):
                await self._ws_request(ws, "GET", "/asterisk/ping", {}, None)
        except (TimeoutError, AriError):
            return False
        return True

    def detach_websocket(self) -> None:
        self._ws = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    AriWebsocketClosed(0, "event websocket closed", method="", path="")
                )

    def resolve(self, response: dict[str, Any]) -> None:
        """Called by the websocket reader with each RESTResponse."""
        future = self._pending.pop(str(response.get("request_id", "")), None)
        if future is not None and not future.done():
            future.set_result(response)

    async def _ws_request(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        method: str,
        path: str,
        params: Mapping[str, Any],
        json: Any,
    ) -> Any:
        self._next_request += 1
        request_id = str(self._next_request)
        uri = path.lstrip("/")
        if params:
            uri = f"{uri}?{urlencode(params)}"
        message: dict[str, Any] = {
            "type": "RESTRequest",
            "request_id": request_id,
            "method": method,
            "uri": uri,
        }
        if json is not None:
            message["content_type"] = "application/json"
            message["message_body"] = orjson.dumps(json).decode()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send_str(orjson.dumps(message).decode())
            async with asyncio.timeout(REST_TIMEOUT_SECONDS):
                response = await future
        except AriWebsocketClosed as exc:
            raise AriWebsocketClosed(0, exc.message, method=method, path=path) from exc
        except (ConnectionError, aiohttp.ClientError) as exc:
            # Not sent: the websocket was closing.
            raise AriWebsocketClosed(
                0, str(exc) or type(exc).__name__, method=method, path=path
            ) from exc
        except TimeoutError as exc:
            raise AriUnavailable(
                0, str(exc) or type(exc).__name__, method=method, path=path
            ) from exc
        finally:
            self._pending.pop(request_id, None)
        status = int(response.get("status_code") or 0)
        body = response.get("message_body")
        if isinstance(body, str):
            try:
                body = orjson.loads(body) if body.strip() else None
            except orjson.JSONDecodeError:
                if status < 400:
                    raise AriError(status, "answer is not JSON", method=method, path=path) from None
                # An error page rather than ARI's {"message": ...}: keep its text.
                body = body[:300]
        if status >= 400:
            message_text = body.get("message", "") if isinstance(body, dict) else str(body)
            raise error_for_status(status, str(message_text)[:300], method=method, path=path)
        return body

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        raw: bool = False,
    ) -> Any:
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        started = time.perf_counter()
        ws = self._ws
        if ws is not None and not raw and not ws.closed:
            try:
                return await self._ws_request(ws, method, path, clean, json)
            except AriWebsocketClosed as exc:
                # The websocket went away under the request (Asterisk closed it, or the
                # network): send it again over HTTP rather than fail the call. Asterisk may
                # have carried out the first one; ARI's operations numcfg makes either
                # repeat harmlessly (answer, add to a bridge it is in, create a bridge by
                # id) or answer an error the caller already handles (a 404 on a hangup
                # done, a 409 on a channel id taken).
                log.info("%s %s: %s; sending it over HTTP", method, path, exc.message)
            finally:
                if self._latency_observer is not None:
                    self._latency_observer(method, time.perf_counter() - started)
            started = time.perf_counter()
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(method, url, params=clean, json=json) as resp:
                if resp.status >= 400:
                    text = await resp.text()
                    raise error_for_status(
                        resp.status, _error_message(text), method=method, path=path
                    )
                if raw:
                    return await resp.read()
                if resp.status == 204 or resp.content_length == 0:
                    return None
                body = await resp.read()
                if not body:
                    return None
                return await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise AriUnavailable(
                0, str(exc) or type(exc).__name__, method=method, path=path
            ) from exc
        finally:
            if self._latency_observer is not None:
                self._latency_observer(method, time.perf_counter() - started)

    # -- asterisk / applications ---------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        return await self.request("GET", "/asterisk/info")

    async def application(self) -> dict[str, Any]:
        """The raw Application JSON; prefer app_snapshot()."""
        return await self.request("GET", f"/applications/{quote(self.app)}")

    async def app_snapshot(self) -> AppSnapshot:
        """The channels, bridges and endpoints Asterisk holds for our app."""
        return AppSnapshot.from_json(await self.application() or {})

    async def reload_module(self, module: str) -> None:
        """Reload one Asterisk module, e.g. "res_musiconhold.so" (a 204)."""
        await self.request("PUT", f"/asterisk/modules/{quote(module)}")

    async def set_event_filter(self, allowed: list[str]) -> dict[str, Any]:
        """Only these event types reach our websocket: Asterisk skips sending the rest."""
        return await self.request(
            "PUT",
            f"/applications/{quote(self.app)}/eventFilter",
            json={"allowed": [{"type": kind} for kind in allowed]},
        )

    # -- channels -------------------------------------------------------------------------
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/ring")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel_id}", params={"reason": reason})

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        """The raw Channel JSON; prefer channel()."""
        return await self.request("GET", f"/channels/{channel_id}")

    async def channel(self, channel_id: str) -> ChannelInfo:
        """The channel as Asterisk sees it now. Raises AriNotFound when it is gone."""
        return ChannelInfo.from_json(await self.get_channel(channel_id) or {})

    async def transfer_progress(self, channel_id: str, state: TransferProgress) -> None:
        """Tell a REFERring phone how its transfer went (ari-only transfer handling)."""
        await self.request(
            "POST", f"/channels/{channel_id}/transfer_progress", params={"states": state.value}
        )

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """Let the channel leave Stasis and go on with the dialplan after Stasis()."""
        await self.request("POST", f"/channels/{channel_id}/continue")

    async def get_variable(self, channel_id: str, variable: str) -> str:
        data = await self.request(
            "GET", f"/channels/{channel_id}/variable", params={"variable": variable}
        )
        return (data or {}).get("value", "")

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self.request(
            "POST",
            f"/channels/{channel_id}/variable",
            params={"variable": variable, "value": value},
        )

    async def play(
        self, channel_id: str, media: str | list[str], *, playback_id: str, lang: str | None = None
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{channel_id}/play/{playback_id}",
            params={"media": media if isinstance(media, str) else ",".join(media), "lang": lang},
        )

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}")

    async def get_playback(self, playback_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/playbacks/{playback_id}")

    async def playback_exists(self, playback_id: str) -> bool:
        """False once the playback is finished (Asterisk forgets it) or never started."""
        return await self._exists(f"/playbacks/{quote(playback_id)}")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self.request("POST", f"/channels/{channel_id}/moh", params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{channel_id}/moh")

    async def send_dtmf(self, channel_id: str, dtmf: str, *, between_ms: int = 100) -> None:
        await self.request(
            "POST", f"/channels/{channel_id}/dtmf", params={"dtmf": dtmf, "between": between_ms}
        )

    async def create_channel(
        self,
        *,
        endpoint: str,
        channel_id: str,
        app_args: str = "",
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A channel that enters our Stasis app before it rings (dial it next).

        The caller ID is set as channel variables: /channels/create's callerId does not
        reach the far side of a Local channel, whose caller is the near side's connected
        line, while a PJSIP leg sends CALLERID in From:.
        """
        values = dict(variables or {})
        if caller_id:
            values["CALLERID(num)"] = caller_id
            values["CONNECTEDLINE(num)"] = caller_id
        return await self.request(
            "POST",
            "/channels/create",
            params={
                "endpoint": endpoint,
                "app": self.app,
                "appArgs": app_args,
                "channelId": channel_id,
            },
            json={"variables": values} if values else None,
        )

    async def dial(self, channel_id: str, *, timeout: int) -> None:
        await self.request("POST", f"/channels/{channel_id}/dial", params={"timeout": timeout})

    async def originate(
        self,
        *,
        endpoint: str,
        channel_id: str,
        app: str | None = None,
        app_args: str = "",
        caller_id: str | None = None,
        timeout: int = 30,
        other_channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        originator: str | None = None,
        formats: str | None = None,
    ) -> dict[str, Any]:
        """`originator` (a channel id) lends its codecs to the new channel, so audio
        between them needs no transcoding or resampling; else `formats` (e.g. "ulaw")."""
        return await self.request(
            "POST",
            "/channels",
            params={
                "endpoint": endpoint,
                "app": app or self.app,
                "appArgs": app_args,
                "channelId": channel_id,
                "otherChannelId": other_channel_id,
                "callerId": caller_id,
                "timeout": timeout,
                "originator": originator,
                "formats": formats if originator is None else None,
            },
            json={"variables": dict(variables)} if variables else None,
        )

    async def record_channel(self, channel_id: str, **options: Any) -> dict[str, Any]:
        """Raw ARI options; prefer record_channel_with()."""
        return await self.request("POST", f"/channels/{channel_id}/record", params=options)

    async def record_channel_with(self, channel_id: str, options: RecordOptions) -> LiveRecording:
        """Record what the channel sends (the caller's voice). A 201 here can still be
        followed by RecordingFailed: wait for RecordingStarted."""
        body = await self.request("POST", f"/channels/{channel_id}/record", params=options.params())
        return _live_recording(body, options)

    # -- bridges --------------------------------------------------------------------------
    async def create_bridge(self, bridge_id: str, *, kind: str = "mixing", name: str = "") -> None:
        await self.request(
            "POST", f"/bridges/{bridge_id}", params={"type": kind, "name": name or None}
        )

    async def add_to_bridge(
        self, bridge_id: str, channel_ids: list[str], *, absorb_dtmf: bool = False
    ) -> None:
        """`absorb_dtmf`: the channels' digits reach the app (ChannelDtmfReceived) but
        not the other members (an employee's transfer codes stay off the caller's ear)."""
        await self.request(
            "POST",
            f"/bridges/{bridge_id}/addChannel",
            params={
                "channel": ",".join(channel_ids),
                "absorbDTMF": "true" if absorb_dtmf else None,
            },
        )

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self.request(
            "POST", f"/bridges/{bridge_id}/removeChannel", params={"channel": channel_id}
        )

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/moh", params={"mohClass": moh_class})

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}/moh")

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}")

    async def bridge_exists(self, bridge_id: str) -> bool:
        return await self._exists(f"/bridges/{quote(bridge_id)}")

    async def record_bridge(self, bridge_id: str, **options: Any) -> dict[str, Any]:
        """Raw ARI options; prefer record_bridge_with()."""
        return await self.request("POST", f"/bridges/{bridge_id}/record", params=options)

    async def record_bridge_with(self, bridge_id: str, options: RecordOptions) -> LiveRecording:
        """Record the bridge's mix (a conversation); see record_channel_with()."""
        body = await self.request("POST", f"/bridges/{bridge_id}/record", params=options.params())
        return _live_recording(body, options)

    # -- recordings -----------------------------------------------------------------------
    async def stop_recording(self, name: str) -> None:
        await self.request("POST", f"/recordings/live/{quote(name)}/stop")

    async def stored_recording_exists(self, name: str) -> bool:
        return await self._exists(f"/recordings/stored/{quote(name)}")

    async def live_recording(self, name: str) -> LiveRecording | None:
        """The recording while it runs; None once it is over (stored or discarded)."""
        try:
            body = await self.request("GET", f"/recordings/live/{quote(name)}")
        except AriNotFound:
            return None
        return LiveRecording.from_json(body or {"name": name})

    async def discard_live_recording(self, name: str) -> None:
        """Stop the recording and throw away what it has recorded."""
        await self.request("DELETE", f"/recordings/live/{quote(name)}")

    async def recording_file(self, name: str) -> bytes:
        return await self.request("GET", f"/recordings/stored/{quote(name)}/file", raw=True)

    async def delete_stored_recording(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{quote(name)}")

    # -- sounds ---------------------------------------------------------------------------
    async def sounds(self) -> list[SoundInfo]:
        """Every sound file Asterisk indexes (its sounds directory, kept current as files
        come and go)."""
        return [SoundInfo.from_json(s) for s in await self.request("GET", "/sounds") or []]

    # -- listing (reconciliation, tests) -----------------------------------------------------
    async def list_channels(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/channels") or []

    async def list_bridges(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/bridges") or []

    async def _exists(self, path: str) -> bool:
        try:
            await self.request("GET", path)
        except AriNotFound:
            return False
        return True


def _live_recording(body: Any, options: RecordOptions) -> LiveRecording:
    # ARI answers 201 with the LiveRecording; fall back to what we asked for if it did not.
    if isinstance(body, Mapping) and body.get("name"):
        return LiveRecording.from_json(body)
    return LiveRecording(name=options.name, state="queued")


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _error_message(text: str) -> str:
    # ARI errors are {"message": "..."}; keep raw text otherwise, shortened for logs.
    try:
        return str(jsonlib.loads(text).get("message", text))[:300]
    except (ValueError, AttributeError):
        return text[:300]
