"""The DuckDB copy: increments, late commits, the worker's job, and readers in other processes while it is
refreshed (generations swapped under them)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import text

from tests.analytics_history import History
from tests.factories import run_jobs
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


def test_the_workers_job_refreshes(history):
    h = history
    h.conversation("2026-03-02 10:00")
    Queue("default", connection=get_redis()).enqueue("engine.worker.jobs.analytics_refresh")
    run_jobs("default")
    assert count("conversations") == 1


def _pid_and_one() -> dict:
    with session_scope() as s:
        return {"pid": os.getpid(), "one": s.scalar(text("SELECT 1"))}


def _divide_by_zero() -> dict:
    return {"x": 1 / 0}


def _polars_rows(n: int) -> dict:
    import polars as pl

    frame = pl.read_csv(io.StringIO("a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(n))))
    return {"rows": frame.height}


def test_the_refresh_runs_in_a_child_that_leaves_the_workers_connections_alone(engine):
    """The job's child process (its memory leaves with it) opens its own connections: the worker's pooled ones
    still work afterwards, and a failure in the child raises in the worker with its reason."""
    from engine.worker.jobs import _in_child

    with session_scope() as s:
        s.scalar(text("SELECT 1"))  # a pooled connection of the worker
    out = _in_child(_pid_and_one)
    assert out["one"] == 1 and out["pid"] != os.getpid()
    with session_scope() as s:
        assert s.scalar(text("SELECT 2")) == 2
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        _in_child(_divide_by_zero)
    assert _in_child(f"{__name__}:_pid_and_one")["one"] == 1  # named: only the child imports it


def test_the_workers_never_load_what_only_the_refresh_or_the_panel_uses():
    """The workers' supervisor imports the jobs before it forks the workers, scheduler and calls pool: DuckDB and
    polars (about 50 MB), segno, the QR codes' library (about 10 MB), the OpenAI SDK (about 40 MB) or Pillow loaded
    there would be counted in every one of them. Only the refresh's child loads the first two, only the panel the
    third, the calls pool imports the SDK with its executors at its first call, and Pillow comes with the first
    image."""
    probe = ("import sys, engine.worker.jobs, engine.worker.processes, engine.worker.calls, workbench.launcher; "
             "print(sorted({'duckdb', 'polars', 'segno', 'openai', 'PIL'} & set(sys.modules)))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parent.parent)
    assert found.stdout.strip() == "[]"


def test_the_child_reads_with_polars_after_the_worker_used_it():
    """polars' thread pool does not survive a fork: a forked child of a process that used polars waited forever
    on its first parallel read. The child is spawned; the wait is bounded here so a regression fails, not hangs."""
    from engine.worker.jobs import _in_child

    assert _polars_rows(200_000) == {"rows": 200_000}  # this process's pool is started
    found: list[dict] = []
    child = threading.Thread(target=lambda: found.append(_in_child(_polars_rows, 200_000)), daemon=True)
    child.start()
    child.join(timeout=120)
    assert found == [{"rows": 200_000}], "the child never answered: it was forked after polars started its pool"


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
