"""Bulk actions on contacts: inline and as a resumable job, scope, roles, activity, no funnel started."""

from __future__ import annotations

import pytest
from rq import Queue
from sqlalchemy import func, select

from engine.worker.contact_jobs import run
from tests.contact_rows import make_contact
from tests.factories import make_actor, make_instance, make_team, make_workspace
from tests.test_funnel_runtime import bot_texts
from tests.test_funnel_tag_trigger import linear, on_tag, run_rows, send, workspace
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import contact_bulk, contact_jobs, contacts
from workbench.services.contact_list import list_contacts
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, ContactTag, Conversation, Tag, WorkspaceMember


@pytest.fixture
def shop(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    return ws, inst, make_actor(ws)


def tags_of(contact_id: int) -> list[str]:
    with session_scope() as s:
        return sorted(s.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                                .where(ContactTag.contact_id == contact_id)), key=str.lower)


def row_of(actor, contact_id: int) -> dict:
    return next(row for row in list_contacts(actor, limit=500)["rows"] if row["id"] == contact_id)


def events(kind: str | None = None) -> list[tuple]:
    with session_scope() as s:
        query = select(ActivityEvent.subject_type, ActivityEvent.subject_id, ActivityEvent.kind, ActivityEvent.data)
        if kind:
            query = query.where(ActivityEvent.kind == kind)
        return [tuple(row) for row in s.execute(query.order_by(ActivityEvent.id))]


def test_bulk_tags_start_no_funnel_where_an_agents_tag_would(engine, r):
    inst, admin, conversation = workspace(("Clube VIP", linear(on_tag("VIP"), send("Bem-vindo!"))))
    lead = conversation["contact_id"]
    assert contact_bulk.run_bulk(admin, "add_tags", ids=[lead], tags=["vip"]) == {"updated": 1, "skipped": 0}
    assert run_rows() == [] and bot_texts() == []  # receptive only: a bulk action never sends
    contacts.remove_tag(admin, lead, "vip")
    contacts.add_tag(admin, lead, "vip")  # the same tag by hand starts the funnel
    assert [row[0] for row in run_rows()] == ["Clube VIP"]


def test_inline_tags_on_a_selection_record_activity(shop):
    ws, inst, admin = shop
    a = make_contact(ws, inst, "A", tags=("lead",))
    b = make_contact(ws, inst, "B")
    c = make_contact(ws, inst, "C")
    result = contact_bulk.run_bulk(admin, "add_tags", ids=[a, b], tags=["VIP", "lead"])
    assert result == {"updated": 2, "skipped": 0}
    assert tags_of(a) == ["lead", "VIP"] and tags_of(b) == ["lead", "VIP"] and tags_of(c) == []
    added = [(e[1], e[3]["tag"], e[3]["source"]) for e in events("tag_added")]
    assert sorted(added) == [(a, "VIP", "bulk"), (b, "VIP", "bulk"), (b, "lead", "bulk")]
    summary = events("bulk")[-1]
    assert summary[0] == "workspace" and summary[3]["action"] == "add_tags" and summary[3]["rows"] == 2

    result = contact_bulk.run_bulk(admin, "remove_tags", flt={"tags_any": ["vip"]}, tags=["vip"])
    assert result == {"updated": 2, "skipped": 0}
    assert tags_of(a) == ["lead"]
    assert sorted((e[1], e[3]["tag"]) for e in events("tag_removed")) == [(a, "VIP"), (b, "VIP")]


def test_assign_and_clear_by_the_manual_assignment_rules(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    team = make_team(ws, "Vendas", agent.user_id)
    a = make_contact(ws, inst, "A")
    b = make_contact(ws, inst, "B")
    no_conv = make_contact(ws, inst, "Sem conversa", conversation=False)
    result = contact_bulk.run_bulk(admin, "assign", ids=[a, b, no_conv], agent_id=agent.user_id, team_id=team)
    assert result == {"updated": 2, "skipped": 1}
    assert row_of(admin, a)["responsible"] == agent.name
    assert [e[3] for e in events("assigned")][0] == {"agent_id": agent.user_id, "team_id": team, "source": "bulk"}
    # agents may only take conversations for themselves (or give them to a team)
    with pytest.raises(PermissionDenied):
        contact_bulk.run_bulk(agent, "assign", ids=[a], agent_id=admin.user_id)
    assert contact_bulk.run_bulk(agent, "assign", ids=[a], agent_id=None, team_id=None)["updated"] == 1
    with session_scope() as s:
        conv = s.scalar(select(Conversation).where(Conversation.contact_id == a))
        assert (conv.agent_id, conv.team_id) == (None, None)
    other_team = make_team(make_workspace("Outra"), "X")
    with pytest.raises(NotFound):
        contact_bulk.run_bulk(admin, "assign", ids=[a], team_id=other_team)


def test_scope_another_workspace_and_agents(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    other = make_actor(ws, "agent")
    mine = make_contact(ws, inst, "Meu", agent_id=agent.user_id)
    theirs = make_contact(ws, inst, "Do outro", agent_id=other.user_id)
    foreign_ws = make_workspace("Outra")
    foreign = make_contact(foreign_ws, make_instance(foreign_ws), "Alheio")
    for ids in ([theirs], [mine, theirs], [foreign], [10**30]):
        with pytest.raises(NotFound):
            contact_bulk.run_bulk(agent, "add_tags", ids=ids, tags=["x"])
    with pytest.raises(NotFound):
        contact_bulk.run_bulk(admin, "add_tags", ids=[foreign], tags=["x"])
    # on a filter, an agent touches only what they see
    assert contact_bulk.run_bulk(agent, "add_tags", flt={}, tags=["x"]) == {"updated": 1, "skipped": 0}
    assert tags_of(theirs) == [] and tags_of(mine) == ["x"]
    assert contact_bulk.count_targets(agent, flt={}) == 1 and contact_bulk.count_targets(admin, flt={}) == 2


def test_delete_is_for_admins_and_needs_the_count_confirmed(shop):
    ws, inst, admin = shop
    supervisor = make_actor(ws, "supervisor")
    ids = [make_contact(ws, inst, f"C{i}", tags=("sair",)) for i in range(3)]
    keep = make_contact(ws, inst, "Fica")
    with pytest.raises(PermissionDenied):
        contact_bulk.run_bulk(supervisor, "delete", flt={"tags_any": ["sair"]}, confirmed_count=3)
    count = contact_bulk.count_targets(admin, flt={"tags_any": ["sair"]})
    assert count == 3
    make_contact(ws, inst, "Chegou agora", tags=("sair",))
    with pytest.raises(Conflict) as changed:
        contact_bulk.run_bulk(admin, "delete", flt={"tags_any": ["sair"]}, confirmed_count=count)
    assert "agora são 4 contatos" in error_text(changed.value)
    assert contact_bulk.run_bulk(admin, "delete", flt={"tags_any": ["sair"]}, confirmed_count=4)["updated"] == 4
    with session_scope() as s:
        assert list(s.scalars(select(Contact.id))) == [keep]
    assert events("bulk")[-1][3] == {"action": "delete", "rows": 4, "source": "bulk"}
    assert not set(ids) & {row["id"] for row in list_contacts(admin)["rows"]}


def test_bad_actions_and_tags(shop):
    ws, inst, admin = shop
    a = make_contact(ws, inst, "A")
    for kwargs in ({"tags": []}, {"tags": ["  "]}, {"tags": [f"t{i}" for i in range(60)]}, {"tags": ["x" * 81]}):
        with pytest.raises(InvalidInput):
            contact_bulk.run_bulk(admin, "add_tags", ids=[a], **kwargs)
    with pytest.raises(InvalidInput):
        contact_bulk.run_bulk(admin, "send_message", ids=[a])


def test_above_the_limit_a_resumable_job_runs_it(shop, monkeypatch):
    ws, inst, admin = shop
    monkeypatch.setattr(contact_bulk, "BULK_SYNC_LIMIT", 5)
    monkeypatch.setattr(contact_bulk, "BATCH", 4)
    ids = [make_contact(ws, inst, f"C{i:02}") for i in range(11)]
    result = contact_bulk.run_bulk(admin, "add_tags", flt={}, tags=["campanha"])
    assert result["total"] == 11
    job_id = result["job_id"]
    assert len(Queue("default", connection=get_redis()).get_job_ids()) == 1
    assert contact_jobs.job_status(admin, job_id)["status"] == "queued"
    assert all(tags_of(i) == [] for i in ids)  # nothing done in the request

    # the worker dies after its first batch committed
    real_apply = contact_bulk._apply
    calls = []

    def dies_on_second_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("killed")
        return real_apply(*args)

    monkeypatch.setattr(contact_bulk, "_apply", dies_on_second_batch)
    with pytest.raises(SystemExit):
        run(job_id)
    status = contact_jobs.job_status(admin, job_id)
    assert (status["status"], status["done"], status["result"]) == ("running", 4, {"updated": 4, "skipped": 0})
    assert sum(tags_of(i) == ["campanha"] for i in ids) == 4

    monkeypatch.setattr(contact_bulk, "_apply", real_apply)
    assert run(job_id) == {"updated": 11, "skipped": 0}  # RQ's retry resumes after the committed batch
    status = contact_jobs.job_status(admin, job_id)
    assert (status["status"], status["done"], status["total"]) == ("done", 11, 11)
    assert all(tags_of(i) == ["campanha"] for i in ids)
    per_contact = [e[1] for e in events("tag_added")]
    assert sorted(per_contact) == sorted(ids)  # one line each: nothing written twice
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ContactTag)) == 11
    assert run(job_id) == {}  # a late retry of a settled job does nothing


def test_a_job_whose_author_lost_the_role_fails_without_changes(shop, monkeypatch):
    ws, inst, admin = shop
    monkeypatch.setattr(contact_bulk, "BULK_SYNC_LIMIT", 1)
    ids = [make_contact(ws, inst, f"C{i}") for i in range(3)]
    job_id = contact_bulk.run_bulk(admin, "delete", ids=ids, confirmed_count=3)["job_id"]
    with session_scope() as s:
        s.get(WorkspaceMember, (ws, admin.user_id)).role = "supervisor"
    run(job_id)
    status = contact_jobs.job_status(admin, job_id)
    assert status["status"] == "failed" and "não tem mais permissão" in status["error"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 3

