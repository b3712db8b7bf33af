"""Figures of a capacity run (bench/capacity.json): CPU per call and latency against the
offered load, both variants. No rig needed: it only reads the JSON.

    .venv/bin/python bench/plot.py [--input bench/capacity.json] [--out-dir bench]

writes capacity.png (CPU per call) and latency.png (time to first media, digit to
ringing). Needs the `bench` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on the rig's machine or in CI

import matplotlib.pyplot as plt
from matplotlib.ticker import ScalarFormatter

REPO = Path(__file__).resolve().parents[1]
COLORS = {"dialplan": "tab:blue", "numcfg": "tab:orange"}


def series(steps: list[dict[str, Any]], variant: str, key: str) -> tuple[list[float], list[float]]:
    """(rates, values) of one variant's passing-or-not steps that measured `key`."""
    pts = [(s["rate"], s[key]) for s in steps if s["variant"] == variant and s[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def caption(data: dict[str, Any]) -> str:
    m = data["machine"]
    return (
        f"{data['when'][:10]}, {m['nproc']} vCPU {m['cpu']} ({m['hypervisor'] or 'bare'}), "
        f"Python {m['python']}, {m['asterisk'].split(' built')[0]}; "
        f"steps of {data['settings']['step_seconds']:g} s, calls ~5.2 s"
    )


def mark_capacity(ax: Any, data: dict[str, Any]) -> None:
    for variant, color in COLORS.items():
        cap = data["summary"][variant]["capacity_calls_per_s"]
        if cap:
            ax.axvline(cap, color=color, linestyle=":", linewidth=1)


def cpu_figure(data: dict[str, Any], out: Path) -> None:
    steps = data["steps"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for variant, color in COLORS.items():
        rates, ast = series(steps, variant, "asterisk_ms_per_call")
        ax.plot(rates, ast, "o-", color=color, label=f"{variant}: Asterisk")
        if variant == "numcfg":
            _, num = series(steps, variant, "numcfg_ms_per_call")
            ax.plot(rates, num, "s--", color=color, label="numcfg: numcfg process")
            ax.plot(
                rates,
                [a + n for a, n in zip(ast, num, strict=True)],
                "^-",
                color="tab:red",
                label="numcfg: Asterisk + numcfg",
            )
    mark_capacity(ax, data)
    ax.set_xlabel("offered load (calls/s; x 5.2 = calls up at once)")
    ax.set_ylabel("CPU ms per call (idle subtracted)")
    ax.set_ylim(bottom=0)
    ax.set_title("CPU per call against offered load (dotted: capacity)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, caption(data), fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def latency_figure(data: dict[str, Any], out: Path) -> None:
    steps = data["steps"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    panels = (
        ("first_media", "time to first media (ms, log)"),
        ("digit_to_ring", "digit to employee ringing (ms, log)"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for variant, color in COLORS.items():
            for pct, style in (("p50", "o-"), ("p99", "^--")):
                rates, values = series(steps, variant, f"{key}_{pct}_ms")
                # A 0 ms p50 (same millisecond) cannot sit on a log axis: draw it at 0.5.
                ax.plot(
                    rates,
                    [max(v, 0.5) for v in values],
                    style,
                    color=color,
                    label=f"{variant} {pct}",
                )
        if key == "first_media":
            ax.axhline(20, color="grey", linestyle="-.", linewidth=1, label="target p99 20 ms")
        mark_capacity(ax, data)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 20, not 2 x 10^1
        ax.set_xlabel("offered load (calls/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best", framealpha=0.7)
    fig.suptitle("Latency against offered load, from Asterisk's event timestamps")
    fig.text(0.01, 0.01, caption(data), fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=str(REPO / "bench" / "capacity.json"))
    parser.add_argument("--out-dir", default=str(REPO / "bench"))
    args = parser.parse_args()
    data = json.loads(Path(args.input).read_text())
    out = Path(args.out_dir)
    cpu_figure(data, out / "capacity.png")
    latency_figure(data, out / "latency.png")
    print(f"plot: wrote {out / 'capacity.png'} and {out / 'latency.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
