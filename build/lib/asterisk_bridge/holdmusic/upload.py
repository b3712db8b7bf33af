"""One hold-music upload, end to end: shared by the HTTP API and `numcfg hold-music`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..ari.errors import AriError
from ..config.schema import Config
from .files import HoldMusicError, stage_music
from .moh import moh_conf_path, reload_moh, upload_class, write_moh_conf
from .validate import HoldMusicRejected

if TYPE_CHECKING:
    from ..ari.client import AriClient
    from ..store import Store

log = logging.getLogger("numcfg.holdmusic")


@dataclass(frozen=True)
class UploadResult:
    number: str
    moh_class: str
    seconds: float
    path: Path  # the converted music.wav, as numcfg sees it
    moh_conf: Path | None  # numcfg-moh.conf written, or None when it could not be
    reloaded: bool  # Asterisk acknowledged the MOH reload
    # What still needs the operator, in words; empty when the music is live.
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "moh_class": self.moh_class,
            "seconds": round(self.seconds, 2),
            "moh_conf": str(self.moh_conf) if self.moh_conf else None,
            "asterisk_reloaded": self.reloaded,
            "warnings": self.warnings,
        }


def unknown_number(number_id: str) -> HoldMusicRejected:
    return HoldMusicRejected(404, "not_found", f"no number {number_id!r} in the configuration")


async def upload_hold_music(
    config: Config,
    store: Store,
    number_id: str,
    data: bytes,
    client: AriClient | None,
) -> UploadResult:
    """Validate, convert and install `data` as `number_id`'s hold music, then tell Asterisk.

    Raises HoldMusicRejected (the file or the number is refused; nothing changed) or
    HoldMusicError (server-side failure; nothing changed). Once the music is installed and
    recorded, failing to write numcfg-moh.conf or to reach Asterisk does not undo it: the
    result's warnings say what is left to do.
    """
    if number_id not in config.numbers:
        raise unknown_number(number_id)
    staged = await asyncio.to_thread(stage_music, config, number_id, data)
    try:
        # Store first, file second: the store is the step likelier to fail (a remote
        # PostgreSQL), and undoing it is one write; undoing a rename would need the old file.
        previous = await asyncio.to_thread(store.hold_music.upload_path, number_id)
        await asyncio.to_thread(store.hold_music.set_upload_path, number_id, str(staged.final))
        try:
            await asyncio.to_thread(staged.commit)
        except OSError as exc:
            await asyncio.to_thread(store.hold_music.set_upload_path, number_id, previous)
            raise HoldMusicError(f"cannot replace {staged.final}: {exc.strerror or exc}") from exc
    finally:
        staged.discard()  # a no-op once committed
    log.info("hold music for %s: %s (%.1f s)", number_id, staged.final, staged.seconds)

    warnings: list[str] = []
    conf: Path | None = None
    try:
        conf = await asyncio.to_thread(write_moh_conf, config)
    except OSError as exc:
        warnings.append(
            f"could not write {moh_conf_path(config)} ({exc.strerror or exc}): "
            "run `numcfg moh-conf -c FILE -o <musiconhold.conf folder>/numcfg-moh.conf` "
            "where it can be written, then reload music on hold"
        )
    reloaded = False
    if client is None:
        warnings.append("Asterisk was not asked to reload music on hold (no ARI client)")
    else:
        try:
            await reload_moh(client)
            reloaded = True
        except (AriError, TimeoutError) as exc:
            warnings.append(
                f"Asterisk did not reload music on hold ({exc}); "
                "it uses the new class after its next `module reload res_musiconhold.so`"
            )
    return UploadResult(
        number=number_id,
        moh_class=upload_class(number_id),
        seconds=staged.seconds,
        path=staged.final,
        moh_conf=conf,
        reloaded=reloaded,
        warnings=warnings,
    )
