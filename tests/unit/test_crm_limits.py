"""Bitrix24 inside the portal's limits, and a refused webhook that says what to fix.

The stand-in portal (crm_fakes.FakeBitrix) enforces the documented leaky bucket with 503
QUERY_LIMIT_EXCEEDED and refuses credentials when told to; the bucket here is small so a
test sees in seconds what a real portal shows in minutes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from asterisk_bridge.crm import CallInfo, CrmService, build_crm
from asterisk_bridge.crm.bitrix24 import Bitrix24Crm
from asterisk_bridge.crm.ratelimit import Backoff, TokenBucket
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import Store, open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, LeakyBucket, Seen, bitrix_error, load

CLIENT = "+33612345678"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
MAPPED = '    crm_user_id: "17"\n'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeBitrix, FakeServer]]:
    fake = FakeBitrix()
    server = await FakeServer(fake.answer).start()
    yield fake, server
    await server.stop()


def settings(url: str, *, timeout: float, per_second: float | None = None, burst: int = 0) -> str:
    text = f"crm:\n  backend: bitrix24\n  url: {url}/rest/1/abc123/\n  timeout: {timeout}\n"
    if per_second is not None:
        text += f"  rate_limit:\n    per_second: {per_second}\n    burst: {burst}\n"
    return text


def service(
    tmp_path: Path, store: Store, metrics: Metrics, url: str, **limits: float
) -> CrmService:
    config = load(tmp_path, crm=settings(url, **limits), employee_extra=MAPPED)
    return build_crm(config, store=store, metrics=metrics)


def failures(metrics: Metrics, reason: str | None = None) -> float:
    if reason is not None:
        value = metrics.registry.get_sample_value("numcfg_crm_failures_total", {"reason": reason})
        return value or 0.0
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "numcfg_crm_failures"
        for sample in family.samples
        if sample.name == "numcfg_crm_failures_total"
    )


def problem_gauge(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value("numcfg_crm_problem", {"reason": reason})


def call(call_id: str) -> CallInfo:
    return CallInfo(
        call_id=call_id,
        number_id="paris",
        line_number="+33185000000",
        direction="incoming",
        phone=CLIENT,
        employee="anna",
        started_at=T0,
    )


def known_contact(fake: FakeBitrix) -> None:
    fake.phones[CLIENT] = {"CONTACT": [275]}
    fake.entities[("CONTACT", 275)] = {"ID": "275", "NAME": "Jean", "ASSIGNED_BY_ID": "17"}


async def journal(crm: CrmService, call_id: str) -> None:
    info = call(call_id)
    await crm.notify_started(info)
    await crm.notify_finished(
        info, duration=10, disposition="answered", rating=None, recording_path=None
    )


# -- the token bucket and the backoff, alone ---------------------------------------------------


async def test_headroom_leaves_the_last_slots_of_the_remote_bucket_unused():
    bucket = TokenBucket(per_second=20, burst=10, headroom=2)
    started = time.monotonic()
    for _ in range(8):
        await bucket.acquire(urgent=True)
    assert time.monotonic() - started < 0.03
    await bucket.acquire(urgent=True)  # the 9th waits a leak interval (1/20 s)
    assert time.monotonic() - started >= 0.04


async def test_the_bucket_gives_a_burst_at_once_then_its_rate():
    bucket = TokenBucket(per_second=20, burst=5)
    started = time.monotonic()
    for _ in range(5):
        await bucket.acquire(urgent=True)
    assert time.monotonic() - started < 0.05  # the burst does not wait
    for _ in range(4):
        await bucket.acquire(urgent=True)
    # Four more tokens at 20/s: 0.2 s.
    assert 0.18 <= time.monotonic() - started < 0.6


async def test_the_bucket_refuses_a_wait_past_the_deadline_at_once():
    bucket = TokenBucket(per_second=1, burst=1)
    await bucket.acquire(urgent=True)
    started = time.monotonic()
    with pytest.raises(Exception, match="rate limit") as raised:
        await bucket.acquire(deadline=time.monotonic() + 0.5, urgent=True)
    assert getattr(raised.value, "reason", None) == "rate_limited"
    assert time.monotonic() - started < 0.05


def test_backoff_doubles_with_jitter_under_a_cap():
    backoff = Backoff(base=0.25, cap=2.0, rng=random.Random(7))
    for retry, ceiling in enumerate([0.25, 0.5, 1.0, 2.0, 2.0]):
        delays = {backoff.delay(retry) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered: refused requests do not come back together


def test_rate_limit_defaults_are_the_portals_and_an_enterprise_plan_raises_them(tmp_path, store):
    url = "https://portal.example"
    default = build_crm(
        load(tmp_path, crm=settings(url, timeout=1.0)), store=store, metrics=Metrics()
    )
    raised = build_crm(
        load(tmp_path, crm=settings(url, timeout=1.0, per_second=5, burst=250)),
        store=store,
        metrics=Metrics(),
    )
    for crm, expected in ((default, (2.0, 50)), (raised, (5.0, 250))):
        assert isinstance(crm.backend, Bitrix24Crm)
        assert (crm.backend.rate_limit.per_second, crm.backend.rate_limit.burst) == expected


# -- staying inside the portal's bucket --------------------------------------------------------


async def test_a_burst_of_30_calls_journal_stays_inside_the_portal_bucket_and_loses_no_entry(
    tmp_path, store
):
    fake = FakeBitrix(limit=LeakyBucket(capacity=10, leak_per_second=40))
    server = await FakeServer(fake.answer).start()
    metrics = Metrics()
    try:
        crm = service(tmp_path, store, metrics, server.url, timeout=1.0, per_second=40, burst=10)
        for i in range(30):
            await journal(crm, f"c{i}")
        # 60 requests at 40/s after a burst of 10: about 1.3 s, past crm.timeout.
        await crm.drain(timeout=30)
        await crm.close()
    finally:
        await server.stop()

    calls = {f"c{i}" for i in range(30)}
    registered = {seen.json["EXTERNAL_CALL_ID"] for seen in fake_requests(server, "register")}
    finished = {seen.json["CALL_ID"] for seen in fake_requests(server, "finish")}
    assert registered == calls
    assert finished == {f"externalCall.{call_id}" for call_id in calls}
    # Paced client-side: the portal never had to refuse a request.
    assert fake.throttled == 0
    assert failures(metrics) == 0


def fake_requests(server: FakeServer, what: str) -> list[Seen]:
    return server.by_method(f"telephony.externalcall.{what}")


async def test_a_routing_lookup_never_waits_past_crm_timeout_when_the_bucket_is_empty(
    portal, tmp_path, store
):
    _fake, server = portal
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=0.5, per_second=0.5, burst=2)
    assert await crm.lookup(CLIENT) is None  # unknown: one request each
    assert await crm.lookup(CLIENT) is None
    started = time.monotonic()
    # The next token comes in 2 s, past the 0.5 s budget: the caller is routed at once.
    assert await crm.lookup(CLIENT) is None
    assert time.monotonic() - started < 0.5
    await crm.close()
    assert len(server.requests) == 2
    assert failures(metrics, "rate_limited") == 1


async def test_a_lookup_waits_for_a_token_that_comes_within_its_budget(portal, tmp_path, store):
    fake, server = portal
    known_contact(fake)
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=1.0, per_second=5, burst=1)
    started = time.monotonic()
    entity = await crm.lookup(CLIENT)  # findbycomm now, then .get 0.2 s later
    elapsed = time.monotonic() - started
    await crm.close()
    assert entity is not None and entity.id == "275"
    assert 0.15 <= elapsed < 1.0
    assert failures(metrics) == 0


async def test_routing_goes_before_a_backlog_of_journal_events(portal, tmp_path, store):
    fake, server = portal
    known_contact(fake)
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=1.0, per_second=20, burst=4)
    for i in range(40):
        await crm.notify_started(call(f"c{i}"))
    await asyncio.sleep(0)  # the journal events are now waiting for tokens
    started = time.monotonic()
    # Behind 40 journal requests at 20/s this lookup would wait 1.8 s and fail.
    entity = await crm.lookup(CLIENT)
    assert time.monotonic() - started < 1.0
    assert entity is not None and entity.id == "275"
    await crm.drain(timeout=30)
    await crm.close()
    assert len(server.by_method("telephony.externalcall.register")) == 40
    assert failures(metrics) == 0


# -- "slow down" answers -----------------------------------------------------------------------


def _too_many_once(fake: FakeBitrix):
    refused = []

    def answer(seen: Seen) -> web.Response:
        if not refused:
            refused.append(seen)
            return bitrix_error("OPERATION_TIME_LIMIT", "Method is blocked", status=429)
        return fake.answer(seen)

    return answer


@pytest.mark.parametrize("how", ["503 QUERY_LIMIT_EXCEEDED", "429"])
async def test_a_slow_down_answer_is_retried_and_succeeds(tmp_path, store, how):
    fake = FakeBitrix()
    known_contact(fake)
    if how == "429":
        server = await FakeServer(_too_many_once(fake)).start()
    else:
        fake.throttle_next = 2
        server = await FakeServer(fake.answer).start()
    metrics = Metrics()
    try:
        crm = service(tmp_path, store, metrics, server.url, timeout=2.0, per_second=10, burst=10)
        entity = await crm.lookup(CLIENT)
        await crm.close()
    finally:
        await server.stop()
    assert entity is not None and (entity.id, entity.responsible) == ("275", "anna")
    retries = 1 if how == "429" else 2
    assert server.methods().count("crm.duplicate.findbycomm") == 1 + retries
    assert failures(metrics) == 0


async def test_query_limit_exceeded_past_the_budget_is_rate_limited_not_an_outage(
    portal, tmp_path, store
):
    fake, server = portal
    fake.throttle_next = 1000
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=0.5, per_second=10, burst=10)
    started = time.monotonic()
    assert await crm.lookup(CLIENT) is None
    assert time.monotonic() - started < 0.5 + 0.2
    await crm.close()
    assert len(server.requests) >= 2  # retried at least once
    assert failures(metrics, "rate_limited") == 1
    assert failures(metrics, "http_5xx") == 0
    assert crm.problem is None  # busy is no reason to touch the webhook


# -- a refused webhook -------------------------------------------------------------------------


def crm_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.startswith("numcfg.crm") and record.levelno >= logging.WARNING
    ]


async def test_wrong_auth_type_sets_problem_is_logged_once_for_20_calls_and_clears(
    portal, tmp_path, store, caplog
):
    fake, server = portal
    known_contact(fake)
    fake.refuse("telephony.", "WRONG_AUTH_TYPE")  # lookups still work, the journal does not
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=1.0, per_second=100, burst=100)
    caplog.set_level(logging.DEBUG, logger="numcfg.crm")
    assert crm.problem is None

    for i in range(20):
        assert await crm.lookup(CLIENT) is not None
        await journal(crm, f"c{i}")
        await crm.drain(timeout=5)

    assert crm.problem is not None
    assert "WRONG_AUTH_TYPE" in crm.problem and "local application" in crm.problem
    assert problem_gauge(metrics, "wrong_auth_type") == 1
    assert b'numcfg_crm_problem{reason="wrong_auth_type"} 1.0' in metrics.render()
    assert failures(metrics, "refused") == 20
    said = crm_log(caplog)
    assert len(said) == 1, [record.getMessage() for record in said]
    assert "WRONG_AUTH_TYPE" in said[0].getMessage()

    fake.accept()
    caplog.clear()
    await journal(crm, "c-after")
    await crm.drain(timeout=5)
    await crm.close()
    assert crm.problem is None
    assert problem_gauge(metrics, "wrong_auth_type") == 0
    said = crm_log(caplog)
    assert len(said) == 1 and "cleared" in said[0].getMessage()
    assert fake_requests(server, "finish")[-1].json["CALL_ID"] == "externalCall.c-after"


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        ("insufficient_scope", "insufficient_scope", "lacks the crm scope"),
        ("NO_AUTH_FOUND", "no_auth_found", "crm.url"),
        ("invalid_token", "invalid_token", "crm.url"),
        ("expired_token", "expired_token", "new inbound webhook"),
    ],
)
async def test_a_refused_webhook_says_what_to_fix(portal, tmp_path, store, code, reason, fix):
    fake, server = portal
    fake.refuse("crm.", code)
    metrics = Metrics()
    crm = service(tmp_path, store, metrics, server.url, timeout=1.0)
    assert await crm.lookup(CLIENT) is None  # routed as an unknown caller, as before
    assert crm.problem is not None and fix in crm.problem
    assert crm.problems["lookup"].reason == reason
    assert problem_gauge(metrics, reason) == 1
    # Refused is not retried: it will not change by itself.
    assert len(server.requests) == 1

    fake.accept()
    assert await crm.lookup(CLIENT) is None
    await crm.close()
    assert crm.problem is None
    assert problem_gauge(metrics, reason) == 0


async def test_an_http_403_without_an_error_code_is_a_refusal_too(tmp_path, store):
    server = await FakeServer(lambda _seen: web.Response(status=403, text="Forbidden")).start()
    metrics = Metrics()
    try:
        crm = service(tmp_path, store, metrics, server.url, timeout=1.0)
        assert await crm.lookup(CLIENT) is None
        await crm.close()
    finally:
        await server.stop()
    assert crm.problem is not None and "HTTP 403" in crm.problem
    assert problem_gauge(metrics, "http_403") == 1
    assert failures(metrics, "refused") == 1
