"""Configuration against the real rig: backup fallback and reloads (issue 3)."""

from __future__ import annotations

import aiohttp
import pytest
import yaml

from .conftest import install_dialplan, write_config
from .harness import Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_backup_number_rings_through_the_trunk_when_numcfg_is_down(
    harness: Harness, tmp_path
) -> None:
    harness.reset()
    install_dialplan(write_config(tmp_path))  # numcfg itself is not running
    leg = await harness.call("+33185000000")
    await harness.wait_for(
        lambda e: e.get("type") == "StasisStart" and e.get("args") == ["trunk", "+33600000001"],
        what="the backup number to ring through the trunk",
    )
    assert harness.trunk_reached == ["+33600000001"]
    await harness.hangup(leg)
    await harness.ended(leg)


async def test_backup_number_is_not_used_while_numcfg_runs(harness: Harness, numcfg) -> None:
    app = await numcfg()
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    await calls_done(app)
    assert harness.trunk_reached == []


async def test_broken_reload_keeps_previous_routing_for_the_next_call(
    harness: Harness, numcfg
) -> None:
    app = await numcfg()
    path = app.config_holder.path
    good = yaml.safe_load(path.read_text())

    broken = dict(good)
    broken["numbers"] = {"paris": {**good["numbers"]["paris"], "greting": "sound:beep"}}
    path.write_text(yaml.safe_dump(broken, sort_keys=False))
    assert app.reload() is False
    issues = [str(issue) for issue in app.config_holder.last_error or []]
    assert any("numbers.paris.greting" in issue for issue in issues), issues

    async with aiohttp.ClientSession() as http:
        async with http.get("http://127.0.0.1:18090/ready") as resp:
            body = await resp.json()
        assert body["config"]["reload_failed"] is True
        async with http.get("http://127.0.0.1:18090/metrics") as resp:
            assert "numcfg_config_reload_failed 1.0" in await resp.text()

    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")  # the last good greeting
    await harness.ended(leg)

    fixed = dict(good)
    fixed["numbers"] = {
        "paris": {**good["numbers"]["paris"], "routing": {"greeting": "sound:numcfg/fr/welcome"}}
    }
    path.write_text(yaml.safe_dump(fixed, sort_keys=False))
    assert app.reload() is True
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/fr/welcome")
    await harness.ended(leg)
    await calls_done(app)
