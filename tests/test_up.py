"""`python -m workbench up` with embedded servers: first run, clean stop, second run reuses the data."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import redis

from workbench.store.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(directory: Path) -> None:
    """``directory`` is 0700 and nothing in it is open to the group or others."""
    assert mode_of(directory) == 0o700
    opened = {str(p.relative_to(directory)): oct(mode_of(p)) for p in directory.rglob("*") if mode_of(p) & 0o077}
    assert opened == {}
    assert list(directory.rglob("*")), "the check saw files"


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
    """SIGTERM `up`: it exits 0, and none of its servers nor any process it started (workers, the scheduler)
    is left running."""
    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    deadline = time.monotonic() + 20
    while (_servers_under(data_dir) or any(p.is_running() for p in started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_under(data_dir) == []
    assert [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


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
    # As root, pgserver runs PostgreSQL as another user, which must pass through the data dir (and only that).
    assert mode_of(data_dir) == (0o711 if os.geteuid() == 0 else 0o700)
    assert_private(data_dir / "redis")

    second = _start(data_dir, tmp_path / "second.log")
    try:
        out2 = _wait_for(tmp_path / "second.log", "Ctrl-C stops everything", second)
    finally:
        _stop(second, data_dir)
    assert "senha:" not in out2  # same data: the demo workspace already exists


def test_embedded_redis_keeps_its_files_private():
    """redis-server has no option for its files' mode: it runs with umask 077 in a 0700 directory, so its
    append-only file (messages not yet in PostgreSQL), snapshot and log are the owner's only."""
    data_dir = Path(f"/tmp/wbt-perm-{uuid.uuid4().hex[:8]}")  # short: the socket path is limited
    (data_dir / "redis").mkdir(parents=True, mode=0o755)  # as an older version left it
    server = EmbeddedRedis(data_dir)
    try:
        client = redis.Redis.from_url(server.start())
        client.xadd("wb:in:1:0", {"e": "mensagem do contato"})
        client.close()
    finally:
        server.stop(force=True)
    try:
        assert (data_dir / "redis" / "dump.rdb").exists()
        assert_private(data_dir / "redis")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("module, argv", [
    ("workbench.__main__", ["migrate"]),  # up, workers, migrate: the launcher's children inherit it
    ("connector.__main__", ["run", "--instance", "1"]),  # supervise and run: the connectors
])
def test_every_entry_point_runs_with_a_private_umask(module, argv):
    """Files that libraries create (the Go SQLite driver, Streamlit, RQ) follow the process umask."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    code = (f"import os, {module} as entry\n"
            f"try:\n    entry.main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('umask', oct(os.umask(0)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.splitlines()[-1] == "umask 0o77", done.stderr


def test_the_panel_is_served_with_the_login_cookie_routes():
    """`up` starts `streamlit run panel.py`: the app plus the routes that set the HttpOnly login cookie
    (plain `app.py` would serve the pages without them)."""
    from workbench.launcher import _child_specs
    from workbench.store.config import Settings

    [panel] = _child_specs(Settings(), ("panel",), {})
    assert panel.argv[1:4] == ["-m", "streamlit", "run"] and panel.argv[4] == str(ROOT / "panel.py")
    source = (ROOT / "panel.py").read_text()
    assert 'st.App("app.py", routes=login_cookie.routes())' in source
