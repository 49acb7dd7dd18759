"""Dashboards benchmark: the Painel, Equipe and Funis reports on the DuckDB copy against the same queries run
directly in PostgreSQL, the copy's refresh after 10 000 new messages, and peak memory.

The product's demo generator (``workbench/analytics/demo.py``) fills a fresh database — by default 100 000
contacts, 1 000 000 messages and about 300 000 funnel events over 90 days — then it prints:

- the time to build the DuckDB copy from scratch;
- each dashboard's time on DuckDB, cold (a new connection: DuckDB's buffers empty, the OS cache warm) and warm
  (median of 5), next to the same figures computed by PostgreSQL alone (median of 3, after one warm-up run):
  episodes derived on the fly with the same definition (``workbench/analytics/metrics.py``), which is what a
  dashboard without the copy would have to do; the two must give the same numbers;
- the incremental refresh after 10 000 new messages (COPY into PostgreSQL, then ``store.refresh``);
- the peak RSS of this process.

    python bench/analytics.py                                  # embedded servers in a temp dir, full size
    python bench/analytics.py --contacts 20000 --messages 200000
    DATABASE_URL=... python bench/analytics.py

Targets (issue "Dashboards ..."): every dashboard <= 1 s warm and >= 5x faster than PostgreSQL; a refresh of
10 000 new messages <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import servers  # noqa: E402

PG_EPISODES = """
WITH timeline AS (
    SELECT m.conversation_id, m.created_at AS moment,
           CASE WHEN m.direction = 'in' THEN 'in' WHEN m.sent_by_user_id IS NOT NULL THEN 'human' ELSE 'bot' END
               AS kind, m.sent_by_user_id AS user_id, 1 AS ord
    FROM messages m WHERE m.workspace_id = %(ws)s
    UNION ALL
    SELECT e.subject_id, e.created_at,
           CASE e.kind WHEN 'status_closed' THEN 'close' WHEN 'assigned' THEN 'assign'
                       WHEN 'bot_paused' THEN 'handoff' ELSE 'reopen' END,
           CASE e.kind WHEN 'assigned' THEN (e.data->>'agent_id')::bigint WHEN 'status_closed' THEN e.actor_user_id END,
           CASE e.kind WHEN 'status_closed' THEN 2 ELSE 0 END
    FROM activity_events e WHERE e.workspace_id = %(ws)s AND e.subject_type = 'conversation'
      AND e.kind IN ('assigned', 'bot_paused', 'status_open', 'status_pending', 'status_closed')
      AND (e.kind <> 'bot_paused' OR e.data->>'reason' = 'route')
),
numbered AS (
    SELECT *, coalesce(sum(CASE WHEN kind = 'close' THEN 1 ELSE 0 END) OVER (PARTITION BY conversation_id
                  ORDER BY moment, ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS episode,
              count(CASE WHEN kind = 'assign' THEN user_id END) OVER (PARTITION BY conversation_id
                  ORDER BY moment, ord ROWS UNBOUNDED PRECEDING) AS agrp
    FROM timeline
),
clocked AS (
    SELECT *, max(CASE WHEN kind = 'assign' THEN user_id END) OVER (PARTITION BY conversation_id, agrp) AS assignee,
              max(CASE WHEN kind IN ('assign', 'handoff') THEN moment END) OVER (PARTITION BY conversation_id, episode
                  ORDER BY moment, ord ROWS UNBOUNDED PRECEDING) AS last_start
    FROM numbered
),
raw AS (
    SELECT n.conversation_id, n.episode,
        CASE WHEN n.episode = 0 THEN least(min(c.created_at), min(n.moment))
             ELSE min(n.moment) FILTER (WHERE n.kind <> 'close') END AS started_at,
        min(n.moment) FILTER (WHERE n.kind = 'human') AS replied_at,
        (array_agg(n.user_id ORDER BY n.moment) FILTER (WHERE n.kind = 'human'))[1] AS replied_by,
        (array_agg(n.last_start ORDER BY n.moment) FILTER (WHERE n.kind = 'human'))[1] AS handed_at,
        max(n.moment) FILTER (WHERE n.kind = 'close') AS closed_at,
        (array_agg(coalesce(n.assignee, n.user_id) ORDER BY n.moment DESC) FILTER (WHERE n.kind = 'close'))[1]
            AS resolved_by
    FROM clocked n JOIN conversations c ON c.id = n.conversation_id GROUP BY n.conversation_id, n.episode
),
episodes AS MATERIALIZED (
    SELECT r.*, CASE WHEN replied_at IS NOT NULL THEN greatest(started_at, coalesce(handed_at, started_at)) END
                    AS clock_at
    FROM raw r WHERE started_at IS NOT NULL
)
"""

PG_PAINEL = [PG_EPISODES + """
SELECT
  (SELECT count(*) FROM conversations WHERE workspace_id = %(ws)s AND created_at >= %(start)s
      AND created_at < %(end)s) AS new_conversations,
  (SELECT count(*) FROM conversations WHERE workspace_id = %(ws)s AND created_at >= %(pstart)s
      AND created_at < %(start)s) AS previous_conversations,
  (SELECT count(*) FROM contacts WHERE workspace_id = %(ws)s AND created_at >= %(start)s AND created_at < %(end)s)
      AS new_contacts,
  (SELECT count(DISTINCT ct.contact_id) FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id
      WHERE g.workspace_id = %(ws)s AND lower(g.name) = 'ia_qualificado' AND ct.created_at >= %(start)s
      AND ct.created_at < %(end)s) AS qualified,
  (SELECT count(*) FROM conversations WHERE workspace_id = %(ws)s AND status <> 'closed') AS open_now,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM replied_at - clock_at)) FROM episodes
      WHERE replied_at >= %(start)s AND replied_at < %(end)s) AS frt_median,
  (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM replied_at - clock_at)) FROM episodes
      WHERE replied_at >= %(start)s AND replied_at < %(end)s) AS frt_p90,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM replied_at - clock_at)) FROM episodes
      WHERE replied_at >= %(pstart)s AND replied_at < %(start)s) AS previous_frt_median,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at)) FROM episodes
      WHERE closed_at >= %(start)s AND closed_at < %(end)s) AS resolution_median
""", """
SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) FROM conversations
WHERE workspace_id = %(ws)s AND created_at >= %(start)s AND created_at < %(end)s GROUP BY 1 ORDER BY 1
""", """
SELECT extract(isodow FROM created_at AT TIME ZONE %(tz)s) - 1, extract(hour FROM created_at AT TIME ZONE %(tz)s),
       count(*) FROM messages
WHERE workspace_id = %(ws)s AND direction = 'in' AND created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1, 2
"""]

PG_EQUIPE = [PG_EPISODES + """
, replied AS (SELECT replied_by AS user_id, count(*) AS n,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM replied_at - clock_at)) AS median_s,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM replied_at - clock_at)) AS p90_s,
                     count(*) FILTER (WHERE replied_at - clock_at <= interval '60 minutes') AS met
              FROM episodes WHERE replied_at >= %(start)s AND replied_at < %(end)s GROUP BY 1),
resolved AS (SELECT resolved_by AS user_id, count(*) AS n,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at)) AS median_s
             FROM episodes WHERE closed_at >= %(start)s AND closed_at < %(end)s GROUP BY 1),
assigned AS (SELECT (data->>'agent_id')::bigint AS user_id, count(DISTINCT subject_id) AS n FROM activity_events
             WHERE workspace_id = %(ws)s AND subject_type = 'conversation' AND kind = 'assigned'
               AND created_at >= %(start)s AND created_at < %(end)s GROUP BY 1),
sent AS (SELECT sent_by_user_id AS user_id, count(*) AS n FROM messages WHERE workspace_id = %(ws)s
           AND direction = 'out' AND sent_by_user_id IS NOT NULL AND created_at >= %(start)s AND created_at < %(end)s
         GROUP BY 1),
open AS (SELECT agent_id AS user_id, count(*) AS n FROM conversations WHERE workspace_id = %(ws)s
           AND status <> 'closed' GROUP BY 1)
SELECT m.user_id, u.name, a.n, r.n, o.n, f.median_s, f.p90_s, r.median_s, s.n, f.met::float / nullif(f.n, 0)
FROM workspace_members m JOIN users u ON u.id = m.user_id LEFT JOIN assigned a USING (user_id)
LEFT JOIN resolved r USING (user_id) LEFT JOIN replied f USING (user_id) LEFT JOIN open o USING (user_id)
LEFT JOIN sent s USING (user_id) WHERE m.workspace_id = %(ws)s ORDER BY u.name
"""]

PG_FUNIS = ["""
WITH runs AS (SELECT * FROM funnel_runs WHERE workspace_id = %(ws)s AND funnel_id = %(funnel)s
                AND started_at >= %(start)s AND started_at < %(end)s),
ev AS (SELECT e.run_id, e.node_id, e.status, e.created_at,
              lag(e.created_at) OVER (PARTITION BY e.run_id ORDER BY e.created_at, e.id) AS previous_at,
              row_number() OVER (PARTITION BY e.run_id ORDER BY e.created_at DESC, e.id DESC) AS from_end
       FROM funnel_events e JOIN runs r ON r.id = e.run_id),
last_step AS (SELECT ev.node_id, r.status FROM ev JOIN runs r ON r.id = ev.run_id WHERE ev.from_end = 1),
firsts AS (SELECT run_id, node_id, min(created_at) AS at,
                  (array_agg(previous_at ORDER BY created_at))[1] AS previous_at FROM ev GROUP BY 1, 2)
SELECT ev.node_id, count(DISTINCT ev.run_id),
       (SELECT count(*) FROM last_step l WHERE l.node_id = ev.node_id AND l.status IN ('failed', 'stopped')),
       (SELECT count(*) FROM last_step l WHERE l.node_id = ev.node_id AND l.status IN ('active', 'waiting', 'paused')),
       count(*) FILTER (WHERE ev.status = 'error'),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - f.previous_at)) FROM firsts f
          WHERE f.node_id = ev.node_id AND f.previous_at IS NOT NULL)
FROM ev GROUP BY ev.node_id
""", """
SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM funnel_runs
WHERE workspace_id = %(ws)s AND funnel_id = %(funnel)s AND started_at >= %(start)s AND started_at < %(end)s
"""]


def timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def median_s(call: Callable[[], object], runs: int) -> float:
    return statistics.median(timed(call)[0] for _ in range(runs))


def pg_runner(statements: list[str], params: dict) -> Callable[[], list]:
    from workbench.store.db import get_engine

    def run() -> list:
        raw = get_engine().raw_connection()
        try:
            with raw.driver_connection.cursor() as cur:
                out = []
                for sql in statements:
                    cur.execute(sql, params)
                    out.append(cur.fetchall())
                return out
        finally:
            raw.close()

    return run


def add_messages(workspace_id: int, n: int) -> None:
    """``n`` new messages (half in, half a person's replies) in existing conversations, stamped now, by COPY."""
    from workbench.store.db import get_engine

    raw = get_engine().raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            convs = cur.execute("SELECT id, instance_id, agent_id FROM conversations WHERE workspace_id = %s "
                                "AND agent_id IS NOT NULL ORDER BY random() LIMIT %s",
                                (workspace_id, n // 4)).fetchall()
        now = datetime.now(UTC)
        rng = random.Random(1)
        with conn.cursor() as cur, cur.copy("COPY messages (workspace_id, instance_id, conversation_id, direction, "
                                            "type, status, sent_by_user_id, created_at) FROM STDIN") as copy:
            for i in range(n):
                conv_id, instance_id, agent = rng.choice(convs)
                inbound = i % 2 == 0
                copy.write_row((workspace_id, instance_id, conv_id, "in" if inbound else "out", "text",
                                "received" if inbound else "sent", None if inbound else agent,
                                now - timedelta(seconds=n - i)))
        conn.commit()
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--new-messages", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wbbench-analytics-"))
    stops = []
    if os.environ.get("DATABASE_URL"):
        from tests.factories import fresh_database

        database_url, drop = fresh_database(os.environ["DATABASE_URL"], "wb_bench")
        stops.append(drop)
    else:
        database_url, _, stops = servers(tmp)
    os.environ.update({"DATABASE_URL": database_url, "WORKBENCH_DATA_DIR": str(tmp)})
    from workbench.store.config import get_settings

    get_settings.cache_clear()
    try:
        run(args, database_url)
    finally:
        for stop in stops:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _generate(contacts: int, messages: int, days: int) -> dict:
    from workbench.analytics import demo

    return demo.generate(demo.Sizes(contacts=contacts, messages=messages, days=days, agents=12), None, "Analytics")


def run(args, database_url: str) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from workbench.analytics import notebook, reports, store
    from workbench.store.migrations import upgrade_database

    upgrade_database(database_url)
    # generated in a child process, so this process's peak RSS is the read side's alone
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        elapsed, ids = timed(lambda: pool.submit(_generate, args.contacts, args.messages, args.days).result())
    counts = ids["counts"]
    print("generated " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) + f" over {args.days} days "
          f"in {elapsed:.0f} s (workbench/analytics/demo.py, COPY)")
    build, result = timed(lambda: store.refresh(full=True))
    size = sum(p.stat().st_size for p in store.directory().glob("snapshot-*.duckdb")) / 2**20
    print(f"DuckDB copy built from scratch in {build:.1f} s ({size:.0f} MB on disk)")
    admin = notebook.analyst(ids["workspace"])
    filters = notebook.last_days(admin, 30)
    ctx = reports._context(admin, filters)  # the same UTC bounds for both engines
    params = {"ws": ids["workspace"], "tz": ctx.zone, "start": ctx.params["start"], "end": ctx.params["end"],
              "pstart": ctx.params["pstart"], "funnel": ids["funnels"][0][0]}
    agent = ids["agents"][0]
    dashboards = {
        "Painel": (lambda: reports.overview(admin, filters), PG_PAINEL),
        "Equipe": (lambda: reports.team(admin, filters), PG_EQUIPE),
        "Equipe (business hours)": (lambda: reports.team(admin, filters, business_hours=True), None),
        "Funis": (lambda: reports.funnel(admin, ids["funnels"][0][0], filters), PG_FUNIS),
        "drill-down: one person's conversations": (
            lambda: reports.conversation_rows(admin, reports.drill(admin, filters, "person", agent)), None),
    }
    print(f"dashboards over the last 30 days (of {args.days}); DuckDB cold / warm (median of 5) vs PostgreSQL alone "
          "(median of 3):")
    print(f"  {'dashboard':<40} {'cold':>8} {'warm':>8} {'PostgreSQL':>11} {'speed-up':>9}")
    for name, (call, pg) in dashboards.items():
        store.close()
        cold, _ = timed(call)
        warm = median_s(call, 5)
        pg_s = ""
        ratio = ""
        if pg:
            runner = pg_runner(pg, params)
            runner()
            pg_time = median_s(runner, 3)
            pg_s, ratio = f"{pg_time * 1000:>9.0f} ms", f"{pg_time / warm:>8.1f}x"
        print(f"  {name:<40} {cold * 1000:>6.0f} ms {warm * 1000:>6.0f} ms {pg_s:>11} {ratio:>9}")
    duck = {k["metric"]: k["value"] for k in reports.overview(admin, filters)["kpis"]}
    pg_row = pg_runner(PG_PAINEL[:1], params)()[0][0]
    same = (duck["new_conversations"] == pg_row[0] and abs((duck["frt_median"] or 0) - float(pg_row[5] or 0)) < 1
            and abs((duck["resolution_median"] or 0) - float(pg_row[8] or 0)) < 1)
    print(f"same figures from both engines (new conversations, median first response, median resolution): "
          f"{'yes' if same else 'NO'} ({duck['new_conversations']:.0f}, {duck['frt_median']:.0f} s, "
          f"{duck['resolution_median']:.0f} s vs {pg_row[0]}, {float(pg_row[5] or 0):.0f} s, "
          f"{float(pg_row[8] or 0):.0f} s)")
    store.refresh()  # an increment with nothing new: what every refresh costs at this size
    idle, _ = timed(store.refresh)
    add_messages(ids["workspace"], args.new_messages)
    refresh, result = timed(store.refresh)
    print(f"refresh with nothing new: {idle:.2f} s; after {args.new_messages:,} new messages: {refresh:.2f} s "
          f"({result['rows']['messages']:,} message rows read again or new)")
    print(f"peak RSS of this process (building and refreshing the copy, the dashboards; the generator ran in "
          f"another): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
