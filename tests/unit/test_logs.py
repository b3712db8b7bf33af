"""Repeated warnings are collapsed with a count (issue 17: a run of websocket cuts wrote
74,000 warning lines)."""

from __future__ import annotations

import asyncio
import json
import logging

from asterisk_bridge.logs import (
    BATCH_SECONDS,
    BatchedStreamHandler,
    CallField,
    JsonFormatter,
    RepeatCollapser,
    current_call,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("numcfg.ari", level, __file__, 1, msg, args, None)


def test_a_burst_of_one_warning_is_one_line_then_one_line_with_the_count() -> None:
    clock = Clock()
    collapse = RepeatCollapser(window=30, clock=clock)
    passed = [collapse.filter(record("connection failed: %s", "refused")) for _ in range(1000)]
    assert passed.count(True) == 1
    clock.now = 31
    again = record("connection failed: %s", "refused")
    assert collapse.filter(again)
    assert again.getMessage() == "connection failed: refused (999 more like this before)"


def test_different_messages_and_info_records_are_never_collapsed() -> None:
    collapse = RepeatCollapser(window=30, clock=Clock())
    assert collapse.filter(record("call %s: recording failed", "a"))
    assert collapse.filter(record("call %s: recording failed", "b"))
    assert all(collapse.filter(record("call reconnected", level=logging.INFO)) for _ in range(5))


def test_json_lines_carry_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("call %s: recording failed", "c1"))
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "numcfg.ari"
    assert entry["message"] == "call c1: recording failed"
    assert entry["time"].endswith("+00:00")


async def test_records_made_in_a_call_task_carry_its_id_as_a_field() -> None:
    """Issue 17: the call id as a field, also in the tasks the call starts."""
    field, formatter = CallField(), JsonFormatter()

    async def a_call(call_id: str) -> list[dict[str, object]]:
        current_call.set(call_id)

        def logged(msg: str) -> logging.LogRecord:
            made = record(msg)
            field.filter(made)  # as a handler does, in the task that logs
            return made

        async def child() -> logging.LogRecord:
            await asyncio.sleep(0)  # the other call's task runs in between
            return logged("recording failed")

        made = [logged("greeting"), await asyncio.create_task(child())]
        return [json.loads(formatter.format(r)) for r in made]

    first, second = await asyncio.gather(a_call("c1"), a_call("c2"))
    assert [e["call_id"] for e in first] == ["c1", "c1"]
    assert [e["call_id"] for e in second] == ["c2", "c2"]
    outside = record("ARI connected")
    field.filter(outside)
    assert "call_id" not in json.loads(formatter.format(outside))


class CountingStream:
    """A stream that keeps each write apart (one write is one syscall on a real file)."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def batched(stream: CountingStream) -> logging.Handler:
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return handler


async def test_records_of_the_loop_close_together_go_out_in_one_write_in_order() -> None:
    stream = CountingStream()
    handler = batched(stream)
    handler.handle(record("call a: started", level=logging.INFO))
    handler.handle(record("call a: greeting", level=logging.INFO))
    assert stream.writes == []  # waiting for others
    await asyncio.sleep(BATCH_SECONDS * 2)
    assert stream.writes == ["INFO call a: started\nINFO call a: greeting\n"]


async def test_a_warning_goes_out_at_once_after_what_waits_before_it() -> None:
    stream = CountingStream()
    handler = batched(stream)
    handler.handle(record("call a: started", level=logging.INFO))
    handler.handle(record("store not writable"))
    assert stream.writes == ["INFO call a: started\nWARNING store not writable\n"]
    await asyncio.sleep(0.1)  # the timer finds nothing left: no empty or double write
    assert len(stream.writes) == 1


def test_without_a_running_loop_and_at_flush_nothing_waits() -> None:
    stream = CountingStream()
    handler = batched(stream)
    handler.handle(record("numcfg starting", level=logging.INFO))
    assert stream.writes == ["INFO numcfg starting\n"]


async def test_a_record_from_another_thread_is_written_by_that_thread() -> None:
    stream = CountingStream()
    handler = batched(stream)
    handler.handle(record("call a: started", level=logging.INFO))
    await asyncio.to_thread(handler.handle, record("store call done", level=logging.INFO))
    assert stream.writes == ["INFO call a: started\nINFO store call done\n"]
    handler.flush()
    assert len(stream.writes) == 1
