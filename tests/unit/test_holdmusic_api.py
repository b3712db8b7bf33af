"""POST /api/numbers/{id}/hold-music against a real Store (SQLite) and a real Config."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from asterisk_bridge import holdmusic
from asterisk_bridge.api import routes_holdmusic
from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.errors import AriUnavailable
from asterisk_bridge.config import Config
from asterisk_bridge.store import Store, open_store
from tests.unit.test_holdmusic_support import (
    CLOSED_ARI_URL,
    load,
    make_fixtures,
    needs_ffmpeg,
    write_config,
)

pytestmark = needs_ffmpeg

URL = "/api/numbers/{}/hold-music"


class FakeAri:
    """Records ARI requests; answers like Asterisk (204: None) unless told to fail."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.fail = False

    async def request(self, method: str, path: str, **_kwargs: Any) -> Any:
        self.requests.append((method, path))
        if self.fail:
            raise AriUnavailable(0, "connection refused", method=method, path=path)
        return None

    # The real client's method, so the path it sends is the one these tests check.
    reload_module = AriClient.reload_module


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_fixtures(tmp_path_factory.mktemp("mp3"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    numbers = {"paris": {"number": "+33185000000"}, "lyon": {"number": "+33472000000"}}
    storage = {"hold_music": "moh", "moh_conf": "etc/numcfg-moh.conf"}
    return load(write_config(tmp_path, numbers=numbers, storage=storage))


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    store = open_store(config.store)
    yield store
    store.close()


@pytest.fixture
def ari() -> FakeAri:
    return FakeAri()


async def serve(config: Config, store: Store, client: Any) -> TestClient:
    app_state = SimpleNamespace(
        config_holder=SimpleNamespace(current=config),
        services=SimpleNamespace(store=store, client=client),
    )
    api = web.Application()
    routes_holdmusic.add_routes(api, app_state)
    return TestClient(TestServer(api))


@pytest.fixture
async def http(config: Config, store: Store, ari: FakeAri) -> AsyncIterator[TestClient]:
    async with await serve(config, store, ari) as client:
        yield client


def text_of(path: Path) -> str:
    return path.read_text()


def form(path: Path, field: str = "file") -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field(field, path.read_bytes(), filename=path.name, content_type="audio/mpeg")
    return data


async def post(http: TestClient, number: str, path: Path, field: str = "file") -> tuple[int, Any]:
    resp = await http.post(URL.format(number), data=form(path, field))
    return resp.status, await resp.json()


async def test_a_mono_mp3_becomes_the_numbers_hold_music(
    http: TestClient, config: Config, store: Store, ari: FakeAri, mp3: dict[str, Path]
) -> None:
    status, body = await post(http, "paris", mp3["mono"])
    assert status == 200, body
    assert body["number"] == "paris"
    assert body["moh_class"] == "numcfg-upload-paris"
    assert body["seconds"] == pytest.approx(2.0, abs=0.1)
    assert body["asterisk_reloaded"] is True and body["warnings"] == []

    music = Path(config.storage.hold_music) / "paris" / "music.wav"
    with wave.open(str(music)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
    assert store.hold_music.upload_path("paris") == str(music)
    assert holdmusic.moh_class_for(config, "paris", uploaded=True) == body["moh_class"]
    conf = Path(config.storage.moh_conf or "")
    assert body["moh_conf"] == str(conf)
    assert "[numcfg-upload-paris]" in text_of(conf)
    assert ari.requests == [("PUT", "/asterisk/modules/res_musiconhold.so")]


@pytest.mark.parametrize(
    ("kind", "status", "code", "message"),
    [
        ("stereo", 422, "not_mono", "stereo MP3: upload a mono file"),
        ("joint_stereo", 422, "not_mono", "stereo MP3: upload a mono file"),
        ("wav", 415, "not_mp3", "not an MP3 file"),
        ("too_big", 413, "too_large", "2.3 MB is over the 2 MB limit"),
    ],
)
async def test_a_bad_file_is_refused_and_the_previous_music_stays(
    http: TestClient,
    config: Config,
    store: Store,
    ari: FakeAri,
    mp3: dict[str, Path],
    kind: str,
    status: int,
    code: str,
    message: str,
) -> None:
    assert (await post(http, "paris", mp3["mono"]))[0] == 200
    music = Path(config.storage.hold_music) / "paris" / "music.wav"
    before = music.read_bytes()
    ari.requests.clear()

    got_status, body = await post(http, "paris", mp3[kind])
    assert got_status == status
    assert body == {"error": {"code": code, "message": message}}
    assert music.read_bytes() == before
    assert sorted(p.name for p in music.parent.iterdir()) == ["music.wav"]
    assert ari.requests == []  # nothing to reload: nothing changed


async def test_a_refused_first_upload_records_nothing(
    http: TestClient, config: Config, store: Store, mp3: dict[str, Path]
) -> None:
    status, _body = await post(http, "lyon", mp3["stereo"])
    assert status == 422
    assert store.hold_music.upload_path("lyon") is None
    assert holdmusic.moh_class_for(config, "lyon", uploaded=False) == "numcfg-en"
    assert not (Path(config.storage.hold_music) / "lyon" / "music.wav").exists()


async def test_unknown_number_is_404(http: TestClient, mp3: dict[str, Path]) -> None:
    status, body = await post(http, "tokyo", mp3["mono"])
    assert status == 404
    assert body["error"]["code"] == "not_found" and "tokyo" in body["error"]["message"]


async def test_the_mp3_must_be_in_the_file_field(http: TestClient, mp3: dict[str, Path]) -> None:
    status, body = await post(http, "paris", mp3["mono"], field="music")
    assert status == 400 and "'file'" in body["error"]["message"]
    resp = await http.post(URL.format("paris"), data=mp3["mono"].read_bytes())
    assert resp.status == 400


async def test_asterisk_unreachable_still_installs_and_says_so(
    http: TestClient, store: Store, ari: FakeAri, mp3: dict[str, Path]
) -> None:
    ari.fail = True
    status, body = await post(http, "paris", mp3["mono"])
    assert status == 200
    assert body["asterisk_reloaded"] is False
    assert any("did not reload" in warning for warning in body["warnings"])
    assert store.hold_music.upload_path("paris") is not None


async def test_with_a_real_ari_client_on_a_closed_port(
    config: Config, store: Store, mp3: dict[str, Path]
) -> None:
    client = AriClient(base_url=CLOSED_ARI_URL, username="u", password="p", app="numcfg")
    try:
        async with await serve(config, store, client) as http:
            status, body = await post(http, "paris", mp3["mono"])
    finally:
        await client.close()
    assert status == 200 and body["asterisk_reloaded"] is False


async def test_an_unwritable_moh_conf_is_a_warning_not_a_failure(
    tmp_path: Path, store: Store, ari: FakeAri, mp3: dict[str, Path]
) -> None:
    # A regular file where the folder should be: unwritable even for root.
    (tmp_path / "not-a-folder").write_text("")
    storage = {"hold_music": "moh", "moh_conf": "not-a-folder/numcfg-moh.conf"}
    config = load(write_config(tmp_path, storage=storage))
    async with await serve(config, store, ari) as http:
        status, body = await post(http, "paris", mp3["mono"])
    assert status == 200
    assert body["moh_conf"] is None
    assert any("numcfg moh-conf" in warning for warning in body["warnings"])
    assert ari.requests  # the reload is still asked for: a replaced file needs no new class


async def test_a_store_failure_changes_no_file(
    http: TestClient, config: Config, store: Store, mp3: dict[str, Path], monkeypatch: Any
) -> None:
    assert (await post(http, "paris", mp3["mono"]))[0] == 200
    music = Path(config.storage.hold_music) / "paris" / "music.wav"
    before = music.read_bytes()

    def broken(*_args: Any) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store.hold_music, "set_upload_path", broken)
    resp = await http.post(URL.format("paris"), data=form(mp3["mono_other"]))
    assert resp.status == 500
    assert music.read_bytes() == before
    assert sorted(p.name for p in music.parent.iterdir()) == ["music.wav"]
