"""Real HTTP servers on 127.0.0.1 standing in for Bitrix24 and webhook receivers.

They answer with the response shapes Bitrix24 documents and record every request, so tests
assert on what actually went over the wire. Also: configs and stores for CRM tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from asterisk_bridge.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numcfg.yaml"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def method(self) -> str:
        """The REST method of a Bitrix24 webhook URL (/rest/<user>/<code>/<method>)."""
        return self.path.rsplit("/", 1)[-1]


Answer = Callable[[Seen], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class FakeServer:
    answer: Answer
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeServer:
        async def handle(request: web.Request) -> web.StreamResponse:
            seen = Seen(request.path, dict(request.headers), await request.read())
            self.requests.append(seen)
            result = self.answer(seen)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def methods(self) -> list[str]:
        return [seen.method for seen in self.requests]

    def by_method(self, method: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.method == method]


def bitrix_result(result: Any) -> web.Response:
    return web.json_response({"result": result, "time": {"start": 0, "finish": 0}})


def bitrix_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class LeakyBucket:
    """The portal's request limit as documented (apidocs.bitrix24.com/limits.html): every
    request adds one to a counter that leaks `leak_per_second`; a request that would take it
    past `capacity` is refused (and not counted)."""

    def __init__(self, *, capacity: int, leak_per_second: float) -> None:
        self.capacity = capacity
        self.leak_per_second = leak_per_second
        self.level = 0.0
        self._updated = time.monotonic()

    def admit(self) -> bool:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self._updated) * self.leak_per_second)
        self._updated = now
        if self.level + 1 > self.capacity:
            return False
        self.level += 1
        return True


# How the portal refuses credentials: (HTTP status, error_description) per error code.
REFUSALS = {
    "WRONG_AUTH_TYPE": (400, "Current authorization type is denied for this method"),
    "insufficient_scope": (403, "The request requires higher privileges than provided"),
    "expired_token": (401, "The access token provided has expired."),
    "invalid_token": (401, "The access token provided is invalid."),
    "NO_AUTH_FOUND": (401, "Wrong authorization data"),
}


class FakeBitrix:
    """A Bitrix24 portal with a few CRM entities, answering documented shapes.

    `limit` makes it enforce the leaky bucket (503 QUERY_LIMIT_EXCEEDED beyond it);
    `throttle_next` refuses that many next requests the same way whatever the bucket says;
    `refuse(prefix, code)` refuses the methods starting with `prefix` with that auth error.
    """

    def __init__(self, *, limit: LeakyBucket | None = None) -> None:
        self.phones: dict[str, dict[str, list[int]]] = {}
        self.entities: dict[tuple[str, int], dict[str, Any]] = {}
        self.next_lead = 100
        self.next_comment = 500
        self.fail_with: int | None = None  # answer every request with this HTTP status
        self.limit = limit
        self.throttle_next = 0
        self.throttled = 0  # requests answered QUERY_LIMIT_EXCEEDED so far
        self.refused: dict[str, str] = {}  # method prefix -> error code

    def refuse(self, prefix: str, code: str) -> None:
        self.refused[prefix] = code

    def accept(self) -> None:
        self.refused.clear()

    def answer(self, seen: Seen) -> web.Response:
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="upstream down")
        over_limit = self.limit is not None and not self.limit.admit()
        if self.throttle_next > 0 or over_limit:
            self.throttle_next = max(0, self.throttle_next - 1)
            self.throttled += 1
            return bitrix_error("QUERY_LIMIT_EXCEEDED", "Too many requests", status=503)
        for prefix, code in self.refused.items():
            if seen.method.startswith(prefix):
                status, description = REFUSALS[code]
                return bitrix_error(code, description, status=status)
        params = seen.json
        match seen.method:
            case "crm.duplicate.findbycomm":
                # Nothing found is a PHP empty array: [] rather than {}.
                return bitrix_result(self.phones.get(params["values"][0], []))
            case "crm.contact.get" | "crm.company.get" | "crm.lead.get":
                kind = seen.method.split(".")[1].upper()
                found = self.entities.get((kind, int(params["id"])))
                if found is None:
                    return bitrix_error("", "Not found")
                return bitrix_result(found)
            case "crm.lead.add":
                self.next_lead += 1
                fields = params["fields"]
                self.entities[("LEAD", self.next_lead)] = dict(fields, ID=str(self.next_lead))
                phone = fields["PHONE"][0]["VALUE"]
                self.phones.setdefault(phone, {}).setdefault("LEAD", []).append(self.next_lead)
                return bitrix_result(self.next_lead)
            case "crm.lead.update":
                return bitrix_result(True)
            case "telephony.externalcall.register":
                return bitrix_result(
                    {
                        "CALL_ID": f"externalCall.{params['EXTERNAL_CALL_ID']}",
                        "CRM_CREATED_LEAD": None,
                        "CRM_CREATED_ENTITIES": [],
                        "CRM_ENTITY_TYPE": params.get("CRM_ENTITY_TYPE", ""),
                        "CRM_ENTITY_ID": params.get("CRM_ENTITY_ID", 0),
                    }
                )
            case "telephony.externalcall.finish":
                return bitrix_result({"CALL_ID": params["CALL_ID"], "ID": 7, "CALL_STATUS": 1})
            case "telephony.externalCall.attachRecord":
                return bitrix_result({"FILE_ID": 9079})
            case "crm.timeline.comment.add":
                fields = params["fields"]  # lower-case "fields": the only key accepted
                if not fields.get("ENTITY_ID") or not fields.get("ENTITY_TYPE"):
                    return bitrix_error("ERROR_REQUIRED_FIELDS", "ENTITY_ID, ENTITY_TYPE")
                self.next_comment += 1
                return bitrix_result(self.next_comment)
        return bitrix_error("ERROR_METHOD_NOT_FOUND", "Method not found!", status=404)


def write_config(tmp_path: Path, *, crm: str = "", employee_extra: str = "") -> Path:
    """examples/numcfg.yaml in tmp_path (so its store lands there), with CRM changes."""
    text = EXAMPLE.read_text()
    if employee_extra:
        text = text.replace('    extension: "101"\n', f'    extension: "101"\n{employee_extra}', 1)
    if crm:
        text += "\n" + crm
    path = tmp_path / "numcfg.yaml"
    path.write_text(text)
    return path


ENV = {"NUMCFG_ARI_PASSWORD": "test-password", "NUMCFG_CRM_SECRET": "s3cret"}


def load(tmp_path: Path, **changes: str) -> Config:
    return load_config(write_config(tmp_path, **changes), env=ENV)
