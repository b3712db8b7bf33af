"""Packaging fixtures: numcfg's wheel installed into a fresh venv outside the repo."""

from __future__ import annotations

import pytest

from tests.wheel import InstalledWheel, build_wheel, install_wheel


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    base = tmp_path_factory.mktemp("wheel")
    return install_wheel(build_wheel(base / "dist"), base / "venv")
