"""Waiting for the config file to be saved, for hot reload.

The folder is watched, not the file: many editors save by renaming a new file over the
old one, which a watch on the old inode would never see. On Linux the kernel is asked
(inotify) only for what a save does to a name in that folder: a file written and closed,
renamed in or out, created or deleted. Not for plain writes: the default SQLite store
lives in the same folder and writes its open files on every commit, so a watch on every
write woke numcfg a few times a second under calls to find nothing of interest (issue 15:
watchfiles had its own thread, a thread hop and a task group per wake). Elsewhere
watchfiles does the job, with its default timeout: a cancelled watch waits for its thread
to come back, which without a timeout would be at the folder's next change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import watchfiles

try:
    import asyncinotify
except (ImportError, OSError, AttributeError):  # not Linux: no inotify in its libc
    asyncinotify = None

log = logging.getLogger("numcfg.config")

# A save is often several events (an editor's create, write and rename): one reload for
# the burst, once the file has been quiet this long.
SAVE_QUIET_SECONDS = 0.3
# The watchfiles fallback: how often its thread wakes to look for events and a stop (each
# wake takes the GIL; 50 ms, its default, cost an idle numcfg 1.1 ms of CPU a second).
WATCH_STEP_MS = 1000


def file_saves(path: Path) -> AsyncIterator[None]:
    """Yield once per save of `path` (a burst of events is one save); runs until the
    caller stops iterating or is cancelled."""
    folder = path.absolute().parent
    if asyncinotify is not None:
        return _inotify_saves(folder, path.name)
    return _watchfiles_saves(folder, path.name)


async def _inotify_saves(folder: Path, file_name: str) -> AsyncIterator[None]:
    assert asyncinotify is not None
    mask = asyncinotify.Mask
    saves = mask.CLOSE_WRITE | mask.MOVED_TO | mask.MOVED_FROM | mask.CREATE | mask.DELETE
    name = Path(file_name)
    with asyncinotify.Inotify() as inotify:
        inotify.add_watch(folder, saves | mask.ONLYDIR)
        while True:
            event = await inotify.get()
            if mask.IGNORED in event.mask:
                log.warning("config folder %s is gone: the file is no longer watched", folder)
                return
            if event.name != name:
                continue
            while True:  # the rest of the burst
                try:
                    async with asyncio.timeout(SAVE_QUIET_SECONDS):
                        while (await inotify.get()).name != name:
                            pass
                except TimeoutError:
                    break
            yield None


async def _watchfiles_saves(folder: Path, file_name: str) -> AsyncIterator[None]:
    # watchfiles logs every change set at INFO; the reloads numcfg logs say what matters.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    async for _changes in watchfiles.awatch(
        folder,
        recursive=False,
        watch_filter=lambda _change, changed: Path(changed).name == file_name,
        step=WATCH_STEP_MS,
    ):
        yield None
