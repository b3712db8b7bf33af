"""The running configuration and its reloads.

A reload builds a whole new Config and swaps one reference, so a call that already
holds the previous object keeps a consistent view until it ends. A reload that fails
validation changes nothing but last_error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError, ConfigIssue
from .loader import load_config, load_config_text
from .schema import Config
from .watch import file_saves

log = logging.getLogger("numcfg.config")
# A config loads in milliseconds; one that takes this long is hostile or broken.
RELOAD_DEADLINE_SECONDS = 10.0


class ConfigHolder:
    def __init__(self, path: str | Path, *, env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._env = env
        self.current: Config = load_config(self.path, env=env)  # first failure propagates
        self.last_error: list[ConfigIssue] | None = None
        self.generation: int = 0

    def reload(self) -> bool:
        """Load the file again; True if the new config replaced the current one."""
        try:
            config = load_config(self.path, env=self._env)
        except ConfigError as exc:
            return self._keep(exc.issues, "reload from the file")
        return self._swap(config, str(self.path))

    async def reload_async(self) -> bool:
        """reload(), with the parsing in a thread: the event loop (and every call on it)
        never waits for it. Past RELOAD_DEADLINE_SECONDS the attempt is abandoned and the
        current config kept (the loader's size and expansion caps bound the thread too)."""
        try:
            async with asyncio.timeout(RELOAD_DEADLINE_SECONDS):
                config = await asyncio.to_thread(load_config, self.path, env=self._env)
        except ConfigError as exc:
            return self._keep(exc.issues, "reload from the file")
        except TimeoutError:
            log.error(
                "config reload took over %.0fs; keeping generation %d",
                RELOAD_DEADLINE_SECONDS,
                self.generation,
            )
            return False
        except Exception as exc:  # a loader bug must not look like a silent success
            log.exception("config reload failed unexpectedly")
            issue = ConfigIssue(str(self.path), 1, 1, "", f"cannot load: {exc!r}")
            return self._keep([issue], "reload from the file")
        return self._swap(config, str(self.path))

    def _keep(self, issues: list[ConfigIssue], what: str) -> bool:
        self.last_error = issues
        log.error(
            "config %s failed, keeping generation %d: %d issue(s)",
            what,
            self.generation,
            len(issues),
        )
        for issue in issues:
            log.error("%s", issue)
        return False

    def _swap(self, config: Config, origin: str) -> bool:
        self.current = config
        self.last_error = None
        self.generation += 1
        log.info("config loaded from %s (generation %d)", origin, self.generation)
        return True

    def reload_text(self, text: str, origin: str) -> bool:
        """Load a config published as text (e.g. origin "store:v7"), as reload() does a file.

        Relative paths resolve beside the local file and ${VAR} from this node's
        environment, so a published config reads like the file it replaces.
        """
        try:
            config = load_config_text(
                text, filename=origin, env=self._env, base_dir=self.path.resolve().parent
            )
        except ConfigError as exc:
            return self._keep(exc.issues, f"from {origin}")
        config._source_path = self.path.resolve()
        return self._swap(config, origin)

    def check_text(self, text: str, origin: str) -> Config:
        """Validate `text` as this holder would load it (same environment, paths beside the
        file), without swapping it in: the console checks an edit before writing it.
        Raises ConfigError with every issue, as `numcfg check` reports them."""
        config = load_config_text(
            text, filename=origin, env=self._env, base_dir=self.path.resolve().parent
        )
        config._source_path = self.path.resolve()
        return config

    async def watch(self) -> None:
        """Reload whenever the file is saved (config/watch.py); runs until cancelled. A
        burst of writes is one save, so a save causes one reload, not one per write."""
        async for _save in file_saves(self.path):
            await self.reload_async()
