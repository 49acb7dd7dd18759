"""Visão 360 services: internal notes, the activity feed, merging duplicates (real PostgreSQL and Redis)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_funnel_runtime import setup_workspace
from tests.test_funnel_tag_trigger import linear
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.services import contact_feed, contact_merge, contact_notes, contacts, conversations
from workbench.services.contact_card import contact_card
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactTag,
    Conversation,
    FunnelRun,
    Instance,
    Message,
    Note,
    Notification,
    Outbox,
)


def lead(inst: int, phone: str, *texts: str, name: str = "Maria") -> int:
    """The contact of ``phone`` after it sent ``texts`` to the number ``inst``."""
    publish(*[inbound(inst, phone=phone, text=text, push_name=name) for text in texts])
    run_jobs()
    with session_scope() as s:
        return s.scalar(select(Contact.id).where(Contact.instance_id == inst, Contact.phone == phone))


def conversation_of(contact_id: int) -> Conversation | None:
    with session_scope() as s:
        conv = s.scalar(select(Conversation).where(Conversation.contact_id == contact_id))
        if conv is not None:
            s.expunge(conv)
        return conv


@pytest.fixture
def shop(engine, r):
    """A workspace with a number, an admin, two agents (one in team Vendas) and a contact that wrote twice."""
    ws = make_workspace()
    inst = make_instance(ws)
    admin, agent, other_agent = make_actor(ws, "admin"), make_actor(ws, "agent"), make_actor(ws, "agent")
    make_team(ws, "Vendas", agent.user_id)
    contact = lead(inst, "5511911110001", "Oi", "Tudo bem?")
    return {"ws": ws, "inst": inst, "admin": admin, "agent": agent, "other_agent": other_agent, "contact": contact}


# -- notes ---------------------------------------------------------------------------------------------------------

def test_notes_add_edit_delete_by_their_author(shop):
    agent, contact = shop["agent"], shop["contact"]
    note = contact_notes.add_note(agent, contact, "  Prefere falar de manhã. <b>*sério*</b>\x00  ")
    [listed] = contact_notes.list_notes(agent, contact)
    assert listed["body"] == "Prefere falar de manhã. <b>*sério*</b>\ufffd"  # kept literally, NUL made storable
    assert (listed["author"], listed["can_edit"], listed["can_delete"], listed["updated_at"]) == (
        agent.name, True, True, None)

    contact_notes.edit_note(agent, note, "Prefere à tarde.")
    [listed] = contact_notes.list_notes(agent, contact)
    assert listed["body"] == "Prefere à tarde." and listed["updated_at"] is not None
    contact_notes.delete_note(agent, note)
    assert contact_notes.list_notes(agent, contact) == []
    with session_scope() as s:
        events = s.execute(select(ActivityEvent.kind, ActivityEvent.data).where(
            ActivityEvent.subject_type == "contact", ActivityEvent.subject_id == contact)
            .order_by(ActivityEvent.id)).all()
    assert [kind for kind, _ in events] == ["note_added", "note_edited", "note_deleted"]
    assert all("body" not in data and "tarde" not in str(data) for _, data in events)  # the words are gone


def test_only_the_author_edits_and_managers_may_delete_any_note(shop):
    agent, other_agent, admin, contact = shop["agent"], shop["other_agent"], shop["admin"], shop["contact"]
    note = contact_notes.add_note(agent, contact, "Cliente antigo")
    [seen] = contact_notes.list_notes(other_agent, contact)
    assert (seen["can_edit"], seen["can_delete"]) == (False, False)
    with pytest.raises(PermissionDenied) as refused:
        contact_notes.edit_note(other_agent, note, "mudei")
    assert refused.value.key == "error.note_edit_not_yours"
    with pytest.raises(PermissionDenied) as refused:
        contact_notes.delete_note(other_agent, note)
    assert refused.value.key == "error.note_delete_not_yours"
    with pytest.raises(PermissionDenied):
        contact_notes.edit_note(admin, note, "nem o admin edita")
    [seen] = contact_notes.list_notes(admin, contact)
    assert (seen["body"], seen["can_edit"], seen["can_delete"]) == ("Cliente antigo", False, True)
    contact_notes.delete_note(admin, note)
    assert contact_notes.list_notes(agent, contact) == []


def test_notes_are_bounded_and_isolated(shop):
    agent, contact = shop["agent"], shop["contact"]
    with pytest.raises(InvalidInput) as empty:
        contact_notes.add_note(agent, contact, "   ")
    assert empty.value.key == "error.note_empty"
    with pytest.raises(InvalidInput) as long:
        contact_notes.add_note(agent, contact, "x" * (contact_notes.MAX_NOTE_CHARS + 1))
    assert long.value.key == "error.note_long"
    note = contact_notes.add_note(agent, contact, "x" * contact_notes.MAX_NOTE_CHARS)

    stranger = make_actor(make_workspace("Outra"), "admin")
    for call in (lambda: contact_notes.add_note(stranger, contact, "oi"),
                 lambda: contact_notes.list_notes(stranger, contact)):
        with pytest.raises(NotFound):
            call()
    for call in (lambda: contact_notes.edit_note(stranger, note, "oi"),
                 lambda: contact_notes.delete_note(stranger, note),
                 lambda: contact_notes.delete_note(agent, 10**30)):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.key == "error.note_not_found"

    # An agent loses the contact (assigned to someone else): its notes are not found for them any more.
    conversations.assign(shop["admin"], conversation_of(contact).id, agent_id=shop["other_agent"].user_id)
    with pytest.raises(NotFound):
        contact_notes.edit_note(agent, note, "ainda minha?")
    with pytest.raises(NotFound):
        contact_card(agent, contact)


# -- feed ----------------------------------------------------------------------------------------------------------

def every_kind_workspace():
    """A contact with every kind of feed item: messages, funnel steps (tag, field, route), tags, fields, notes,
    assignments, bot, status, an import and a merge."""
    ws, inst, admin, _ = setup_workspace(("Qualifica", linear(
        {"kind": "any_message"},
        ("set_field", {"target": "contact.custom_data.cidade", "value": "Recife"}),
        ("add_tag", {"tag": "Lead quente"}),
        ("remove_tag", {"tag": "frio"}),
        ("route", {"team_name": "Vendas", "pause_bot": True}),
    )))
    with session_scope() as s:
        inst_ws = s.get(Instance, inst).workspace_id
    assert inst_ws == ws
    contact = lead(inst, "5521933330001", "quero comprar")
    conv = conversation_of(contact).id
    contacts.add_tag(admin, contact, "frio")  # after the run: an agent's tags
    contacts.remove_tag(admin, contact, "Lead quente")
    contacts.update_contact(admin, contact, name="Maria Souza")
    contact_notes.add_note(admin, contact, "Ligar amanhã")
    conversations.resume_bot(admin, conv)
    conversations.assign(admin, conv, agent_id=admin.user_id)
    conversations.set_status(admin, conv, "closed")
    conversations.send_text(admin, conv, "Até amanhã!", pause_bot=False)
    with session_scope() as s:
        s.add(ActivityEvent(workspace_id=ws, kind="imported", subject_type="contact", subject_id=contact,
                            data={"source": "import", "file_name": "leads.csv"}))
    twin = lead(inst, "5521933330002", "sou eu de novo")
    contact_merge.merge(admin, contact, twin)
    return admin, contact


def test_every_kind_appears_with_its_source_and_author(engine, r):
    admin, contact = every_kind_workspace()
    items = contact_feed.feed(admin, contact, limit=100)["items"]
    kinds = {item["kind"] for item in items}
    assert kinds == set(contact_feed.KINDS) - {"bulk"}
    events = [(item["event"], item["source"]) for item in items]
    assert ("field_changed", "funnel") in events and ("tag_added", "funnel") in events
    assert ("assigned", "funnel") in events and ("bot_paused", "funnel") in events
    assert ("tag_added", "agent") in events and ("message_in", "contact") in events
    assert ("message_out", "agent") in events and ("imported", "import") in events
    assert ("merged", "merge") in events and ("funnel_run", "funnel") in events
    lines = {contact_feed.describe(item) for item in items}
    assert {"Campo cidade: — → Recife", "Tag adicionada: Lead quente", "Tag adicionada: frio",
            "Conversa atribuída a Vendas", "Bot pausado (por um funil)", "Bot reativado", "Conversa resolvida",
            "Importado do arquivo leads.csv", "Funil Qualifica: Concluído", "Mesclado com Maria (5521933330002)",
            f"Conversa atribuída a {admin.name}"} <= lines
    # an agent's edit: one line per value, with old and new (no second "Contato editado" summary line)
    assert any(line.startswith("Campo nome: ") and line.endswith("→ Maria Souza") for line in lines)
    assert not any(line.startswith("Contato editado") for line in lines)
    runs = [item for item in items if item["event"] == "funnel_run"]
    assert len(runs) == 2  # the contact's and its merged twin's
    for run in runs:
        assert [step["type"] for step in run["steps"]] == ["trigger", "set_field", "add_tag", "remove_tag", "route",
                                                           "end"]
        assert run["author"] == "Qualifica"
    [note] = [item for item in items if item["kind"] == "note"]
    assert (note["text"], note["author"]) == ("Ligar amanhã", admin.name)
    [reply] = [item for item in items if item["event"] == "message_out" and item["source"] == "agent"]
    assert (reply["text"], reply["author"]) == ("Até amanhã!", admin.name)
    assert not [item for item in items if item["event"].startswith("note_")]  # notes are not listed twice
    keys = [item["key"] for item in items]
    assert keys == sorted(keys, reverse=True)  # newest first


def test_kind_filter_and_pagination_without_gaps_or_repeats(engine, r):
    admin, contact = every_kind_workspace()
    # Some rows share an instant (one transaction): pages must still cut cleanly between them.
    with session_scope() as s:
        s.execute(update(ActivityEvent).values(created_at=func.date_trunc("second", ActivityEvent.created_at)))
    everything = [item["key"] for item in contact_feed.feed(admin, contact, limit=100)["items"]]
    for size in (1, 2, 3, 7):
        seen, cursor = [], None
        while True:
            page = contact_feed.feed(admin, contact, before=cursor, limit=size)
            seen += [item["key"] for item in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == everything, size

    tags = contact_feed.feed(admin, contact, kinds=["tag"], limit=100)["items"]
    assert {item["event"] for item in tags} == {"tag_added", "tag_removed"}
    messages = contact_feed.feed(admin, contact, kinds=["message", "note"], limit=100)["items"]
    assert {item["kind"] for item in messages} == {"message", "note"}
    assert [item["text"] for item in messages if item["event"] == "message_in"] == [
        "sou eu de novo", "quero comprar"]  # the merged twin's message came along
    with pytest.raises(InvalidInput):
        contact_feed.feed(admin, contact, kinds=["hologram"])
    with pytest.raises(InvalidInput):
        contact_feed.feed(admin, contact, before=("ontem", "message", 1))
    assert len(contact_feed.feed(admin, contact, limit=10**6)["items"]) <= contact_feed.MAX_PAGE_SIZE


def test_feed_follows_the_inbox_visibility(shop):
    agent, other_agent, admin, contact = shop["agent"], shop["other_agent"], shop["admin"], shop["contact"]
    assert contact_feed.feed(agent, contact)["items"]  # unassigned: every agent sees it
    conversations.assign(admin, conversation_of(contact).id, agent_id=other_agent.user_id)
    with pytest.raises(NotFound):
        contact_feed.feed(agent, contact)
    assert contact_feed.feed(other_agent, contact)["items"]
    with pytest.raises(NotFound):
        contact_feed.feed(make_actor(make_workspace("Outra"), "admin"), contact)


# -- merge ---------------------------------------------------------------------------------------------------------

def two_of_one_person(shop):
    """The same person on two numbers of the workspace, with tags, fields, notes, runs and notifications."""
    admin = shop["admin"]
    second = make_instance(shop["ws"], "Suporte")
    keep = shop["contact"]
    other = lead(second, "5511922220002", "Sou a Maria do outro número", "Alô?", name="Maria S.")
    contacts.update_contact(admin, keep, name="Maria", custom_data={"plano": "Ouro", "cidade": "Recife"})
    contacts.update_contact(admin, other, name="Maria Souza", custom_data={"plano": "Prata", "cpf": "123"})
    with session_scope() as s:
        s.execute(update(Contact).where(Contact.id == other).values(email="maria@example.com"))
    contacts.add_tag(admin, keep, "VIP")
    contacts.add_tag(admin, other, "vip")
    contacts.add_tag(admin, other, "Suporte")
    contact_notes.add_note(admin, other, "Nota do outro cadastro")
    other_conv = conversation_of(other).id
    conversations.send_text(admin, other_conv, "Resposta no outro número", pause_bot=False)
    with session_scope() as s:
        s.add(Notification(workspace_id=shop["ws"], conversation_id=other_conv, body="Olhar este lead"))
    return keep, other, second


def test_preview_shows_both_sides_and_the_defaults(shop):
    keep, other, _ = two_of_one_person(shop)
    view = contact_merge.preview(shop["admin"], keep, other)
    rows = {row["field"]: (row["keep"], row["other"], row["default"]) for row in view["rows"]}
    assert rows == {"name": ("Maria", "Maria Souza", "keep"), "email": (None, "maria@example.com", "other"),
                    "custom_data.cidade": ("Recife", None, "keep"), "custom_data.cpf": (None, "123", "other"),
                    "custom_data.plano": ("Ouro", "Prata", "keep")}
    assert view["other"]["tags"] == ["Suporte", "VIP"] and view["other"]["instance"] == "Suporte"
    assert view["live_runs"] is False


def test_merge_moves_everything_and_records_it(shop):
    admin = shop["admin"]
    keep, other, second = two_of_one_person(shop)
    kept_conv, gone_conv = conversation_of(keep), conversation_of(other)
    with session_scope() as s:
        s.execute(update(Conversation).where(Conversation.id == kept_conv.id).values(status="closed"))
        unread = s.scalar(select(func.sum(Conversation.unread_count)))
    assert contact_merge.merge(admin, keep, other, {"name": "other", "custom_data.plano": "other"}) == keep

    with session_scope() as s:
        assert s.get(Contact, other) is None and s.get(Conversation, gone_conv.id) is None
        contact = s.get(Contact, keep)
        assert (contact.name, contact.email, contact.phone, contact.instance_id) == (
            "Maria Souza", "maria@example.com", "5511911110001", shop["inst"])
        assert contact.custom_data == {"plano": "Prata", "cidade": "Recife", "cpf": "123"}
        assert s.scalar(select(func.count()).select_from(ContactTag).where(ContactTag.contact_id == keep)) == 2
        conv = s.get(Conversation, kept_conv.id)
        texts = s.scalars(select(Message.text).where(Message.conversation_id == conv.id).order_by(Message.id)).all()
        assert texts == ["Oi", "Tudo bem?", "Sou a Maria do outro número", "Alô?", "Resposta no outro número"]
        assert conv.unread_count == unread == 4
        assert conv.status == "open"  # the other conversation was open
        assert (conv.last_message_preview, conv.last_message_direction) == ("Resposta no outro número", "out")
        assert s.scalar(select(Note.contact_id).where(Note.body == "Nota do outro cadastro")) == keep
        assert s.scalar(select(Notification.conversation_id)) == conv.id
        # the queued reply keeps its address (the other number and phone)
        command = s.scalar(select(Outbox.command))
        assert (command["instance_id"], command["to_phone"]) == (second, "5511922220002")
        merged = s.execute(select(ActivityEvent.data, ActivityEvent.actor_user_id).where(
            ActivityEvent.kind == "merged")).one()
        assert merged.actor_user_id == admin.user_id
        assert merged.data["other"]["phone"] == "5511922220002" and merged.data["other"]["tags"] == ["Suporte", "VIP"]
        assert merged.data["choices"] == {"name": "other", "custom_data.plano": "other", "email": "other",
                                          "custom_data.cpf": "other"}
        assert merged.data["moved"]["messages"] == 3
        # the other's tag activity now belongs to the kept contact
        assert s.scalar(select(func.count()).select_from(ActivityEvent).where(
            ActivityEvent.subject_type == "contact", ActivityEvent.subject_id == other)) == 0
    card = contact_card(admin, keep)
    assert card["tags"] == ["Suporte", "VIP"] and card["conversation_id"] == kept_conv.id
    # replies go out from the kept conversation's number to the kept phone
    conversations.send_text(admin, kept_conv.id, "Oi de novo", pause_bot=False)
    with session_scope() as s:
        command = s.scalars(select(Outbox.command).order_by(Outbox.id.desc())).first()
    assert (command["instance_id"], command["to_phone"]) == (shop["inst"], "5511911110001")


def test_inbound_after_merge_makes_the_removed_pair_a_new_contact(shop):
    admin = shop["admin"]
    keep, other, second = two_of_one_person(shop)
    contact_merge.merge(admin, keep, other)
    again = lead(second, "5511922220002", "Voltei por aqui")
    assert again not in (keep, other)
    assert conversation_of(again) is not None
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2
    lead(shop["inst"], "5511911110001", "E por aqui também")
    assert [i["text"] for i in contact_feed.feed(admin, keep, kinds=["message"])["items"]][0] == "E por aqui também"


def test_merge_refusals(shop):
    admin, agent = shop["admin"], shop["agent"]
    keep, other, _ = two_of_one_person(shop)
    with pytest.raises(PermissionDenied):
        contact_merge.merge(agent, keep, other)
    with pytest.raises(PermissionDenied):
        contact_merge.search_contacts(agent, "Maria")
    with pytest.raises(InvalidInput) as same:
        contact_merge.merge(admin, keep, keep)
    assert same.value.key == "error.merge_same"
    with pytest.raises(InvalidInput):
        contact_merge.merge(admin, keep, other, {"name": "both"})
    stranger_ws = make_workspace("Outra")
    foreign = lead(make_instance(stranger_ws), "5511900000009", "oi")
    with pytest.raises(NotFound):
        contact_merge.merge(admin, keep, foreign)
    with pytest.raises(NotFound):
        contact_merge.preview(admin, foreign, keep)
    with pytest.raises(NotFound):
        contact_merge.merge(admin, foreign, foreign)  # not "the same contact": it is not found at all
    with pytest.raises(NotFound):
        contact_merge.merge(make_actor(stranger_ws, "admin"), foreign, keep)
    assert contact_merge.search_contacts(admin, "5511900000009") == []  # another workspace's contact

    ws_funnel_run(shop, other, status="waiting")
    assert contact_merge.preview(admin, keep, other)["live_runs"] is True
    with pytest.raises(Conflict) as live:
        contact_merge.merge(admin, keep, other)
    assert live.value.key == "error.merge_live_run"
    with session_scope() as s:
        assert s.get(Contact, other) is not None  # nothing happened


def ws_funnel_run(shop, contact_id: int, status: str) -> None:
    """A run of a (tiny, published) funnel for the contact, in ``status``."""
    from workbench.services import funnels

    fid = funnels.create_funnel(shop["admin"], "Espera", linear({"kind": "manual"})())
    funnels.publish(shop["admin"], fid)
    with session_scope() as s:
        from workbench.store.models import Funnel

        funnel = s.get(Funnel, fid)
        s.add(FunnelRun(workspace_id=shop["ws"], funnel_id=fid, version_id=funnel.published_version_id,
                        conversation_id=s.scalar(select(Conversation.id).where(Conversation.contact_id == contact_id)),
                        contact_id=contact_id, status=status, current_node="gatilho"))


def test_search_is_bounded_and_literal(shop):
    admin = shop["admin"]
    publish(*[inbound(shop["inst"], phone=f"55119000{n:05d}", text="oi", push_name=f"Cliente {n}") for n in range(25)])
    run_jobs()
    found = contact_merge.search_contacts(admin, "Cliente", exclude_id=shop["contact"])
    assert len(found) == contact_merge.SEARCH_LIMIT
    assert contact_merge.search_contacts(admin, "%") == []  # a wildcard is a character here
    assert contact_merge.search_contacts(admin, "  ") == []
    assert [c["id"] for c in contact_merge.search_contacts(admin, "911110001")] == [shop["contact"]]
    assert contact_merge.search_contacts(admin, "Maria", exclude_id=shop["contact"]) == []


def test_merge_timestamps_keep_the_earliest(shop):
    keep, other, _ = two_of_one_person(shop)
    with session_scope() as s:
        s.execute(update(Contact).where(Contact.id == other).values(
            created_at=Contact.created_at - timedelta(days=30)))
        earliest = s.scalar(select(Contact.created_at).where(Contact.id == other))
    contact_merge.merge(shop["admin"], keep, other)
    with session_scope() as s:
        assert s.scalar(select(Contact.created_at).where(Contact.id == keep)) == earliest


def test_merge_into_a_contact_without_conversation_hands_it_the_other_ones(shop):
    """An imported contact (no conversation yet) kept: the other's conversation becomes its own, on its number."""
    admin = shop["admin"]
    second = make_instance(shop["ws"], "Suporte")
    with session_scope() as s:
        imported = Contact(workspace_id=shop["ws"], instance_id=second, phone="5511933334444", name="Importada")
        s.add(imported)
        s.flush()
        imported_id = imported.id
    card = contact_card(admin, imported_id)  # managers open it; it has no conversation
    assert card["conversation_id"] is None
    with pytest.raises(NotFound):
        contact_card(shop["agent"], imported_id)  # agents see only contacts of conversations they see
    moved = conversation_of(shop["contact"])
    contact_merge.merge(admin, imported_id, shop["contact"])
    conv = conversation_of(imported_id)
    assert (conv.id, conv.instance_id) == (moved.id, second)
    conversations.send_text(admin, conv.id, "Olá!", pause_bot=False)
    with session_scope() as s:
        command = s.scalars(select(Outbox.command)).one()
    assert (command["instance_id"], command["to_phone"]) == (second, "5511933334444")
    assert [i["text"] for i in contact_feed.feed(admin, imported_id, kinds=["message"])["items"]] == [
        "Olá!", "Tudo bem?", "Oi"]


def test_funnel_steps_record_what_they_change_with_source_funnel(engine, r):
    ws, inst, admin, [funnel_id] = setup_workspace(("Compra", linear(
        {"kind": "keyword", "mode": "contains", "words": ["comprar"]},
        ("remove_tag", {"tag": "frio"}),
        ("set_field", {"target": "contact.name", "value": "{{trigger.message}}"}),
        ("set_field", {"target": "contact.custom_data.origem", "value": "funil"}),
        ("set_field", {"target": "contact.custom_data.origem", "value": "funil"}),  # unchanged: not recorded
    )))
    contact = lead(inst, "5521944440001", "oi")
    contacts.add_tag(admin, contact, "frio")
    lead(inst, "5521944440001", "quero comprar")
    items = contact_feed.feed(admin, contact, kinds=["tag", "field"])["items"]
    funnel_items = [(item["event"], contact_feed.describe(item)) for item in items if item["source"] == "funnel"]
    assert funnel_items == [("field_changed", "Campo origem: — → funil"),
                            ("field_changed", "Campo nome: — → quero comprar"),
                            ("tag_removed", "Tag removida: frio")]
    assert all(item["data"]["funnel_id"] == funnel_id for item in items if item["source"] == "funnel")


def test_a_drain_batch_in_flight_finishes_first_and_its_message_moves(shop):
    """A merge waits for the drain transaction holding the contact's lane (its fencing lock), then moves what it
    stored."""
    import threading

    from sqlalchemy import text

    from engine.worker import jobs
    from engine.worker.inbound import apply_events
    from tests.factories import contact_lane

    admin = shop["admin"]
    keep, other, second = two_of_one_person(shop)
    lane = contact_lane(second, "5511922220002")
    epoch = jobs._claim(second, lane)  # as the drain that takes the lane does
    drain = session_scope()
    session = drain.__enter__()
    apply_events(session, second, [inbound(second, phone="5511922220002", text="no meio da mesclagem")], epoch,
                 lane)
    outcome: dict[str, object] = {}
    merging = threading.Thread(target=lambda: outcome.update(kept=contact_merge.merge(admin, keep, other)))
    merging.start()
    with session_scope() as s:  # wait (no time asserted) until the merge queues behind the drain's lock
        while not s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND datname = current_database()")):
            s.rollback()
            assert merging.is_alive()
    drain.__exit__(None, None, None)  # the drain commits
    merging.join()
    assert outcome["kept"] == keep
    texts = [i["text"] for i in contact_feed.feed(admin, keep, kinds=["message"], limit=100)["items"]]
    assert texts[0] == "no meio da mesclagem" and len(texts) == 6
    with session_scope() as s:
        assert s.get(Contact, other) is None
