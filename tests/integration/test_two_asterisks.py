"""Two Asterisk instances, each with its own `numcfg run`, on one PostgreSQL (issue 16).

Instance A is the rig (ARI on 8088), instance B its second instance from the same chroot
(`docker/rig up-b`: ARI on 8089, SIP on :5070). Both numcfg read one published config
(`numcfg apply`); what differs per node (ARI URL, API port, node name) comes from each
node's environment, as in a real deployment. Calls arrive on both Asterisks at once, and
every test leaves no channel or bridge on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.config import load_config, render_dialplan
from asterisk_bridge.policy.quota import quota_period
from asterisk_bridge.policy.types import TranscriptStatus
from asterisk_bridge.store import Store, open_store
from tests.fixtures_pg import fresh_database
from tests.pgserver import PostgresServer, PostgresUnavailable

from .conftest import ARI_PASSWORD, ARI_USER, BASE_CONFIG, REPO, RIG, deep_merge, install_dialplan
from .harness import TEST_APP, CallerLeg, Employee, Harness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

B_ARI = "http://127.0.0.1:8089/ari"
TOKEN = "test-token"
LEASE_S = 3.0  # jobs.lease: short, so a takeover is seconds away
OUTAGE_S = 30.0

STAFF = {"anna": "101", "boris": "102", "chloe": "103"}


def staff(members: dict[str, str]) -> dict[str, Any]:
    return {
        name: {"name": name, "extension": ext, "endpoint": f"Local/{ext}@numcfg-test-employees"}
        for name, ext in members.items()
    }


def queue_config(members: list[str], distribution: str = "in_order", **queue: Any) -> dict:
    return {
        "queues": {
            "sales": {
                "members": members,
                "distribution": distribution,
                "ring_time": 5,
                "max_wait": 25,
                "fallback": {"action": "hangup"},
                **queue,
            }
        },
        "numbers": {
            "paris": {"number": "+33185000000", "routing": {"greeting": None, "queue": "sales"}}
        },
    }


def rig_b(*args: str) -> str:
    """docker/rig on instance B."""
    env = {
        **os.environ,
        "NUMCFG_RIG_INSTANCE": "b",
        "NUMCFG_ARI_PASSWORD": ARI_PASSWORD,
        "NUMCFG_ARI_USER": ARI_USER,
    }
    result = subprocess.run(
        [str(RIG), *args], env=env, check=True, capture_output=True, text=True, timeout=600
    )
    return result.stdout


@dataclass
class Node:
    """One `numcfg run` process, its own folder, environment and API port."""

    name: str
    folder: Path
    ari_url: str
    port: int
    proc: asyncio.subprocess.Process | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "NUMCFG_ARI_URL": self.ari_url,
            "NUMCFG_API_LISTEN": f"127.0.0.1:{self.port}",
            "NUMCFG_NODE": self.name,
        }

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        log = (self.folder / "numcfg.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asterisk_bridge.cli",
            "run",
            "-c",
            str(self.folder / "numcfg.yaml"),
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while (await self.ready())[0] != 200:
            assert self.proc.returncode is None, f"numcfg {self.name} exited"
            assert time.monotonic() < deadline, f"numcfg {self.name} did not become ready"
            await asyncio.sleep(0.2)

    async def ready(self) -> tuple[int, dict[str, Any]]:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{self.api}/ready") as resp:
                return resp.status, await resp.json()
        except aiohttp.ClientError:
            return 0, {}

    async def calls(self) -> list[dict[str, Any]]:
        """The call details this node's API lists."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.api}/api/calls", headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["calls"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Pair:
    a: Harness
    b: Harness
    nodes: list[Node]
    store: Store
    server: PostgresServer
    db_url: str
    folder: Path
    versions: int = 0
    tasks: list[Any] = field(default_factory=list)

    @property
    def harnesses(self) -> tuple[Harness, Harness]:
        return self.a, self.b

    def config(self, override: dict[str, Any]) -> dict[str, Any]:
        shared = self.folder / "shared"
        common = {
            "node": "${NUMCFG_NODE}",
            "asterisk": {"ari_url": "${NUMCFG_ARI_URL}"},
            "api": {"listen": "${NUMCFG_API_LISTEN}", "token": TOKEN},
            "store": self.db_url,
            "jobs": {"lease": LEASE_S},
            # Recordings on a folder both nodes see (NFS in a real deployment): a job
            # taken over by another node finds its file.
            "storage": {"recordings": str(shared / "recordings"), "voicemail": str(shared)},
            "employees": staff(STAFF),
        }
        return deep_merge(deep_merge(BASE_CONFIG, common), override)

    async def publish(self, override: dict[str, Any]) -> list[float]:
        """`numcfg apply` the config once; seconds until each node runs it."""
        path = self.folder / "published.yaml"
        path.write_text(yaml.safe_dump(self.config(override), sort_keys=False))
        before = [(await node.ready())[1]["config"]["generation"] for node in self.nodes]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asterisk_bridge.cli",
            "apply",
            "-c",
            str(path),
            cwd=REPO,
            env={**os.environ, **self.nodes[0].env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        started = time.monotonic()  # published: apply commits just before it exits
        assert proc.returncode == 0, output.decode()
        self.versions += 1
        reached: list[float] = []
        for node, generation in zip(self.nodes, before, strict=True):
            while (await node.ready())[1]["config"]["generation"] <= generation:
                assert time.monotonic() - started < 10, f"{node.name} never ran the config"
                await asyncio.sleep(0.05)
            reached.append(time.monotonic() - started)
        return reached

    def employees(self, **behaviour: Employee) -> None:
        for harness in self.harnesses:
            harness.employees.clear()
            for ext, employee in behaviour.items():
                harness.employees[ext] = dataclasses.replace(employee)  # one each

    async def working(self, *names: str) -> None:
        for name in names:
            await asyncio.to_thread(self.store.people.set_workday, name, "working")

    async def stored_calls(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in await asyncio.to_thread(self.store.calls.recent)]


async def both_call(pair: Pair, caller_a: str, caller_b: str) -> tuple[CallerLeg, CallerLeg]:
    """A call on each Asterisk at the same moment."""
    leg_a, leg_b = await asyncio.gather(
        pair.a.call("+33185000000", caller=caller_a), pair.b.call("+33185000000", caller=caller_b)
    )
    return leg_a, leg_b


async def all_ended(pair: Pair, legs: list[tuple[Harness, CallerLeg]], timeout: float = 40) -> None:
    await asyncio.gather(*(harness.ended(leg, timeout=timeout) for harness, leg in legs))


async def stored(pair: Pair, callers: list[str], timeout: float = 20) -> list[dict[str, Any]]:
    """The store's call details of `callers`' calls, once it holds every one (a record
    lands just after its caller is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            calls = [c for c in await pair.stored_calls() if c["caller"] in callers]
            if len(calls) >= len(callers):
                return calls
        assert time.monotonic() < deadline, f"the store never held the calls of {callers}"
        await asyncio.sleep(0.2)


def employee_intervals(harness: Harness, ext: str) -> list[tuple[float, float]]:
    """When `ext` was rung until its channel was gone, on this harness's Asterisk."""
    started = {
        e["channel"]["id"]: e["_t"]
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args") == ["employee", ext]
    }
    gone = {
        e["channel"]["id"]: e["_t"]
        for e in harness.events
        if e.get("type") == "ChannelDestroyed" and e["channel"]["id"] in started
    }
    return [(start, gone[channel]) for channel, start in started.items()]


# -- the rig: instance B, PostgreSQL, two nodes ----------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(
    harness: Harness, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    await asyncio.to_thread(rig_b, "up-b")
    session = aiohttp.ClientSession()
    client = AriClient(base_url=B_ARI, username=ARI_USER, password=ARI_PASSWORD, app=TEST_APP)
    harness_b = Harness(
        client=client,
        session=session,
        ws_url=f"ws://127.0.0.1:8089/ari/events?app={TEST_APP}&subscribeAll=true",
    )
    await harness_b.start()
    folder = tmp_path_factory.mktemp("two-asterisks")
    (folder / "shared" / "recordings").mkdir(parents=True)
    databases = contextlib.ExitStack()
    db_url = databases.enter_context(fresh_database(postgres.url))
    store = open_store(db_url)
    nodes = [
        Node("node-a", folder / "a", "http://127.0.0.1:8088/ari", 18190),
        Node("node-b", folder / "b", B_ARI, 18191),
    ]
    pair = Pair(
        a=harness,
        b=harness_b,
        nodes=nodes,
        store=store,
        server=postgres,
        db_url=db_url,
        folder=folder,
    )
    first = yaml.safe_dump(pair.config(queue_config(["anna"])), sort_keys=False)
    # The same numcfg contexts on both Asterisks: one app name, one config.
    rendered = folder / "first.yaml"
    rendered.write_text(first)
    env = {**os.environ, **nodes[0].env}
    await asyncio.to_thread(install_dialplan, rendered, env)
    dialplan = folder / "dialplan-b.conf"
    dialplan.write_text(render_dialplan(load_config(rendered, env=env)))
    await asyncio.to_thread(rig_b, "dialplan", str(dialplan))
    for node in nodes:
        node.folder.mkdir()
        (node.folder / "numcfg.yaml").write_text(first)
        (node.folder / "numcfg.yaml").chmod(0o600)
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield pair
    finally:
        for node in nodes:
            await node.stop()
        store.close()
        databases.close()
        await harness_b.assert_clean()
        await harness_b.stop()
        await client.close()
        await session.close()
        await asyncio.to_thread(rig_b, "down-b")


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _clean_pair(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Both Asterisks start and end each test with no channel or bridge; the store starts
    with no call."""
    if "pair" not in request.fixturenames:
        yield
        return
    pair: Pair = request.getfixturevalue("pair")
    for harness in pair.harnesses:
        harness.reset()
    yield
    await asyncio.gather(*(harness.assert_clean() for harness in pair.harnesses))


# -- consistency across nodes ----------------------------------------------------------------


async def test_a_config_applied_once_reaches_both_nodes_within_2_s(pair: Pair) -> None:
    # The nodes started on a config without a greeting (straight to the queue); this one
    # greets and hangs up.
    reached = await pair.publish(
        {"numbers": {"paris": {"routing": {"greeting": "sound:numcfg/en/welcome"}}}}
    )
    assert max(reached) < 2.0, reached
    # Both nodes run it: a caller on either Asterisk hears the newly published greeting.
    leg_a, leg_b = await both_call(pair, "+33611000101", "+33611000102")
    await pair.a.heard(leg_a, "sound:numcfg/en/welcome")
    await pair.b.heard(leg_b, "sound:numcfg/en/welcome")
    await all_ended(pair, [(pair.a, leg_a), (pair.b, leg_b)])


async def test_an_employee_shared_by_both_nodes_is_never_rung_by_both_at_once(
    pair: Pair,
) -> None:
    await pair.publish(queue_config(["anna"]))
    await pair.working("anna")
    pair.employees(**{"101": Employee("answer", answer_after=1.0, hangup_after=2.0)})
    legs: list[tuple[Harness, CallerLeg]] = []
    callers: list[str] = []
    for round_ in range(2):
        callers += [f"+3361100020{round_}", f"+3361100030{round_}"]
        leg_a, leg_b = await both_call(pair, callers[-2], callers[-1])
        legs += [(pair.a, leg_a), (pair.b, leg_b)]
        await all_ended(pair, legs[-2:])
    rings = sorted(employee_intervals(pair.a, "101") + employee_intervals(pair.b, "101"))
    assert len(employee_intervals(pair.a, "101")) >= 2
    assert len(employee_intervals(pair.b, "101")) >= 2
    for (_, ended), (started, _) in itertools.pairwise(rings):
        assert started >= ended, f"anna rung on both Asterisks at once: {rings}"
    calls = await stored(pair, callers)
    assert {c["disposition"] for c in calls} == {"answered"}
    assert {c["employee"] for c in calls} == {"anna"}


async def test_a_monthly_quota_of_3_gives_exactly_3_recordings_across_nodes(pair: Pair) -> None:
    six = {f"e{i}": f"20{i}" for i in range(1, 7)}
    config = queue_config(list(six))
    config["employees"] = staff(six)
    config["account"] = {"plan": "free"}  # 100 recordings a month
    config["numbers"]["paris"]["recording"] = {"record_all": True, "warning": False}
    await pair.publish(config)
    await pair.working(*six)
    pair.employees(
        **{ext: Employee("answer", answer_after=0.2, hangup_after=2.0) for ext in six.values()}
    )
    period = quota_period(datetime.now(UTC), "Europe/Paris")
    used = await asyncio.to_thread(pair.store.quota.used, period)
    for _ in range(97 - used):  # 3 left this month
        assert await asyncio.to_thread(pair.store.quota.try_consume, period, limit=100)
    legs: list[tuple[Harness, CallerLeg]] = []
    callers: list[str] = []
    for i in range(3):
        callers += [f"+3361100040{i}", f"+3361100050{i}"]
        leg_a, leg_b = await both_call(pair, callers[-2], callers[-1])
        legs += [(pair.a, leg_a), (pair.b, leg_b)]
    await all_ended(pair, legs)
    calls = await stored(pair, callers)
    assert {c["disposition"] for c in calls} == {"answered"}
    assert len([c for c in calls if c["recording"]]) == 3
    assert [c["recording_skipped"] for c in calls].count("quota") == 3
    assert await asyncio.to_thread(pair.store.quota.used, period) == 100


async def test_evenly_rotates_across_nodes_and_each_api_lists_every_nodes_calls(
    pair: Pair,
) -> None:
    await pair.publish(queue_config(list(STAFF), "evenly"))
    await pair.working(*STAFF)
    pair.employees(
        **{ext: Employee("answer", answer_after=0.3, hangup_after=1.0) for ext in STAFF.values()}
    )
    callers_a: list[str] = []
    callers_b: list[str] = []
    for i in range(3):
        callers_a.append(f"+3361100060{i}")
        callers_b.append(f"+3361100070{i}")
        leg_a, leg_b = await both_call(pair, callers_a[-1], callers_b[-1])
        await all_ended(pair, [(pair.a, leg_a), (pair.b, leg_b)])
    calls = await stored(pair, callers_a + callers_b)
    answered = sorted(c["employee"] for c in calls)
    # Six calls, three members, one rotation shared by both nodes: two each.
    assert answered == ["anna", "anna", "boris", "boris", "chloe", "chloe"]
    for node in pair.nodes:
        listed = {c["caller"] for c in await node.calls()}
        assert set(callers_a + callers_b) <= listed, node.name


# -- the shared store away for 30 s -----------------------------------------------------------


async def test_calls_flow_while_the_store_is_away_30_s_and_none_is_lost(pair: Pair) -> None:
    await pair.publish(queue_config(["anna", "boris"]))
    await pair.working("anna", "boris")
    pair.employees(
        **{ext: Employee("answer", answer_after=0.3, hangup_after=1.0) for ext in ("101", "102")}
    )
    # Calls before the outage: each node knows the workdays and the config.
    leg_a, leg_b = await both_call(pair, "+33611000800", "+33611000900")
    await all_ended(pair, [(pair.a, leg_a), (pair.b, leg_b)])
    await stored(pair, ["+33611000800", "+33611000900"])
    await asyncio.to_thread(pair.server.stop)
    stopped = time.monotonic()
    try:
        for node in pair.nodes:
            deadline = time.monotonic() + 15
            while True:
                status, body = await node.ready()
                if status == 503 and body["status"] == "degraded":
                    assert "store unreachable" in body["reasons"]
                    break
                assert time.monotonic() < deadline, f"{node.name} /ready: {status} {body}"
                await asyncio.sleep(0.2)
        callers: list[str] = []
        for i in range(1, 3):
            callers += [f"+3361100080{i}", f"+3361100090{i}"]
            leg_a, leg_b = await both_call(pair, callers[-2], callers[-1])
            # On the last config and the workdays each node knew: answered, not the backup.
            await asyncio.gather(
                pair.a.bridged(leg_a, timeout=20), pair.b.bridged(leg_b, timeout=20)
            )
            await all_ended(pair, [(pair.a, leg_a), (pair.b, leg_b)])
        assert pair.a.trunk_reached == pair.b.trunk_reached == []
        assert time.monotonic() - stopped < OUTAGE_S, "the calls outlasted the outage"
        await asyncio.sleep(OUTAGE_S - (time.monotonic() - stopped))
    finally:
        await asyncio.to_thread(pair.server.start)
    # The spooled details are written once the store answers (the journal retries every 5 s).
    calls = await stored(pair, callers, timeout=30)
    assert sorted(c["caller"] for c in calls) == sorted(callers)  # each once, none lost
    assert {c["disposition"] for c in calls} == {"answered"}
    for node in pair.nodes:
        deadline = time.monotonic() + 30
        while (await node.ready())[0] != 200:
            assert time.monotonic() < deadline, f"{node.name} stayed degraded"
            await asyncio.sleep(0.2)


# -- jobs with leases ------------------------------------------------------------------------


@dataclass
class SttStub:
    """An OpenAI-compatible transcription server: its first request never gets an answer
    (the node that sent it is killed meanwhile), later ones get TEXT."""

    TEXT = "taken over by the other node"
    requests: int = 0
    first: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        if self.requests == 1:
            self.first.set()
            await self.release.wait()
        return web.json_response({"text": self.TEXT})


@pytest_asyncio.fixture(loop_scope="session")
async def stt() -> AsyncIterator[tuple[SttStub, str]]:
    stub = SttStub()
    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", stub.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield stub, f"http://127.0.0.1:{port}/v1"
    finally:
        stub.release.set()
        await runner.cleanup()


async def test_a_transcription_taken_by_a_killed_node_is_done_once_by_the_other(
    pair: Pair, stt: tuple[SttStub, str]
) -> None:
    stub, url = stt
    config = queue_config(["anna"])
    config["numbers"]["paris"]["recording"] = {
        "record_all": True,
        "warning": False,
        "transcribe": True,
    }
    config["transcription"] = {"backend": "openai", "url": url, "timeout": 120, "attempts": 3}
    await pair.publish(config)
    await pair.working("anna")
    pair.employees(**{"101": Employee("answer", answer_after=0.2, hangup_after=2.0)})
    leg = await pair.a.call("+33185000000", caller="+33611001000")
    await pair.a.ended(leg, timeout=30)
    await asyncio.wait_for(stub.first.wait(), 30)  # a node took the job and is working it
    [call] = await stored(pair, ["+33611001000"])
    job = await asyncio.to_thread(pair.store.transcripts.get, call["id"])
    assert job is not None and job.status is TranscriptStatus.IN_PROGRESS
    holder = next(node for node in pair.nodes if node.name == job.node)
    other = next(node for node in pair.nodes if node is not holder)
    killed_at = time.monotonic()
    holder.kill()  # kill -9 while it holds the job
    assert holder.proc is not None
    await holder.proc.wait()
    try:
        deadline = time.monotonic() + 30
        while True:
            job = await asyncio.to_thread(pair.store.transcripts.get, call["id"])
            assert job is not None
            if job.status is not TranscriptStatus.IN_PROGRESS or job.node != holder.name:
                break
            assert time.monotonic() < deadline, "the job was never taken over"
            await asyncio.sleep(0.1)
        # Not before the lease the killed node last renewed had run out.
        assert time.monotonic() - killed_at > LEASE_S * 2 / 3 - 0.5
        deadline = time.monotonic() + 30
        while job.status is not TranscriptStatus.DONE:
            assert time.monotonic() < deadline, f"the job stayed {job.status}"
            await asyncio.sleep(0.1)
            job = await asyncio.to_thread(pair.store.transcripts.get, call["id"])
            assert job is not None
        assert stub.requests == 2  # the killed node's try, then the other's: once each
        assert job.attempts_made == 0 and job.last_error is None
        details = [c for c in await other.calls() if c["id"] == call["id"]]
        assert details[0]["transcript"] == SttStub.TEXT
        assert details[0]["transcript_status"] == "done"
    finally:
        stub.release.set()
        await holder.start()  # as systemd's Restart= would
