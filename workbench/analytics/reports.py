"""The reports the panel's Painel, Funis and Equipe pages and the notebooks share: one function per figure.

Every public function takes the acting ``Actor`` and reads only its workspace's rows (every query filters on
``workspace_id``). Painel and Funis are for admins and supervisors; on Equipe an agent gets only their own row,
and drill-downs give an agent only conversations they own or answered. Periods are local dates of the
workspace's zone, bucketed in that zone; a period is at most ``MAX_PERIOD_DAYS`` long and a drill-down lists at
most ``DRILL_LIMIT`` conversations, so no request is unbounded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from workbench.analytics import metrics, store
from workbench.base.clock import now
from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.editor.canvas import type_label
from workbench.services import workspace_settings, workspaces
from workbench.services.auth import Actor

MAX_PERIOD_DAYS = 366
DRILL_LIMIT = 5000
PRESETS = {"today": 0, "7d": 6, "30d": 29, "90d": 89}
"""Period presets: days before today that the period starts (it ends today)."""
LIVE_RUNS = ("active", "waiting", "paused")


@dataclass(frozen=True)
class Filters:
    """What a report counts: local dates ``start``..``end`` (inclusive) and optional number, team and tag."""

    start: date
    end: date
    instance_id: int | None = None
    team_id: int | None = None
    tag_id: int | None = None


def preset(actor: Actor, name: str, **narrowing: Any) -> Filters:
    """The filters of a period preset (``PRESETS``) ending today in the workspace's zone."""
    if name not in PRESETS:
        raise InvalidInput(name, key="error.analytics_period")
    today = now().astimezone(ZoneInfo(workspaces.get_timezone(actor))).date()
    return Filters(today - timedelta(days=PRESETS[name]), today, **narrowing)


@dataclass(frozen=True)
class _Context:
    params: dict[str, Any]
    zone: str
    settings: Any


def check(filters: Filters) -> int:
    """The period's length in days.

    Raises:
        InvalidInput: the end is before the start, or the period is longer than ``MAX_PERIOD_DAYS``.
    """
    if filters.end < filters.start:
        raise InvalidInput("end before start", key="error.analytics_period")
    days = (filters.end - filters.start).days + 1
    if days > MAX_PERIOD_DAYS:
        raise InvalidInput("period too long", key="error.analytics_period_long", max=MAX_PERIOD_DAYS)
    return days


def _context(actor: Actor, filters: Filters) -> _Context:
    """Check the filters and turn them into query parameters (UTC bounds of the period and the previous one)."""
    days = check(filters)
    zone = workspaces.get_timezone(actor)
    tz = ZoneInfo(zone)

    def bound(day: date) -> datetime:
        return datetime.combine(day, time(), tz).astimezone(UTC)

    start, end = bound(filters.start), bound(filters.end + timedelta(days=1))
    params = {"ws": actor.workspace_id, "tz": zone, "start": start, "end": end,
              "pstart": bound(filters.start - timedelta(days=days)),
              "inst": filters.instance_id, "team": filters.team_id, "tag": filters.tag_id}
    settings = workspace_settings.get_setting(actor, "analytics")
    params["hours_tz"] = settings.hours.timezone or zone
    return _Context(params, zone, settings)


# conversations in scope: the workspace's, narrowed by number, team and tag
_SCOPE = """
conv AS (
    SELECT c.* FROM conversations c
    WHERE c.workspace_id = $ws
      AND ($inst IS NULL OR c.instance_id = $inst)
      AND ($team IS NULL OR c.team_id = $team)
      AND ($tag IS NULL OR c.contact_id IN (SELECT contact_id FROM contact_tags WHERE tag_id = $tag))
)"""


def _period(column: str) -> str:
    return (f"CASE WHEN {column} >= $start AND {column} < $end THEN 'cur' "
            f"WHEN {column} >= $pstart AND {column} < $start THEN 'prev' END")


def _q(sql: str, params: dict[str, Any]) -> pl.DataFrame:
    used = {key: value for key, value in params.items() if f"${key}" in sql}
    return store.query(sql, used)


def freshness() -> float | None:
    """Seconds since PostgreSQL was read for the numbers on screen ("dados de 40 s atrás")."""
    at = store.refreshed_at()
    return None if at is None else max(0.0, (now() - at).total_seconds())


def options(actor: Actor) -> dict[str, list[tuple[int, str]]]:
    """The filters' choices: numbers, teams, tags and people of the workspace, as (id, name)."""
    ws = {"ws": actor.workspace_id}
    pick = {
        "instances": "SELECT id, name FROM instances WHERE workspace_id = $ws ORDER BY name",
        "teams": "SELECT id, name FROM teams WHERE workspace_id = $ws ORDER BY name",
        "tags": "SELECT id, name FROM tags WHERE workspace_id = $ws ORDER BY lower(name)",
        "funnels": "SELECT id, name FROM funnels WHERE workspace_id = $ws ORDER BY name",
    }
    return {key: [tuple(row) for row in _q(sql, ws).iter_rows()] for key, sql in pick.items()}


# -- Painel ---------------------------------------------------------------------------------------------------------

_SENT = """
sent AS (SELECT r.contact_id, min(e.created_at) AS sent_at FROM funnel_events e JOIN funnel_runs r ON r.id = e.run_id
         WHERE e.workspace_id = $ws AND e.node_type = 'odoo' AND e.output = 'sucesso' GROUP BY ALL
         UNION ALL
         SELECT contact_id, NULL FROM crm_leads)"""
"""Contacts sent to the CRM: a successful *Enviar para Odoo* step (with its time), or a CRM lead id on the contact
(``store.CRM_COLUMNS``, no time of its own)."""


def crm_available(actor: Actor) -> bool:
    """Whether the actor's workspace sends leads to a CRM: an *Enviar para Odoo* step ran there, or one of its
    contacts has a CRM lead id; the card and the funnel stage are hidden otherwise (a workspace without Odoo
    sees no row of zeros)."""
    ws = {"ws": actor.workspace_id}
    if store.has("crm") and _q("SELECT count(*) AS n FROM crm_leads l JOIN contacts c ON c.id = l.contact_id "
                               "WHERE c.workspace_id = $ws", ws).item():
        return True
    return bool(_q("SELECT count(*) AS n FROM funnel_events WHERE workspace_id = $ws AND node_type = 'odoo'",
                   ws).item())


def overview(actor: Actor, filters: Filters) -> dict[str, Any]:
    """The Painel: KPI cards (with the previous period of the same length), the conversion funnel, new
    conversations per day and inbound messages by weekday x hour.

    Raises:
        InvalidInput: a bad period. Forbidden: not an admin or supervisor.
    """
    actor.require("admin", "supervisor")
    ctx = _context(actor, filters)
    p = {**ctx.params, "qualified": ctx.settings.qualified_tag.lower()}
    counts = _q(f"""
        WITH {_SCOPE},
        contacts_in AS (
            SELECT k.* FROM contacts k WHERE k.workspace_id = $ws
              AND ($inst IS NULL OR k.instance_id = $inst)
              AND ($tag IS NULL OR k.id IN (SELECT contact_id FROM contact_tags WHERE tag_id = $tag))
              AND ($team IS NULL OR k.id IN (SELECT contact_id FROM conv))
        )
        SELECT 'new_conversations' AS metric, {_period('created_at')} AS period, count(*)::DOUBLE AS value
            FROM conv GROUP BY ALL
        UNION ALL
        SELECT 'new_contacts', {_period('created_at')}, count(*) FROM contacts_in GROUP BY ALL
        UNION ALL
        SELECT 'qualified', {_period('ct.created_at')}, count(DISTINCT ct.contact_id)
            FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id AND g.workspace_id = $ws
            JOIN contacts_in k ON k.id = ct.contact_id WHERE lower(g.name) = $qualified GROUP BY ALL
        UNION ALL
        SELECT 'open_now', 'cur', count(*) FROM conv WHERE status <> 'closed'
        UNION ALL
        SELECT 'frt_median', {_period('e.replied_at')},
               quantile_cont(epoch(e.replied_at) - epoch(e.clock_at), 0.5)
            FROM episodes e JOIN conv c ON c.id = e.conversation_id WHERE e.replied_at IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'frt_p90', {_period('e.replied_at')}, quantile_cont(epoch(e.replied_at) - epoch(e.clock_at), 0.9)
            FROM episodes e JOIN conv c ON c.id = e.conversation_id WHERE e.replied_at IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'resolution_median', {_period('e.closed_at')},
               quantile_cont(epoch(e.closed_at) - epoch(e.started_at), 0.5)
            FROM episodes e JOIN conv c ON c.id = e.conversation_id WHERE e.closed_at IS NOT NULL GROUP BY ALL
    """, p)
    found = {(row["metric"], row["period"]): row["value"] for row in counts.iter_rows(named=True)}
    crm = crm_available(actor)
    if crm:
        # contacts sent in the period (by the step's time; a lead id without one counts with its conversation's)
        sent = _q(f"""
            WITH {_SCOPE}, {_SENT}
            SELECT {_period('coalesce(s.sent_at, c.created_at)')} AS period, count(DISTINCT c.contact_id)::DOUBLE
            FROM conv c JOIN sent s ON s.contact_id = c.contact_id GROUP BY ALL
        """, p)
        found.update({("sent_to_crm", row[0]): row[1] for row in sent.iter_rows()})
    kpis = []
    cards = [("new_conversations", "count"), ("new_contacts", "count"), ("qualified", "count"),
             ("sent_to_crm", "count"), ("open_now", "count"), ("frt_median", "duration"), ("frt_p90", "duration"),
             ("resolution_median", "duration")]
    for metric, kind in cards:
        if metric == "sent_to_crm" and not crm:
            continue
        empty = 0 if kind == "count" else None
        kpis.append({"metric": metric, "kind": kind, "value": found.get((metric, "cur"), empty),
                     "previous": None if metric == "open_now" else found.get((metric, "prev"), empty)})
    funnel = _q(f"""
        WITH {_SCOPE}, {_SENT},
        new AS (SELECT id, contact_id FROM conv WHERE created_at >= $start AND created_at < $end)
        SELECT
            (SELECT count(*) FROM new) AS new_conversations,
            (SELECT count(*) FROM new n WHERE n.contact_id IN (
                SELECT ct.contact_id FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id
                WHERE g.workspace_id = $ws AND lower(g.name) = $qualified)) AS qualified,
            (SELECT count(*) FROM new n WHERE n.contact_id IN (SELECT contact_id FROM sent)) AS sent_to_crm,
            (SELECT count(*) FROM new n WHERE n.id IN (
                SELECT conversation_id FROM episodes WHERE replied_at IS NOT NULL)) AS answered
    """, p).row(0, named=True)
    stages = [("new_conversations", funnel["new_conversations"]), ("qualified", funnel["qualified"])]
    if crm:
        stages.append(("sent_to_crm", funnel["sent_to_crm"]))
    stages.append(("answered", funnel["answered"]))
    per_day = _q(f"""
        WITH {_SCOPE}
        SELECT CAST(timezone($tz, created_at) AS DATE) AS day, count(*) AS conversations FROM conv
        WHERE created_at >= $start AND created_at < $end GROUP BY ALL ORDER BY day
    """, p)
    days = pl.DataFrame({"day": pl.date_range(filters.start, filters.end, eager=True)})
    per_day = days.join(per_day, on="day", how="left").with_columns(pl.col("conversations").fill_null(0))
    heatmap = _q(f"""
        WITH {_SCOPE}
        SELECT isodow(timezone($tz, m.created_at)) - 1 AS weekday, hour(timezone($tz, m.created_at)) AS hour,
               count(*) AS messages
        FROM messages m JOIN conv c ON c.id = m.conversation_id
        WHERE m.workspace_id = $ws AND m.direction = 'in' AND m.created_at >= $start AND m.created_at < $end
        GROUP BY ALL ORDER BY weekday, hour
    """, p)
    return {"kpis": kpis, "funnel": stages, "per_day": per_day, "heatmap": heatmap, "zone": ctx.zone}


# -- Equipe ---------------------------------------------------------------------------------------------------------

def _durations(ctx: _Context, business: bool) -> tuple[str, str]:
    """SQL for an episode's first-response and resolution seconds (wall clock or business hours)."""
    if not business:
        return "epoch(e.replied_at) - epoch(e.clock_at)", "epoch(e.closed_at) - epoch(e.started_at)"

    def b(column: str) -> str:
        # the hours' own zone when one was set, else the workspace's
        return metrics.business_seconds(f"timezone($hours_tz, {column})", ctx.settings.hours)

    return (f"{b('e.replied_at')} - {b('e.clock_at')}", f"{b('e.closed_at')} - {b('e.started_at')}")


# episodes the Equipe figures look at (replied or closed in the period): durations are computed for these only
_IN_PERIOD = "(e.replied_at >= $start AND e.replied_at < $end) OR (e.closed_at >= $start AND e.closed_at < $end)"


def team(actor: Actor, filters: Filters, business_hours: bool = False) -> dict[str, Any]:
    """The Equipe report: per person and per team — assigned, resolved, open now, median/p90 first response,
    median resolution, messages sent, share within the SLA — plus the first-response distribution.

    An agent gets only their own row, no team table, and the distribution of their own replies.
    """
    ctx = _context(actor, filters)
    frt, resolution = _durations(ctx, business_hours)
    p = {**ctx.params, "sla": ctx.settings.sla_minutes * 60, "me": None if actor.is_manager else actor.user_id}
    people = _q(f"""
        WITH {_SCOPE},
        ep AS (SELECT e.*, c.team_id, {frt} AS frt_s, {resolution} AS resolution_s
               FROM episodes e JOIN conv c ON c.id = e.conversation_id WHERE {_IN_PERIOD}),
        person AS (
            SELECT m.user_id, u.name FROM members m JOIN users u ON u.id = m.user_id
            WHERE m.workspace_id = $ws AND ($me IS NULL OR m.user_id = $me)
        ),
        assigned AS (SELECT e.agent_id AS user_id, count(DISTINCT e.conversation_id) AS n
                     FROM conversation_events e JOIN conv c ON c.id = e.conversation_id
                     WHERE e.kind = 'assigned' AND e.created_at >= $start AND e.created_at < $end GROUP BY ALL),
        resolved AS (SELECT resolved_by AS user_id, count(*) AS n, quantile_cont(resolution_s, 0.5) AS median_s
                     FROM ep WHERE closed_at >= $start AND closed_at < $end GROUP BY ALL),
        replied AS (SELECT replied_by AS user_id, quantile_cont(frt_s, 0.5) AS median_s,
                           quantile_cont(frt_s, 0.9) AS p90_s, count(*) AS n,
                           count(*) FILTER (WHERE frt_s <= $sla) AS met
                    FROM ep WHERE replied_at >= $start AND replied_at < $end GROUP BY ALL),
        open AS (SELECT agent_id AS user_id, count(*) AS n FROM conv WHERE status <> 'closed' GROUP BY ALL),
        sent AS (SELECT m.sent_by_user_id AS user_id, count(*) AS n
                 FROM messages m JOIN conv c ON c.id = m.conversation_id
                 WHERE m.workspace_id = $ws AND m.direction = 'out' AND m.sent_by_user_id IS NOT NULL
                   AND m.created_at >= $start AND m.created_at < $end GROUP BY ALL)
        SELECT p.user_id, p.name, coalesce(a.n, 0) AS assigned, coalesce(r.n, 0) AS resolved_count,
               coalesce(o.n, 0) AS open_now, f.median_s AS frt_median_s, f.p90_s AS frt_p90_s,
               r.median_s AS resolution_median_s, coalesce(s.n, 0) AS messages_sent,
               CASE WHEN f.n > 0 THEN f.met / f.n END AS sla_share
        FROM person p LEFT JOIN assigned a USING (user_id) LEFT JOIN resolved r USING (user_id)
        LEFT JOIN replied f USING (user_id) LEFT JOIN open o USING (user_id) LEFT JOIN sent s USING (user_id)
        ORDER BY p.name, p.user_id
    """, p)
    teams = pl.DataFrame()
    if actor.is_manager:
        teams = _q(f"""
            WITH {_SCOPE},
            ep AS (SELECT e.*, c.team_id, {frt} AS frt_s, {resolution} AS resolution_s
                   FROM episodes e JOIN conv c ON c.id = e.conversation_id WHERE {_IN_PERIOD})
            SELECT t.id AS team_id, t.name,
                (SELECT count(DISTINCT e.conversation_id) FROM conversation_events e JOIN conv c
                    ON c.id = e.conversation_id WHERE c.team_id = t.id AND e.kind = 'assigned'
                    AND e.created_at >= $start AND e.created_at < $end) AS assigned,
                count(*) FILTER (WHERE ep.closed_at >= $start AND ep.closed_at < $end) AS resolved_count,
                (SELECT count(*) FROM conv c WHERE c.team_id = t.id AND c.status <> 'closed') AS open_now,
                quantile_cont(ep.frt_s, 0.5) FILTER (WHERE ep.replied_at >= $start AND ep.replied_at < $end)
                    AS frt_median_s,
                quantile_cont(ep.frt_s, 0.9) FILTER (WHERE ep.replied_at >= $start AND ep.replied_at < $end)
                    AS frt_p90_s,
                quantile_cont(ep.resolution_s, 0.5) FILTER (WHERE ep.closed_at >= $start AND ep.closed_at < $end)
                    AS resolution_median_s,
                (SELECT count(*) FROM messages m JOIN conv c ON c.id = m.conversation_id WHERE c.team_id = t.id
                    AND m.direction = 'out' AND m.sent_by_user_id IS NOT NULL AND m.created_at >= $start
                    AND m.created_at < $end) AS messages_sent,
                count(*) FILTER (WHERE ep.replied_at >= $start AND ep.replied_at < $end AND ep.frt_s <= $sla)
                    / nullif(count(*) FILTER (WHERE ep.replied_at >= $start AND ep.replied_at < $end), 0)
                    AS sla_share
            FROM teams t LEFT JOIN ep ON ep.team_id = t.id
            WHERE t.workspace_id = $ws AND ($team IS NULL OR t.id = $team)
            GROUP BY t.id, t.name ORDER BY t.name
        """, p)
    cases = " ".join(f"WHEN frt_s < {hi} THEN '{label}'" for label, _, hi in metrics.FRT_BUCKETS
                     if hi != float("inf"))
    distribution = _q(f"""
        WITH {_SCOPE},
        ep AS (SELECT {frt} AS frt_s FROM episodes e JOIN conv c ON c.id = e.conversation_id
               WHERE e.replied_at >= $start AND e.replied_at < $end AND ($me IS NULL OR e.replied_by = $me))
        SELECT CASE {cases} ELSE '{metrics.FRT_BUCKETS[-1][0]}' END AS bucket, count(*) AS responses
        FROM ep GROUP BY ALL
    """, p)
    labels = pl.DataFrame({"bucket": [label for label, _, _ in metrics.FRT_BUCKETS]})
    distribution = labels.join(distribution, on="bucket", how="left").with_columns(
        pl.col("responses").fill_null(0))
    return {"people": people, "teams": teams, "distribution": distribution,
            "sla_minutes": ctx.settings.sla_minutes, "business_hours": business_hours}


# -- Funis ----------------------------------------------------------------------------------------------------------

def funnel_versions(actor: Actor, funnel_id: int) -> list[tuple[int, int]]:
    """The funnel's published versions as (version id, number), newest first (empty for another workspace's)."""
    actor.require("admin", "supervisor")
    rows = _q("""SELECT v.id, v.version FROM funnel_versions v JOIN funnels f ON f.id = v.funnel_id
                 WHERE f.workspace_id = $ws AND f.id = $funnel ORDER BY v.version DESC""",
              {"ws": actor.workspace_id, "funnel": funnel_id})
    return [tuple(row) for row in rows.iter_rows()]


def funnel(actor: Actor, funnel_id: int, filters: Filters, version_id: int | None = None) -> dict[str, Any]:
    """The Funis report of one funnel (optionally one version) for runs started in the period: entered,
    completed, in progress, and per step reached, left (the run ended there without completing), still there
    (in progress), errors and the median time from the previous step.

    A run still waiting at a step is not a drop-off: it is counted in ``in_progress`` until it ends.
    """
    actor.require("admin", "supervisor")
    ctx = _context(actor, filters)
    p = {**ctx.params, "funnel": funnel_id, "version": version_id}
    runs_sql = """
        runs AS (SELECT r.* FROM funnel_runs r JOIN conversations c ON c.id = r.conversation_id
                 WHERE r.workspace_id = $ws AND r.funnel_id = $funnel AND ($version IS NULL OR r.version_id = $version)
                   AND r.started_at >= $start AND r.started_at < $end
                   AND ($inst IS NULL OR c.instance_id = $inst) AND ($team IS NULL OR c.team_id = $team)
                   AND ($tag IS NULL OR c.contact_id IN (SELECT contact_id FROM contact_tags WHERE tag_id = $tag)))"""
    totals = _q(f"""
        WITH {runs_sql}
        SELECT count(*) AS entered, count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status IN {LIVE_RUNS}) AS in_progress,
               count(*) FILTER (WHERE status NOT IN {LIVE_RUNS} AND status <> 'completed') AS left
        FROM runs
    """, p).row(0, named=True)
    steps = _q(f"""
        WITH {runs_sql},
        ev AS (SELECT s.* FROM run_steps s
               WHERE s.workspace_id = $ws AND s.funnel_id = $funnel AND s.run_id IN (SELECT id FROM runs)),
        ends AS (SELECT e.node_id,
                        count(*) FILTER (WHERE r.status NOT IN {LIVE_RUNS} AND r.status <> 'completed') AS left,
                        count(*) FILTER (WHERE r.status IN {LIVE_RUNS}) AS in_progress
                 FROM ev e JOIN runs r ON r.id = e.run_id WHERE e.is_last GROUP BY e.node_id)
        SELECT e.node_id, any_value(e.node_type) AS node_type, count(*) FILTER (WHERE e.first_visit) AS reached,
               coalesce(any_value(n.left), 0) AS left, coalesce(any_value(n.in_progress), 0) AS in_progress,
               count(*) FILTER (WHERE e.status = 'error') AS errors,
               quantile_cont(epoch(e.created_at) - epoch(e.previous_at), 0.5)
                   FILTER (WHERE e.first_visit AND e.previous_at IS NOT NULL) AS median_from_previous_s,
               median(e.position) AS typical_position
        FROM ev e LEFT JOIN ends n USING (node_id)
        GROUP BY e.node_id ORDER BY reached DESC, typical_position, e.node_id
    """, p)
    steps = steps.with_columns(_step_names())
    # AI steps ('ai_reply'): runs that executed them, the share that collected every required field (outcome
    # "qualificado"), tokens and cost; None when the funnel has none, so the page shows nothing
    ai = _q(f"""
        WITH {runs_sql}
        SELECT e.node_id, any_value(e.node_type) AS node_type, count(DISTINCT e.run_id) AS executions,
               count(DISTINCT e.run_id) FILTER (WHERE e.ai_outcome = 'qualificado') / count(DISTINCT e.run_id)
                   AS complete_share,
               coalesce(sum(e.tokens), 0) AS tokens, sum(e.cost) AS cost
        FROM funnel_events e JOIN runs r ON r.id = e.run_id
        WHERE e.workspace_id = $ws AND e.funnel_id = $funnel AND e.node_type = 'ai_reply'
        GROUP BY e.node_id ORDER BY e.node_id
    """, p)
    ai = ai.with_columns(_step_names()).select("step", "node_id", "executions", "complete_share", "tokens",
                                                  "cost") if ai.height else None
    # A/B steps ('ab_split'): per step and branch, the contacts that took it (a contact counts once per branch),
    # their runs that completed, and the share now carrying the qualified tag; None without such steps
    ab = _q(f"""
        WITH {runs_sql},
        taken AS (SELECT DISTINCT e.node_id, e.output AS branch, r.contact_id, r.id AS run_id, r.status
                  FROM funnel_events e JOIN runs r ON r.id = e.run_id
                  WHERE e.workspace_id = $ws AND e.funnel_id = $funnel AND e.node_type = 'ab_split'
                    AND e.output IS NOT NULL),
        qualified AS (SELECT DISTINCT ct.contact_id FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id
                      WHERE g.workspace_id = $ws AND lower(g.name) = $qualified)
        SELECT t.node_id, 'ab_split' AS node_type, upper(t.branch) AS branch, count(DISTINCT t.contact_id) AS contacts,
               count(DISTINCT t.run_id) FILTER (WHERE t.status = 'completed') AS completed,
               count(DISTINCT t.contact_id) FILTER (WHERE q.contact_id IS NOT NULL) AS qualified,
               count(DISTINCT t.contact_id) FILTER (WHERE q.contact_id IS NOT NULL) / count(DISTINCT t.contact_id)
                   AS qualified_share
        FROM taken t LEFT JOIN qualified q USING (contact_id)
        GROUP BY ALL ORDER BY t.node_id, branch
    """, {**p, "qualified": ctx.settings.qualified_tag.lower()})
    ab = ab.with_columns(_step_names()).select("step", "node_id", "branch", "contacts", "completed", "qualified",
                                                  "qualified_share") if ab.height else None
    return {**totals, "steps": steps.drop("typical_position"), "ai": ai, "ab": ab}


def _step_names() -> pl.Expr:
    """A step's name for people: its type's pt-BR label and its id."""
    return pl.struct("node_type", "node_id").map_elements(
        lambda s: f"{type_label(s['node_type'])} · {s['node_id']}", return_dtype=pl.String).alias("step")


# -- drill-down and downloads --------------------------------------------------------------------------------------

DRILLS = ("new", "qualified", "sent_to_crm", "answered", "day", "person", "team", "open", "step_reached",
          "step_left", "frt_bucket")



def drill(actor: Actor, filters: Filters, kind: str, key: Any = None, business_hours: bool = False,
          funnel_id: int | None = None, version_id: int | None = None) -> list[int]:
    """The conversations behind a number (at most ``DRILL_LIMIT``, newest first).

    Args:
        kind: ``new`` (created in the period), ``qualified`` / ``sent_to_crm`` / ``answered`` (the Painel's
            conversion stages among those), ``day`` (created that local ``key`` date), ``person`` (replied
            to, resolved or assigned to user ``key`` in the period), ``team``, ``open`` (open now),
            ``step_reached`` / ``step_left`` (funnel ``funnel_id``'s node ``key``), ``frt_bucket`` (first
            responses in the period in bucket ``key``).
    """
    if kind not in DRILLS:
        raise InvalidInput(kind, key="error.invalid")
    if kind not in ("person", "frt_bucket") and not actor.is_manager:
        actor.require("admin", "supervisor")
    if kind == "person" and not actor.is_manager and key != actor.user_id:
        actor.require("admin", "supervisor")  # agents see their own figures only
    ctx = _context(actor, filters)
    p = {**ctx.params, "key": key, "funnel": funnel_id, "version": version_id, "limit": DRILL_LIMIT,
         "qualified": ctx.settings.qualified_tag.lower(),
         "me": None if actor.is_manager else actor.user_id}
    frt, _ = _durations(ctx, business_hours)
    if kind == "day":
        p["key"] = key if isinstance(key, date) else date.fromisoformat(str(key))
    where = {
        "new": "c.created_at >= $start AND c.created_at < $end",
        "qualified": """c.created_at >= $start AND c.created_at < $end AND c.contact_id IN (
                          SELECT ct.contact_id FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id
                          WHERE g.workspace_id = $ws AND lower(g.name) = $qualified)""",
        "sent_to_crm": """c.created_at >= $start AND c.created_at < $end AND c.contact_id IN (
                            SELECT contact_id FROM sent)""",
        "answered": """c.created_at >= $start AND c.created_at < $end AND c.id IN (
                         SELECT conversation_id FROM episodes WHERE replied_at IS NOT NULL)""",
        "day": "CAST(timezone($tz, c.created_at) AS DATE) = $key",
        "open": "c.status <> 'closed'",
        "team": "c.team_id = $key",
        "person": """c.id IN (SELECT conversation_id FROM episodes WHERE (replied_by = $key AND replied_at >= $start
                                AND replied_at < $end) OR (resolved_by = $key AND closed_at >= $start
                                AND closed_at < $end))
                     OR c.id IN (SELECT conversation_id FROM conversation_events WHERE kind = 'assigned'
                                AND agent_id = $key AND created_at >= $start AND created_at < $end)""",
        "step_reached": """c.id IN (SELECT r.conversation_id FROM funnel_runs r JOIN funnel_events e ON e.run_id = r.id
                           WHERE r.funnel_id = $funnel AND ($version IS NULL OR r.version_id = $version)
                             AND r.started_at >= $start AND r.started_at < $end AND e.node_id = $key)""",
        "step_left": f"""c.id IN (SELECT r.conversation_id FROM funnel_runs r JOIN run_steps l ON l.run_id = r.id
                           WHERE r.funnel_id = $funnel AND ($version IS NULL OR r.version_id = $version)
                             AND r.started_at >= $start AND r.started_at < $end AND l.node_id = $key AND l.is_last
                             AND r.status NOT IN {LIVE_RUNS} AND r.status <> 'completed')""",
        "frt_bucket": f"""c.id IN (SELECT e.conversation_id FROM episodes e
                           JOIN conversations c ON c.id = e.conversation_id
                           WHERE e.replied_at >= $start AND e.replied_at < $end AND ($me IS NULL OR e.replied_by = $me)
                             AND ({frt}) >= $lo AND ({frt}) < $hi)""",
    }[kind]
    if kind == "frt_bucket":
        bucket = {label: (lo, hi) for label, lo, hi in metrics.FRT_BUCKETS}.get(key)
        if bucket is None:
            raise InvalidInput(str(key), key="error.invalid")
        p["lo"], p["hi"] = bucket[0], min(bucket[1], 10**12)
    mine = "" if actor.is_manager else """AND (c.agent_id = $me OR c.id IN (
        SELECT conversation_id FROM episodes WHERE replied_by = $me))"""
    rows = _q(f"""
        WITH {_SCOPE}, {_SENT}
        SELECT c.id FROM conv c WHERE ({where}) {mine} ORDER BY c.created_at DESC, c.id DESC LIMIT $limit
    """, p)
    return rows["id"].to_list()


CONVERSATION_COLUMNS = ("conversation_id", "contact", "phone", "number", "team", "person", "created",
                        "first_response", "resolved", "tags", "funnel_outcome")


def conversation_rows(actor: Actor, conversation_ids: list[int]) -> pl.DataFrame:
    """One row per conversation (contact, number, team, person, created, first response, resolved, tags, funnel
    outcome), times in the workspace's zone; ids of other workspaces are left out, and for an agent those of
    conversations they neither own nor answered (``drill``'s rule)."""
    zone = workspaces.get_timezone(actor)
    ids = [int(i) for i in conversation_ids[:DRILL_LIMIT]]
    if not actor.is_manager:
        mine = _q("""SELECT id FROM conversations WHERE workspace_id = $ws AND id IN (SELECT unnest($ids::BIGINT[]))
                       AND (agent_id = $me OR id IN (SELECT conversation_id FROM episodes WHERE replied_by = $me))""",
                  {"ws": actor.workspace_id, "ids": ids, "me": actor.user_id})
        ids = mine["id"].to_list()
    frame = _q("""
        WITH picked AS (SELECT unnest($ids::BIGINT[]) AS id),
        last_run AS (SELECT r.conversation_id, arg_max(f.name || ': ' || r.status, r.started_at) AS outcome
                     FROM funnel_runs r JOIN funnels f ON f.id = r.funnel_id
                     WHERE r.conversation_id IN (SELECT id FROM picked) GROUP BY ALL),
        firsts AS (SELECT conversation_id, min(replied_at) AS first_response, max(closed_at) AS resolved
                   FROM episodes WHERE conversation_id IN (SELECT id FROM picked) GROUP BY ALL),
        tagged AS (SELECT ct.contact_id, string_agg(g.name, ', ' ORDER BY lower(g.name)) AS tags
                   FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id GROUP BY ALL)
        SELECT c.id AS conversation_id, k.name AS contact, k.phone, i.name AS number, tm.name AS team,
               u.name AS person, timezone($tz, c.created_at) AS created,
               timezone($tz, f.first_response) AS first_response,
               CASE WHEN c.status = 'closed' THEN timezone($tz, f.resolved) END AS resolved,
               tg.tags, lr.outcome AS funnel_outcome
        FROM conversations c JOIN picked USING (id) JOIN contacts k ON k.id = c.contact_id
        LEFT JOIN instances i ON i.id = c.instance_id LEFT JOIN teams tm ON tm.id = c.team_id
        LEFT JOIN users u ON u.id = c.agent_id LEFT JOIN firsts f ON f.conversation_id = c.id
        LEFT JOIN tagged tg ON tg.contact_id = c.contact_id LEFT JOIN last_run lr ON lr.conversation_id = c.id
        WHERE c.workspace_id = $ws ORDER BY c.created_at DESC, c.id DESC
    """, {"ids": ids, "ws": actor.workspace_id, "tz": zone})
    return frame.select(CONVERSATION_COLUMNS)


def labelled(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with pt-BR column headers (``analytics.col.<name>``), for downloads and tables."""
    return frame.rename({name: t(f"analytics.col.{name}") for name in frame.columns})


def to_csv(frame: pl.DataFrame) -> bytes:
    """A download as CSV (UTF-8 with BOM, so spreadsheet programs read the accents)."""
    return b"\xef\xbb\xbf" + labelled(frame).write_csv().encode()


def to_xlsx(frame: pl.DataFrame) -> bytes:
    """A download as an Excel workbook with one sheet."""
    out = io.BytesIO()
    labelled(frame).write_excel(out, worksheet=t("analytics.sheet"), autofit=True)
    return out.getvalue()


# -- notebooks ----------------------------------------------------------------------------------------------------

def by_source(actor: Actor, filters: Filters) -> pl.DataFrame:
    """Leads and conversion by source for contacts created in the period: the contact's "origem" field (an entry
    link fills it; else the number it wrote to), how many, how many carry the qualified tag and that share, and —
    when the workspace sends leads to a CRM — how many were sent; biggest sources first."""
    actor.require("admin", "supervisor")
    ctx = _context(actor, filters)
    p = {**ctx.params, "qualified": ctx.settings.qualified_tag.lower()}
    crm = crm_available(actor)
    frame = _q(f"""
        WITH {_SENT},
        leads AS (SELECT k.id, coalesce(k.source, i.name) AS source FROM contacts k
                  LEFT JOIN instances i ON i.id = k.instance_id
                  WHERE k.workspace_id = $ws AND k.created_at >= $start AND k.created_at < $end
                    AND ($inst IS NULL OR k.instance_id = $inst)
                    AND ($tag IS NULL OR k.id IN (SELECT contact_id FROM contact_tags WHERE tag_id = $tag))),
        qualified AS (SELECT DISTINCT ct.contact_id FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id
                      WHERE g.workspace_id = $ws AND lower(g.name) = $qualified)
        SELECT l.source, count(*) AS leads, count(q.contact_id) AS qualified,
               count(q.contact_id) / count(*) AS qualified_share,
               count(*) FILTER (WHERE l.id IN (SELECT contact_id FROM sent)) AS sent_to_crm
        FROM leads l LEFT JOIN qualified q ON q.contact_id = l.id
        GROUP BY ALL ORDER BY leads DESC, l.source
    """, p)
    return frame if crm else frame.drop("sent_to_crm")


def leads_over_time(actor: Actor, filters: Filters, by: str = "source") -> pl.DataFrame:
    """New contacts per week (local weeks starting on Monday) by ``source`` (the contact's "origem" field, else
    the number it wrote to) or tags added per week by ``tag``; columns ``week``, ``group``, ``leads``."""
    actor.require("admin", "supervisor")
    if by not in ("source", "tag"):
        raise InvalidInput(by, key="error.invalid")
    ctx = _context(actor, filters)
    if by == "source":
        sql = """
            SELECT date_trunc('week', timezone($tz, k.created_at))::DATE AS week,
                   coalesce(k.source, i.name) AS "group", count(*) AS leads
            FROM contacts k LEFT JOIN instances i ON i.id = k.instance_id
            WHERE k.workspace_id = $ws AND k.created_at >= $start AND k.created_at < $end
              AND ($inst IS NULL OR k.instance_id = $inst)
            GROUP BY ALL ORDER BY week, "group"
        """
    else:
        sql = """
            SELECT date_trunc('week', timezone($tz, ct.created_at))::DATE AS week, g.name AS "group",
                   count(*) AS leads
            FROM contact_tags ct JOIN tags g ON g.id = ct.tag_id JOIN contacts k ON k.id = ct.contact_id
            WHERE g.workspace_id = $ws AND k.workspace_id = $ws AND ct.created_at >= $start AND ct.created_at < $end
              AND ($inst IS NULL OR k.instance_id = $inst)
            GROUP BY ALL ORDER BY week, "group"
        """
    return _q(sql, ctx.params)
