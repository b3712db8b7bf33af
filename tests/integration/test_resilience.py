"""Shutdown on the real Asterisk (issue 2): SIGTERM lets the call in progress finish.

The websocket cuts and the SIGKILL with calls up are in the fault suite (tests/faults)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from .conftest import install_dialplan, start_service, write_config
from .harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_sigterm_lets_the_call_in_progress_finish(harness: Harness, tmp_path) -> None:
    harness.reset()
    config = write_config(tmp_path)
    install_dialplan(config)
    proc = await start_service(config)
    try:
        leg = await harness.call("+33185000000")
        await harness.heard(leg, "sound:numcfg/en/welcome")
        proc.send_signal(signal.SIGTERM)
        finished = await harness.wait_for(
            lambda e: (
                e.get("type") == "PlaybackFinished"
                and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
            ),
            what="greeting to finish",
        )
        # The greeting played to its end: SIGTERM did not cut the call.
        assert finished["playback"]["state"] == "done"
        await harness.ended(leg)
        code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
