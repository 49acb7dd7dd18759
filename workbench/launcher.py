"""``python -m workbench up``: the whole product on one machine, or one role of it.

``up`` owns the embedded servers (when DATABASE_URL / REDIS_URL are unset), applies migrations, creates
the demo workspace on first run, and runs its roles as child processes that it restarts if they die:

- ``panel``: ``streamlit run panel.py`` (the app of ``app.py`` plus the login cookie's routes)
- ``workers``: ``python -m workbench workers`` (RQ workers, the scheduler with the periodic sweep, the calls pool
  and the dashboards' refresh)
- ``connectors``: ``python -m connector supervise`` (one process per WhatsApp number)

Ctrl-C or SIGTERM stops the children, then the servers it started; nothing is left running.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import setproctitle

from workbench.store.config import Settings, get_settings

log = logging.getLogger("workbench")
ROOT = Path(__file__).resolve().parent.parent
ROLES = ("panel", "workers", "connectors")
QUEUES = ("inbound", "default")
TICKER_S = 15
TICK_S = 0.2  # how often supervisors look at their children
QUICK_RESTART_S = 0.5
CRASH_LOOP = 3  # short runs in a row that make a crash loop
SHORT_RUN_S = 3.0  # a run this short ended in its start-up (a broken setup), not in a one-off crash
MAX_BACKOFF_S = 30.0


@dataclass
class Child:
    """A supervised child process, restarted when it exits on its own.

    A crash is usually a one-off (a worker killed, a Redis restart): the child is back after ``QUICK_RESTART_S``.
    Only a child that crash-loops — ``CRASH_LOOP`` runs in a row that each ended within ``SHORT_RUN_S`` of their
    start, as a broken setup does — waits longer, doubling up to ``MAX_BACKOFF_S``, so it does not spin.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    target: Callable[[], int] | None = None  # run in a fork of this process (imports done) instead of ``argv``
    proc: subprocess.Popen | Forked | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    short_runs: int = 0  # runs in a row that ended within SHORT_RUN_S

    def start(self) -> None:
        """Start the process in its own process group (so stopping it stops its children too)."""
        if self.target is not None:
            self.proc = Forked(self.target, title=" ".join(self.argv))
        else:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, start_new_session=True)
        self.started_at = time.monotonic()

    def check(self) -> None:
        """Start the process when it is due; note its exit if it died."""
        if self.proc is None:
            if time.monotonic() >= self.next_start:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            return
        now = time.monotonic()
        self.short_runs = self.short_runs + 1 if now - self.started_at < SHORT_RUN_S else 0
        delay = QUICK_RESTART_S
        if self.short_runs >= CRASH_LOOP:
            delay = min(QUICK_RESTART_S * 2 ** (self.short_runs - CRASH_LOOP + 2), MAX_BACKOFF_S)
        log.warning("%s exited with %s; restarting in %.1f s", self.name, code, delay)
        self.proc = None
        self.restarts += 1
        self.next_start = now + delay

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


class Forked:
    """A child forked from this process, so it starts with this process's imports done (a new interpreter
    spends seconds importing the engine on a loaded machine); offers the part of ``Popen`` supervisors use."""

    def __init__(self, target: Callable[[], int], title: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything imported so far goes to the collector's permanent generation: a child's collections then
        # never write to the objects it shares with this process, so their pages stay shared instead of being
        # copied into every worker (about 23 MB each on the engine's imports).
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.setsid()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                setproctitle.setproctitle(title)  # `ps` and tests tell workers from the scheduler
                code = target() or 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:  # noqa: BLE001 - report, then leave through os._exit, never back into the parent's code
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the child ended, else None."""
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child; raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return self.returncode


def _child_specs(settings: Settings, roles: tuple[str, ...], env: dict[str, str]) -> list[Child]:
    py = sys.executable
    children = []
    if "connectors" in roles:
        children.append(Child("connectors", [py, "-m", "connector", "supervise"], env))
    if "workers" in roles:
        children.append(Child("workers", [py, "-m", "workbench", "workers", "--count", str(settings.workers)], env))
    if "panel" in roles:
        children.append(Child("panel", [
            py, "-m", "streamlit", "run", str(ROOT / "panel.py"), "--server.headless", "true",
            "--server.port", str(settings.panel_port), "--server.address", settings.panel_address,
            "--browser.gatherUsageStats", "false",
            # an unexpected error shows its type only: tracebacks may carry SQL, paths or data
            "--client.showErrorDetails", "type",
            # a product, not a Streamlit app being developed: no "Deploy" button nor developer menu
            "--client.toolbarMode", "viewer",
        ], env))
    return children


class _Stop(Exception):
    pass


def _raise_stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise _Stop


def up(roles: tuple[str, ...] = ROLES) -> int:
    """Run the product until Ctrl-C/SIGTERM. Returns the exit code."""
    from workbench.services.instances import sync_instances
    from workbench.services.workspaces import ensure_demo_workspace
    from workbench.store.embedded import EmbeddedPostgres, EmbeddedRedis
    from workbench.store.migrations import upgrade_database

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    owner_lock = _own(data_dir)
    servers = []
    children: list[Child] = []
    try:
        env = dict(os.environ)
        env["WORKBENCH_DATA_DIR"] = str(data_dir)
        if not settings.database_url:
            pg = EmbeddedPostgres(data_dir)
            env["DATABASE_URL"] = pg.start()
            servers.append(pg)
        if not settings.redis_url:
            rs = EmbeddedRedis(data_dir)
            env["REDIS_URL"] = rs.start()
            servers.append(rs)
        os.environ.update(env)
        get_settings.cache_clear()
        upgrade_database(env["DATABASE_URL"])
        creds = ensure_demo_workspace()
        if creds:
            print("\n  Demo workspace created. Sign in with (shown only this once):")
            print(f"    e-mail: {creds.email}\n    senha:  {creds.password}\n", flush=True)
        sync_instances()
        children = _child_specs(settings, roles, env)
        for child in children:
            child.start()
        if "panel" in roles:
            print(f"  Workbench panel: http://{settings.panel_address}:{settings.panel_port}", flush=True)
        print(f"  Running {', '.join(roles)}; data in {data_dir}. Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(TICK_S)
            for child in children:
                child.check()
    except (_Stop, KeyboardInterrupt):
        print("\n  Stopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            child.stop()
        from workbench.store.db import dispose_engines

        dispose_engines()
        for server in reversed(servers):
            server.stop(force=owner_lock is not None)
        if owner_lock is not None:
            owner_lock.close()


def _own(data_dir: Path):
    """Take the data dir's owner lock; None when another `up` already owns it (then we stop nothing of its)."""
    handle = open(data_dir / "owner.lock", "w")  # noqa: SIM115 - held open for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def workers(count: int, worker: Callable[[], int], scheduler: Callable[[], int],
            calls: Callable[[], int] | None = None) -> int:
    """Run ``count`` RQ workers, the scheduler (with the sweep), the outside calls pool and the ticker until SIGTERM
    (engine/worker/processes.py, engine/worker/calls.py).

    ``worker``, ``scheduler`` and ``calls`` are the mains of those processes: each runs in a fork of this process,
    which imported them already, so a worker that died is working again within a second.
    """
    from redis import Redis

    settings = get_settings()
    env = dict(os.environ)
    main = [sys.executable, "-m", "workbench"]
    children = [Child(f"worker-{n}", [*main, "worker"], env, target=worker) for n in range(count)]
    children.append(Child("scheduler", [*main, "scheduler"], env, target=scheduler))
    if calls is not None:
        children.append(Child("calls", [*main, "calls"], env, target=calls))
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    client = Redis.from_url(settings.redis_url, health_check_interval=30)
    stop = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(client, stop), daemon=True)
    try:
        for child in children:
            child.start()
        ticker.start()
        while True:
            time.sleep(TICK_S)
            for child in children:
                child.check()
    except (_Stop, KeyboardInterrupt):
        return 0
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            child.stop(grace=30)  # let a running job finish


ANALYTICS_TIMEOUT_S = 600


def _ticker(client, stop: threading.Event) -> None:
    """Run the dashboards' refresh every ``WORKBENCH_ANALYTICS_REFRESH_S`` (checked every ``TICKER_S``); one ticker
    wins per period across machines. The sweep and the retention run in the scheduler process
    (``engine.worker.processes.run_sweeps``)."""
    refresh = AnalyticsRefresh([sys.executable, "-m", "workbench", "refresh-analytics"])
    try:
        while not stop.wait(TICKER_S):
            tick(client, refresh, get_settings().analytics_refresh_s)
    finally:
        refresh.stop()


def tick(client, refresh: AnalyticsRefresh, analytics_every: int) -> None:
    """One tick of the workers' ticker: start the dashboards' refresh (``workbench/analytics/store.py``) when this
    period has none yet, here or on another machine."""
    try:
        if (analytics_every and not refresh.running()
                and client.set("wb:analytics-tick", "1", nx=True, ex=max(1, analytics_every - 1))):
            refresh.start()
    except Exception:  # noqa: BLE001 - Redis down: try again next tick, never kill the workers
        log.warning("workers' tick skipped: Redis unreachable")


class AnalyticsRefresh:
    """The dashboards' refresh (``python -m workbench refresh-analytics``) as a process of its own, one at a time.

    Not an RQ job: a worker waiting on a refresh (about a second of CPU, more on a long history) was a worker not
    draining messages, and with one worker every answer queued behind it. In a process of its own at a lower CPU
    priority, what DuckDB and polars allocated (about 90 MB) leaves when it ends, and they stay out of this
    supervisor, whose imports every forked worker shares. A refresh running past ``ANALYTICS_TIMEOUT_S`` is killed;
    a failed one is logged and the next period tries again.
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def running(self) -> bool:
        """Whether a refresh is still running; reaps (and reports) one that ended, kills one past its time."""
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is None and time.monotonic() - self.started <= ANALYTICS_TIMEOUT_S:
            return True
        if code is None:
            log.warning("dashboards' refresh still running after %d s: killed", ANALYTICS_TIMEOUT_S)
            self.stop()
        elif code:
            log.warning("dashboards' refresh failed (exit code %s); the next period tries again", code)
        self.proc = None
        return False

    def start(self) -> None:
        """Start a refresh (its output is discarded; its log goes where this process's goes)."""
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.DEVNULL)
        self.started = time.monotonic()

    def stop(self) -> None:
        """End a running refresh (the copy it was writing is left unpublished)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
