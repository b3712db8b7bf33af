"""What the console keeps while the service runs, stored on its aiohttp sub-application."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from .sessions import Sessions
from .throttle import LoginThrottle


@dataclass
class ConsoleState:
    app_state: Any  # the running App (app.py): services, config holder
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # Set at shutdown so live-board streams end instead of holding the server open.
    closing: asyncio.Event = field(default_factory=asyncio.Event)


STATE: Final = web.AppKey("console_state", ConsoleState)


def state_of(request: web.Request) -> ConsoleState:
    return request.config_dict[STATE]
