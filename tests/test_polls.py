"""A poll-mode "send choices" node end to end on a sandbox number: funnel runtime -> outbox -> relay -> the lead's
phone, and the lead's vote back through the relay and the drain job to the waiting run (real PostgreSQL and Redis)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.contracts import OutboundCommand
from connector.sandbox import SandboxNetwork
from tests.factories import make_actor, make_instance, make_workspace, run_jobs
from tests.test_connector_support import BUSINESS, LEAD, pair, relay_thread, wait_until
from workbench.services import conversations, funnels, runs
from workbench.store.db import session_scope
from workbench.store.models import FunnelEvent, FunnelRun, Message, Outbox

QUESTION = "Qual período é melhor para você?"
FALLBACK = f"{QUESTION}\n\n1. Manhã\n2. Tarde"


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Forget the runtime's cached funnels before and after: later tests reuse the workspace ids."""
    runs.clear_cache()
    yield
    runs.clear_cache()


def poll_funnel() -> dict:
    """First message -> a poll (Manhã / Tarde) -> one reply per option."""
    def node(node_id: str, node_type: str, **data) -> dict:
        return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}

    def edge(source: str, target: str, label: str = "next") -> dict:
        return {"id": f"{source}-{label}-{target}", "source": source, "target": target, "label": label}

    nodes = [
        node("inicio", "trigger", kind="first_message"),
        node("periodo", "send_choices", prompt=QUESTION, mode="poll", save_to="vars.periodo",
             options=[{"key": "manha", "label": "Manhã"}, {"key": "tarde", "label": "Tarde"}]),
        node("msg_manha", "send_message", text="Combinado: de manhã."),
        node("msg_tarde", "send_message", text="Combinado: à tarde."),
        node("fim", "end"),
    ]
    edges = [edge("inicio", "periodo"), edge("periodo", "msg_manha", "manha"), edge("periodo", "msg_tarde", "tarde"),
             edge("msg_manha", "fim"), edge("msg_tarde", "fim")]
    return {"nodes": nodes, "edges": edges}


def settle(condition, what: str):
    """Run the queued drain jobs until ``condition`` holds (the relay works in its own thread meanwhile)."""
    def check():
        run_jobs()
        return condition()
    return wait_until(check, what=what)


def poll_wa_id() -> str | None:
    with session_scope() as s:
        return s.scalar(select(Message.wa_id).where(Message.type == "poll"))


def test_a_poll_goes_out_as_a_poll_and_the_vote_takes_the_chosen_edge(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    funnel_id = funnels.create_funnel(admin, "Período", poll_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    network = SandboxNetwork(r)
    with relay_thread(r, inst):
        pair(r, network, inst)
        network.send_from_lead(LEAD, BUSINESS, text="oi", push_name="Bia")
        [poll] = settle(lambda: network.lead_chat(LEAD, BUSINESS)[1:], "the poll on the lead's phone")
        assert (poll["type"], poll["text"], poll["options"]) == ("poll", QUESTION, ["Manhã", "Tarde"])

        with session_scope() as s:
            command = OutboundCommand.model_validate({**s.scalars(select(Outbox)).one().command, "outbox_id": 0})
        assert (command.type, command.text, command.poll_options, command.fallback_text) == (
            "poll", QUESTION, ["Manhã", "Tarde"], FALLBACK), "the stored row re-publishes as a poll too"

        settle(poll_wa_id, "the poll's ack")
        network.vote(LEAD, BUSINESS, poll["id"], "Tarde")
        settle(lambda: network.lead_chat(LEAD, BUSINESS)[2:], "the answer to the vote")
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)][1:] == [QUESTION, "Combinado: à tarde."]

    conversation = conversations.list_conversations(admin)[0]
    shown = [(m["direction"], m["type"], m["text"]) for m in conversations.list_messages(admin, conversation["id"])]
    assert shown == [("in", "text", "oi"), ("out", "poll", FALLBACK), ("in", "text", "Tarde"),
                     ("out", "text", "Combinado: à tarde.")], "the inbox reads the poll as question and options"
    with session_scope() as s:
        sent, vote = s.scalars(select(Message).where((Message.type == "poll") | (Message.text == "Tarde"))
                               .order_by(Message.id)).all()
        assert sent.data["poll"] == {"question": QUESTION, "options": ["Manhã", "Tarde"]}
        assert vote.quoted_wa_id == sent.wa_id == poll["id"]
        assert vote.data["raw"] == {"poll_vote": True, "poll_id": poll["id"]}
        run = s.scalars(select(FunnelRun)).one()
        assert (run.status, run.variables["periodo"]) == ("completed", "Tarde")
        outputs = s.scalars(select(FunnelEvent.output).where(FunnelEvent.node_id == "periodo")
                            .order_by(FunnelEvent.id)).all()
        assert outputs[-1] == "tarde"
