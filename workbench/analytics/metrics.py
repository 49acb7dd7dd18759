"""Metric definitions: what "first response", "resolution" and "business hours" mean, in one place.

**Episodes.** A conversation is one thread per contact, closed and reopened many times, so response and
resolution are measured per *episode*: an episode starts when the conversation is created, or with the first
activity after a close (the contact writes again, someone replies or reopens it), and ends with the next close.

- **First response** of an episode: from the *latest* assignment (to a person or a team, by hand or by a
  funnel's route step) or bot handoff (a route step pausing the bot) before the first human reply, else from
  the episode's start, to that first human reply (an outbound message sent by a user). It belongs to the
  person who replied. Reassigning restarts the clock: the new owner is measured from the moment they got it.
- **Resolution** of an episode: from its start to its close, credited to the person assigned at the close
  (else the one who closed it). After a reopen the next resolution is measured from the reopen, not from the
  conversation's creation.
- **Business hours**: the same intervals counting only the workspace's hours (Configurações, in its zone):
  ``B(t)`` is the number of business seconds from a fixed Monday to ``t``, and an interval is ``B(end) -
  B(start)``; a night or a weekend in between counts zero.

Episodes are derived when the copy is refreshed (``workbench.analytics.store``) — they do not depend on
the reader's filters — so a dashboard only filters and aggregates them.
"""

from __future__ import annotations

from typing import Any

import duckdb

FRT_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("0-1h", 0, 3600), ("1-4h", 3600, 4 * 3600), ("4-8h", 4 * 3600, 8 * 3600), ("8-24h", 8 * 3600, 24 * 3600),
    (">24h", 24 * 3600, float("inf")),
)
"""The first-response distribution: (label, from seconds inclusive, to seconds exclusive)."""

EPISODES_SQL = """
WITH scope AS (
    SELECT id, created_at FROM conversations {only}
),
timeline AS (
    SELECT m.conversation_id, m.created_at AS moment,
           CASE WHEN m.direction = 'in' THEN 'in' WHEN m.sent_by_user_id IS NOT NULL THEN 'human' ELSE 'bot' END
               AS kind,
           m.sent_by_user_id AS user_id, 1 AS ord
    FROM messages m JOIN scope s ON s.id = m.conversation_id
    UNION ALL
    SELECT e.conversation_id, e.created_at,
           CASE e.kind WHEN 'status_closed' THEN 'close' WHEN 'assigned' THEN 'assign'
                       WHEN 'bot_paused' THEN 'handoff' ELSE 'reopen' END,
           CASE e.kind WHEN 'assigned' THEN e.agent_id WHEN 'status_closed' THEN e.actor_id END,
           -- at one instant: a start before a reply, a close after everything
           CASE e.kind WHEN 'status_closed' THEN 2 ELSE 0 END
    FROM conversation_events e JOIN scope s ON s.id = e.conversation_id
    WHERE e.kind <> 'bot_paused' OR e.reason = 'route'
),
numbered AS (
    SELECT *,
        coalesce(sum(CASE WHEN kind = 'close' THEN 1 ELSE 0 END) OVER (
            PARTITION BY conversation_id ORDER BY moment, ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
            AS episode,
        last_value(CASE WHEN kind = 'assign' THEN user_id END IGNORE NULLS) OVER (
            PARTITION BY conversation_id ORDER BY moment, ord ROWS UNBOUNDED PRECEDING) AS assignee
    FROM timeline
),
clocked AS (
    SELECT *,
        max(CASE WHEN kind IN ('assign', 'handoff') THEN moment END) OVER (
            PARTITION BY conversation_id, episode ORDER BY moment, ord ROWS UNBOUNDED PRECEDING) AS last_start
    FROM numbered
)
SELECT n.conversation_id, n.episode,
    CASE WHEN n.episode = 0 THEN least(any_value(s.created_at), min(n.moment))
         ELSE min(n.moment) FILTER (WHERE n.kind <> 'close') END AS started_at,
    min(n.moment) FILTER (WHERE n.kind = 'human') AS replied_at,
    arg_min_null(n.user_id, n.moment) FILTER (WHERE n.kind = 'human') AS replied_by,
    arg_min_null(n.last_start, n.moment) FILTER (WHERE n.kind = 'human') AS handed_at,
    max(n.moment) FILTER (WHERE n.kind = 'close') AS closed_at,
    arg_max_null(coalesce(n.assignee, n.user_id), n.moment) FILTER (WHERE n.kind = 'close') AS resolved_by
FROM clocked n JOIN scope s ON s.id = n.conversation_id
GROUP BY n.conversation_id, n.episode
"""


RUN_STEPS_SQL = """
SELECT e.id, e.workspace_id, e.run_id, e.funnel_id, e.version_id, e.node_id, e.node_type, e.status, e.created_at,
       lag(e.created_at) OVER run_order AS previous_at,
       row_number() OVER run_order AS position,
       row_number() OVER (PARTITION BY e.run_id ORDER BY e.created_at DESC, e.id DESC) = 1 AS is_last,
       row_number() OVER (PARTITION BY e.run_id, e.node_id ORDER BY e.created_at, e.id) = 1 AS first_visit
FROM funnel_events e {only}
WINDOW run_order AS (PARTITION BY e.run_id ORDER BY e.created_at, e.id)
"""
"""A run's steps in order: when the previous step ran, the step's position, whether it is the run's last step
(where a run that ended without completing left) and the node's first visit in the run (what "reached" counts)."""


def derive_steps(con: duckdb.DuckDBPyConnection, touched_runs: list[int] | None = None) -> None:
    """(Re)compute ``run_steps``: all of it, or only the runs in ``touched_runs`` (runs are append-only)."""
    if touched_runs is None:
        con.execute(f"CREATE OR REPLACE TABLE run_steps AS {RUN_STEPS_SQL.format(only='')}")
        return
    con.execute("CREATE OR REPLACE TEMP TABLE touched_runs AS SELECT unnest($1::BIGINT[]) AS id", [touched_runs])
    con.execute("DELETE FROM run_steps WHERE run_id IN (SELECT id FROM touched_runs)")
    only = "WHERE e.run_id IN (SELECT id FROM touched_runs)"
    con.execute(f"INSERT INTO run_steps {RUN_STEPS_SQL.format(only=only)}")


def derive(con: duckdb.DuckDBPyConnection, touched: list[int] | None = None) -> None:
    """(Re)compute the ``episodes`` table: all of it, or only the conversations in ``touched``."""
    if touched is None:
        con.execute(f"CREATE OR REPLACE TABLE raw_episodes AS {EPISODES_SQL.format(only='')}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT unnest($1::BIGINT[]) AS id", [touched])
        con.execute("DELETE FROM raw_episodes WHERE conversation_id IN (SELECT id FROM touched)")
        only = "WHERE id IN (SELECT id FROM touched)"
        con.execute(f"INSERT INTO raw_episodes {EPISODES_SQL.format(only=only)}")
    # an episode that is only a close (closed twice in a row) has no start: it is no episode
    con.execute("""
        CREATE OR REPLACE TABLE episodes AS
        SELECT conversation_id, episode, started_at, replied_at, replied_by,
               CASE WHEN replied_at IS NOT NULL THEN greatest(started_at, coalesce(handed_at, started_at)) END
                   AS clock_at,
               closed_at, resolved_by
        FROM raw_episodes WHERE started_at IS NOT NULL
    """)


def business_seconds(column: str, hours: Any) -> str:
    """SQL for ``B(column)``: business seconds from Monday 1970-01-05 to ``column`` (a local TIMESTAMP).

    Args:
        column: an SQL expression of local wall-clock time (``timezone(zone, instant)``).
        hours: a ``BusinessHours`` (days 0 = Monday, ``start``/``end`` "HH:MM").
    """
    days = set(hours.days)
    opening = _seconds(hours.start)
    length = _seconds(hours.end) - opening
    # open days among Monday..(k-1), for k = 0..6 (the days of a partial week before the current day)
    prefix = [sum(1 for d in range(k) if d in days) for k in range(7)]
    open_flags = [1 if d in days else 0 for d in range(7)]
    day = f"date_diff('day', DATE '1970-01-05', CAST({column} AS DATE))"
    weekday = f"(({day}) % 7 + 7) % 7"
    second = f"(epoch({column}) - epoch(CAST(CAST({column} AS DATE) AS TIMESTAMP)))"
    return (f"(floor(({day}) / 7) * {len(days) * length} + list_extract({prefix}, {weekday} + 1) * {length} "
            f"+ list_extract({open_flags}, {weekday} + 1) * least(greatest({second} - {opening}, 0), {length}))")


def _seconds(hhmm: str) -> int:
    hour, minute = hhmm.split(":")
    return int(hour) * 3600 + int(minute) * 60
