"""The recordings of calls a killed run left behind (issue 17: nothing is lost, nothing is
left in Asterisk's spool).

A numcfg killed mid-conversation leaves its recordings running in Asterisk. At the next
start the interrupted calls are closed from the store, and reconciliation hangs up their
channels; Asterisk then stores what was recorded. This takes numcfg's private copy of
each, removes the spool's, and notes the recording in the call's details."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

from ...ari.client import AriClient
from ...ari.errors import AriError
from ...config.schema import Config
from ...store import STORE_FAULTS, Store
from .audio import keep_recording

log = logging.getLogger("numcfg.calls")

# Reconciliation hangs up the channels a second after connecting; their recordings are
# stored when the bridges go. Past this, what is still live is left to Asterisk.
ADOPT_SECONDS = 30.0
POLL_SECONDS = 1.0


async def adopt_recordings(
    client: AriClient, store: Store, config: Config, call_ids: list[str]
) -> None:
    """Fetch `numcfg-rec-<id>` and `numcfg-vm-<id>` of each call in `call_ids` once
    Asterisk has stored them (ARI must be connected)."""
    pending = {f"numcfg-rec-{cid}": cid for cid in call_ids}
    pending |= {f"numcfg-vm-{cid}": cid for cid in call_ids}
    deadline = time.monotonic() + ADOPT_SECONDS
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        for name, call_id in list(pending.items()):
            try:
                if await client.live_recording(name) is not None:
                    continue  # its channels are being hung up: stored soon
                stored = await client.stored_recording_exists(name)
            except AriError:
                continue  # Asterisk is busy or away: asked again at the next poll
            del pending[name]
            if stored:
                await _adopt(client, store, config, name, call_id)
    if pending:
        log.warning("recordings of interrupted calls still live: %s", sorted(pending))


async def _adopt(client: AriClient, store: Store, config: Config, name: str, call_id: str) -> None:
    voicemail = name.startswith("numcfg-vm-")
    folder = Path(config.storage.voicemail if voicemail else config.storage.recordings)
    target = folder / f"{call_id}.wav"
    seconds = await keep_recording(client, name, target)
    if seconds is None:
        return
    log.info("call %s: %s of the interrupted call kept in %s", call_id, name, target)
    if voicemail:
        return  # a voicemail is its file (storage.voicemail/<call-id>.wav)
    try:
        details = await asyncio.to_thread(store.calls.get, call_id)
        if details is not None and details.recording is None:
            recording = {"file": target.name, "seconds": seconds}
            await asyncio.to_thread(
                store.calls.save, dataclasses.replace(details, recording=recording)
            )
    except STORE_FAULTS as exc:  # the file is kept; only the details lack its name
        log.warning("call %s: recording kept, details not updated: %s", call_id, exc)
