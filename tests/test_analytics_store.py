"""The DuckDB copy: increments, late commits, the workers' refresh process, and readers in other processes while it is
refreshed (generations swapped under them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import text

from tests.analytics_history import History
from workbench import launcher
from workbench.analytics import store
from workbench.store.bus import get_redis
from workbench.store.db import session_scope

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def history(engine):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    yield History()
    store.close()


def count(table: str) -> int:
    return store.query(f"SELECT count(*) AS n FROM {table}").item()


def test_increments_add_new_rows_and_recompute_touched_episodes(history):
    h = history
    conv = h.conversation("2026-03-02 10:00")
    first = store.refresh()
    assert first["full"] and first["generation"] == 1 and count("messages") == 1
    h.reply(conv, "2026-03-02 10:30", h.a)
    h.close(conv, "2026-03-02 11:00")
    second = store.refresh()
    assert not second["full"] and second["generation"] == 2
    assert count("messages") == 2 and count("conversation_events") == 1
    episode = store.query("SELECT epoch(replied_at) - epoch(clock_at) AS frt, resolved_by FROM episodes").row(0)
    assert episode == (30 * 60, h.admin.user_id)
    assert store.refreshed_at() is not None
    # only the current generation and the previous one stay on disk
    store.refresh()
    names = sorted(p.name for p in store.directory().glob("snapshot-*.duckdb"))
    assert names == ["snapshot-2.duckdb", "snapshot-3.duckdb"]


def test_a_late_commit_below_the_watermark_is_still_copied(history):
    h = history
    conv = h.conversation("2026-03-02 10:00")
    with session_scope() as s:
        s.execute(text("SELECT setval('messages_id_seq', 100)"))
    h.message(conv, "2026-03-02 10:01")  # id 101 copied first ...
    store.refresh()
    with session_scope() as s:  # ... then a transaction that took id 50 earlier commits
        s.execute(text("INSERT INTO messages (id, workspace_id, instance_id, conversation_id, direction, type, "
                       "status) VALUES (50, :w, :i, :c, 'in', 'text', 'received')"),
                  {"w": h.workspace_id, "i": h.instance_id, "c": conv})
    store.refresh()
    assert sorted(store.query("SELECT id FROM messages")["id"].to_list()) == [1, 50, 101]


def test_the_workers_ticker_refreshes_in_a_process_of_its_own_not_a_job(history):
    """The ticker starts ``refresh-analytics`` beside the workers (no RQ job holds a worker meanwhile), one at a
    time and once per period across machines; the process's work is in the copy once it ends."""
    h = history
    h.conversation("2026-03-02 10:00")
    client = get_redis()
    client.delete("wb:analytics-tick")
    refresh = launcher.AnalyticsRefresh([sys.executable, "-m", "workbench", "refresh-analytics"])
    other_machine = launcher.AnalyticsRefresh([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        launcher.tick(client, refresh, 60)
        launcher.tick(client, other_machine, 60)  # the same period: the first ticker won it
        assert refresh.running() and other_machine.proc is None
        assert Queue("default", connection=client).count == 0, "no job holds a worker meanwhile"
        refresh.proc.wait(120)
        assert refresh.proc.returncode == 0 and not refresh.running()
    finally:
        refresh.stop()
    assert count("conversations") == 1


def test_a_refresh_past_its_time_is_killed_and_a_failed_one_reported(monkeypatch, caplog):
    stuck = launcher.AnalyticsRefresh([sys.executable, "-c", "import time; time.sleep(60)"])
    stuck.start()
    monkeypatch.setattr(launcher, "ANALYTICS_TIMEOUT_S", 0)
    assert not stuck.running(), "a refresh past its time is killed, and the next period may start another"
    assert stuck.proc is None
    failed = launcher.AnalyticsRefresh([sys.executable, "-c", "raise SystemExit(3)"])
    failed.start()
    failed.proc.wait(30)
    assert not failed.running()
    assert "refresh failed (exit code 3)" in caplog.text


def test_the_command_line_refresh_lowers_its_priority_and_prints_what_it_did(history):
    h = history
    h.conversation("2026-03-02 10:00")
    probe = ("import os, sys; import workbench.__main__ as m; code = m.main(['refresh-analytics', '--full']); "
             "print('nice', os.nice(0)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"full": true' in done.stdout and f"nice {os.nice(0) + 10}" in done.stdout
    assert count("conversations") == 1


def test_the_command_line_refresh_says_in_one_line_that_postgresql_is_away():
    env = {**os.environ, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = subprocess.run([sys.executable, "-m", "workbench", "refresh-analytics"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 1
    assert "refresh-analytics: PostgreSQL unreachable (OperationalError)" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_workers_never_load_what_only_the_refresh_or_the_panel_uses():
    """The workers' supervisor imports the jobs before it forks the workers, scheduler and calls pool: DuckDB and
    polars (about 50 MB), segno, the QR codes' library (about 10 MB), the OpenAI SDK (about 40 MB) or Pillow loaded
    there would be counted in every one of them. Only the refresh's process loads the first two, only the panel the
    third, the calls pool imports the SDK with its executors at its first call, and Pillow comes with the first
    image. The password hasher (and the dummy hash it computed at import: a fifth of a second of CPU) comes with the
    first login, smtplib with the first e-mail."""
    probe = ("import sys, engine.worker.jobs, engine.worker.processes, engine.worker.calls, workbench.launcher; "
             "print(sorted({'duckdb', 'polars', 'segno', 'openai', 'PIL', 'argon2', 'smtplib'} & set(sys.modules)))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parent.parent)
    assert found.stdout.strip() == "[]"


READER = textwrap.dedent("""
    import sys, time
    from workbench.analytics import store
    seen, errors, deadline = set(), 0, time.monotonic() + 120
    open(sys.argv[1], "w").write("ready")
    while time.monotonic() < deadline:
        try:
            seen.add(store.query("SELECT count(*) AS n FROM messages").item())
        except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
            print("ERROR", type(exc).__name__, exc, flush=True)
            errors += 1
        if max(seen) >= int(sys.argv[2]):
            break
    print("SEEN", sorted(seen), "ERRORS", errors, flush=True)
""")


def test_readers_in_other_processes_keep_reading_while_it_is_refreshed(history, tmp_path):
    h = history
    conv = h.conversation("2026-03-02 10:00")
    store.refresh()
    rounds = 6
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(flag), str(1 + rounds)], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
               for flag in ready]
    try:
        while not all(flag.exists() for flag in ready):
            assert all(r.poll() is None for r in readers)
        for n in range(rounds):
            h.message(conv, f"2026-03-02 11:{n:02d}")
            store.refresh()  # a new generation each time, while both processes query
        outputs = [r.communicate(timeout=180)[0] for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
    for output in outputs:
        assert "ERRORS 0" in output, output
        seen = [int(n) for n in output.split("SEEN [")[1].split("]")[0].split(",")]
        assert seen[-1] == 1 + rounds and seen == sorted(seen)


def test_increments_recompute_the_steps_of_runs_that_moved(history):
    from datetime import date

    from workbench.analytics import reports

    h = history
    funnel = h.funnel()
    run = h.run(funnel, "2026-03-02 10:00", "stopped", [("a", "2026-03-02 10:00", "ok")])
    store.refresh()
    with session_scope() as s:  # the run goes on to step b (a new event, copied by the next increment)
        s.execute(text("INSERT INTO funnel_events (workspace_id, run_id, funnel_id, version_id, node_id, node_type, "
                       "status, created_at) VALUES (:w, :r, :f, :v, 'b', 'send_message', 'ok', :at)"),
                  {"w": h.workspace_id, "r": run, "f": funnel[0], "v": funnel[1], "at": h.at("2026-03-02 10:05")})
    assert not store.refresh()["full"]
    day = reports.Filters(date(2026, 3, 2), date(2026, 3, 2))
    steps = reports.funnel(h.admin, funnel[0], day)["steps"]
    assert steps.select("node_id", "reached", "left", "median_from_previous_s").rows() == [
        ("a", 1, 0, None), ("b", 1, 1, 300.0)]
