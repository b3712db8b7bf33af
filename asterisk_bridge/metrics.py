"""Prometheus metrics (SPEC section 6: calls by outcome, active calls, ARI latency, queue
wait). One registry per process so tests can build several apps side by side."""

from __future__ import annotations

import asyncio
import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# A `_created` series per counter and histogram doubles what is scraped for a timestamp
# nobody alerts on.
disable_created_metrics()


def _version() -> str:
    try:
        return version("numcfg")
    except PackageNotFoundError:
        return "unknown"


def _loop_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # rendered outside a running loop (a test, a CLI)
        return 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The standard process_* series (CPU, memory, open files) and the Python version.
        ProcessCollector(registry=self.registry)
        self.registry.register(PLATFORM_COLLECTOR)
        Info("numcfg_build", "numcfg's version", registry=self.registry).info(
            {"version": _version(), "python": platform.python_version()}
        )
        self.calls = Counter(
            "numcfg_calls", "Calls handled, by outcome", ["disposition"], registry=self.registry
        )
        self.active = Gauge("numcfg_active_calls", "Calls in progress", registry=self.registry)
        # Tasks of the event loop that renders /metrics (numcfg's only loop): a count that
        # grows while calls do not is a leak (make soak samples it).
        Gauge(
            "numcfg_asyncio_tasks", "Tasks alive on the event loop", registry=self.registry
        ).set_function(_loop_tasks)
        self.ari_latency = Histogram(
            "numcfg_ari_request_seconds",
            "ARI REST request latency",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "numcfg_queue_wait_seconds",
            "Time callers waited in a queue",
            ["queue"],
            buckets=(1, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.ari_connected = Gauge(
            "numcfg_ari_connected", "1 while the ARI websocket is up", registry=self.registry
        )
        self.config_reload_failed = Gauge(
            "numcfg_config_reload_failed",
            "1 while the newest config file failed validation (the last good one serves)",
            registry=self.registry,
        )
        self.auto_pauses = Counter(
            "numcfg_auto_pauses",
            "Employees paused by numcfg after auto_pause_after unanswered queue calls",
            ["queue", "employee"],
            registry=self.registry,
        )
        self.crm_failures = Counter(
            "numcfg_crm_failures",
            "CRM calls that failed or timed out",
            ["reason"],
            registry=self.registry,
        )
        # A refusal lasts until someone fixes the portal or crm.url: a gauge an alert can
        # hold on, where the failure counter only grows with traffic.
        self.crm_problem = Gauge(
            "numcfg_crm_problem",
            "1 while the CRM refuses numcfg for this reason (e.g. insufficient_scope)",
            ["reason"],
            registry=self.registry,
        )

        self.crm_latency = Histogram(
            "numcfg_crm_request_seconds",
            "CRM operations that succeeded, by operation (lookup, create_lead, call_started...)",
            ["operation"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.queue_waiting = Gauge(
            "numcfg_queue_waiting", "Callers waiting in the queue now", ["queue"],
            registry=self.registry,
        )  # fmt: skip
        self.queue_available = Gauge(
            "numcfg_queue_available",
            "Members who could be rung at the queue's last look (working and not on a call)",
            ["queue"],
            registry=self.registry,
        )

        self._ari_children: dict[str, Histogram] = {}

    def call_started(self) -> None:
        self.active.inc()

    def call_finished(self, disposition: str) -> None:
        self.active.dec()
        self.calls.labels(disposition=disposition).inc()

    def observe_ari(self, method: str, seconds: float) -> None:
        # labels() looks the child up under a lock on every call: keep them (few methods).
        child = self._ari_children.get(method)
        if child is None:
            child = self._ari_children[method] = self.ari_latency.labels(method=method)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
