"""Workspaces are sealed from each other, and roles limit what a user may see and do.

Another workspace's row is reported as NotFound (never PermissionDenied), so ids reveal nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.contracts import OUT_STREAM, STATUS_HASH, now_ms
from connector.sandbox import QR, SandboxNetwork
from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import conversations, funnels, instances, notifications, runs, simulator
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Funnel, FunnelRun, FunnelVersion, Instance, Notification


def _conversation_of(phone: str) -> int:
    with session_scope() as s:
        return s.scalar(select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id)
                        .where(Contact.phone == phone))


def _link_sandbox_number(r, instance_id: int, phone: str) -> None:
    """Play the connector: show a QR code for the instance, then scan it from ``phone`` on the sandbox network."""
    code = f"sandbox:{instance_id}:test"
    r.set(QR.format(code), instance_id, ex=60)
    r.hset(STATUS_HASH.format(instance_id), mapping={"state": "awaiting_qr", "qr": code, "heartbeat": now_ms()})
    assert SandboxNetwork(r).scan(code, phone)
    r.hset(STATUS_HASH.format(instance_id), mapping={"state": "connected", "qr": "", "phone": phone})


@pytest.fixture
def two_workspaces(engine, r):
    ws_a, ws_b = make_workspace("A"), make_workspace("B")
    inst_a, inst_b = make_instance(ws_a, "Loja A"), make_instance(ws_b, "Loja B")
    publish(inbound(inst_a, phone="5511900000001"), inbound(inst_b, phone="5511900000002"))
    run_jobs()
    return {
        "a": make_actor(ws_a), "b": make_actor(ws_b), "inst_a": inst_a, "inst_b": inst_b,
        "conv_a": _conversation_of("5511900000001"), "conv_b": _conversation_of("5511900000002"),
    }


def test_other_workspace_conversations_are_invisible(two_workspaces, r):
    a, conv_b = two_workspaces["a"], two_workspaces["conv_b"]
    assert [c["id"] for c in conversations.list_conversations(a, status=None)] == [two_workspaces["conv_a"]]
    assert conversations.list_conversations(a, status=None, search="5511900000002") == []
    calls = [
        lambda: conversations.get_conversation(a, conv_b),
        lambda: conversations.list_messages(a, conv_b),
        lambda: conversations.mark_read(a, conv_b),
        lambda: conversations.send_text(a, conv_b, "oi"),
        lambda: conversations.pause_bot(a, conv_b),
        lambda: conversations.resume_bot(a, conv_b),
        lambda: conversations.assign(a, conv_b, agent_id=a.user_id),
        lambda: conversations.set_status(a, conv_b, "closed"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert r.xlen(OUT_STREAM.format(two_workspaces["inst_b"])) == 0  # nothing was sent


def test_cannot_assign_a_member_of_another_workspace(two_workspaces):
    a, b = two_workspaces["a"], two_workspaces["b"]
    with pytest.raises(NotFound):
        conversations.assign(a, two_workspaces["conv_a"], agent_id=b.user_id)


def test_other_workspace_instances_are_invisible(two_workspaces):
    a, inst_b = two_workspaces["a"], two_workspaces["inst_b"]
    assert [i["id"] for i in instances.list_instances(a)] == [two_workspaces["inst_a"]]
    for action in (instances.start_instance, instances.stop_instance, instances.reconnect_instance,
                   instances.logout_instance, instances.remove_instance):
        with pytest.raises(NotFound):
            action(a, inst_b)
    assert [i["id"] for i in instances.list_instances(two_workspaces["b"])] == [inst_b]


def test_simulator_only_reaches_own_sandbox_numbers(two_workspaces, r):
    a, b = two_workspaces["a"], two_workspaces["b"]
    _link_sandbox_number(r, two_workspaces["inst_b"], "5511955550002")
    assert simulator.business_numbers(a) == []
    assert [n["phone"] for n in simulator.business_numbers(b)] == ["5511955550002"]
    with pytest.raises(NotFound):
        simulator.send_from_lead(a, "5511955550002", "5511911112222", text="oi")
    with pytest.raises(NotFound):
        simulator.chat(a, "5511955550002", "5511911112222")
    with pytest.raises(NotFound):
        simulator.scan_qr(a, two_workspaces["inst_b"], "5511955550003")
    simulator.send_from_lead(b, "5511955550002", "5511911112222", text="oi")  # the owner can


def test_agents_see_unassigned_own_and_team_conversations(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    agent, other = make_actor(ws, "agent"), make_actor(ws, "agent")
    my_team, other_team = make_team(ws, "Vendas", agent.user_id), make_team(ws, "Suporte", other.user_id)
    phones = {name: f"55119000001{i}" for i, name in enumerate(
        ["free", "mine", "others", "my_team", "other_team"])}
    publish(*[inbound(inst, phone=p) for p in phones.values()])
    run_jobs()
    conv = {name: _conversation_of(p) for name, p in phones.items()}
    conversations.assign(admin, conv["mine"], agent_id=agent.user_id)
    conversations.assign(admin, conv["others"], agent_id=other.user_id)
    conversations.assign(admin, conv["my_team"], team_id=my_team)
    conversations.assign(admin, conv["other_team"], team_id=other_team)

    seen = {c["id"] for c in conversations.list_conversations(agent, status=None)}
    assert seen == {conv["free"], conv["mine"], conv["my_team"]}
    assert {c["id"] for c in conversations.list_conversations(agent, mine=True)} == {conv["mine"]}
    assert len(conversations.list_conversations(admin, status=None)) == 5
    for hidden in ("others", "other_team"):
        with pytest.raises(NotFound):
            conversations.get_conversation(agent, conv[hidden])
        with pytest.raises(NotFound):
            conversations.send_text(agent, conv[hidden], "oi")
    # An agent may take a conversation for themself, not hand it to someone else.
    conversations.assign(agent, conv["free"], agent_id=agent.user_id)
    with pytest.raises(PermissionDenied):
        conversations.assign(agent, conv["my_team"], agent_id=other.user_id)


def test_agents_cannot_manage_numbers_or_use_the_simulator(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    agent = make_actor(ws, "agent")
    assert [i["id"] for i in instances.list_instances(agent)] == [inst]  # they may look
    with pytest.raises(PermissionDenied):
        instances.create_instance(agent, "Novo")
    for action in (instances.remove_instance, instances.stop_instance, instances.logout_instance,
                   instances.reconnect_instance):
        with pytest.raises(PermissionDenied):
            action(agent, inst)
    with pytest.raises(PermissionDenied):
        simulator.business_numbers(agent)
    with pytest.raises(PermissionDenied):
        simulator.send_from_lead(agent, "5511955550002", "5511911112222", text="oi")


def _addressing(team_id: int, user_id: int, instance_id: int) -> dict:
    """A funnel that names a team, a person and a number by id: trigger -> route -> notify -> end."""
    def node(node_id: str, node_type: str, **data) -> dict:
        return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}

    return {"nodes": [
        node("inicio", "trigger", kind="first_message", instance_ids=[instance_id]),
        node("rota", "route", team_id=team_id, agent_id=user_id, pause_bot=False),
        node("aviso", "notify_human", team_id=team_id, user_id=user_id, message="Novo contato"),
        node("fim", "end"),
    ], "edges": [{"id": "e1", "source": "inicio", "target": "rota"}, {"id": "e2", "source": "rota", "target": "aviso"},
                 {"id": "e3", "source": "aviso", "target": "fim"}]}


def test_publish_refuses_teams_people_and_numbers_of_another_workspace(two_workspaces):
    a, b = two_workspaces["a"], two_workspaces["b"]
    with session_scope() as s:
        ws_b = s.get(Instance, two_workspaces["inst_b"]).workspace_id
    team_b = make_team(ws_b, "Vendas B", b.user_id)
    fid = funnels.create_funnel(a, "Importado", _addressing(team_b, b.user_id, two_workspaces["inst_b"]))
    with pytest.raises(InvalidInput) as refused:
        funnels.publish(a, fid)
    assert refused.value.key == "error.funnel_invalid" and refused.value.context["count"] == 5
    report = funnels.validate(a, funnels.get_funnel(a, fid)["draft"])
    fields = {(p.node_id, p.field, p.code) for p in report.errors}
    assert fields == {
        ("inicio", "data.instance_ids", "unknown_reference"), ("rota", "data.team_id", "unknown_reference"),
        ("rota", "data.agent_id", "unknown_reference"), ("aviso", "data.team_id", "unknown_reference"),
        ("aviso", "data.user_id", "unknown_reference")}
    assert {p.message for p in report.by_node()["rota"]} == {
        f"data.team_id: a equipe {team_b} não existe neste espaço de trabalho",
        f"data.agent_id: a pessoa {b.user_id} não faz parte deste espaço de trabalho"}

    with session_scope() as s:
        ws_a = s.get(Instance, two_workspaces["inst_a"]).workspace_id
    team_a = make_team(ws_a, "Vendas A", a.user_id)
    funnels.save_draft(a, fid, _addressing(team_a, a.user_id, two_workspaces["inst_a"]))
    assert funnels.publish(a, fid) == 1, "the workspace's own ids are fine"


def test_a_published_funnel_never_routes_or_notifies_into_another_workspace(two_workspaces, caplog):
    b = two_workspaces["b"]
    with session_scope() as s:
        ws_a, ws_b = (s.get(Instance, two_workspaces[k]).workspace_id for k in ("inst_a", "inst_b"))
    team_b = make_team(ws_b, "Vendas B", b.user_id)
    with session_scope() as s:  # published before the check existed (or its ids changed hands since)
        definition = _addressing(team_b, b.user_id, two_workspaces["inst_a"])
        funnel = Funnel(workspace_id=ws_a, name="Antigo", draft=definition, is_active=True)
        s.add(funnel)
        s.flush()
        version = FunnelVersion(funnel_id=funnel.id, version=1, definition=definition)
        s.add(version)
        s.flush()
        funnel.published_version_id = version.id
    runs.clear_cache()
    publish(inbound(two_workspaces["inst_a"], phone="5511900000009"))
    run_jobs()
    with session_scope() as s:
        conv = s.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                         .where(Contact.phone == "5511900000009")).one()
        assert (conv.team_id, conv.agent_id) == (None, None)
        [note] = s.scalars(select(Notification)).all()
        assert (note.workspace_id, note.team_id, note.user_id) == (ws_a, None, None)
        assert s.scalars(select(FunnelRun.status)).one() == "completed"
    assert notifications.list_notifications(b) == []
    assert "not of workspace" in caplog.text


def test_cannot_assign_to_a_team_of_another_workspace(two_workspaces):
    a, b = two_workspaces["a"], two_workspaces["b"]
    with session_scope() as s:
        ws_b = s.get(Instance, two_workspaces["inst_b"]).workspace_id
    team_b = make_team(ws_b, "Vendas B", b.user_id)
    with pytest.raises(NotFound):
        conversations.assign(a, two_workspaces["conv_a"], team_id=team_b)
    assert conversations.get_conversation(a, two_workspaces["conv_a"])["team_id"] is None


def test_agents_do_not_get_qr_or_pairing_codes(engine, r):
    """Whoever sees a QR or pairing code can link the number to their own phone: managers only."""
    ws = make_workspace()
    inst = make_instance(ws)
    codes = {"qr": "2@secret-qr", "qr_expires_at": "1", "pair_code": "ABCD-EFGH", "pair_code_expires_at": "1"}
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "heartbeat": now_ms(), **codes})
    [seen] = instances.list_instances(make_actor(ws, "agent"))
    assert seen["status"]["state"] == "awaiting_qr" and not set(codes) & set(seen["status"])
    for role in ("admin", "supervisor"):
        [managed] = instances.list_instances(make_actor(ws, role))
        assert {key: managed["status"][key] for key in codes} == codes
