"""ARI JSON shapes (Asterisk 22's rest-api models) built by the fake and by tests.

Kept apart from the server so a test can build the same event the fake would send,
with the fields Asterisk really puts there, without starting anything.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

ASTERISK_ID = "02:42:ac:11:00:02"

_unique = itertools.count(1)


def timestamp() -> str:
    """ARI's timestamp format: milliseconds and a numeric UTC offset without a colon."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def unique_id() -> str:
    """Asterisk's own channel ids look like "<epoch>.<n>"; tests mostly choose their own."""
    return f"1760000000.{next(_unique)}"


def channel_json(
    channel_id: str,
    *,
    state: str = "Ring",
    name: str | None = None,
    caller_number: str = "+33612345678",
    caller_name: str = "",
    exten: str = "0100000000",
    context: str = "from-trunk",
    channelvars: dict[str, str] | None = None,
    app: str = "numcfg",
) -> dict[str, Any]:
    """An ARI Channel model as Asterisk 22 serialises it."""
    data: dict[str, Any] = {
        "id": channel_id,
        "name": name or f"PJSIP/trunk-{channel_id[-8:].replace('.', '0'):0>8}",
        "state": state,
        "protocol_id": f"{channel_id}@fake",
        "caller": {"name": caller_name, "number": caller_number},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": context,
            "exten": exten,
            "priority": 2,
            "app_name": "Stasis",
            "app_data": app,
        },
        "creationtime": timestamp(),
        "language": "en",
    }
    if channelvars is not None:
        data["channelvars"] = dict(channelvars)
    return data


def bridge_json(
    bridge_id: str, *, kind: str = "mixing", name: str = "", channels: list[str] | None = None
) -> dict[str, Any]:
    """An ARI Bridge model; `bridge_type` is what was asked for, as Asterisk echoes it."""
    return {
        "id": bridge_id,
        "technology": "simple_bridge",
        "bridge_type": kind.split(",")[0],
        "bridge_class": "stasis",
        "creator": "Stasis",
        "name": name,
        "channels": list(channels or []),
        "creationtime": timestamp(),
        "video_mode": "none",
    }


def playback_json(
    playback_id: str, *, media_uri: str, target_uri: str, state: str = "queued"
) -> dict[str, Any]:
    """An ARI Playback model."""
    return {
        "id": playback_id,
        "media_uri": media_uri,
        "next_media_uri": "",
        "target_uri": target_uri,
        "language": "en",
        "state": state,
    }


def live_recording_json(
    name: str, *, target_uri: str, fmt: str = "wav", state: str = "queued"
) -> dict[str, Any]:
    """An ARI LiveRecording model (duration fields appear once it is done)."""
    return {"name": name, "format": fmt, "target_uri": target_uri, "state": state}


def event(kind: str, app: str = "numcfg", **fields: Any) -> dict[str, Any]:
    """Any ARI event with the envelope Asterisk puts on every message."""
    return {
        "type": kind,
        "timestamp": timestamp(),
        **fields,
        "asterisk_id": ASTERISK_ID,
        "application": app,
    }
