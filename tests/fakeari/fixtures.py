"""pytest fixtures around FakeAri. A test module loads them as a plugin:

    pytest_plugins = ["tests.fakeari.fixtures"]

(importing the fixture functions instead trips ruff's F811 on every test parameter).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asterisk_bridge.ari.client import AriClient

from .clients import APP, PASSWORD, USERNAME, make_client, websocket_attached
from .server import FakeAri


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    """A fresh fake per test: no routes, requests or sockets leak between tests."""
    fake = FakeAri(username=USERNAME, password=PASSWORD, app=APP)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def ari_client(fake_ari: FakeAri) -> AsyncIterator[AriClient]:
    """AriClient over HTTP only (no websocket attached)."""
    client = make_client(fake_ari)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(params=["http", "ws"])
async def rest_client(
    request: pytest.FixtureRequest, fake_ari: FakeAri
) -> AsyncIterator[AriClient]:
    """The same client behaviour over both REST transports: tests using it run twice."""
    client = make_client(fake_ari)
    try:
        if request.param == "ws":
            async with websocket_attached(client, fake_ari):
                yield client
        else:
            yield client
    finally:
        await client.close()
