"""Metric definitions on hand-built histories whose right answers are worked out by hand in each test.

Every figure goes the product's whole way: rows in PostgreSQL, ``store.refresh`` into DuckDB, a report.
"""

from __future__ import annotations

import shutil
from datetime import date

import pytest
from sqlalchemy import text

from tests.analytics_history import History
from tests.contact_rows import make_contact
from tests.factories import make_instance, make_workspace
from workbench.analytics import reports, store
from workbench.base.errors import InvalidInput, PermissionDenied
from workbench.services import workspace_settings
from workbench.store.db import session_scope

MIN, HOUR = 60, 3600


@pytest.fixture
def history(engine):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    yield History()
    store.close()


def period(start: str, end: str | None = None, **narrowing) -> reports.Filters:
    return reports.Filters(date.fromisoformat(start), date.fromisoformat(end or start), **narrowing)


def row(frame, **match):
    rows = [r for r in frame.iter_rows(named=True) if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, rows
    return rows[0]


def kpi(overview, metric):
    return next(k for k in overview["kpis"] if k["metric"] == metric)


def test_first_response_restarts_at_reassignment(history):
    h = history
    # Monday 2026-03-02: in at 10:00, A assigned 10:05, reassigned to B 10:30, B replies 10:45 -> 15 min, B's
    conv = h.conversation("2026-03-02 10:00")
    h.assign(conv, "2026-03-02 10:05", h.a)
    h.assign(conv, "2026-03-02 10:30", h.b)
    h.reply(conv, "2026-03-02 10:45", h.b)
    h.reply(conv, "2026-03-02 11:45", h.a)  # a later reply is not a first response
    store.refresh(full=True)
    team = reports.team(h.admin, period("2026-03-02"))
    b, a = row(team["people"], user_id=h.b.user_id), row(team["people"], user_id=h.a.user_id)
    assert b["frt_median_s"] == 15 * MIN and b["assigned"] == 1 and b["messages_sent"] == 1
    assert a["frt_median_s"] is None and a["assigned"] == 1 and a["messages_sent"] == 1
    assert kpi(reports.overview(h.admin, period("2026-03-02")), "frt_median")["value"] == 15 * MIN


def test_first_response_from_bot_handoff(history):
    h = history
    # in 09:00, the bot answers 09:00, a route step hands over at 09:10, A replies 09:40 -> 30 min
    conv = h.conversation("2026-03-03 09:00")
    h.reply(conv, "2026-03-03 09:00", None)
    h.event(conv, "2026-03-03 09:10", "bot_paused", None, reason="route")
    h.event(conv, "2026-03-03 09:20", "bot_paused", h.a, reason="agent")  # a manual pause is no handoff
    h.reply(conv, "2026-03-03 09:40", h.a)
    # no assignment nor handoff: from the contact's first message (08:00 -> 08:20 = 20 min)
    other = h.conversation("2026-03-03 08:00")
    h.reply(other, "2026-03-03 08:20", h.a)
    store.refresh(full=True)
    people = reports.team(h.admin, period("2026-03-03"))["people"]
    a = row(people, user_id=h.a.user_id)
    assert a["frt_median_s"] == 25 * MIN  # median of 30 and 20 min
    assert a["frt_p90_s"] == pytest.approx(20 * MIN + 0.9 * 10 * MIN)


def test_business_hours_across_a_weekend(history):
    h = history
    # hours Mon-Fri 09:00-18:00. Assigned Friday 17:00, replied Monday 10:00: 65 h of clock, 2 h of business
    conv = h.conversation("2026-03-06 16:50")
    h.assign(conv, "2026-03-06 17:00", h.a)
    h.reply(conv, "2026-03-09 10:00", h.a)
    # resolution: created Friday 16:50, closed Monday 11:00 -> 70 min + 2 h of business
    h.close(conv, "2026-03-09 11:00")
    store.refresh(full=True)
    filters = period("2026-03-06", "2026-03-09")
    clock = row(reports.team(h.admin, filters)["people"], user_id=h.a.user_id)
    assert clock["frt_median_s"] == 65 * HOUR
    business = row(reports.team(h.admin, filters, business_hours=True)["people"], user_id=h.a.user_id)
    assert business["frt_median_s"] == 2 * HOUR
    # credited to A (assigned at the close); 70 min on Friday + 2 h on Monday
    assert business["resolution_median_s"] == 70 * MIN + 2 * HOUR and business["resolved_count"] == 1
    # a different workspace schedule changes the answer: Saturday open 09-18 adds 9 h
    workspace_settings.save_setting(h.admin, "analytics", {"hours": {"days": [0, 1, 2, 3, 4, 5]}})
    business = row(reports.team(h.admin, filters, business_hours=True)["people"], user_id=h.a.user_id)
    assert business["frt_median_s"] == 11 * HOUR


def test_resolution_after_reopen_counts_from_the_reopen(history):
    h = history
    conv = h.conversation("2026-03-10 10:00")
    h.reply(conv, "2026-03-10 10:10", h.a)
    h.close(conv, "2026-03-10 11:00", h.a)  # first resolution: 1 h
    h.message(conv, "2026-03-11 09:00")  # the contact writes again: reopened
    h.reply(conv, "2026-03-11 09:30", h.b)  # a first response of the new episode: 30 min, B's
    h.close(conv, "2026-03-11 12:00", h.b)  # second resolution: 3 h from the reopen (not 26 h from creation)
    h.close(conv, "2026-03-11 12:05", h.b)  # closed again with nothing in between: no episode
    store.refresh(full=True)
    filters = period("2026-03-10", "2026-03-11")
    overview = reports.overview(h.admin, filters)
    assert kpi(overview, "resolution_median")["value"] == 2 * HOUR  # median of 1 h and 3 h
    people = reports.team(h.admin, filters)["people"]
    a, b = row(people, user_id=h.a.user_id), row(people, user_id=h.b.user_id)
    assert (a["resolved_count"], a["resolution_median_s"], a["frt_median_s"]) == (1, HOUR, 10 * MIN)
    assert (b["resolved_count"], b["resolution_median_s"], b["frt_median_s"]) == (1, 3 * HOUR, 30 * MIN)


def test_drop_off_with_runs_still_in_progress(history):
    h = history
    funnel = h.funnel()
    day = "2026-03-12"
    h.run(funnel, f"{day} 10:00", "completed", [("a", f"{day} 10:00", "ok"), ("b", f"{day} 10:02", "ok"),
                                                ("c", f"{day} 10:10", "ok")])
    h.run(funnel, f"{day} 11:00", "stopped", [("a", f"{day} 11:00", "ok"), ("b", f"{day} 11:04", "ok")])
    h.run(funnel, f"{day} 12:00", "waiting", [("a", f"{day} 12:00", "ok"), ("b", f"{day} 12:06", "waiting")])
    h.run(funnel, f"{day} 13:00", "failed", [("a", f"{day} 13:00", "error")])
    store.refresh(full=True)
    report = reports.funnel(h.admin, funnel[0], period(day))
    assert (report["entered"], report["completed"], report["in_progress"], report["left"]) == (4, 1, 1, 2)
    steps = report["steps"]
    assert steps["node_id"].to_list() == ["a", "b", "c"]
    a, b, c = (row(steps, node_id=n) for n in "abc")
    assert (a["reached"], a["left"], a["in_progress"], a["errors"]) == (4, 1, 0, 1)
    # the waiting run is still at b: in progress, not a drop-off
    assert (b["reached"], b["left"], b["in_progress"], b["median_from_previous_s"]) == (3, 1, 1, 4 * MIN)
    assert (c["reached"], c["left"], c["median_from_previous_s"]) == (1, 0, 8 * MIN)
    assert len(reports.drill(h.admin, period(day), "step_left", "b", funnel_id=funnel[0])) == 1
    assert len(reports.drill(h.admin, period(day), "step_reached", "b", funnel_id=funnel[0])) == 3


def test_time_zone_boundaries(history):
    h = history
    # 23:30 on Sunday 2026-03-01 in São Paulo is 02:30 UTC on Monday: it belongs to Sunday's bucket
    h.conversation("2026-03-01 23:30")
    h.conversation("2026-03-02 00:30")
    store.refresh(full=True)
    sunday = reports.overview(h.admin, period("2026-03-01"))
    assert sunday["per_day"]["conversations"].to_list() == [1]
    assert sunday["heatmap"].rows() == [(6, 23, 1)]  # weekday 6 = Sunday, 23 h local
    monday = reports.overview(h.admin, period("2026-03-02"))
    assert kpi(monday, "new_conversations")["value"] == 1 and kpi(monday, "new_conversations")["previous"] == 1
    assert monday["heatmap"].rows() == [(0, 0, 1)]


def test_kpis_compare_with_the_previous_period_and_count_qualified_leads(history):
    h = history
    first = h.conversation("2026-03-02 10:00")
    h.conversation("2026-03-03 10:00")
    h.conversation("2026-03-04 10:00")  # previous period: 02-03 (2 days); current: 04-05
    h.tag(first, "IA_Qualificado", "2026-03-04 11:00")  # tag names are matched ignoring case
    store.refresh(full=True)
    overview = reports.overview(h.admin, period("2026-03-04", "2026-03-05"))
    assert (kpi(overview, "new_conversations")["value"], kpi(overview, "new_conversations")["previous"]) == (1, 2)
    assert kpi(overview, "qualified")["value"] == 1 and kpi(overview, "open_now")["value"] == 3
    assert overview["funnel"] == [("new_conversations", 1), ("qualified", 0), ("answered", 0)]
    # the stages' conversations: the one tagged was created in the previous period
    assert len(reports.drill(h.admin, period("2026-03-02", "2026-03-05"), "qualified")) == 1
    assert reports.drill(h.admin, period("2026-03-04", "2026-03-05"), "qualified") == []


def test_another_workspace_is_never_counted_and_agents_see_their_own_row(history):
    h = history
    other = History("Outra")
    for place in (h, other):
        conv = place.conversation("2026-03-02 10:00")
        place.assign(conv, "2026-03-02 10:05", place.a)
        place.reply(conv, "2026-03-02 10:20", place.a)
    store.refresh(full=True)
    filters = period("2026-03-02")
    assert kpi(reports.overview(h.admin, filters), "new_conversations")["value"] == 1
    people = reports.team(h.admin, filters)["people"]
    assert set(people["user_id"]) == {h.admin.user_id, h.a.user_id, h.b.user_id}
    mine = reports.team(h.a, filters)
    assert mine["people"]["user_id"].to_list() == [h.a.user_id] and mine["teams"].is_empty()
    assert mine["distribution"]["responses"].sum() == 1
    assert reports.team(h.b, filters)["distribution"]["responses"].sum() == 0
    with pytest.raises(PermissionDenied):
        reports.overview(h.a, filters)
    with pytest.raises(PermissionDenied):
        reports.drill(h.a, filters, "person", h.b.user_id)
    ids = reports.drill(h.a, filters, "person", h.a.user_id)
    assert len(ids) == 1
    assert reports.conversation_rows(h.b, ids).is_empty()  # another agent's conversation, asked for by id
    # another workspace's conversation ids give nothing
    foreign = reports.drill(other.admin, filters, "new")
    assert reports.conversation_rows(h.admin, foreign).is_empty()
    assert reports.conversation_rows(h.admin, ids)["person"].to_list() == [None]


def test_bad_periods_are_refused_in_portuguese(history):
    with pytest.raises(InvalidInput) as end_first:
        reports.overview(history.admin, period("2026-03-05", "2026-03-01"))
    assert end_first.value.key == "error.analytics_period"
    with pytest.raises(InvalidInput) as too_long:
        reports.overview(history.admin, period("2024-01-01", "2026-03-01"))
    assert too_long.value.key == "error.analytics_period_long"


def test_first_response_distribution_buckets(history):
    h = history
    for minutes, day in ((30, "02"), (90, "03"), (300, "04"), (600, "05"), (1600, "06")):
        conv = h.conversation(f"2026-03-{day} 00:10")
        h.assign(conv, f"2026-03-{day} 00:10", h.a)
        hours, mins = divmod(10 + minutes, 60)
        h.reply(conv, f"2026-03-{int(day) + hours // 24:02d} {hours % 24:02d}:{mins:02d}", h.a)
    store.refresh(full=True)
    team = reports.team(h.admin, period("2026-03-01", "2026-03-10"))
    assert team["distribution"]["responses"].to_list() == [1, 1, 1, 1, 1]
    assert row(team["people"], user_id=h.a.user_id)["sla_share"] == 0.2  # 60 min target: only the 30 min one
    assert len(reports.drill(h.admin, period("2026-03-01", "2026-03-10"), "frt_bucket", ">24h")) == 1


def test_crm_and_ai_figures_appear_once_such_steps_ran(history):
    h = history
    funnel = h.funnel("Qualificação com IA")
    day = "2026-03-12"
    ai = {"total_tokens": 300, "cost_estimate": 0.002, "ai": {"outcome": "qualificado", "missing": []}}
    partial = {"total_tokens": 100, "ai": {"outcome": "incompleto", "missing": ["email"]}}
    for n, (data, sent) in enumerate(((ai, "sucesso"), (partial, "falha"), (ai, None))):
        steps = [("ia", f"{day} 1{n}:00", "ok", "ai_reply", "qualificado", data)]
        if sent:
            steps.append(("odoo", f"{day} 1{n}:01", "ok", "odoo", sent, {"service": "odoo"}))
        h.run(funnel, f"{day} 1{n}:00", "completed", steps)
    store.refresh(full=True)
    report = reports.funnel(h.admin, funnel[0], period(day))
    assert report["ai"].select("node_id", "executions", "complete_share", "tokens").rows() == [
        ("ia", 3, 2 / 3, 700)]
    assert report["ai"]["cost"].item() == pytest.approx(0.004)
    overview = reports.overview(h.admin, period(day))
    assert kpi(overview, "sent_to_crm")["value"] == 1 and ("sent_to_crm", 1) in overview["funnel"]
    other = reports.funnel(h.admin, h.funnel("Sem IA")[0], period(day))
    assert other["ai"] is None


def test_sent_to_crm_is_hidden_until_the_workspace_sends_leads_and_counted_then(history):
    h = history
    kept = h.conversation("2026-03-02 10:00")
    h.conversation("2026-03-02 11:00")
    other = make_workspace("Outra")  # another workspace's lead never shows the card here
    elsewhere = make_contact(other, make_instance(other), "Bia")
    with session_scope() as s:
        s.execute(text("UPDATE contacts SET odoo_lead_id = 9 WHERE id = :c"), {"c": elsewhere})
    store.refresh(full=True)
    overview = reports.overview(h.admin, period("2026-03-02"))
    assert "sent_to_crm" not in [k["metric"] for k in overview["kpis"]]
    assert "sent_to_crm" not in [name for name, _ in overview["funnel"]]
    with session_scope() as s:
        s.execute(text("UPDATE contacts SET odoo_lead_id = 7 WHERE id = (SELECT contact_id FROM conversations "
                       "WHERE id = :c)"), {"c": kept})
    store.refresh(full=True)
    overview = reports.overview(h.admin, period("2026-03-02"))
    assert kpi(overview, "sent_to_crm")["value"] == 1
    assert ("sent_to_crm", 1) in overview["funnel"]


def test_leads_and_conversion_by_source(history):
    """An entry link's source (the contact's "origem" field), else the number written to; qualified = the tag."""
    h = history
    convs = [h.conversation(f"2026-03-10 1{n}:00") for n in range(5)]
    with session_scope() as s:
        for conv, source in zip(convs, ["Instagram", "Instagram", "Instagram", "site"], strict=False):
            s.execute(text("UPDATE contacts SET custom_data = jsonb_build_object('origem', CAST(:o AS text)) "
                           "WHERE id = (SELECT contact_id FROM conversations WHERE id = :c)"), {"o": source, "c": conv})
    h.tag(convs[0], "ia_qualificado", "2026-03-10 12:00")
    h.tag(convs[3], "ia_qualificado", "2026-03-11 09:00")
    h.conversation("2026-03-20 10:00")  # outside the period
    store.refresh(full=True)
    frame = reports.by_source(h.admin, period("2026-03-10", "2026-03-12"))
    number = h.instance_name()  # the contact without "origem" counts under its number
    assert sorted(frame.rows(), key=lambda row: (-row[1], row[0])) == frame.rows()  # biggest first, then by name
    assert set(frame.rows()) == {("Instagram", 3, 1, 1 / 3), ("site", 1, 1, 1.0), (number, 1, 0, 0.0)}
    with pytest.raises(PermissionDenied):
        reports.by_source(h.a, period("2026-03-10"))


def test_ab_branches_count_contacts_once_with_completed_runs_and_qualified_share(history):
    h = history
    funnel = h.funnel("Teste de saudação")
    day = "2026-03-12"
    runs = []
    for n, (branch, status) in enumerate((("a", "completed"), ("a", "failed"), ("b", "completed"),
                                          ("b", "completed"), ("b", "waiting"))):
        runs.append(h.run(funnel, f"{day} 1{n}:00", status, [
            ("gatilho", f"{day} 1{n}:00", "ok", "trigger", "next"),
            ("ab", f"{day} 1{n}:00", "ok", "ab_split", branch, {"branch": branch})]))
    with session_scope() as s:
        conv = s.execute(text("SELECT conversation_id FROM funnel_runs WHERE id = :r"), {"r": runs[2]}).scalar()
        again = h.run(funnel, f"{day} 16:00", "completed", [("ab", f"{day} 16:00", "ok", "ab_split", "b")],
                      conv=conv)  # the same contact again on its branch: one contact, two completed runs
    h.tag(conv, "ia_qualificado", f"{day} 17:00")
    assert again
    store.refresh(full=True)
    report = reports.funnel(h.admin, funnel[0], period(day))
    assert report["ab"].select("node_id", "branch", "contacts", "completed", "qualified").rows() == [
        ("ab", "A", 2, 1, 0), ("ab", "B", 3, 3, 1)]
    assert report["ab"]["qualified_share"].to_list() == [0.0, pytest.approx(1 / 3)]
    assert reports.funnel(h.admin, h.funnel("Sem teste")[0], period(day))["ab"] is None
