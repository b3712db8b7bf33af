"""Hostile HTTP against a running numcfg's API (issue 17): malformed JSON, bodies of
several MB, wrong types, path traversal in hold-music uploads, non-MP3 uploads, unknown
ids. Each answers 4xx with the JSON error shape {"error": {"code", "message"}}, never a
500 or an HTML page, and changes nothing: the store's rows and the files are the same."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import Harness

from .checks import assert_after_faults
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

API = "http://127.0.0.1:18090"
AUTH = {"Authorization": "Bearer test-token"}
JSON = {**AUTH, "Content-Type": "application/json"}
MB = 1024 * 1024
WORKDAY = "/api/employees/anna/workday"


def upload(name: str, content: bytes, field: str = "file") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, content, filename=name, content_type="audio/mpeg")
    return form


def wav_bytes() -> bytes:
    header = b"RIFF" + (36 + 800).to_bytes(4, "little") + b"WAVEfmt "
    fmt = (16).to_bytes(4, "little") + bytes.fromhex("01000100401f0000803e000002001000")
    return header + fmt + b"data" + (800).to_bytes(4, "little") + b"\x00" * 800


# (what, method, path, request keywords, allowed statuses)
def hostile_requests() -> list[tuple[str, str, str, dict[str, Any], set[int]]]:
    bad_json = {400}
    return [
        (
            "truncated JSON",
            "POST",
            WORKDAY,
            {"data": b'{"state": "work', "headers": JSON},
            bad_json,
        ),
        ("binary body", "POST", WORKDAY, {"data": b"\xff\xfe\x00\x81{", "headers": JSON}, bad_json),
        ("JSON array", "POST", WORKDAY, {"json": [1, 2], "headers": AUTH}, bad_json),
        ("JSON string", "POST", WORKDAY, {"json": "working", "headers": AUTH}, bad_json),
        ("state a number", "POST", WORKDAY, {"json": {"state": 5}, "headers": AUTH}, bad_json),
        (
            "state a list",
            "POST",
            WORKDAY,
            {"json": {"state": ["working"]}, "headers": AUTH},
            bad_json,
        ),
        (
            "state an object",
            "POST",
            WORKDAY,
            {"json": {"state": {"a": 1}}, "headers": AUTH},
            bad_json,
        ),
        ("state null", "POST", WORKDAY, {"json": {"state": None}, "headers": AUTH}, bad_json),
        ("no state", "POST", WORKDAY, {"json": {}, "headers": AUTH}, bad_json),
        (
            "5 MB JSON",
            "POST",
            WORKDAY,
            {"json": {"state": "working", "pad": "x" * (5 * MB)}, "headers": AUTH},
            {413},
        ),
        ("5 MB garbage", "POST", WORKDAY, {"data": b"{" * (5 * MB), "headers": JSON}, {413}),
        ("no token", "POST", WORKDAY, {"json": {"state": "working"}}, {401}),
        (
            "wrong token",
            "POST",
            WORKDAY,
            {"json": {"state": "working"}, "headers": {"Authorization": "Bearer x"}},
            {401},
        ),
        (
            "unknown employee",
            "POST",
            "/api/employees/nobody/workday",
            {"json": {"state": "working"}, "headers": AUTH},
            {404},
        ),
        (
            "traversal employee",
            "POST",
            "/api/employees/..%2F..%2Fanna/workday",
            {"json": {"state": "working"}, "headers": AUTH},
            {404},
        ),
        (
            "callback number a number",
            "POST",
            "/api/callbacks",
            {"json": {"number": 5, "phone": "+33612345678"}, "headers": AUTH},
            {400},
        ),
        (
            "callback phone a number",
            "POST",
            "/api/callbacks",
            {"json": {"number": "paris", "phone": 33612345678}, "headers": AUTH},
            {400, 422},
        ),
        (
            "callback phone a dial string",
            "POST",
            "/api/callbacks",
            {"json": {"number": "paris", "phone": "+33612345678&PJSIP/x"}, "headers": AUTH},
            {400, 422},
        ),
        (
            "callback unknown number",
            "POST",
            "/api/callbacks",
            {"json": {"number": "nope", "phone": "+33612345678"}, "headers": AUTH},
            {404, 422},
        ),
        (
            "callback 5 MB",
            "POST",
            "/api/callbacks",
            {"data": b'{"number": "' + b"p" * (5 * MB) + b'"}', "headers": JSON},
            {413},
        ),
        (
            "contact name a number",
            "POST",
            "/api/crm/contacts",
            {"json": {"name": 5, "phone": "+33612345678"}, "headers": AUTH},
            {400},
        ),
        (
            "contact kind a list",
            "POST",
            "/api/crm/contacts",
            {"json": {"name": "x", "phone": "+33612345678", "kind": ["contact"]}, "headers": AUTH},
            {400},
        ),
        (
            "contact responsible an object",
            "POST",
            "/api/crm/contacts",
            {
                "json": {"name": "x", "phone": "+33612345678", "responsible": {"a": 1}},
                "headers": AUTH,
            },
            {400},
        ),
        ("contact bad JSON", "POST", "/api/crm/contacts", {"data": b"[", "headers": JSON}, {400}),
        (
            "contact unknown field",
            "POST",
            "/api/crm/contacts",
            {"json": {"name": "x", "phone": "+33612345678", "../x": 1}, "headers": AUTH},
            {400},
        ),
        ("calls limit text", "GET", "/api/calls?limit=abc", {"headers": AUTH}, {400}),
        ("calls limit huge", "GET", "/api/calls?limit=" + "9" * 400, {"headers": AUTH}, {400}),
        ("calls since garbage", "GET", "/api/calls?since=yesterday", {"headers": AUTH}, {400}),
        (
            "call traversal",
            "GET",
            "/api/calls/..%2F..%2F..%2Fetc%2Fpasswd",
            {"headers": AUTH},
            {404},
        ),
        (
            "recording traversal",
            "GET",
            "/api/calls/..%2F..%2Fnumcfg.yaml/recording",
            {"headers": AUTH},
            {404},
        ),
        (
            "undo token a number",
            "POST",
            "/api/numbers/paris/undo",
            {"json": {"token": 5}, "headers": AUTH},
            {400},
        ),
        (
            "undo bad JSON",
            "POST",
            "/api/numbers/paris/undo",
            {"data": b"nope", "headers": JSON},
            {400},
        ),
        (
            "disconnect unknown",
            "POST",
            "/api/numbers/..%2Fparis/disconnect",
            {"headers": AUTH},
            {404},
        ),
        (
            "hold music traversal name",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("../../x.mp3", b"not an mp3 at all" * 64), "headers": AUTH},
            {400, 415, 422},
        ),
        (
            "hold music traversal WAV",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("../../../x.mp3", wav_bytes()), "headers": AUTH},
            {400, 415, 422},
        ),
        (
            "hold music WAV as MP3",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("music.mp3", wav_bytes()), "headers": AUTH},
            {400, 415, 422},
        ),
        (
            "hold music ID3 only",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("x.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00"), "headers": AUTH},
            {400, 415, 422},
        ),
        (
            "hold music empty",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("x.mp3", b""), "headers": AUTH},
            {400, 415, 422},
        ),
        (
            "hold music wrong field",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("x.mp3", b"x", field="../file"), "headers": AUTH},
            {400},
        ),
        (
            "hold music not multipart",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": b"ID3" + b"\x00" * 100, "headers": {**AUTH, "Content-Type": "audio/mpeg"}},
            {400, 415},
        ),
        (
            "hold music 20 MB",
            "POST",
            "/api/numbers/paris/hold-music",
            {"data": upload("x.mp3", b"\xff\xfb" * (10 * MB)), "headers": AUTH},
            {413},
        ),
        (
            "hold music unknown number",
            "POST",
            "/api/numbers/..%2F..%2Fx/hold-music",
            {"data": upload("x.mp3", b"x"), "headers": AUTH},
            {404},
        ),
    ]


def store_dump(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def files_of(root: Path) -> dict[str, str]:
    """Every file under `root` with its hash, the store's own files aside (checked by
    their rows: SQLite may checkpoint its WAL on a read)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sqlite3" not in p.name
    }


async def answer_problem(
    http: aiohttp.ClientSession, what: str, method: str, path: str, kwargs: dict, statuses: set
) -> str | None:
    """None when the request is answered as it must be, else what was answered."""
    async with http.request(method, API + path, **kwargs) as resp:
        text = await resp.text()
        status, ctype = resp.status, resp.content_type
    try:
        error = json.loads(text)["error"]
        shaped = isinstance(error["code"], str) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        shaped = False
    if status in statuses and ctype == "application/json" and shaped:
        return None
    return f"{what}: {status} {ctype} {text[:200]!r}"


async def test_hostile_requests_answer_4xx_json_and_change_nothing(
    harness: Harness, numcfg, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = await numcfg()
    store_file = tmp_path / "numcfg.sqlite3"
    await asyncio.to_thread(app.store.people.set_workday, "boris", "paused")
    rows_before = await asyncio.to_thread(store_dump, store_file)
    files_before = files_of(tmp_path)
    wrong: list[str] = []
    async with aiohttp.ClientSession() as http:
        for case in hostile_requests():
            FIGURES.fault(request.node.name)
            if (problem := await answer_problem(http, *case)) is not None:
                wrong.append(problem)
        # Still serving afterwards.
        async with http.get(API + "/api/employees", headers=AUTH) as resp:
            assert resp.status == 200
    assert wrong == [], "\n".join(wrong)
    assert await asyncio.to_thread(store_dump, store_file) == rows_before
    assert files_of(tmp_path) == files_before
    for folder in (tmp_path, tmp_path.parent, tmp_path.parent.parent, Path.cwd()):
        assert not (folder / "x.mp3").exists(), folder
    await assert_after_faults(app, harness, test=request.node.name, placed=0)


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("what", "method", "path", "kwargs", "statuses"),
    [
        pytest.param(
            "deeply nested JSON",
            "POST",
            WORKDAY,
            {"data": NESTED, "headers": JSON},
            {400},
            id="workday-nested-json",
        ),
        pytest.param(
            "deeply nested JSON contact",
            "POST",
            "/api/crm/contacts",
            {"data": NESTED, "headers": JSON},
            {400},
            id="contact-nested-json",
        ),
    ],
)
async def test_hostile_request_answers_4xx_json(
    harness: Harness,
    numcfg,
    request: pytest.FixtureRequest,
    what: str,
    method: str,
    path: str,
    kwargs: dict,
    statuses: set,
) -> None:
    app = await numcfg()
    FIGURES.fault(request.node.name)
    async with aiohttp.ClientSession() as http:
        problem = await answer_problem(http, what, method, path, kwargs, statuses)
    await assert_after_faults(app, harness, test=request.node.name, placed=0, ring_again=False)
    assert problem is None, problem
