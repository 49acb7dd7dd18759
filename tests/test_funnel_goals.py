"""Funnel goals: conversion within N days of entering, by A/B branch and entry link, and when the
two-proportion test lets the Funis cards conclude."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.factories import make_actor, make_workspace
from tests.test_ab_split import split_funnel
from tests.test_funnel_runtime import say, setup_workspace
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import entry_links, funnel_goals, runs
from workbench.services.funnel_goals import (
    MIN_GROUP_CONTACTS,
    Entry,
    Group,
    build_report,
    check_goal,
    compare,
    converted,
    two_proportion_p,
)
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def entry(n: int, branch: str | None = None, link: str | None = None, after_days: float | None = None) -> Entry:
    return Entry(n, T0, branch, link, None if after_days is None else T0 + timedelta(days=after_days))


def test_conversion_counts_only_within_the_window_after_entering():
    assert converted(entry(1, after_days=0), 7)
    assert converted(entry(1, after_days=7), 7)
    assert not converted(entry(1, after_days=7.01), 7)
    assert not converted(entry(1, after_days=-1), 7)  # before entering: not thanks to the funnel
    assert not converted(entry(1), 7)


def test_a_hand_built_history():
    entries = [entry(1, "A", "Instagram", 1), entry(2, "A", "Instagram"), entry(3, "B", "Site", 2),
               entry(4, "B", None, 30), entry(5, None, "Site", 3)]
    report = build_report({"kind": "tag", "tag": "cliente", "days": 7}, entries)
    assert report.overall == Group("", 5, 3)
    assert report.branches == [Group("A", 2, 1), Group("B", 2, 1)]
    assert report.links == [Group("Instagram", 2, 1), Group("Site", 2, 2)]
    assert report.link_verdict.reason == "too_few" and not report.link_verdict.conclusive


def test_the_z_test_against_a_known_value():
    # 60/100 against 40/100: z = 2.828..., two-sided p = 0.00468
    assert two_proportion_p(60, 100, 40, 100) == pytest.approx(0.004678, abs=1e-5)
    assert two_proportion_p(0, 50, 0, 50) is None and two_proportion_p(1, 0, 1, 10) is None


@pytest.mark.parametrize("a, b, conclusive, reason", [
    ((60, 100), (40, 100), True, None),
    ((52, 100), (48, 100), False, "not_significant"),  # same size, difference within chance
    ((20, MIN_GROUP_CONTACTS - 1), (0, MIN_GROUP_CONTACTS - 1), False, "too_few"),  # big gap, too few contacts
    ((3, 200), (0, 200), False, "too_few"),  # fewer than 5 expected conversions
    ((30, 30), (0, 30), True, None),  # exactly the threshold
])
def test_the_note_thresholds(a, b, conclusive, reason):
    verdict = compare([Group("A", a[1], a[0]), Group("B", b[1], b[0])])
    assert (verdict.conclusive, verdict.reason) == (conclusive, reason)
    assert verdict.best == "A"
    assert compare([Group("A", 100, 50)]).reason == "one_group"


def test_goals_are_checked():
    assert check_goal(None) is None and check_goal({"kind": ""}) is None
    assert check_goal({"kind": "tag", "tag": " cliente ", "days": 7}) == {"kind": "tag", "tag": "cliente", "days": 7}
    for bad in ({"kind": "x", "days": 1}, {"kind": "tag", "tag": "", "days": 1}, {"kind": "step", "days": 3},
                {"kind": "tag", "tag": "a", "days": 0}, {"kind": "tag", "tag": "a", "days": 366},
                {"kind": "tag", "tag": "a", "days": "7"}):
        with pytest.raises(InvalidInput):
            check_goal(bad)


def test_a_report_from_real_runs(engine, r):
    ws, inst, admin, (fid,) = setup_workspace(("Promo", split_funnel))
    link = entry_links.create_link(admin, name="Bio", instance_id=inst, source="Instagram", phone="5511988887777")
    assert funnel_goals.goal_report(admin, fid) is None
    funnel_goals.set_goal(admin, fid, {"kind": "step", "node_id": "msg_a", "days": 7})
    phones = [f"551190000{i:04d}" for i in range(12)]
    for phone in phones[:4]:
        say(inst, f"promo ref {link['code']}", phone=phone)
    for phone in phones[4:]:
        say(inst, "promo", phone=phone)
    report = funnel_goals.goal_report(admin, fid)
    by_label = {g.label: g for g in report.branches}  # random draws: a branch may (rarely) get nobody
    a, b = by_label.get("A", Group("A", 0, 0)), by_label.get("B", Group("B", 0, 0))
    assert report.overall.contacts == 12 and a.contacts + b.contacts == 12
    assert (a.converted, b.converted) == (a.contacts, 0)  # the goal step is branch A's message
    assert [(g.label, g.contacts) for g in report.links] == [("Bio", 4)]
    assert report.branch_verdict.reason == "too_few"

    # A tag goal: only tags added after entering count.
    funnel_goals.set_goal(admin, fid, {"kind": "tag", "tag": "Cliente", "days": 30})
    with session_scope() as s:
        contact_id = s.scalars(select(Contact.id).where(Contact.phone == phones[0])).one()
        runs.tag_contact(s, ws, contact_id, "cliente")  # as an agent's tagging records it:
        s.add(ActivityEvent(workspace_id=ws, kind="tag_added", subject_type="contact", subject_id=contact_id,
                            data={"tag": "cliente"}))
    assert funnel_goals.goal_report(admin, fid).overall == Group("", 12, 1)

    agent = make_actor(ws, "agent")
    with pytest.raises(PermissionDenied):
        funnel_goals.goal_report(agent, fid)
    with pytest.raises(NotFound):
        funnel_goals.set_goal(make_actor(make_workspace()), fid, None)


def test_the_funis_card_sets_a_goal_and_shows_conversion_by_branch(engine, r):
    from tests.test_pages_funnels import open_page

    ws, inst, admin, (fid,) = setup_workspace(("Promo", split_funnel))
    for i in range(4):
        say(inst, "promo", phone=f"551190001{i:04d}")
    at = open_page(admin)
    assert not at.exception
    at.selectbox(key=f"funnels_goal_kind_{fid}").set_value("step")
    at.selectbox(key=f"funnels_goal_node_{fid}").set_value("msg_a")
    at.number_input(key=f"funnels_goal_days_{fid}").set_value(7)
    at = at.button(key=f"funnels_goal_save_{fid}").click().run()
    assert not at.exception
    assert funnel_goals.goal_report(admin, fid).goal == {"kind": "step", "node_id": "msg_a", "days": 7}
    shown = [el.value for el in at.text]
    assert any(v.startswith("Conversão na meta: ") and v.endswith("de 4 contatos)") for v in shown)
    assert any(v.startswith("Ainda não dá para concluir") for v in shown)
    table = at.dataframe[0].value
    assert list(table.columns) == ["Grupo", "Contatos", "Converteram", "Conversão"]
    assert sum(table["Contatos"]) == 4
    # A tag goal without a tag is refused in pt-BR, and the goal stays as it was.
    at.selectbox(key=f"funnels_goal_kind_{fid}").set_value("tag")
    at.text_input(key=f"funnels_goal_tag_{fid}").set_value("  ")
    at = at.button(key=f"funnels_goal_save_{fid}").click().run()
    assert "Informe a tag que conta como meta (até 80 caracteres)." in [e.value for e in at.error]
    assert funnel_goals.goal_report(admin, fid).goal["node_id"] == "msg_a"
