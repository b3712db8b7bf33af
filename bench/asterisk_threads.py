"""Where Asterisk's CPU goes by thread, over a window of load (issue 15).

Asterisk names none of its threads, but two kinds tell apart by lifetime: the threads
that live through the window (the Stasis message bus's pool and taskprocessors, one
thread per ARI websocket session, an app's event router) and the ones that come and go
(a channel's own thread, an originate's dial thread). Run it beside a capacity step:

    .venv/bin/python bench/capacity.py --order numcfg --rates 40 --step-seconds 45 &
    .venv/bin/python bench/asterisk_threads.py --delay 25 --window 35

It prints the window's CPU seconds: in all, in threads alive throughout (each of the
busiest listed) and in the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import asterisk_pid, cpu_seconds, rig, thread_cpu_seconds  # noqa: E402


def thread_cpu(pid: int) -> dict[int, float]:
    """utime+stime of each live thread of `pid`, in seconds."""
    out: dict[int, float] = {}
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        with contextlib.suppress(FileNotFoundError):  # the thread ended meanwhile
            out[tid] = thread_cpu_seconds(pid, tid)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--top", type=int, default=8, help="threads listed")
    args = parser.parse_args()
    pid = asterisk_pid(Path(rig("root").strip()))
    time.sleep(args.delay)
    before, total_before = thread_cpu(pid), cpu_seconds(pid)
    time.sleep(args.window)
    after, total_after = thread_cpu(pid), cpu_seconds(pid)
    lived = {tid: after[tid] - before[tid] for tid in before if tid in after}
    total, throughout = total_after - total_before, sum(lived.values())
    print(
        f"Asterisk over {args.window:g} s: {total:.2f} s CPU; threads alive throughout "
        f"{throughout:.2f} s; threads that came or went {total - throughout:.2f} s"
    )
    for tid, used in sorted(lived.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  thread {tid}: {used:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
