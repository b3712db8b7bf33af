"""/metrics (issue 14 polish): the standard process series, build info, no `_created`
series, and the queue gauges while a caller waits (the real App on the fake ARI)."""

from __future__ import annotations

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
    assert metrics.get_sample_value("numcfg_queue_available", {"queue": "sales"}) == 0
    await engine.hangup(caller)
    await engine.calls_done()
    assert metrics.get_sample_value("numcfg_queue_waiting", {"queue": "sales"}) == 0
