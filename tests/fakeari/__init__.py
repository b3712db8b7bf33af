"""A fake Asterisk ARI server for fast tests of the ARI client, stream and call engine.

    async with FakeAri() as fake:           # or the `fake_ari` fixture (fixtures.py)
        fake.add_channel("c1")              # model: GET /channels/c1 -> 200, absent -> 404
        fake.respond("POST", "/channels/{id}/answer", 409, {"message": "not in Stasis"})
        await fake.send_event({...})        # to every connected event websocket
        req = await fake.wait_request("POST", r"/channels/c1/answer")
        await fake.cut()                    # server-side close of the event websocket

See server.py for the whole scripting API and replay.py for recorded event logs.
"""

from .model import channel_json, event
from .replay import LOGS, load_event_log
from .server import FakeAri, Reply, Request, WsConnection, compile_path

__all__ = [
    "LOGS",
    "FakeAri",
    "Reply",
    "Request",
    "WsConnection",
    "channel_json",
    "compile_path",
    "event",
    "load_event_log",
]
