"""The sweep and the daily retention: a thread of the scheduler process, once per period across machines, never
jobs that would take a worker away from the drains."""

from __future__ import annotations

import logging
import threading

import redis

from engine.worker import processes
from tests.test_connector_support import wait_until


def _sweeps(r, monkeypatch, sweep, retention=lambda: {"messages": 0}) -> threading.Event:
    monkeypatch.setattr(processes, "SWEEP_EVERY_S", 0.05)
    stop = threading.Event()
    threading.Thread(target=processes.run_sweeps, args=(r, stop, sweep, retention), daemon=True).start()
    return stop


def test_the_sweep_runs_every_period_and_the_retention_daily_once_across_machines(r, monkeypatch):
    swept, retained = [], []
    r.set(processes.SWEEP_TICK, "1", px=300)  # another machine swept in this period
    stop = _sweeps(r, monkeypatch, lambda: swept.append(1) or {"running": 1, "republished": 0},
                   lambda: retained.append(1) or {"messages": 0})
    try:
        wait_until(lambda: len(swept) >= 3, what="sweeps once the other machine's period is over")
        assert r.pttl(processes.SWEEP_TICK) > 0, "this machine's period is marked"
    finally:
        stop.set()
    assert retained == [1], "once a day"
    assert r.pttl(processes.RETENTION_TICK) > 20 * 3600 * 1000


def test_a_failing_sweep_is_logged_and_the_next_period_sweeps_again(r, monkeypatch, caplog):
    tries = []

    def sweep() -> dict[str, int]:
        tries.append(1)
        r.delete(processes.SWEEP_TICK)  # as if the period were over
        if len(tries) == 1:
            raise redis.ConnectionError("Redis away")
        return {"running": 1, "republished": 2}

    caplog.set_level(logging.INFO, logger=processes.__name__)
    stop = _sweeps(r, monkeypatch, sweep)
    try:
        wait_until(lambda: "'republished': 2" in caplog.text, what="a second sweep, saying what it repaired")
    finally:
        stop.set()
    assert "sweep failed (ConnectionError)" in caplog.text
