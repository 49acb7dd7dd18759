"""Equipes, Pessoas, availability and routing: automatic distribution by load, the team queue, deactivation, roles."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.factories import PASSWORD, make_actor, make_instance, make_team, make_workspace
from workbench.base.clock import now
from workbench.base.errors import AuthError, Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import auth, conversations, routing, workspaces
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, Conversation, Team, TeamMember, User, WorkspaceMember

_phones = itertools.count(5511900000001)


def _conversation(ws: int, inst: int, status: str = "open", agent_id: int | None = None,
                  team_id: int | None = None) -> int:
    """A contact and its conversation, written as the inbound pipeline leaves them."""
    with session_scope() as s:
        contact = Contact(workspace_id=ws, instance_id=inst, phone=str(next(_phones)))
        s.add(contact)
        s.flush()
        conv = Conversation(workspace_id=ws, instance_id=inst, contact_id=contact.id, status=status,
                            agent_id=agent_id, team_id=team_id, last_inbound_at=now())
        s.add(conv)
        s.flush()
        return conv.id


def _conv(conversation_id: int) -> Conversation:
    with session_scope() as s:
        conv = s.get(Conversation, conversation_id)
        s.expunge(conv)
        return conv


def _events(conversation_id: int) -> list[dict]:
    with session_scope() as s:
        return list(s.scalars(select(ActivityEvent.data).where(
            ActivityEvent.kind == "assigned", ActivityEvent.subject_id == conversation_id).order_by(ActivityEvent.id)))


@pytest.fixture
def shop(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    ana, bia, caio = (make_actor(ws, "agent", email=f"{n}@example.com") for n in ("ana", "bia", "caio"))
    team = make_team(ws, "Vendas", ana.user_id, bia.user_id, caio.user_id)
    with session_scope() as s:
        s.get(Team, team).auto_assign = True
    return {"ws": ws, "inst": inst, "admin": admin, "ana": ana, "bia": bia, "caio": caio, "team": team}


def test_a_routed_conversation_goes_to_the_available_member_with_the_fewest_open(shop):
    ws, inst = shop["ws"], shop["inst"]
    for person in ("ana", "bia", "caio"):
        routing.set_availability(shop[person], "available")
    for _ in range(2):
        _conversation(ws, inst, agent_id=shop["ana"].user_id)
    _conversation(ws, inst, agent_id=shop["bia"].user_id)
    _conversation(ws, inst, status="closed", agent_id=shop["caio"].user_id)  # resolved: not load
    _conversation(ws, inst, status="pending", agent_id=shop["caio"].user_id)  # pending: load
    _conversation(ws, inst, status="pending", agent_id=shop["caio"].user_id)
    new = _conversation(ws, inst)
    conversations.assign(shop["admin"], new, team_id=shop["team"])
    conv = _conv(new)
    assert (conv.agent_id, conv.team_id) == (shop["bia"].user_id, shop["team"])
    assert conv.assigned_at is not None
    assert _events(new)[-1] | {"agent_name": None} == {"agent_id": shop["bia"].user_id, "team_id": shop["team"],
                                                       "how": "auto", "agent_name": None}


def test_ties_in_load_go_to_who_waited_longest(shop):
    ws, inst, team = shop["ws"], shop["inst"], shop["team"]
    for person in ("ana", "bia", "caio"):
        routing.set_availability(shop[person], "available")
    with session_scope() as s:  # caio was given one long ago, ana a moment ago, bia never
        for person, ago in (("ana", 1), ("caio", 60)):
            s.execute(update(WorkspaceMember).where(WorkspaceMember.user_id == shop[person].user_id)
                      .values(last_assigned_at=now() - timedelta(minutes=ago)))
    order = []
    for _ in range(3):
        conv = _conversation(ws, inst)
        conversations.assign(shop["admin"], conv, team_id=team)
        order.append(_conv(conv).agent_id)
    assert order == [shop["bia"].user_id, shop["caio"].user_id, shop["ana"].user_id]


def test_with_nobody_available_it_waits_in_the_team_queue_until_someone_is(shop):
    ws, inst, team = shop["ws"], shop["inst"], shop["team"]
    routing.set_availability(shop["ana"], "away")
    routing.set_availability(shop["bia"], "offline")
    # caio picked "available" but the panel has not seen him for longer than the idle time: offline
    routing.set_availability(shop["caio"], "available")
    with session_scope() as s:
        s.execute(update(WorkspaceMember).where(WorkspaceMember.user_id == shop["caio"].user_id)
                  .values(last_seen_at=now() - routing.IDLE_OFFLINE - timedelta(minutes=1)))
    first, second = _conversation(ws, inst), _conversation(ws, inst)
    for conv in (first, second):
        conversations.assign(shop["admin"], conv, team_id=team)
        assert (_conv(conv).agent_id, _conv(conv).team_id) == (None, team)
        assert _conv(conv).assigned_at is None
    assert [p["availability"] for p in workspaces.people(shop["admin"]) if p["id"] != shop["admin"].user_id] == \
        ["away", "offline", "offline"]
    # caio comes back (his next interaction): both queued conversations are his, the oldest first
    assert routing.heartbeat(shop["caio"]) == 2
    assert {_conv(first).agent_id, _conv(second).agent_id} == {shop["caio"].user_id}
    assert routing.heartbeat(shop["caio"]) == 0  # within SEEN_EVERY: nothing written


def test_becoming_available_takes_the_queue_and_a_team_without_distribution_only_queues(shop):
    ws, inst, team = shop["ws"], shop["inst"], shop["team"]
    waiting = _conversation(ws, inst)
    conversations.assign(shop["admin"], waiting, team_id=team)
    assert _conv(waiting).agent_id is None
    assert routing.set_availability(shop["bia"], "available") == 1
    assert _conv(waiting).agent_id == shop["bia"].user_id
    with pytest.raises(InvalidInput) as info:
        routing.set_availability(shop["bia"], "dormindo")
    assert error_text(info.value) == "Disponibilidade desconhecida."

    manual = make_team(ws, "Suporte", shop["ana"].user_id)
    routing.set_availability(shop["ana"], "available")
    conv = _conversation(ws, inst)
    conversations.assign(shop["admin"], conv, team_id=manual)
    assert (_conv(conv).agent_id, _conv(conv).team_id) == (None, manual)
    # switching distribution on hands out the queue at once
    assert workspaces.set_team_auto_assign(shop["admin"], manual, True) == 1
    assert _conv(conv).agent_id == shop["ana"].user_id


def test_first_reply_is_the_first_human_reply_after_the_latest_assignment(shop, r):
    ws, inst, admin = shop["ws"], shop["inst"], shop["admin"]
    conv = _conversation(ws, inst)
    conversations.assign(admin, conv, agent_id=shop["ana"].user_id)
    conversations.send_text(shop["ana"], conv, "Oi!")
    first = _conv(conv).first_reply_at
    assert first is not None and first >= _conv(conv).assigned_at
    conversations.assign(admin, conv, agent_id=shop["bia"].user_id)
    assert _conv(conv).first_reply_at is None
    conversations.send_text(shop["bia"], conv, "Sou a Bia, vou continuar.")
    assert _conv(conv).first_reply_at > first
    assert [e["agent_id"] for e in _events(conv)] == [shop["ana"].user_id, shop["bia"].user_id]


def test_deactivating_a_person_ends_their_logins_and_returns_their_conversations(shop):
    ws, inst, team, admin = shop["ws"], shop["inst"], shop["team"], shop["admin"]
    routing.set_availability(shop["bia"], "available")
    _, token = auth.login(shop["ana"].email, PASSWORD)
    in_team = _conversation(ws, inst, agent_id=shop["ana"].user_id, team_id=team)
    no_team = _conversation(ws, inst, agent_id=shop["ana"].user_id)
    closed = _conversation(ws, inst, status="closed", agent_id=shop["ana"].user_id)
    assert workspaces.set_active(admin, shop["ana"].user_id, False) == 2
    assert auth.resume(token) is None  # the open login ends at its next action
    with pytest.raises(AuthError):
        auth.login(shop["ana"].email, PASSWORD)
    assert _conv(in_team).agent_id == shop["bia"].user_id  # back to the team, given to the available member
    assert (_conv(no_team).agent_id, _conv(no_team).team_id) == (None, None)  # the workspace's queue
    assert _conv(closed).agent_id == shop["ana"].user_id  # history keeps who handled it
    assert _events(in_team)[-1]["how"] == "released"
    # a deactivated person is given nothing, by hand or by distribution
    with pytest.raises(NotFound):
        conversations.assign(admin, no_team, agent_id=shop["ana"].user_id)
    person = next(p for p in workspaces.people(admin) if p["id"] == shop["ana"].user_id)
    assert (person["name"], person["active"], person["availability"]) == ("ana", False, "offline")
    workspaces.set_active(admin, shop["ana"].user_id, True)
    assert auth.login(shop["ana"].email, PASSWORD)[0].user_id == shop["ana"].user_id


def test_agents_cannot_manage_teams_or_people(shop):
    agent = shop["ana"]
    for call in (lambda: workspaces.create_team(agent, "Pós-venda"),
                 lambda: workspaces.rename_team(agent, shop["team"], "X"),
                 lambda: workspaces.delete_team(agent, shop["team"]),
                 lambda: workspaces.add_team_member(agent, shop["team"], agent.user_id),
                 lambda: workspaces.set_team_auto_assign(agent, shop["team"], False),
                 lambda: workspaces.change_role(agent, agent.user_id, "admin"),
                 lambda: workspaces.set_active(agent, shop["bia"].user_id, False),
                 lambda: workspaces.reset_password(agent, shop["bia"].user_id)):
        with pytest.raises(PermissionDenied):
            call()
    supervisor = make_actor(shop["ws"], "supervisor")
    with pytest.raises(PermissionDenied):
        workspaces.create_team(supervisor, "Pós-venda")


def test_the_last_admin_cannot_be_demoted_or_deactivated(shop):
    admin = shop["admin"]
    with pytest.raises(Conflict) as info:
        workspaces.change_role(admin, admin.user_id, "agent")
    assert "último administrador" in error_text(info.value)
    with pytest.raises(Conflict):
        workspaces.set_active(admin, admin.user_id, False)
    other = make_actor(shop["ws"], "admin")
    workspaces.change_role(admin, other.user_id, "supervisor")
    with pytest.raises(Conflict):
        workspaces.change_role(admin, admin.user_id, "supervisor")
    workspaces.change_role(admin, other.user_id, "admin")
    workspaces.set_active(admin, other.user_id, False)  # an inactive admin does not count
    with pytest.raises(Conflict):
        workspaces.change_role(admin, admin.user_id, "agent")
    workspaces.set_active(admin, other.user_id, True)
    workspaces.change_role(admin, admin.user_id, "agent")  # another active admin remains
    with session_scope() as s:
        assert s.get(WorkspaceMember, (shop["ws"], admin.user_id)).role == "agent"
    with pytest.raises(InvalidInput):
        workspaces.change_role(other, admin.user_id, "dono")


def test_teams_are_created_renamed_and_deleted_returning_conversations_to_the_queue(shop):
    ws, inst, admin = shop["ws"], shop["inst"], shop["admin"]
    team = workspaces.create_team(admin, "  Pós-venda ")
    with pytest.raises(Conflict):
        workspaces.create_team(admin, "pós-VENDA")
    with pytest.raises(InvalidInput):
        workspaces.create_team(admin, "   ")
    with pytest.raises(InvalidInput):
        workspaces.create_team(admin, "x" * 121)
    workspaces.rename_team(admin, team, "Pós-venda SP")
    with pytest.raises(Conflict):
        workspaces.rename_team(admin, team, "vendas")
    # a person in several teams
    workspaces.add_team_member(admin, team, shop["ana"].user_id)
    workspaces.add_team_member(admin, team, shop["ana"].user_id)  # twice: no-op
    details = {d["name"]: d for d in workspaces.team_details(admin)}
    assert [m["name"] for m in details["Pós-venda SP"]["members"]] == ["ana"]
    assert "ana" in [m["name"] for m in details["Vendas"]["members"]]
    ana = next(p for p in workspaces.people(admin) if p["id"] == shop["ana"].user_id)
    assert ana["teams"] == ["Pós-venda SP", "Vendas"]
    workspaces.remove_team_member(admin, team, shop["ana"].user_id)
    with session_scope() as s:
        assert s.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team)).all() == []

    queued = _conversation(ws, inst, team_id=team)
    held = _conversation(ws, inst, team_id=team, agent_id=shop["bia"].user_id)
    assert workspaces.delete_team(admin, team) == 2
    assert (_conv(queued).team_id, _conv(queued).agent_id) == (None, None)
    assert (_conv(held).team_id, _conv(held).agent_id) == (None, shop["bia"].user_id)
    assert _events(queued)[-1]["how"] == "team_deleted"
    with pytest.raises(NotFound):
        workspaces.rename_team(admin, team, "De volta")


def test_teams_and_people_of_another_workspace_are_not_found(shop):
    other_ws = make_workspace("Outra")
    stranger = make_actor(other_ws, "admin")
    other_team = make_team(other_ws, "Deles", stranger.user_id)
    admin = shop["admin"]
    for call in (lambda: workspaces.rename_team(admin, other_team, "Nossa"),
                 lambda: workspaces.delete_team(admin, other_team),
                 lambda: workspaces.add_team_member(admin, shop["team"], stranger.user_id),
                 lambda: workspaces.add_team_member(admin, other_team, shop["ana"].user_id),
                 lambda: workspaces.change_role(admin, stranger.user_id, "agent"),
                 lambda: workspaces.set_active(admin, stranger.user_id, False),
                 lambda: workspaces.reset_password(admin, stranger.user_id),
                 lambda: workspaces.rename_team(admin, "1; DROP TABLE teams", "x")):
        with pytest.raises(NotFound):
            call()


def test_reset_password_is_shown_once_and_ends_logins_and_my_account_changes_name_and_password(shop):
    admin, bia = shop["admin"], shop["bia"]
    _, token = auth.login(bia.email, PASSWORD)
    credentials = workspaces.reset_password(admin, bia.user_id)
    assert credentials.email == bia.email and len(credentials.password) >= auth.MIN_PASSWORD
    assert auth.resume(token) is None
    with pytest.raises(AuthError):
        auth.login(bia.email, PASSWORD)
    actor, _ = auth.login(bia.email, credentials.password)
    with pytest.raises(AuthError) as info:
        auth.change_own_password(actor, "errada-errada", "nova-senha-forte-1")
    assert error_text(info.value) == "A senha atual não confere."
    with pytest.raises(InvalidInput):
        auth.change_own_password(actor, credentials.password, "curta")
    new_token = auth.change_own_password(actor, credentials.password, "nova-senha-forte-1")
    assert auth.resume(new_token) == actor
    assert auth.login(bia.email, "nova-senha-forte-1")[0].user_id == bia.user_id
    assert workspaces.rename_self(actor, "  Bia Souza ") == "Bia Souza"
    with session_scope() as s:
        assert s.get(User, bia.user_id).name == "Bia Souza"
    with pytest.raises(InvalidInput):
        workspaces.rename_self(actor, " ")


def test_a_funnel_route_step_to_a_distributing_team_assigns_by_load(shop):
    from tests.factories import inbound, publish, run_jobs
    from workbench.services import funnels

    inst, admin, team = shop["inst"], shop["admin"], shop["team"]
    routing.set_availability(shop["caio"], "available")

    def node(node_id: str, node_type: str, **data) -> dict:
        return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}

    definition = {"nodes": [node("inicio", "trigger", kind="first_message", instance_ids=[inst]),
                            node("rota", "route", team_id=team, pause_bot=False), node("fim", "end")],
                  "edges": [{"id": "e1", "source": "inicio", "target": "rota"},
                            {"id": "e2", "source": "rota", "target": "fim"}]}
    funnel = funnels.create_funnel(admin, "Triagem", definition)
    funnels.publish(admin, funnel)
    funnels.set_active(admin, funnel, True)
    publish(inbound(inst, phone="5511977770001"))
    run_jobs()
    with session_scope() as s:
        conv = s.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                         .where(Contact.phone == "5511977770001")).one()
        assert (conv.team_id, conv.agent_id) == (team, shop["caio"].user_id)
        assert conv.assigned_at is not None
    [event] = _events(conv.id)
    assert (event["how"], event["source"], event["funnel_id"]) == ("funnel", "funnel", funnel)
    assert event["agent_name"] == "caio"


def test_two_conversations_routed_at_once_go_to_two_people(shop):
    import threading

    ws, inst, admin, team = shop["ws"], shop["inst"], shop["admin"], shop["team"]
    for person in ("ana", "bia"):
        routing.set_availability(shop[person], "available")
    first, second = _conversation(ws, inst), _conversation(ws, inst)
    barrier = threading.Barrier(2)
    errors = []

    def route(conversation_id: int) -> None:
        try:
            barrier.wait()
            conversations.assign(admin, conversation_id, team_id=team)
        except Exception as exc:  # noqa: BLE001 -- reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=route, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {_conv(first).agent_id, _conv(second).agent_id} == {shop["ana"].user_id, shop["bia"].user_id}
