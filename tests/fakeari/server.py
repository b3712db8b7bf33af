"""A fake Asterisk ARI: a real aiohttp HTTP + websocket server on 127.0.0.1, port 0.

Why a real server and not mocks: numcfg's client and event stream are mostly transport
(aiohttp sessions, websocket reconnects, REST over the event websocket), which mocks of
`AriClient` would skip. Like wazo-calld's mock_ari.py it is scripted by the test, but
in-process through Python calls, so a test needs no HTTP control endpoints and can await
what it expects.

One routing table answers both transports (HTTP under /ari/... and RESTRequest messages
on the event websocket): a test scripts a response once and it holds whichever way the
client sends the request. Scripted routes come first (newest first), then defaults backed
by a small in-memory model of channels, bridges, playbacks and recordings, so flows that
"re-check after reconnect" see 404 for what is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from . import model

Transport = Literal["http", "ws"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a route answers. `body` is JSON; `raw` (bytes) wins over it when set."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass(slots=True)
class Request:
    """One REST request as the fake saw it, whichever transport carried it.

    `path` has no /ari prefix ("/channels/c1/answer"), like the paths AriClient builds.
    `status` is filled in once answered (None: ignored, e.g. RESTRequest with ws REST off).
    """

    method: str
    path: str
    params: dict[str, str]
    json: Any
    transport: Transport
    query: str = ""
    body: bytes = b""
    request_id: str | None = None
    message: dict[str, Any] | None = None
    status: int | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class WsConnection:
    """One accepted event websocket."""

    ws: web.WebSocketResponse
    request: web.Request
    app: str
    params: dict[str, str]
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None


Handler = Callable[[Request, dict[str, str]], "Reply | Awaitable[Reply]"]


@dataclass(slots=True)
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler
    times: int | None = None


def compile_path(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """ "/channels/{id}/play/{pid}" -> a full-match regex with named groups; a compiled
    regex is taken as is. Placeholders stop at "/" like ARI's own path parameters."""
    if isinstance(pattern, re.Pattern):
        return pattern
    parts = re.split(r"\{(\w+)\}", pattern)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part))
    return re.compile("".join(out))


def _not_found(what: str) -> Reply:
    return Reply(404, {"message": f"{what} not found"})


class FakeAri:
    """The fake Asterisk. Use as `async with FakeAri() as fake:` or start()/stop()."""

    def __init__(
        self, *, username: str = "numcfg", password: str = "secret", app: str = "numcfg"
    ) -> None:
        self.username = username
        self.password = password
        self.app = app
        # Every REST request, in arrival order, both transports.
        self.requests: list[Request] = []
        # Monotonic time of every /ari/events upgrade attempt, refused or not (backoff).
        self.ws_attempts: list[float] = []
        # Every accepted event websocket, open or closed.
        self.ws_connections: list[WsConnection] = []
        # Faults, switched by the test. refuse_connections: HTTP requests get their TCP
        # connection dropped (AriUnavailable), websocket upgrades a 503 (counted in
        # ws_attempts, once each: aiohttp would retry a dropped GET and count twice).
        self.refuse_connections = False
        self.handshake_delay = 0.0
        self._ws_rest = True
        # When True the model's REST actions emit the events Asterisk would (answer ->
        # ChannelStateChange, play -> PlaybackStarted, hangup -> StasisEnd + Destroyed).
        self.emit_model_events = False
        # With model events: an originated leg says it rings (Dial RINGING, a SIP phone's
        # 180), as Asterisk reports it; False models a leg that says nothing until answered.
        self.legs_ring = True
        # The in-memory model.
        self.channels: dict[str, dict[str, Any]] = {}
        self.in_stasis: dict[str, None] = {}
        self.variables: dict[str, dict[str, str]] = {}
        self.bridges: dict[str, dict[str, Any]] = {}
        self.playbacks: dict[str, dict[str, Any]] = {}
        self.live_recordings: dict[str, dict[str, Any]] = {}
        self.stored_recordings: dict[str, bytes] = {}
        self.event_filter: dict[str, list[str]] = {"allowed": [], "disallowed": []}
        self._routes: list[_Route] = []
        self._defaults: list[_Route] = []
        self._open: list[WsConnection] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # Events the current (synchronous) model handler wants sent after its reply.
        self._pending_events: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0
        self._install_defaults()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> FakeAri:
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._http)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        await self.start_listening()
        return self

    async def start_listening(self) -> None:
        """Listen again on the same port (port 0 the first time): Asterisk is back."""
        assert self._runner is not None, "start() first"
        if self._site is None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await self._site.start()
            self.port = int(self._runner.addresses[0][1])

    async def stop_listening(self) -> None:
        """Close the listening socket and drop every open connection: new connections
        get a real ECONNREFUSED, as with a stopped Asterisk (unlike `refuse_connections`,
        the fake cannot count these attempts)."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.cut(abort=True)

    async def stop(self) -> None:
        await self.cut(abort=True)
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> FakeAri:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What AriClient takes as base_url (numcfg's config has the /ari suffix)."""
        return f"http://127.0.0.1:{self.port}/ari"

    # -- scripting ------------------------------------------------------------------------
    def respond(
        self,
        method: str,
        path: str | re.Pattern[str],
        status: int = 200,
        body: Any = None,
        *,
        raw: bytes | None = None,
        handler: Handler | None = None,
        times: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer `method path` with `status`/`body` (or `handler(request, groups)`, sync
        or async), before any default. `times` limits how often (then the route is gone);
        `delay` holds the answer back, for timeouts and pending-request tests."""
        if handler is None:
            reply = Reply(status, body, raw)

            def handler(_req: Request, _m: dict[str, str]) -> Reply:
                return reply

        inner: Handler = handler
        chosen: Handler = inner
        if delay:

            async def delayed(req: Request, groups: dict[str, str]) -> Reply:
                await asyncio.sleep(delay)
                result = inner(req, groups)
                return await result if inspect.isawaitable(result) else result

            chosen = delayed
        self._routes.insert(0, _Route(method.upper(), compile_path(path), chosen, times))

    def stall(self, method: str, path: str | re.Pattern[str]) -> asyncio.Event:
        """Never answer `method path` until the returned event is set (then 204)."""
        release = asyncio.Event()

        async def held(_req: Request, _m: dict[str, str]) -> Reply:
            await release.wait()
            return Reply(204)

        self.respond(method, path, handler=held)
        return release

    def reset_routes(self) -> None:
        """Drop the scripted routes; the model-backed defaults stay."""
        self._routes.clear()

    def set_ws_rest(self, enabled: bool) -> None:
        """False: ignore RESTRequest messages, as Asterisk before 22.4 does (they are
        still recorded, with status None, so a test can see the probe was tried)."""
        self._ws_rest = enabled

    # -- model ----------------------------------------------------------------------------
    def add_channel(
        self, channel_id: str, state: str = "Up", *, in_stasis: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Put a channel in the model (and in our app, so GET /applications lists it)."""
        data = model.channel_json(channel_id, state=state, app=self.app, **fields)
        self.channels[channel_id] = data
        if in_stasis:
            self.in_stasis[channel_id] = None
        return data

    def add_bridge(self, bridge_id: str, *, kind: str = "mixing", name: str = "") -> dict[str, Any]:
        data = model.bridge_json(bridge_id, kind=kind, name=name)
        self.bridges[bridge_id] = data
        return data

    def add_stored_recording(self, name: str, data: bytes) -> None:
        self.stored_recordings[name] = data

    # -- events ---------------------------------------------------------------------------
    @property
    def connected(self) -> list[WsConnection]:
        """The event websockets open right now."""
        return list(self._open)

    async def send_event(self, event: dict[str, Any]) -> int:
        """Push one event to every open websocket of its application (envelope fields
        filled in when missing, the app's event filter applied as Asterisk does). The
        model follows the event (StasisStart adds the channel, ChannelDestroyed drops it).
        Returns how many sockets got it, so a test can assert it reached someone."""
        data = dict(event)
        data.setdefault("timestamp", model.timestamp())
        data.setdefault("asterisk_id", model.ASTERISK_ID)
        data.setdefault("application", self.app)
        self._observe(data)
        if not self._passes_filter(str(data.get("type", ""))):
            return 0
        text = orjson.dumps(data).decode()
        sent = 0
        for conn in list(self._open):
            if conn.app == data["application"] and not conn.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(text)
                    sent += 1
        return sent

    async def send_raw(self, text: str) -> int:
        """Send a text frame as is (garbage, partial JSON...) to every open websocket."""
        sent = 0
        for conn in list(self._open):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(text)
                sent += 1
        return sent

    async def replay(self, events: Iterable[dict[str, Any]], delay: float = 0.0) -> int:
        """Send recorded events in order, `delay` seconds apart. Returns how many were
        delivered to at least one socket."""
        delivered = 0
        for event in events:
            if await self.send_event(event):
                delivered += 1
            await asyncio.sleep(delay)
        return delivered

    async def send_application_replaced(self) -> int:
        """What Asterisk sends the old connection when another one takes the app name."""
        return await self.send_event({"type": "ApplicationReplaced", "application": self.app})

    async def finish_playback(self, playback_id: str) -> int:
        """PlaybackFinished for a playback the model holds (state "done")."""
        playback = dict(self.playbacks.get(playback_id) or {"id": playback_id})
        playback["state"] = "done"
        return await self.send_event({"type": "PlaybackFinished", "playback": playback})

    async def hangup_channel(self, channel_id: str, cause: int = 16) -> int:
        """The far end hangs up: ChannelHangupRequest, StasisEnd, ChannelDestroyed."""
        channel = dict(self.channels.get(channel_id) or model.channel_json(channel_id))
        sent = await self.send_event(
            {"type": "ChannelHangupRequest", "cause": cause, "channel": channel}
        )
        sent += await self.send_event({"type": "StasisEnd", "channel": channel})
        channel["state"] = "Down"
        sent += await self.send_event(
            {
                "type": "ChannelDestroyed",
                "cause": cause,
                "cause_txt": "Normal Clearing" if cause == 16 else f"cause {cause}",
                "channel": channel,
            }
        )
        return sent

    # -- faults ---------------------------------------------------------------------------
    async def cut(self, *, abort: bool = False) -> int:
        """Close every event websocket from the server side: a close frame, or with
        `abort` a dropped TCP connection (what a crashing Asterisk looks like)."""
        conns, cut = list(self._open), 0
        for conn in conns:
            if abort:
                if conn.request.transport is not None:
                    conn.request.transport.abort()
            else:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"cut")
            cut += 1
        return cut

    # -- waiting --------------------------------------------------------------------------
    async def wait_request(
        self,
        method: str,
        path_regex: str,
        timeout: float = 2.0,
        *,
        transport: Transport | None = None,
        since: int = 0,
    ) -> Request:
        """The first request from index `since` on whose method matches and whose path
        full-matches `path_regex`, waiting up to `timeout` for it to arrive."""
        regex = re.compile(path_regex)

        def found() -> Request | None:
            for req in self.requests[since:]:
                if (
                    req.method == method.upper()
                    and regex.fullmatch(req.path)
                    and (transport is None or req.transport == transport)
                ):
                    return req
            return None

        return await self._wait_for(found, timeout, f"{method} {path_regex}")

    async def wait_connected(self, count: int = 1, timeout: float = 2.0) -> WsConnection:
        """Until `count` websockets have been accepted in total; returns the latest."""

        def found() -> WsConnection | None:
            return self.ws_connections[count - 1] if len(self.ws_connections) >= count else None

        return await self._wait_for(found, timeout, f"websocket connection #{count}")

    async def wait_attempts(self, count: int, timeout: float = 2.0) -> list[float]:
        """Until `count` websocket upgrade attempts have been seen (refused ones too)."""

        def found() -> list[float] | None:
            return list(self.ws_attempts) if len(self.ws_attempts) >= count else None

        return await self._wait_for(found, timeout, f"{count} websocket attempts")

    async def _wait_for(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                result = probe()
                if result is not None:
                    return result
                await changed.wait()
        raise AssertionError(f"fake ARI never saw {what}")  # pragma: no cover

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- transports -----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        expected = f"{self.username}:{self.password}"
        if request.query.get("api_key") == expected:
            return True
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            return base64.b64decode(header[6:]).decode() == expected
        except (ValueError, UnicodeDecodeError):
            return False

    @staticmethod
    def _refuse(request: web.Request) -> web.Response:
        # Drop the TCP connection: the client sees a reset, as with a dead Asterisk.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response(
            {"message": "Authentication required"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self.ws_attempts.append(time.monotonic())
        self._notify()
        if self.refuse_connections:
            return web.json_response({"message": "Service Unavailable"}, status=503)
        if not self._authorized(request):
            return self._unauthorized()
        app = request.query.get("app", "")
        if not app:
            return web.json_response({"message": "Missing parameter app"}, status=400)
        if self.handshake_delay:
            await asyncio.sleep(self.handshake_delay)
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)
        await ws.prepare(request)
        conn = WsConnection(ws, request, app, dict(request.query))
        self.ws_connections.append(conn)
        self._open.append(conn)
        self._notify()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_ws_text(conn, msg.data)
        finally:
            conn.closed_at = time.monotonic()
            if conn in self._open:
                self._open.remove(conn)
            self._notify()
        return ws

    def _on_ws_text(self, conn: WsConnection, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("type") != "RESTRequest":
            return
        split = urlsplit("/" + str(message.get("uri", "")).lstrip("/"))
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        for item in message.get("query_strings") or []:
            params[str(item.get("name"))] = str(item.get("value"))
        body_text = message.get("message_body") or ""
        json_body = None
        if body_text and "json" in str(message.get("content_type", "")):
            json_body = orjson.loads(body_text)
        req = Request(
            method=str(message.get("method", "GET")).upper(),
            path=split.path,
            params=params,
            json=json_body,
            transport="ws",
            query=split.query,
            body=str(body_text).encode(),
            request_id=message.get("request_id"),
            message=message,
        )
        self._record(req)
        if not self._ws_rest:
            return
        task = asyncio.create_task(self._answer_ws(conn, req, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_ws(self, conn: WsConnection, req: Request, message: dict[str, Any]) -> None:
        reply, after = await self._dispatch(req)
        response: dict[str, Any] = {
            "type": "RESTResponse",
            "transaction_id": message.get("transaction_id", ""),
            "request_id": message.get("request_id", ""),
            "status_code": reply.status,
            "reason_phrase": _phrase(reply.status),
            "uri": message.get("uri", ""),
            "asterisk_id": model.ASTERISK_ID,
            "application": conn.app,
            "timestamp": model.timestamp(),
        }
        if reply.raw is not None:
            response["content_type"] = reply.content_type
            response["message_body"] = reply.raw.decode("latin-1")
        elif reply.body is not None:
            response["content_type"] = "application/json"
            response["message_body"] = orjson.dumps(reply.body).decode()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(orjson.dumps(response).decode())
        for event in after:
            await self.send_event(event)

    async def _http(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_connections:
            return self._refuse(request)
        if not self._authorized(request):
            return self._unauthorized()
        raw_body = await request.read()
        json_body = None
        if raw_body and "json" in request.content_type:
            json_body = orjson.loads(raw_body)
        req = Request(
            method=request.method,
            path="/" + request.match_info["tail"],
            params={k: v for k, v in request.query.items() if k != "api_key"},
            json=json_body,
            transport="http",
            query=request.query_string,
            body=raw_body,
        )
        self._record(req)
        reply, after = await self._dispatch(req)
        if after:
            task = asyncio.create_task(self._send_after(after))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if reply.raw is not None:
            return web.Response(
                status=reply.status, body=reply.raw, content_type=reply.content_type
            )
        if reply.body is None:
            return web.Response(status=reply.status)
        return web.Response(
            status=reply.status, body=orjson.dumps(reply.body), content_type="application/json"
        )

    async def _send_after(self, events: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)
        for event in events:
            await self.send_event(event)

    def _record(self, req: Request) -> None:
        self.requests.append(req)
        self._notify()

    async def _dispatch(self, req: Request) -> tuple[Reply, list[dict[str, Any]]]:
        """The one routing table both transports share. Returns the reply and the events
        the model wants sent once it has gone out."""
        for routes in (self._routes, self._defaults):
            for route in list(routes):
                if route.method != req.method:
                    continue
                match = route.regex.fullmatch(req.path)
                if match is None:
                    continue
                if route.times is not None:
                    route.times -= 1
                    if route.times <= 0:
                        routes.remove(route)
                after: list[dict[str, Any]] = []
                self._pending_events = after
                result = route.handler(req, match.groupdict())
                reply = await result if inspect.isawaitable(result) else result
                req.status = reply.status
                return reply, after
        req.status = 404
        return Reply(404, {"message": "Resource not found"}), []

    def _emit(self, event: dict[str, Any]) -> None:
        if self.emit_model_events:
            self._pending_events.append(event)

    def _passes_filter(self, kind: str) -> bool:
        allowed, disallowed = self.event_filter["allowed"], self.event_filter["disallowed"]
        if allowed and kind not in allowed:
            return False
        return kind not in disallowed

    def _observe(self, event: dict[str, Any]) -> None:
        """Keep the model in step with events the test sends, so REST answers agree."""
        kind = event.get("type")
        channel = event.get("channel") if isinstance(event.get("channel"), dict) else None
        cid = channel.get("id") if channel else None
        if kind == "StasisStart" and cid:
            self.channels[cid] = dict(channel)
            self.in_stasis[cid] = None
        elif kind == "StasisEnd" and cid:
            self.in_stasis.pop(cid, None)
        elif kind == "ChannelDestroyed" and cid:
            self.channels.pop(cid, None)
            self.in_stasis.pop(cid, None)
            self.variables.pop(cid, None)
        elif kind == "ChannelStateChange" and cid and cid in self.channels:
            self.channels[cid]["state"] = channel.get("state", "")
        elif kind == "PlaybackStarted":
            playback = event.get("playback") or {}
            self.playbacks[playback.get("id", "")] = dict(playback)
        elif kind == "PlaybackFinished":
            self.playbacks.pop((event.get("playback") or {}).get("id", ""), None)
        elif kind in ("RecordingFinished", "RecordingFailed"):
            name = (event.get("recording") or {}).get("name", "")
            self.live_recordings.pop(name, None)
            if kind == "RecordingFinished":
                self.stored_recordings.setdefault(name, b"")
        elif kind == "BridgeDestroyed":
            self.bridges.pop((event.get("bridge") or {}).get("id", ""), None)

    # -- default routes (the model) -------------------------------------------------------
    def _default(self, method: str, path: str, handler: Handler) -> None:
        self._defaults.append(_Route(method, compile_path(path), handler))

    def _install_defaults(self) -> None:
        d = self._default
        d("GET", "/asterisk/ping", lambda r, m: Reply(200, self._ping()))
        d("GET", "/asterisk/info", lambda r, m: Reply(200, self._info()))
        d("GET", "/applications/{app}", lambda r, m: Reply(200, self._application(m["app"])))
        d("PUT", "/applications/{app}/eventFilter", self._put_filter)
        d("GET", "/channels", lambda r, m: Reply(200, list(self.channels.values())))
        d("POST", "/channels", self._originate)
        d("POST", "/channels/create", self._create_channel)
        d("GET", "/channels/{id}", self._get_channel)
        d("DELETE", "/channels/{id}", self._hangup)
        d("POST", "/channels/{id}/answer", self._answer)
        d("POST", "/channels/{id}/continue", self._continue)
        d("PUT", "/asterisk/modules/{module}", lambda r, m: Reply(204))
        for action in ("ring", "dial", "dtmf", "moh", "hold"):
            d("POST", f"/channels/{{id}}/{action}", self._channel_action)
        for action in ("ring", "moh", "hold"):
            d("DELETE", f"/channels/{{id}}/{action}", self._channel_action)
        d("GET", "/channels/{id}/variable", self._get_variable)
        d("POST", "/channels/{id}/variable", self._set_variable)
        d("POST", "/channels/{id}/play", self._play)
        d("POST", "/channels/{id}/play/{pid}", self._play)
        d("POST", "/channels/{id}/record", self._record_target)
        d("GET", "/playbacks/{pid}", self._get_playback)
        d("DELETE", "/playbacks/{pid}", self._stop_playback)
        d("GET", "/bridges", lambda r, m: Reply(200, list(self.bridges.values())))
        d("POST", "/bridges", self._create_bridge)
        d("POST", "/bridges/{bid}", self._create_bridge)
        d("GET", "/bridges/{bid}", self._get_bridge)
        d("DELETE", "/bridges/{bid}", self._destroy_bridge)
        d("POST", "/bridges/{bid}/addChannel", self._bridge_members)
        d("POST", "/bridges/{bid}/removeChannel", self._bridge_members)
        d("POST", "/bridges/{bid}/moh", self._bridge_action)
        d("DELETE", "/bridges/{bid}/moh", self._bridge_action)
        d("POST", "/bridges/{bid}/play", self._play)
        d("POST", "/bridges/{bid}/play/{pid}", self._play)
        d("POST", "/bridges/{bid}/record", self._record_target)
        d("GET", "/recordings/live/{name}", self._get_live_recording)
        d("POST", "/recordings/live/{name}/stop", self._stop_recording)
        d("DELETE", "/recordings/live/{name}", self._discard_recording)
        d("GET", "/recordings/stored/{name}/file", self._recording_file)
        d("GET", "/recordings/stored/{name}", self._get_stored)
        d("DELETE", "/recordings/stored/{name}", self._delete_stored)

    def _ping(self) -> dict[str, Any]:
        return {"asterisk_id": model.ASTERISK_ID, "ping": "pong", "timestamp": model.timestamp()}

    def _info(self) -> dict[str, Any]:
        return {
            "system": {"version": "22.10.1", "entity_id": model.ASTERISK_ID},
            "build": {"os": "Linux", "kernel": "6.1.0", "machine": "x86_64"},
            "status": {"startup_time": model.timestamp(), "last_reload_time": model.timestamp()},
        }

    def _application(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "channel_ids": list(self.in_stasis),
            "bridge_ids": list(self.bridges),
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [{"type": t} for t in self.event_filter["allowed"]],
            "events_disallowed": [{"type": t} for t in self.event_filter["disallowed"]],
        }

    def _put_filter(self, req: Request, m: dict[str, str]) -> Reply:
        body = req.json or {}
        self.event_filter = {
            key: [str(item.get("type")) for item in body.get(key) or []]
            for key in ("allowed", "disallowed")
        }
        return Reply(200, self._application(m["app"]))

    def _new_channel(self, req: Request, state: str) -> Reply:
        cid = req.params.get("channelId") or model.unique_id()
        if "endpoint" not in req.params:
            return Reply(400, {"message": "Endpoint must be specified"})
        if cid in self.channels:
            return Reply(409, {"message": "Channel with given unique ID already exists"})
        data = self.add_channel(cid, state, in_stasis=False, name=f"{req.params['endpoint']}-1")
        variables = (req.json or {}).get("variables") or {}
        if variables:
            self.variables[cid] = dict(variables)
        return Reply(200, data)

    def _originate(self, req: Request, m: dict[str, str]) -> Reply:
        reply = self._new_channel(req, "Down")
        if reply.status == 200 and self.legs_ring:
            self._emit(
                model.event(
                    "Dial",
                    self.app,
                    peer={**reply.body, "state": "Ringing"},
                    dialstring=req.params["endpoint"],
                    dialstatus="RINGING",
                    forward="",
                )
            )
        return reply

    def _create_channel(self, req: Request, m: dict[str, str]) -> Reply:
        return self._new_channel(req, "Down")

    def _get_channel(self, req: Request, m: dict[str, str]) -> Reply:
        channel = self.channels.get(m["id"])
        return Reply(200, channel) if channel is not None else _not_found("Channel")

    def _hangup(self, req: Request, m: dict[str, str]) -> Reply:
        channel = self.channels.pop(m["id"], None)
        if channel is None:
            return _not_found("Channel")
        was_in_stasis = self.in_stasis.pop(m["id"], "absent") != "absent"
        if was_in_stasis:
            self._emit(model.event("StasisEnd", self.app, channel=channel))
        gone = {**channel, "state": "Down"}
        self._emit(
            model.event(
                "ChannelDestroyed", self.app, cause=16, cause_txt="Normal Clearing", channel=gone
            )
        )
        return Reply(204)

    def _answer(self, req: Request, m: dict[str, str]) -> Reply:
        channel = self.channels.get(m["id"])
        if channel is None:
            return _not_found("Channel")
        if m["id"] not in self.in_stasis:
            return Reply(409, {"message": "Channel not in Stasis application"})
        if channel["state"] != "Up":
            channel["state"] = "Up"
            self._emit(model.event("ChannelStateChange", self.app, channel=dict(channel)))
        return Reply(204)

    def _continue(self, req: Request, m: dict[str, str]) -> Reply:
        channel = self.channels.get(m["id"])
        if channel is None:
            return _not_found("Channel")
        if self.in_stasis.pop(m["id"], "absent") == "absent":
            return Reply(409, {"message": "Channel not in Stasis application"})
        self._emit(model.event("StasisEnd", self.app, channel=dict(channel)))
        return Reply(204)

    def _channel_action(self, req: Request, m: dict[str, str]) -> Reply:
        if m["id"] not in self.channels:
            return _not_found("Channel")
        if m["id"] not in self.in_stasis:
            return Reply(409, {"message": "Channel not in Stasis application"})
        return Reply(204)

    def _get_variable(self, req: Request, m: dict[str, str]) -> Reply:
        if m["id"] not in self.channels:
            return _not_found("Channel")
        name = req.params.get("variable")
        if not name:
            return Reply(400, {"message": "Variable name is required"})
        value = self.variables.get(m["id"], {}).get(name)
        if value is None:
            return Reply(404, {"message": "Provided variable was not found"})
        return Reply(200, {"value": value})

    def _set_variable(self, req: Request, m: dict[str, str]) -> Reply:
        if m["id"] not in self.channels:
            return _not_found("Channel")
        name = req.params.get("variable")
        if not name:
            return Reply(400, {"message": "Variable name is required"})
        self.variables.setdefault(m["id"], {})[name] = req.params.get("value", "")
        return Reply(204)

    def _play(self, req: Request, m: dict[str, str]) -> Reply:
        if "id" in m:
            if m["id"] not in self.channels:
                return _not_found("Channel")
            target = f"channel:{m['id']}"
        else:
            if m["bid"] not in self.bridges:
                return _not_found("Bridge")
            target = f"bridge:{m['bid']}"
        media = req.params.get("media")
        if not media:
            return Reply(400, {"message": "Required parameter media not found"})
        pid = m.get("pid") or req.params.get("playbackId") or model.unique_id()
        playback = model.playback_json(pid, media_uri=media, target_uri=target)
        self.playbacks[pid] = playback
        self._emit(
            model.event("PlaybackStarted", self.app, playback={**playback, "state": "playing"})
        )
        return Reply(201, playback)

    def _get_playback(self, req: Request, m: dict[str, str]) -> Reply:
        playback = self.playbacks.get(m["pid"])
        return Reply(200, playback) if playback is not None else _not_found("Playback")

    def _stop_playback(self, req: Request, m: dict[str, str]) -> Reply:
        playback = self.playbacks.pop(m["pid"], None)
        if playback is None:
            return _not_found("Playback")
        self._emit(
            model.event("PlaybackFinished", self.app, playback={**playback, "state": "done"})
        )
        return Reply(204)

    def _record_target(self, req: Request, m: dict[str, str]) -> Reply:
        if "id" in m:
            if m["id"] not in self.channels:
                return _not_found("Channel")
            target = f"channel:{m['id']}"
        else:
            if m["bid"] not in self.bridges:
                return _not_found("Bridge")
            target = f"bridge:{m['bid']}"
        name, fmt = req.params.get("name"), req.params.get("format")
        if not name or not fmt:
            return Reply(400, {"message": "Required parameter name/format not found"})
        if name in self.live_recordings:
            return Reply(409, {"message": "Recording with the same name already in progress"})
        recording = model.live_recording_json(name, target_uri=target, fmt=fmt)
        self.live_recordings[name] = recording
        self._emit(
            model.event("RecordingStarted", self.app, recording={**recording, "state": "recording"})
        )
        return Reply(201, recording)

    def _get_live_recording(self, req: Request, m: dict[str, str]) -> Reply:
        recording = self.live_recordings.get(m["name"])
        return Reply(200, recording) if recording is not None else _not_found("Recording")

    def _stop_recording(self, req: Request, m: dict[str, str]) -> Reply:
        recording = self.live_recordings.pop(m["name"], None)
        if recording is None:
            return _not_found("Recording")
        self.stored_recordings.setdefault(m["name"], b"")
        done = {**recording, "state": "done", "duration": 0, "talking_duration": 0}
        self._emit(model.event("RecordingFinished", self.app, recording=done))
        return Reply(204)

    def _discard_recording(self, req: Request, m: dict[str, str]) -> Reply:
        if self.live_recordings.pop(m["name"], None) is None:
            return _not_found("Recording")
        return Reply(204)

    def _recording_file(self, req: Request, m: dict[str, str]) -> Reply:
        data = self.stored_recordings.get(m["name"])
        if data is None:
            return _not_found("Recording")
        return Reply(200, raw=data, content_type="audio/wav")

    def _get_stored(self, req: Request, m: dict[str, str]) -> Reply:
        if m["name"] not in self.stored_recordings:
            return _not_found("Recording")
        return Reply(200, {"name": m["name"], "format": "wav"})

    def _delete_stored(self, req: Request, m: dict[str, str]) -> Reply:
        if self.stored_recordings.pop(m["name"], None) is None:
            return _not_found("Recording")
        return Reply(204)

    def _create_bridge(self, req: Request, m: dict[str, str]) -> Reply:
        bid = m.get("bid") or req.params.get("bridgeId") or model.unique_id()
        if bid in self.bridges:
            return Reply(200, self.bridges[bid])
        kind = req.params.get("type", "mixing")
        return Reply(200, self.add_bridge(bid, kind=kind, name=req.params.get("name", "")))

    def _get_bridge(self, req: Request, m: dict[str, str]) -> Reply:
        bridge = self.bridges.get(m["bid"])
        return Reply(200, bridge) if bridge is not None else _not_found("Bridge")

    def _destroy_bridge(self, req: Request, m: dict[str, str]) -> Reply:
        bridge = self.bridges.pop(m["bid"], None)
        if bridge is None:
            return _not_found("Bridge")
        self._emit(model.event("BridgeDestroyed", self.app, bridge=bridge))
        return Reply(204)

    def _bridge_members(self, req: Request, m: dict[str, str]) -> Reply:
        bridge = self.bridges.get(m["bid"])
        if bridge is None:
            return _not_found("Bridge")
        ids = [c for c in req.params.get("channel", "").split(",") if c]
        if not ids:
            return Reply(400, {"message": "Required parameter channel not found"})
        if any(c not in self.channels for c in ids):
            return Reply(422, {"message": "Channel not found"})
        members: list[str] = bridge["channels"]
        for cid in ids:
            if req.path.endswith("/addChannel") and cid not in members:
                members.append(cid)
            elif req.path.endswith("/removeChannel") and cid in members:
                members.remove(cid)
        return Reply(204)

    def _bridge_action(self, req: Request, m: dict[str, str]) -> Reply:
        return Reply(204) if m["bid"] in self.bridges else _not_found("Bridge")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
