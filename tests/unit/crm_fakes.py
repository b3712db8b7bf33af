"""Real HTTP servers on 127.0.0.1 standing in for Bitrix24 and webhook receivers.

They answer with the response shapes Bitrix24 documents and record every request, so tests
assert on what actually went over the wire. Also: configs and stores for CRM tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from asterisk_bridge.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numcfg.yaml"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

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
            seen = Seen(
                request.path, dict(request.headers), await request.read(), dict(request.query)
            )
            self.requests.append(seen)
            result = self.answer(seen)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", handle)
        app.router.add_route("GET", "/{tail:.*}", handle)
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


class PortalError(Exception):
    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.description = description
        self.status = status


def php_parse(query: str) -> dict[str, Any]:
    """PHP's parse_str: a[b][0]=c into {"a": {"b": {"0": "c"}}}; lists whose keys are
    0..n-1 become lists."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key.split("[", 1)[0]) + re.findall(r"\[([^\]]*)\]", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: lists(v) for k, v in value.items()}
            if value and list(value) == [str(i) for i in range(len(value))]:
                return list(value.values())
        return value

    return lists(out)


class FakeBitrix:
    """A Bitrix24 portal with a few CRM entities, answering documented shapes.

    `limit` makes it enforce the leaky bucket (503 QUERY_LIMIT_EXCEEDED beyond it);
    `throttle_next` refuses that many next requests the same way whatever the bucket says;
    `refuse(prefix, code)` refuses the methods starting with `prefix` with that auth error.
    """

    def __init__(self, *, limit: LeakyBucket | None = None) -> None:
        self.url = ""  # the server's base URL, once started (for client_endpoint)
        self.phones: dict[str, dict[str, list[int]]] = {}
        self.entities: dict[tuple[str, int], dict[str, Any]] = {}
        self.next_lead = 100
        self.next_comment = 500
        self.fail_with: int | None = None  # answer every request with this HTTP status
        self.limit = limit
        self.throttle_next = 0
        self.throttled = 0  # requests answered QUERY_LIMIT_EXCEEDED so far
        self.refused: dict[str, str] = {}  # method prefix -> error code
        # Portal users: id -> fields (UF_PHONE_INNER...), and their timeman STATUS.
        self.users: dict[str, dict[str, Any]] = {}
        self.timeman: dict[str, str] = {}
        # The telephony journal as the portal keeps it: CALL_ID -> the call.
        self.calls: dict[str, dict[str, Any]] = {}
        # Every card pop-up and close: (CALL_ID, "show" | "hide", user id).
        self.cards: list[tuple[str, str, str]] = []
        self.upload_url = ""  # set: attachRecord with FILENAME only offers this URL
        self.uploads: list[tuple[str, bytes]] = []
        # The local application (OAuth): oauth.bitrix.info's side and the portal's.
        self.client_id = "local.app.1"
        self.client_secret = "app-secret"
        self.application_token = "app-token-1"
        self.refresh_tokens: set[str] = set()  # good for one refresh each
        self.access_tokens: set[str] = set()
        self.expired: set[str] = set()
        self.grants = 0
        self._issued = 0

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
        if seen.path.startswith("/oauth/token"):
            return self.answer_oauth(seen)
        if seen.path.startswith("/rest/") and not seen.path.startswith("/rest/1/"):
            # The application's endpoint (/rest/<method>): the access token in `auth`.
            token = (seen.json or {}).get("auth") if seen.body else None
            if token in self.expired:
                return bitrix_error("expired_token", "The access token provided has expired.", 401)
            if token not in self.access_tokens:
                return bitrix_error("invalid_token", "The access token provided is invalid.", 401)
        if seen.method == "batch":
            return bitrix_result(self.run_batch(seen.json))
        if seen.method == "upload":
            return self.answer_upload(seen)
        try:
            return bitrix_result(self.run(seen.method, seen.json))
        except PortalError as exc:
            return bitrix_error(exc.code, exc.description, status=exc.status)

    def run_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """`batch` as documented: each cmd is "method?query" (PHP's http_build_query),
        run in order; $result[key][FIELD] reads an earlier command's answer."""
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, command in params["cmd"].items():
            method, _, query = command.partition("?")
            args = php_parse(query)

            def resolve(value: Any) -> Any:
                if isinstance(value, dict):
                    return {k: resolve(v) for k, v in value.items()}
                if isinstance(value, str) and value.startswith("$result["):
                    # $result[key][FIELD][0]...: a path into an earlier command's answer.
                    node: Any = results
                    for part in re.findall(r"\[(\w+)\]", value):
                        if isinstance(node, dict):
                            node = node.get(part)
                        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                            node = node[int(part)]
                        else:
                            node = None
                    return node
                return value

            try:
                for prefix, code in self.refused.items():
                    if method.startswith(prefix):
                        raise PortalError(code, REFUSALS[code][1], REFUSALS[code][0])
                results[key] = self.run(method, resolve(args))
            except PortalError as exc:
                errors[key] = {"error": exc.code, "error_description": exc.description}
        return {
            "result": results or [],
            "result_error": errors or [],
            "result_total": [],
            "result_next": [],
            "result_time": [],
        }

    def issue_tokens(self) -> dict[str, Any]:
        """What oauth.bitrix.info answers a good grant (and an install carries)."""
        self._issued += 1
        access, refresh = f"access-{self._issued}", f"refresh-{self._issued}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": 3600,
            "client_endpoint": f"{self.url}/rest/",
            "domain": "127.0.0.1",
            "member_id": "m1",
            "scope": "crm,telephony,user,timeman",
            "status": "L",
        }

    def answer_oauth(self, seen: Seen) -> web.Response:
        query = seen.query
        good = (
            query.get("grant_type") == "refresh_token"
            and query.get("client_id") == self.client_id
            and query.get("client_secret") == self.client_secret
            and query.get("refresh_token") in self.refresh_tokens
        )
        if not good:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid grant"}, status=400
            )
        self.refresh_tokens.discard(query["refresh_token"])
        self.grants += 1
        return web.json_response(self.issue_tokens())

    def expire_access_tokens(self) -> None:
        self.expired |= self.access_tokens
        self.access_tokens.clear()

    def install_form(self) -> dict[str, str]:
        """ONAPPINSTALL as the portal POSTs it to the application's handler."""
        tokens = self.issue_tokens()
        return {
            "event": "ONAPPINSTALL",
            "data[VERSION]": "1",
            "auth[access_token]": tokens["access_token"],
            "auth[refresh_token]": tokens["refresh_token"],
            "auth[expires_in]": "3600",
            "auth[domain]": "127.0.0.1",
            "auth[client_endpoint]": tokens["client_endpoint"],
            "auth[member_id]": "m1",
            "auth[application_token]": self.application_token,
            "auth[user_id]": "1",
        }

    def call_start_form(self, *, user_id: str, phone: str, line: str) -> dict[str, str]:
        """ONEXTERNALCALLSTART for a click on `phone` in a CRM card: the portal registers
        the call first (an outgoing one, in the user's name) and sends its CALL_ID."""
        self._issued += 1
        call_id = f"externalCall.click{self._issued}"
        self.calls[call_id] = {"USER_ID": user_id, "PHONE_NUMBER": phone, "TYPE": 1}
        return {
            "event": "ONEXTERNALCALLSTART",
            "data[PHONE_NUMBER]": phone,
            "data[PHONE_NUMBER_INTERNATIONAL]": phone,
            "data[USER_ID]": user_id,
            "data[LINE_NUMBER]": line,
            "data[CALL_ID]": call_id,
            "data[CRM_ENTITY_TYPE]": "CONTACT",
            "data[CRM_ENTITY_ID]": "7",
            "data[IS_MOBILE]": "0",
            "ts": str(int(time.time())),
            "auth[domain]": "127.0.0.1",
            "auth[member_id]": "m1",
            "auth[application_token]": self.application_token,
        }

    def answer_upload(self, seen: Seen) -> web.Response:
        self.uploads.append((seen.headers.get("Content-Type", ""), seen.body))
        return bitrix_result(True)

    def run(self, method: str, params: dict[str, Any]) -> Any:
        """One REST method: its `result`, or PortalError."""
        match method:
            case "crm.duplicate.findbycomm":
                # Nothing found is a PHP empty array: [] rather than {}.
                return self.phones.get(params["values"][0], [])
            case "crm.contact.get" | "crm.company.get" | "crm.lead.get":
                kind = method.split(".")[1].upper()
                if not str(params.get("id") or "").isdigit():
                    raise PortalError("", "ID is not defined or invalid.")
                found = self.entities.get((kind, int(params["id"])))
                if found is None:
                    raise PortalError("", "Not found")
                return found
            case "crm.lead.add":
                return self.add_lead(params["fields"])
            case "crm.lead.update":
                lead = self.entities.get(("LEAD", int(params["id"])))
                if lead is not None:
                    lead.update(params["fields"])
                return True
            case "user.get":
                start = int(params.get("start", 0))
                users = [dict(u, ID=uid) for uid, u in sorted(self.users.items())]
                return users[start : start + 50]
            case "timeman.status":
                user = str(params.get("USER_ID", ""))
                return {"STATUS": self.timeman.get(user, "CLOSED"), "TIME_START": None}
            case "telephony.externalcall.register":
                return self.register(params)
            case "telephony.externalcall.show" | "telephony.externalcall.hide":
                if params.get("CALL_ID") not in self.calls:
                    raise PortalError("ERROR_CALL_NOT_FOUND", "Call not found")
                users = params["USER_ID"]
                users = users if isinstance(users, list) else list(users.values())
                what = method.rsplit(".", 1)[1]
                for user in users:
                    self.cards.append((params["CALL_ID"], what, str(user)))
                return True
            case "telephony.externalcall.finish":
                return self.finish(params)
            case "telephony.externalCall.attachRecord":
                if "FILE_CONTENT" not in params and self.upload_url:
                    return {"uploadUrl": self.upload_url, "fieldName": "file"}
                return {"FILE_ID": 9079}
            case "crm.timeline.comment.add":
                fields = params["fields"]  # lower-case "fields": the only key accepted
                if not fields.get("ENTITY_ID") or not fields.get("ENTITY_TYPE"):
                    raise PortalError("ERROR_REQUIRED_FIELDS", "ENTITY_ID, ENTITY_TYPE")
                self.next_comment += 1
                return self.next_comment
        raise PortalError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)

    def add_lead(self, fields: dict[str, Any], *, by_call: str | None = None) -> int:
        self.next_lead += 1
        lead = dict(fields, ID=str(self.next_lead))
        if by_call:
            lead["CREATED_BY_CALL"] = by_call
        self.entities[("LEAD", self.next_lead)] = lead
        phone = fields["PHONE"][0]["VALUE"]
        self.phones.setdefault(phone, {}).setdefault("LEAD", []).append(self.next_lead)
        return self.next_lead

    def register(self, params: dict[str, Any]) -> dict[str, Any]:
        """As the docs say: the same CALL_ID for a repeated EXTERNAL_CALL_ID; bound to the
        given entity, else to what the CRM has for the phone; with CRM_CREATE=1 and an
        unknown phone, a lead (source CRM_SOURCE, responsible USER_ID)."""
        call_id = f"externalCall.{params['EXTERNAL_CALL_ID']}"
        if call_id in self.calls:
            return {"CALL_ID": call_id, "CRM_CREATED_LEAD": None, "CRM_CREATED_ENTITIES": []}
        phone = str(params["PHONE_NUMBER"])
        entity_type = params.get("CRM_ENTITY_TYPE") or ""
        entity_id = params.get("CRM_ENTITY_ID") or 0
        known = self.phones.get(phone)
        if not entity_type and known:
            for kind in ("CONTACT", "COMPANY", "LEAD"):
                if known.get(kind):
                    entity_type, entity_id = kind, known[kind][0]
                    break
        created = None
        if str(params.get("CRM_CREATE", "0")) == "1" and not known:
            fields = {
                "TITLE": f"{phone} - Incoming call",
                "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
                "SOURCE_ID": params.get("CRM_SOURCE") or "CALL",
                "ASSIGNED_BY_ID": str(params.get("USER_ID")),
            }
            created = self.add_lead(fields, by_call=call_id)
            entity_type, entity_id = "LEAD", created
        self.calls[call_id] = dict(params, CRM_ENTITY_TYPE=entity_type, CRM_ENTITY_ID=entity_id)
        if str(params.get("SHOW", "1")) == "1":
            self.cards.append((call_id, "show", str(params.get("USER_ID"))))
        return {
            "CALL_ID": call_id,
            "CRM_CREATED_LEAD": created,
            "CRM_CREATED_ENTITIES": (
                [{"ENTITY_TYPE": "LEAD", "ENTITY_ID": created}] if created else []
            ),
            "CRM_ENTITY_TYPE": entity_type,
            "CRM_ENTITY_ID": entity_id,
        }

    def finish(self, params: dict[str, Any]) -> dict[str, Any]:
        """Ends the call; USER_ID becomes the responsible of a lead register created."""
        call = self.calls.get(params["CALL_ID"])
        if call is None:
            raise PortalError("ERROR_CALL_NOT_FOUND", "Call not found")
        call["FINISHED"] = dict(params)
        for lead in self.entities.values():
            if lead.get("CREATED_BY_CALL") == params["CALL_ID"]:
                lead["ASSIGNED_BY_ID"] = str(params["USER_ID"])
        return {"CALL_ID": params["CALL_ID"], "ID": 7, "CALL_STATUS": 1}

    def lead_of_phone(self, phone: str) -> list[dict[str, Any]]:
        ids = (self.phones.get(phone) or {}).get("LEAD", [])
        return [self.entities[("LEAD", i)] for i in ids]


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
