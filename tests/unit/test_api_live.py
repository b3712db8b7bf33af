"""Live views: /metrics (standard series, build info, no `_created` series, queue gauges
while a caller waits) and calls in progress in /api/calls (the real App, fake ARI)."""

from __future__ import annotations

import asyncio

import aiohttp

from asterisk_bridge.metrics import Metrics
from tests.fakeari.engine import StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]


def test_standard_series_and_build_info_and_no_created_series() -> None:
    text = Metrics().render().decode()
    assert "process_cpu_seconds_total" in text and "python_info" in text
    assert 'numcfg_build_info{python="' in text
    assert "_created" not in text


async def test_queue_gauges_follow_a_waiting_caller(start_engine_app: StartEngine) -> None:
    engine = await start_engine_app()  # queue sales: anna, who has not started her day
    metrics = engine.app.metrics.registry
    caller = await engine.incoming()
    await engine.wait_for(
        lambda: metrics.get_sample_value("numcfg_queue_waiting", {"queue": "sales"}) == 1,
        5,
        "the caller to wait in the queue",
    )
    await engine.wait_for(
        lambda: metrics.get_sample_value("numcfg_queue_available", {"queue": "sales"}) == 0,
        5,
        "the queue's look at who is free",
    )
    await engine.hangup(caller)
    await engine.calls_done()
    assert metrics.get_sample_value("numcfg_queue_waiting", {"queue": "sales"}) == 0


async def test_a_call_in_progress_is_listed_with_ended_at_null(
    start_engine_app: StartEngine,
) -> None:
    engine = await start_engine_app()
    caller = await engine.incoming()
    await engine.wait_for(
        lambda: bool(engine.app.store.calls.in_progress(number="paris")), 5, "the open call"
    )
    base = f"http://{engine.app.config_holder.current.api.listen}/api/calls"
    headers = {"Authorization": "Bearer test-token"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{base}?active=true") as resp:
            (active,) = (await resp.json())["calls"]
        assert active["ended_at"] is None and active["number"] == "paris"
        await engine.hangup(caller)
        await engine.calls_done()
        async with http.get(f"{base}?active=true") as resp:
            assert (await resp.json())["calls"] == []
        async with http.get(base) as resp:
            (done,) = (await resp.json())["calls"]
        assert done["id"] == active["id"] and done["ended_at"] is not None
        async with http.get(f"{base}?active=maybe") as resp:
            assert resp.status == 400


async def test_the_task_gauge_counts_the_tasks_of_the_event_loop(
    start_engine_app: StartEngine,
) -> None:
    engine = await start_engine_app()
    metrics = engine.app.metrics.registry
    caller = await engine.incoming()
    await engine.wait_for(lambda: engine.app.services.active, 5, "the call's task")
    # Read in the loop, as /metrics is: the same count as asyncio's, the call's included.
    assert metrics.get_sample_value("numcfg_asyncio_tasks") == len(asyncio.all_tasks())
    assert set(engine.app.services.active.values()) <= asyncio.all_tasks()
    await engine.hangup(caller)
    await engine.calls_done()
