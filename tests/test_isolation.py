"""Workspaces are sealed from each other, and roles limit what a user may see and do.

Another workspace's row is reported as NotFound (never PermissionDenied), so ids reveal nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.contracts import OUT_STREAM, STATUS_HASH, now_ms
from connector.sandbox import QR, SandboxNetwork
from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from workbench.base.errors import NotFound, PermissionDenied
from workbench.services import conversations, instances, simulator
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation


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
