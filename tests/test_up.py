"""`python -m workbench up` with embedded servers: first run, clean stop, second run reuses the data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def _start(data_dir: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["WORKBENCH_DATA_DIR"] = str(data_dir)
    return subprocess.Popen([sys.executable, "-m", "workbench", "up", "--only", "workers"], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        assert proc.poll() is None, content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not printed:\n{log.read_text()}")


def _servers_under(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmd and ("postgres" in cmd or "redis-server" in cmd or "rq.cli" in cmd):
            found.append(proc)
    return found


def _stop(proc: subprocess.Popen, data_dir: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    deadline = time.monotonic() + 20
    while _servers_under(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_under(data_dir) == []


def test_up_creates_demo_once_stops_cleanly_and_reuses_data(tmp_path):
    data_dir = tmp_path / "data"
    first = _start(data_dir, tmp_path / "first.log")
    try:
        out = _wait_for(tmp_path / "first.log", "Ctrl-C stops everything", first)
    finally:
        _stop(first, data_dir)
    password = re.search(r"senha:\s+(\S+)", out).group(1)
    assert len(password) >= 12 and "admin@demo.local" in out
    assert (data_dir / "pg" / "PG_VERSION").exists() and (data_dir / "redis").is_dir()

    second = _start(data_dir, tmp_path / "second.log")
    try:
        out2 = _wait_for(tmp_path / "second.log", "Ctrl-C stops everything", second)
    finally:
        _stop(second, data_dir)
    assert "senha:" not in out2  # same data: the demo workspace already exists
